"""linux.netDevices on the host, with pyroute2 (rtnetlink): check the devices before the
clone, move them into the container's network namespace while its init waits, and move
them back when a later step of `create` fails.

What to move under which name is decided by the planner (`plan_netdevices`); this module
only talks to the kernel. It is imported only for a config that has netDevices: pyroute2
costs ~100 ms to import, which no other container pays.

Moving (runc's devChangeNetNamespace, runtime-spec 1.3 config-linux.md "Network Devices"):
one RTM_NEWLINK with IFLA_NET_NS_FD and IFLA_IFNAME moves and renames at once (a "%d" name
is completed by the kernel). The move drops every address, so the device's addresses are
read first; the permanent ones of global scope (IFA_F_PERMANENT, RT_SCOPE_UNIVERSE), IPv4
and IPv6, are added again inside, and the device is set up. They are read before anything
else touches the device: taking an interface down flushes its IPv6 addresses.

Nothing moves a device back once the container is created: runtime-spec forbids it, and when
the namespace dies the kernel returns physical devices to the initial namespace and destroys
virtual ones. Only a failed `create` undoes the moves, with the names, addresses and up
state the devices had, so that the host is as before; the parent holds the container's
namespace open until then, so a dead init can't take a veth with it.
"""

from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from . import log
from .errors import ConfigError, OcirunError

if TYPE_CHECKING:
    from .plan_netdevices import NetDevice

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0
# ifa_flags a user may set (ip-address(8): nodad, home, mngtmpaddr, noprefixroute,
# autojoin); the others are the kernel's state (tentative, deprecated, dadfailed...)
_USER_FLAGS = 0x02 | 0x10 | 0x100 | 0x200 | 0x400


def _iproute():
    from pyroute2 import IPRoute

    return IPRoute(ext_ack=True)  # the kernel's reason, not only its errno


def _netlink_error():
    from pyroute2.netlink.exceptions import NetlinkError

    return NetlinkError


def _link(ipr, *, name: str | None = None, index: int | None = None):
    """The RTM_NEWLINK message of a device by name or index, or None. One RTM_GETLINK, not
    a dump (which the kernel interrupts when links change meanwhile)."""
    try:
        links = ipr.link("get", **({"ifname": name} if name is not None else {"index": index}))
    except _netlink_error() as e:
        if e.code in (errno.ENODEV, errno.ENOENT):
            return None
        raise
    return links[0] if links else None


def _where(host: str) -> str:
    return f"/linux/netDevices/{host.replace('~', '~0').replace('/', '~1')}"


def check_host(devices: list[NetDevice]) -> None:
    """Before any side effect: every device is in the runtime's network namespace and can
    be moved (a loopback device can't). All problems at once, as a ConfigError."""
    problems = []
    with _iproute() as ipr:
        for d in devices:
            try:
                link = _link(ipr, name=d.host)
            except _netlink_error() as e:
                raise _error(e, f"look up network device {d.host}") from None
            if link is None:
                problems.append(
                    f"{_where(d.host)}: no network device {d.host!r} in the "
                    "runtime's network namespace"
                )
            elif link["flags"] & IFF_LOOPBACK:
                problems.append(
                    f"{_where(d.host)}: {d.host!r} is a loopback device, which "
                    "can't be moved to another network namespace"
                )
    if problems:
        raise ConfigError(problems)


class Address:
    """One address of a device, as RTM_NEWADDR needs it again."""

    __slots__ = ("family", "prefixlen", "flags", "scope", "address", "local", "broadcast")

    def __init__(self, msg):
        self.family, self.prefixlen, self.scope = msg["family"], msg["prefixlen"], msg["scope"]
        self.flags = msg.get_attr("IFA_FLAGS") or msg["flags"]
        self.address = msg.get_attr("IFA_ADDRESS")
        self.local = msg.get_attr("IFA_LOCAL")
        self.broadcast = msg.get_attr("IFA_BROADCAST")

    @property
    def kept(self) -> bool:
        """Taken into the container: permanent, global scope (runtime-spec)."""
        return bool(self.flags & IFA_F_PERMANENT) and self.scope == RT_SCOPE_UNIVERSE

    def add(self, ipr, index: int) -> None:
        args = {
            "index": index,
            "family": self.family,
            "prefixlen": self.prefixlen,
            "scope": self.scope,
        }
        if self.address is not None:
            args["address"] = self.address
        if self.local is not None:
            args["local"] = self.local
        if self.broadcast is not None:
            args["broadcast"] = self.broadcast
        flags = self.flags & _USER_FLAGS
        if flags:
            args["flags"] = flags & 0xFF
            if flags > 0xFF:
                args["IFA_FLAGS"] = flags
        ipr.addr("add", **args)

    def __str__(self) -> str:
        return f"{self.local or self.address}/{self.prefixlen}"


class Moved:
    """A device in the container's namespace: what moving it back needs."""

    __slots__ = ("host", "index", "was_up", "addresses")

    def __init__(self, host: str, index: int, was_up: bool, addresses: list[Address]):
        self.host, self.index, self.was_up, self.addresses = host, index, was_up, addresses


