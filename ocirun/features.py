"""`ocirun features`: runtime-spec features.json, saying exactly what this build supports.

Engines gate features on it (containerd checks mountExtensions.idmap, CRI-O/containerd look
for "rro" in mountOptions), so nothing is listed here that ocirun does not do.
"""

from __future__ import annotations

from . import SPEC_VERSION, __version__
from .tables import (
    CAPS,
    HOOK_PHASES,
    MOUNT_FLAGS,
    NAMESPACES,
    PROPAGATION,
    RECURSIVE_MOUNT_ATTRS,
)

# The architectures libseccomp 2.5 knows (each resolvable by seccomp_arch_resolve_name).
_ARCHES = (
    "X86",
    "X86_64",
    "X32",
    "ARM",
    "AARCH64",
    "MIPS",
    "MIPS64",
    "MIPS64N32",
    "MIPSEL",
    "MIPSEL64",
    "MIPSEL64N32",
    "PPC",
    "PPC64",
    "PPC64LE",
    "S390",
    "S390X",
    "PARISC",
    "PARISC64",
    "RISCV64",
)


def _seccomp() -> dict:
    from . import seccomp

    return {
        "enabled": True,
        "actions": sorted(seccomp.ACTIONS),
        "operators": sorted(seccomp.OPS),
        "archs": ["SCMP_ARCH_" + a for a in _ARCHES],
        "knownFlags": sorted(seccomp.FLAGS),
        "supportedFlags": sorted(seccomp.FLAGS),
    }


def _libseccomp() -> str:
    from .seccomp import libseccomp_version

    return libseccomp_version()


def _mount_setattr() -> bool:
    """Whether the kernel has mount_setattr(2) (5.12): idmapped mounts and recursive
    attributes need it. Asked with a bad fd: EBADF means it is there."""
    from errno import ENOSYS

    from ._native import lib

    return lib.ocirun_mount_setattr(-1, 0, 0, 0, -1) != -ENOSYS


def _netdevices() -> bool:
    """linux.netDevices is done with pyroute2 (a dependency): supported where it can be
    imported. Found, not imported (~100 ms)."""
    from importlib.util import find_spec

    return find_spec("pyroute2") is not None


def features(criu: str | None = None) -> dict:
    """`criu`: the --criu flag (checkpoint/restore's CRIU binary, else `criu` on PATH)."""
    from .criu_rpc import describe

    extensions = _mount_setattr()
    criu_version, criu_missing = describe(criu)
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": list(HOOK_PHASES),
        "mountOptions": sorted(
            set(MOUNT_FLAGS)
            | set(PROPAGATION)
            | {"tmpcopyup"}
            | (set(RECURSIVE_MOUNT_ATTRS) | {"idmap", "ridmap"} if extensions else set())
        ),
        "linux": {
            "namespaces": sorted(NAMESPACES),
            "capabilities": sorted(CAPS, key=CAPS.__getitem__),
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": True, "rdma": True},
            "seccomp": _seccomp(),
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "netDevices": {"enabled": _netdevices()},
            "mountExtensions": {"idmap": {"enabled": extensions}},
        },
        "annotations": {
            "org.opencontainers.runtime-spec.features.ocirun.version": __version__,
            "io.github.seccomp.libseccomp.version": _libseccomp(),
            # as runc's org.opencontainers.runc.checkpoint.enabled, but only when CRIU is
            # there to do it; the other says which CRIU, or why none
            "org.opencontainers.runtime-spec.features.ocirun.checkpoint.enabled": "true"
            if criu_version
            else "false",
            "org.opencontainers.runtime-spec.features.ocirun.criu": criu_version
            or f"unavailable: {criu_missing}",
        },
    }
