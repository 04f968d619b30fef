#!/usr/bin/env bash
# `make test-installed` (part of `make test`): the wheel works without the checkout.
#
# Builds the wheel, installs it with scripts/install.sh into a fresh venv and bin dir under a
# temporary directory outside the checkout, then
#   1. runs the demo bundle (a copy outside the checkout) in a private mount namespace where an
#      empty tmpfs hides the checkout: nothing of the source tree may be read at run time;
#   2. runs tests/integration/test_lifecycle.py and test_frontdoor.py (the C front door against
#      the wheel's Python, call for call) against the installed command (OCIRUN_BIN);
#   3. uninstalls and checks that both the venv and the link are gone.
# Everything it makes is removed on exit, also after a failure.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/ocirun-installed.XXXXXX)
chmod 755 "$tmp"  # as /usr/local/lib: the tests also run the command as another user
cid="installed-$$"
cleanup() {
    [[ -x "$tmp/bin/ocirun" ]] && "$tmp/bin/ocirun" --root "$tmp/state" delete --force "$cid" \
        >/dev/null 2>&1 || true
    rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT

echo "test-installed: building the wheel and installing it into $tmp/venv"
bash "$repo/scripts/install.sh" install "$tmp/venv" "$tmp/bin" 2>&1 | grep -v '^WARNING: Location' || true
[[ -x "$tmp/bin/ocirun" ]] || { echo "test-installed: FAILED: no $tmp/bin/ocirun" >&2; exit 1; }

cp -a "$repo/bundles/busybox" "$tmp/bundle"
export OCIRUN_CACHE_DIR="$tmp/cache"
out=$(unshare -m --propagation private sh -c '
    mount -t tmpfs -o size=1m,mode=000 ocirun-hidden-checkout "$1" || exit 99
    [ -z "$(ls -A "$1")" ] || exit 98
    exec "$2" --root "$3" run --bundle "$4" "$5"' sh "$repo" "$tmp/bin/ocirun" "$tmp/state" \
    "$tmp/bundle" "$cid" </dev/null 2>&1) || {
    echo "test-installed: FAILED: the installed ocirun with the checkout hidden: $out" >&2
    exit 1
}
grep -q '^pid=1$' <<<"$out" || { echo "test-installed: FAILED: unexpected demo output: $out" >&2; exit 1; }
echo "test-installed: the demo ran from the installed wheel with the checkout hidden:"
sed 's/^/    /' <<<"$out"

OCIRUN_BIN="$tmp/bin/ocirun" "$repo/.venv/bin/python" -m pytest -q -p no:cacheprovider \
    "$repo/tests/integration/test_lifecycle.py" "$repo/tests/integration/test_frontdoor.py"

bash "$repo/scripts/install.sh" uninstall "$tmp/venv" "$tmp/bin"
if [[ -e "$tmp/venv" || -e "$tmp/bin/ocirun" ]]; then
    echo "test-installed: FAILED: uninstall left $(ls -d "$tmp"/venv "$tmp"/bin/ocirun 2>/dev/null)" >&2
    exit 1
fi
echo "test-installed: ok"
