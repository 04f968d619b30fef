"""runtime-spec "seccomp notify": the runtime's side of handing the init's listener fd to
the agent at linux.seccomp.listenerPath."""

from __future__ import annotations

import socket

from . import _lean as json
from .errors import OcirunError


def send_listener(path: str, fd: int, state: dict, metadata: str = "") -> None:
    """runtime-spec "seccomp notify": send the listener fd with the container process state
    (a ContainerProcessState) to the unix socket at linux.seccomp.listenerPath."""

    msg = json.dumps(
        {
            "ociVersion": state.get("ociVersion", "1.3.0"),
            "fds": ["seccompFd"],
            "pid": state.get("pid", 0),
            "metadata": metadata,
            "state": state,
        }
    )
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        s.sendmsg(
            [msg.encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fd.to_bytes(4, "little"))]
        )
    except OSError as e:
        raise OcirunError(f"send the seccomp listener to {path}: {e.strerror}") from None
    finally:
        s.close()
