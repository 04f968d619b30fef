"""spec -> plan, the linux.netDevices part (runtime-spec 1.3, config-linux.md "Network
Devices"): which host interfaces go into the container's network namespace, under which
names.

Called by `plan.build()` only for a config that has netDevices. Pure as the rest of the
planner: it checks what the config alone can tell (a new network namespace to move into,
valid interface names, two devices or a device and the namespace's own `lo` that would end up
with the same name). What only the host can tell (does the device exist here, is it a
loopback) is checked by `netdevices.check_host` before the clone; `netdevices` also does the
moving, with pyroute2.
"""

from __future__ import annotations

from .frozen import Section

IFNAMSIZ = 16  # with the NUL: a name has at most 15 bytes


class NetDevice(Section):
    """One entry of linux.netDevices: `host` (the key: the interface's name in the runtime's
    network namespace) becomes `name` in the container's; a `name` with "%d" is a template
    the kernel completes with the first free number."""

    __slots__ = ("host", "name")

    def __init__(self, host: str, name: str):
        self.host, self.name = host, name

    @property
    def template(self) -> bool:
        return "%d" in self.name


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def name_problem(name: str, template_ok: bool) -> str | None:
    """Why the kernel would refuse `name` as an interface name (dev_valid_name), or None.
    With `template_ok`, one "%d" is allowed (dev_alloc_name's template)."""
    if not name:
        return "an interface name must not be empty"
    if len(name.encode()) >= IFNAMSIZ:
        return f"interface name {name!r} is longer than {IFNAMSIZ - 1} bytes"
    if name in (".", ".."):
        return f"{name!r} is not a valid interface name"
    bad = [c for c in name if c in "/:" or c.isspace()]
    if bad:
        return f"interface name {name!r} must not contain {bad[0]!r}"
    if "%" in name:
        if not template_ok:
            return f"interface name {name!r} must not contain '%'"
        if name.count("%") > 1 or "%d" not in name:
            return (
                f"interface name {name!r}: a template has exactly one '%d' (the kernel "
                "puts the first free number there)"
            )
    return None


def plan_devices(
    net_devices: dict, new: set[str], joined: set[str], problems: list[str]
) -> list[NetDevice]:
    """The devices to move, in the config's order; problems as 'JSONPOINTER: message'.
    `new` / `joined`: the namespace types the container creates / joins by path."""
    base = ("linux", "netDevices")
    if "network" not in new:
        how = (
            "joins an existing one (path): ocirun only moves devices into a namespace it creates"
            if "network" in joined
            else "shares the runtime's"
        )
        problems.append(
            f"{_pointer(*base)}: moving network devices needs a new network "
            f"namespace in /linux/namespaces; the container {how}"
        )
    devices: list[NetDevice] = []
    # Names taken inside the new namespace: its own loopback, then each device's.
    taken: dict[str, str] = {"lo": "the namespace's loopback device"}
    for host, entry in net_devices.items():
        entry = entry if isinstance(entry, dict) else {}
        why = name_problem(host, template_ok=False)
        if why:
            problems.append(f"{_pointer(*base, host)}: {why}")
            continue
        if host == "lo":
            problems.append(
                f"{_pointer(*base, host)}: a loopback device can't be moved to "
                "another network namespace"
            )
            continue
        name: str = entry.get("name") or host
        where = _pointer(*base, host, "name") if entry.get("name") else _pointer(*base, host)
        why = name_problem(name, template_ok=True)
        if why:
            problems.append(f"{where}: {why}")
            continue
        dev = NetDevice(host, name)
        if not dev.template:
            if name in taken:
                problems.append(
                    f"{where}: the container would have two network devices "
                    f"named {name!r} (the other is {taken[name]}); a name "
                    "with %d lets the kernel pick a free one"
                )
                continue
            taken[name] = _pointer(*base, host)
        devices.append(dev)
    return devices
