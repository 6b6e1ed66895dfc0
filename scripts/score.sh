#!/usr/bin/env bash
# Thin wrapper: the logic and --help live in fairseq_shiftadd/cli/score.py.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python=python3
exec "$python" -m fairseq_shiftadd.cli.score "$@"
