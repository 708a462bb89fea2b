# Sourced by scripts/train.sh and scripts/test.sh: make sure .venv at the repo root holds the project.
# The first run creates it and installs PyTorch and the project (a few GB, a few minutes);
# it installs again whenever pyproject.toml changes. Needs Python >= 3.11 and the package registries.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
stamp="$VENV/.installed-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "mnist-exp needs Python >= 3.11; $python is $("$python" --version 2>&1). Set PYTHON=/path/to/python3.11." >&2
    exit 1
  fi
  echo "Setting up $VENV (first run or pyproject.toml changed: installs PyTorch, a few minutes) ..." >&2
  [ -x "$VENV/bin/python" ] || "$python" -m venv "$VENV"
  # torch and torchvision in one command so that their builds match.
  "$VENV/bin/python" -m pip install --progress-bar on "torch==2.14.1" "torchvision==0.29.1" -e "$ROOT[dev]" >&2
  # hydra-optuna-sweeper (Optuna < 3) was the project's sweeper before mnist_exp/study/: not left beside Optuna >= 4
  "$VENV/bin/python" -m pip uninstall -y -q hydra-optuna-sweeper >&2 || true
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
cd "$ROOT"
