"""`ocirun spec` writes what `runc spec` writes (runc 1.1.5 here), compared live, field by
field, when runc is installed. The deliberate differences (docs/compat.md) are the only
ones allowed: `ociVersion` (the runtime-spec version ocirun implements) and one more masked
path. Both run as the same user, so `--rootless` maps the same ids."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from testenv import OCIRUN

from ocirun import SPEC_VERSION

RUNC = shutil.which("runc")
EXTRA_MASKED = ["/sys/devices/virtual/powercap"]

needs_runc = pytest.mark.skipif(RUNC is None, reason="runc is not installed")


def spec_of(tool: str, tmp_path: Path, *flags: str) -> tuple[dict, str]:
    d = tmp_path / Path(tool).name
    d.mkdir()
    r = subprocess.run(
        [tool, "spec", *flags],
        cwd=d,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    assert r.returncode == 0, f"{tool} spec {' '.join(flags)}: {r.stderr}"
    text = (d / "config.json").read_text()
    return json.loads(text), text


def documented(ours: dict, theirs: dict) -> dict:
    """`ours` with the documented differences put back to runc's values (checked here)."""
    ours = json.loads(json.dumps(ours))
    assert ours["ociVersion"] == SPEC_VERSION
    ours["ociVersion"] = theirs["ociVersion"]
    masked = ours["linux"]["maskedPaths"]
    assert masked[-len(EXTRA_MASKED) :] == EXTRA_MASKED
    del masked[-len(EXTRA_MASKED) :]
    return ours


def paths(obj, prefix="") -> dict[str, object]:
    """Every leaf as {json-path: value}, for a readable field-by-field diff."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(paths(v, f"{prefix}/{k}"))
        return out or {prefix: {}}
    if isinstance(obj, list):
        out = {}
        for i, v in enumerate(obj):
            out.update(paths(v, f"{prefix}/{i}"))
        return out or {prefix: []}
    return {prefix: obj}


@needs_runc
@pytest.mark.parametrize("flags", [(), ("--rootless",)], ids=["default", "rootless"])
def test_spec_matches_runc(tmp_path, flags):
    theirs, their_text = spec_of(RUNC, tmp_path, *flags)
    ours, our_text = spec_of(OCIRUN, tmp_path, *flags)
    ours = documented(ours, theirs)
    a, b = paths(ours), paths(theirs)
    diff = {
        k: (a.get(k, "<missing>"), b.get(k, "<missing>"))
        for k in sorted(a.keys() | b.keys())
        if a.get(k) != b.get(k)
    }
    assert diff == {}, "ocirun spec vs runc spec (ours, runc's):\n" + "\n".join(
        f"  {k}: {v[0]!r} vs {v[1]!r}" for k, v in diff.items()
    )
    # The same keys in the same order, and the same layout (tabs), so the files diff cleanly.
    assert json.dumps(ours) == json.dumps(theirs)
    assert our_text.startswith('{\n\t"ociVersion": ')
    assert our_text.rstrip("\n").count("\n") == their_text.count("\n") + len(EXTRA_MASKED)


def test_spec_defaults_without_runc(tmp_path):
    """The runc defaults that scripts depend on, checked even where runc is absent."""
    cfg, _ = spec_of(OCIRUN, tmp_path)
    p = cfg["process"]
    assert p["terminal"] is True and p["args"] == ["sh"] and p["cwd"] == "/"
    assert p["user"] == {"uid": 0, "gid": 0} and p["noNewPrivileges"] is True
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    assert p["capabilities"] == {k: caps for k in ("bounding", "effective", "permitted", "ambient")}
    assert cfg["hostname"] == "runc" and cfg["root"] == {"path": "rootfs", "readonly": True}
    assert [n["type"] for n in cfg["linux"]["namespaces"]] == [
        "pid",
        "network",
        "ipc",
        "uts",
        "mount",
    ]
