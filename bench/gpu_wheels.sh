#!/usr/bin/env bash
# Wheels that a lent GPU machine lacks (it has PyTorch, Lightning, torchmetrics, TensorBoard, rich,
# matplotlib, but not Hydra, kornia or captum) for its Python 3.12, into .whl/ (git-ignored), for
# bench/gpu_check.sh to install there. Run here, where the package registries are reachable.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mkdir -p .whl
PLATFORMS=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${PLATFORMS[@]}" -d .whl \
  hydra-core==1.3.8 omegaconf==2.3.1 kornia==0.9.0 kornia-rs==0.2.0 captum==0.9.0
python3 -m pip wheel -q --no-deps -w .whl antlr4-python3-runtime==4.9.3  # pure Python, published as source only
ls -la .whl
