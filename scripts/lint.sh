#!/usr/bin/env bash
# `make lint` (part of `make test`): the style and type gate, configured in pyproject.toml
# ([tool.ruff], [tool.mypy]) and .clang-format. Runs every check, then fails if any failed.
#   ruff check + ruff format --check   ocirun/ tests/ scripts/ bench/ csrc/*.py setup.py
#   mypy                               the modules [tool.mypy] files lists
#   gcc -Wall -Wextra -Werror          every csrc/ C file (syntax only: the shim's own flags
#                                      are in csrc/build_shim.py)
#   clang-format --dry-run --Werror    csrc/ but the generated trampoline_bin.h
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
venv=${VENV:-.venv}
failed=()

step() {
    local name=$1
    shift
    if "$@"; then
        echo "lint: $name: ok"
    else
        echo "lint: $name: FAILED" >&2
        failed+=("$name")
    fi
}

py=(ocirun tests scripts bench csrc setup.py)
step "ruff check" "$venv/bin/ruff" check -q "${py[@]}"
step "ruff format" "$venv/bin/ruff" format -q --check "${py[@]}"
step "mypy" "$venv/bin/mypy" --no-error-summary

cflags=(-fsyntax-only -std=gnu11 -Wall -Wextra -Werror)
c_ok() {
    local f rc=0
    for f in csrc/*.c; do
        gcc "${cflags[@]}" -Icsrc "$f" || rc=1
    done
    for f in csrc/launcher/*.c; do
        gcc "${cflags[@]}" '-DSITE_REL="lib/python3/site-packages"' "$f" || rc=1
    done
    gcc "${cflags[@]}" -ffreestanding -fno-builtin csrc/trampoline/trampoline.c || rc=1
    return $rc
}
step "gcc -Werror" c_ok

if command -v clang-format >/dev/null; then
    mapfile -t csources < <(find csrc -name '*.[ch]' ! -name trampoline_bin.h | sort)
    step "clang-format" clang-format --dry-run --Werror "${csources[@]}"
else
    echo "lint: clang-format: FAILED: not installed (scripts/deps.sh installs it)" >&2
    failed+=(clang-format)
fi

if ((${#failed[@]})); then
    echo "make lint: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "make lint: ok"
