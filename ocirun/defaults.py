"""The default config.json written by `ocirun spec` (and used as the unit-test fixture).

The same as `runc spec` (runc 1.1.5) writes, field for field, because scripts and test
suites start from it and pass the flags that go with its defaults (`terminal: true` wants
`--console-socket`, or `run` in the foreground). The deliberate differences, listed in
docs/compat.md and checked against a live `runc spec` by tests/unit/test_spec_runc.py:
`ociVersion` is the spec version ocirun implements, and /sys/devices/virtual/powercap is
masked too (RAPL energy counters: a side channel).
"""

from __future__ import annotations

import os

from . import SPEC_VERSION

# The 14 capabilities container engines (containerd, podman) grant by default. Not what
# `spec` writes (see SPEC_CAPS); kept for the tests that check the engines' set.
DEFAULT_CAPS = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

# `runc spec`'s capabilities: these three in bounding, effective, permitted and ambient.
SPEC_CAPS = ("CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE")

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# runc's AllowedDevices, the one table for both uses: the entries with a path are the nodes
# every container gets in /dev (made in this order, unless linux.devices names the path),
# and every entry is a device-cgroup rule appended after the config's own (one with a path
# only while linux.devices does not name it). (path, type, major, minor, cgroup access);
# -1 is any number.
DEFAULT_DEVICES = (
    (None, "c", -1, -1, "m"),
    (None, "b", -1, -1, "m"),
    ("/dev/null", "c", 1, 3, "rwm"),
    ("/dev/random", "c", 1, 8, "rwm"),
    ("/dev/full", "c", 1, 7, "rwm"),
    ("/dev/tty", "c", 5, 0, "rwm"),
    ("/dev/zero", "c", 1, 5, "rwm"),
    ("/dev/urandom", "c", 1, 9, "rwm"),
    (None, "c", 136, -1, "rwm"),  # /dev/pts/*
    (None, "c", 5, 2, "rwm"),  # /dev/ptmx
    (None, "c", 10, 200, "rwm"),  # /dev/net/tun (runc kept it for compatibility)
)

# The nodes of DEFAULT_DEVICES: (path, type, major, minor), in runc's order (in a user
# namespace they are binds: the order shows in mountinfo).
DEFAULT_DEVICE_NODES = tuple((p, t, ma, mi) for p, t, ma, mi, _ in DEFAULT_DEVICES if p)

MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
    "/sys/devices/virtual/powercap",  # not in runc 1.1.5's list: see the module's doc
)

READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)


def _mounts() -> list[dict]:
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
        },
    ]


def default_config(rootless: bool = False) -> dict:
    """A fresh, valid config.json dict, keys in runc's order. `rootless` mirrors
    `runc spec --rootless`: a new user namespace mapping container root to the caller's
    euid/egid, no new network namespace, /sys bind-mounted from the host, no uid=/gid=
    mount options, no cgroup resources."""
    config: dict = {
        "ociVersion": SPEC_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [DEFAULT_PATH, "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                kind: list(SPEC_CAPS) for kind in ("bounding", "effective", "permitted", "ambient")
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": _mounts(),
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
    if rootless:
        _make_rootless(config)
    return config


def _make_rootless(config: dict) -> None:
    """What runc's specconv.ToRootless does to the default spec."""
    linux = config["linux"]
    namespaces = [ns for ns in linux["namespaces"] if ns["type"] not in ("network", "user")]
    namespaces.append({"type": "user"})
    # runc's field order: the mappings come first in "linux".
    config["linux"] = {
        "uidMappings": [{"containerID": 0, "hostID": os.geteuid(), "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": os.getegid(), "size": 1}],
        # No "resources": an unprivileged user cannot set cgroup limits without delegation.
        "namespaces": namespaces,
        **{k: v for k, v in linux.items() if k not in ("resources", "namespaces")},
    }

    mounts = []
    for mount in config["mounts"]:
        if os.path.normpath(mount["destination"]) == "/sys":
            # sysfs cannot be mounted fresh without owning the network namespace.
            mounts.append(
                {
                    "destination": "/sys",
                    "type": "none",
                    "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
                }
            )
            continue
        if "options" in mount:
            # Only the single mapped id exists inside; uid=5/gid=5 would be unmapped.
            options = [o for o in mount["options"] if not o.startswith(("uid=", "gid="))]
            if options:
                mount["options"] = options
            else:
                del mount["options"]  # as Go's omitempty drops an emptied list
        mounts.append(mount)
    config["mounts"] = mounts