class Mover:
    """Moves devices into the network namespace of process `pid` and, on a failed create,
    back. Holds that namespace open (and netlink sockets in both) until `close`."""

    def __init__(self, pid: int):
        self.host_fd = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.ns_fd = -1
        self.host = self.inside = None
        try:
            self.ns_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            if os.fstat(self.ns_fd).st_ino == os.fstat(self.host_fd).st_ino:
                raise OcirunError(
                    "linux.netDevices: the container's network namespace is the runtime's"
                )
            self.host = _iproute()
            self.inside = self._iproute_in(self.ns_fd)
        except BaseException:
            self.close()
            raise

    def _iproute_in(self, ns_fd: int):
        """An IPRoute whose socket lives in namespace `ns_fd`: a socket stays in the
        namespace it was made in, so this thread visits the namespace only to make it."""
        from pyroute2.netns import setns

        setns(ns_fd)
        try:
            return _iproute()
        finally:
            setns(self.host_fd)  # cannot fail: our own namespace, and we are root in it

    def close(self) -> None:
        for ipr in (self.inside, self.host):
            if ipr is not None:
                try:
                    ipr.close()
                except Exception as e:  # noqa: BLE001 (an undo step: the rest must run)
                    log.warning(f"netDevices: closing a netlink socket: {e}")
        self.host = self.inside = None
        for fd in (self.ns_fd, self.host_fd):
            if fd >= 0:
                os.close(fd)
        self.ns_fd = self.host_fd = -1

    def move_in(self, d: NetDevice, undo) -> None:
        """Move `d` in, renamed, with its permanent global addresses, and set it up; what was
        moved is moved back by `undo` if create fails later."""
        NetlinkError = _netlink_error()
        link = _link(self.host, name=d.host)
        if link is None:
            raise OcirunError(
                f"{_where(d.host)}: network device {d.host!r} is gone from the "
                "runtime's network namespace"
            )
        index = link["index"]
        addresses = _addresses(self.host, index, d.host)
        moved = Moved(d.host, index, bool(link["flags"] & IFF_UP), addresses)
        try:
            self.host.link("set", index=index, net_ns_fd=self.ns_fd, ifname=d.name)
        except NetlinkError as e:
            # The kernel may have moved it before refusing the name: then it is inside.
            if _link(self.host, index=index) is not None or _link(self.inside, index=index) is None:
                renamed = f" as {d.name}" if d.name != d.host else ""
                raise _error(
                    e, f"move network device {d.host} into the container{renamed}"
                ) from None
            undo.add(self.move_out, moved)
            raise _error(
                e, f"rename network device {d.host} to {d.name} in the container"
            ) from None
        undo.add(self.move_out, moved)
        name = d.name
        # The index stays: the namespace is new, holding only its lo (1) and devices from
        # ours, whose indexes differ.
        try:
            inside = _link(self.inside, index=index)
            if inside is None:
                raise NetlinkError(errno.ENODEV)
            name = inside.get_attr("IFLA_IFNAME")
            for a in addresses:
                if a.kept:
                    a.add(self.inside, index)
            self.inside.link("set", index=index, state="up")
        except NetlinkError as e:
            raise _error(e, f"set up network device {name} in the container") from None
        log.debug(
            f"netDevices: {d.host} is {name} in the container, with "
            f"{', '.join(str(a) for a in addresses if a.kept) or 'no addresses'}"
        )

    def move_out(self, m: Moved) -> None:
        """Undo move_in: back to the runtime's namespace under its old name, with every
        permanent address it had and up if it was. Best effort: a failure is logged, so the
        error that made create fail stays the one reported."""
        NetlinkError = _netlink_error()
        try:
            self.inside.link("set", index=m.index, net_ns_fd=self.host_fd, ifname=m.host)
            link = _link(self.host, name=m.host)
            if link is None:
                raise NetlinkError(errno.ENODEV)
            for a in m.addresses:
                if a.flags & IFA_F_PERMANENT:
                    try:
                        a.add(self.host, link["index"])
                    except NetlinkError as e:
                        if e.code != errno.EEXIST:
                            raise
            if m.was_up:
                self.host.link("set", index=link["index"], state="up")
        except Exception as e:  # noqa: BLE001 (an undo step: the init's kill comes after)
            why = _error(e, "netlink") if isinstance(e, (NetlinkError, OSError)) else repr(e)
            log.warning(
                f"netDevices: could not move {m.host} back to the runtime's network "
                f"namespace: {why}"
            )


def _addresses(ipr, index: int, name: str) -> list[Address]:
    """Every address of device `index`: a dump, which the kernel marks interrupted when
    addresses change meanwhile; then it is asked again."""
    from pyroute2.netlink.exceptions import NetlinkDumpInterrupted

    for attempt in range(5):
        try:
            return [Address(m) for m in ipr.get_addr(index=index)]
        except NetlinkDumpInterrupted as e:
            if attempt == 4:
                raise _error(e, f"read the addresses of network device {name}") from None
        except _netlink_error() as e:
            raise _error(e, f"read the addresses of network device {name}") from None
    raise AssertionError("unreachable")


def _error(e, what: str) -> OcirunError:
    """A NetlinkError or OSError as one line: the kernel's extended ack if it gave one."""
    detail = e.args[1] if len(e.args) > 1 and e.args[1] else None
    if not detail:
        code = getattr(e, "code", None) or getattr(e, "errno", None)
        detail = os.strerror(code) if code else str(e)
    return OcirunError(f"{what}: {detail}")


def move_in(devices: list[NetDevice], pid: int, undo) -> Mover:
    """Move every device into the network namespace of `pid` (the container's init, which
    waits), registering on `undo` how to move each back. The caller closes the Mover once
    create has succeeded (after undo is disarmed)."""
    mover = Mover(pid)
    undo.add(mover.close)  # after the moves back (undone newest first)
    for d in devices:
        mover.move_in(d, undo)
    return mover
