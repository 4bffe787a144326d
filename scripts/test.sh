#!/usr/bin/env bash
# Set up .venv (first run only) and run the whole test suite.
source "$(dirname "$0")/_venv.sh"
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$ROOT/.venv/numba-cache}"
export MPLBACKEND=Agg
ruff check . || { echo "ruff check failed"; exit 1; }
exec pytest "$@"
