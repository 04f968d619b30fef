"""Device rules: the config's linux.resources.devices plus the defaults runc appends, as one
ordered list (v1 writes it to devices.allow/deny; v2 compiles it to eBPF)."""

from ..defaults import DEFAULT_DEVICES
from .common import CgroupError


def device_rules(linux: dict) -> list[dict]:
    """The effective rule list, in order, last match wins, starting from deny-all:
    [{"allow": bool, "type": "a"|"b"|"c", "major": int (-1 = any), "minor": int, "access"}]."""
    rules = [{"allow": False, "type": "a", "major": -1, "minor": -1, "access": "rwm"}]
    for i, d in enumerate((linux.get("resources") or {}).get("devices") or []):
        t = d.get("type") or "a"
        if t not in ("a", "b", "c"):
            raise CgroupError(f'invalid cgroup device type "{t}"')
        access = d.get("access") or ""
        if not access:
            raise CgroupError(f"device access at {i} field cannot be empty")
        major, minor = d.get("major"), d.get("minor")
        rules.append(
            {
                "allow": bool(d.get("allow")),
                "type": t,
                "major": -1 if major is None else int(major),
                "minor": -1 if minor is None else int(minor),
                "access": access,
            }
        )
    configured = {d.get("path") for d in linux.get("devices") or []}
    # runc appends its defaults after the config's own rules (defaults.DEFAULT_DEVICES)
    for path, t, major, minor, access in DEFAULT_DEVICES:
        if path is None or path not in configured:
            rules.append(
                {"allow": True, "type": t, "major": major, "minor": minor, "access": access}
            )
    return rules


def rule_text(r: dict) -> str:
    """A rule as devices.allow/deny take it: "c 1:3 rwm", "a *:* rwm"."""
    major = "*" if r["major"] < 0 else str(r["major"])
    minor = "*" if r["minor"] < 0 else str(r["minor"])
    return f"{r['type']} {major}:{minor} {r['access']}"
