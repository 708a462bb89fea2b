#!/usr/bin/env bash
# The whole test suite: bash scripts/test.sh [pytest args...]
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"
# tests/test_study.py starts a throwaway PostgreSQL server: install Debian's when it is missing and
# this user can; otherwise those tests are skipped, each with the reason (pytest -ra lists them).
if [ -z "${MNIST_EXP_PG_BIN:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing the PostgreSQL server for the study tests (apt-get install postgresql) ..." >&2
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; }; } \
      || echo "Could not install PostgreSQL: the study tests will be skipped." >&2
  else
    echo "No PostgreSQL server binaries (initdb): the study tests will be skipped; install postgresql to run them." >&2
  fi
fi
# tests/test_dashboard.py opens optuna-dashboard in a real headless browser: Debian's chromium, the same way.
if [ -z "${MNIST_EXP_CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing headless Chromium for the browser tests (apt-get install chromium) ..." >&2
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2; }; } \
      || echo "Could not install Chromium: the browser tests will be skipped." >&2
  else
    echo "No chromium: the browser tests will be skipped; install chromium to run them." >&2
  fi
fi
exec "$VENV/bin/python" -m pytest "$@"
