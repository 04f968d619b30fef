#!/usr/bin/env bash
# Build ocirun's wheel into build/wheel/ (from the checkout, no dependencies) and print its
# path. Uses the development venv's pip (make build made it), else /usr/bin/python3's.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out="$repo/build/wheel"
pip=("$repo/.venv/bin/python" -m pip)
[[ -x "$repo/.venv/bin/python" ]] || pip=("${PYTHON:-/usr/bin/python3}" -m pip)
# setuptools builds in build/lib.*: what an earlier build left there (a module since removed)
# would go into the wheel
rm -rf "$out" "$repo"/build/lib.* "$repo"/build/bdist.* "$repo"/build/temp.*
mkdir -p "$out"
"${pip[@]}" wheel -q --disable-pip-version-check --no-deps -w "$out" "$repo" >&2
ls "$out"/ocirun-*.whl
