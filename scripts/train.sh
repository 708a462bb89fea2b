#!/usr/bin/env bash
# Train: bash scripts/train.sh [hydra overrides...], e.g. bash scripts/train.sh model.channels=32
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec "$VENV/bin/python" -m mnist_exp "$@"
