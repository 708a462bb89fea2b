#!/usr/bin/env bash
# The GPU check: one script, about 5 minutes on one H100/H200, that prints a markdown table.
#
#   bash bench/gpu_check.sh            # on a machine with a CUDA GPU, inside the project's environment
#
# Runs, each in its own process with precision `auto` (bf16-mixed on a bf16 GPU):
#   experiment=fast (seeds 0, 1, 2), the default recipe, one epoch of experiment=tutorial (throughput),
#   and trainer=ddp over every GPU present; then prints wall time (process start to exit), fit time,
#   training images/s and test accuracy for each, with the GPU's name. Target: experiment=fast fit <= 3 s.
#
# On a machine without the project's packages (a lent GPU machine with PyTorch, Lightning and
# torchmetrics but no Hydra): `bash bench/gpu_wheels.sh` here first, then carry `.whl` and `data`;
# this script installs the wheels into /tmp/site when it finds `.whl/`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if [ -d .whl ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
EXTRA=("$@")  # e.g. trainer.limit_train_batches=0.05 to try the script quickly
OUT=$(mktemp -d /tmp/mnist-exp-gpu-check.XXXXXX)
export PYTHONUNBUFFERED=1

"$PYTHON" - <<'EOF'
import torch
if not torch.cuda.is_available():
    raise SystemExit("bench/gpu_check.sh needs a CUDA GPU (torch.cuda.is_available() is False)")
print(f"GPU: {torch.cuda.get_device_name(0)} x {torch.cuda.device_count()}, torch {torch.__version__}, bf16 {torch.cuda.is_bf16_supported()}")
EOF

run() {  # run NAME OVERRIDES...: one training process, timed from start to exit
  local name=$1; shift
  local started=$EPOCHREALTIME
  if "$PYTHON" -m mnist_exp "$@" "${EXTRA[@]}" hydra.run.dir="$OUT/$name" > "$OUT/$name.log" 2>&1; then
    echo "$name $(awk "BEGIN {print $EPOCHREALTIME - $started}")" >> "$OUT/walls.txt"
  else
    echo "$name failed: $(tail -n 3 "$OUT/$name.log" | tr '\n' ' ')" >&2
    echo "$name nan" >> "$OUT/walls.txt"
  fi
  echo "  done: $name" >&2
}

for seed in 0 1 2; do run "fast-seed$seed" experiment=fast trainer=gpu seed=$seed; done
run default trainer=gpu
run tutorial-1-epoch experiment=tutorial trainer=gpu trainer.max_epochs=1
GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")
run "ddp-$GPUS-gpus" experiment=fast trainer=ddp trainer.devices="$GPUS"

"$PYTHON" - "$OUT" <<'EOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
walls = dict(line.split(" ", 1) for line in (out / "walls.txt").read_text().splitlines())
print(f"\n| run | precision | wall, process start to exit | fit | train images/s | test acc |\n|---|---|---|---|---|---|")
for name, wall in walls.items():
    metrics_file = out / name / "metrics.json"
    if not metrics_file.exists():
        print(f"| {name} | | failed | | | |")
        continue
    m = json.loads(metrics_file.read_text())
    print(f"| {name} | {m.get('precision')} | {float(wall):.1f} s | {m['fit_seconds']:.1f} s | "
          f"{m.get('train_images_per_second', float('nan')):,.0f} | {m['test/acc']:.2%} |")
gpu = next((json.loads((out / n / "metrics.json").read_text())["hardware"]["gpu"] for n in walls if (out / n / "metrics.json").exists()), None)
print(f"\nGPU: {gpu}; logs and run dirs in {out}")
EOF
