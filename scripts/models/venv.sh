#!/usr/bin/env bash
# Builds the Python environment for weir's model tooling (training, ONNX
# export, onnxruntime parity) from PyPI, once: target/ml-venv by default,
# or $WEIR_ML_VENV. Prints the environment's python on its last line.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${WEIR_ML_VENV:-$root/target/ml-venv}"
requirements="$root/scripts/models/requirements.txt"
stamp="$venv/.requirements"
if [ -x "$venv/bin/python" ] && cmp -s "$requirements" "$stamp"; then
  echo "$venv/bin/python"
  exit 0
fi
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
cp "$requirements" "$stamp"
echo "$venv/bin/python"
