#!/usr/bin/env bash
# shiftadd-retrain from a checkout without installing the package; the logic and --help live in
# fairseq_shiftadd/cli/retrain.py.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python=python3
exec "$python" -m fairseq_shiftadd.cli.retrain "$@"
