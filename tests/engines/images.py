"""Offline busybox images for the engine tests, built from bundles/busybox/rootfs.

Nothing is downloaded: the layer is a tar of the test rootfs, and the OCI image
layout (blobs/sha256/*, oci-layout, index.json) is written by hand, since it is
only a few JSON documents named by their sha256.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _filter(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    # Whatever other tests left in the shared rootfs's /tmp is not image content.
    if info.name.startswith(("tmp/", "var/tmp/")):
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    return info


def rootfs_tar(rootfs: Path) -> bytes:
    """A reproducible, uncompressed tar of ROOTFS with paths relative to it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(rootfs.iterdir()):
            tar.add(str(entry), arcname=entry.name, filter=_filter)
    return buf.getvalue()


def write_rootfs_tar(rootfs: Path, dest: Path) -> Path:
    dest.write_bytes(rootfs_tar(rootfs))
    return dest


def _blob(blobs: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest.split(":", 1)[1]).write_bytes(data)
    return digest, len(data)


def _json(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def write_oci_archive(rootfs: Path, dest: Path, name: str) -> Path:
    """Write DEST, an OCI image layout in a tar ("oci-archive"), of one image.

    NAME (e.g. docker.io/library/ocirun-busybox:latest) is stored both as
    io.containerd.image.name (what `ctr images import` names the image) and,
    for its tag part, as org.opencontainers.image.ref.name.
    """
    layout = dest.with_suffix(".layout")
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    layer = rootfs_tar(rootfs)
    layer_digest, layer_size = _blob(blobs, layer)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Env": [PATH_ENV], "Cmd": ["sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [
            {
                "created": "1970-01-01T00:00:00Z",
                "created_by": "tests/engines/images.py (bundles/busybox/rootfs)",
            }
        ],
    }
    config_digest, config_size = _blob(blobs, _json(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": layer_size,
            }
        ],
    }
    manifest_digest, manifest_size = _blob(blobs, _json(manifest))
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                },
            }
        ],
    }
    (layout / "index.json").write_bytes(_json(index))
    (layout / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))

    with tarfile.open(dest, "w") as tar:
        for entry in ("oci-layout", "index.json", "blobs"):
            tar.add(str(layout / entry), arcname=entry)
    return dest
