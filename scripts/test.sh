#!/usr/bin/env bash
# The whole test suite: bash scripts/test.sh [pytest args...]
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
exec "$VENV/bin/python" -m pytest "$@"
