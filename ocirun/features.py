"""`ocirun features`: runtime-spec features.json, saying exactly what this build supports.

Engines gate features on it (containerd checks mountExtensions.idmap, CRI-O/containerd look
for "rro" in mountOptions), so nothing is listed here that ocirun does not do.
"""

from __future__ import annotations

from . import SPEC_VERSION
from .tables import CAPS, MOUNT_FLAGS, NAMESPACES, PROPAGATION


def features() -> dict:
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer",
                  "poststart", "poststop"],
        "mountOptions": sorted(set(MOUNT_FLAGS) | set(PROPAGATION)),
        "linux": {
            "namespaces": sorted(NAMESPACES),
            "capabilities": sorted(CAPS, key=CAPS.get),
            "cgroup": {"v1": False, "v2": False, "systemd": False, "systemdUser": False,
                       "rdma": False},
            "seccomp": {"enabled": False},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"org.opencontainers.runtime-spec.features.ocirun.version": "0.1.0"},
    }
