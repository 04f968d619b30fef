"""Talking to CRIU the way runc does: `criu swrk 3` on one end of a SOCK_SEQPACKET pair,
one protobuf message (CRIU's images/rpc.proto, compiled at build time into _criu_rpc_pb2)
per packet each way.

    criu = find(flag)                    # --criu, else `criu` on PATH
    resp = criu.call(req, log=path, on_notify=fn, stdio=(0, 1, 2), before=fn)

A request is answered by NOTIFY messages (the dump's network-lock, the restore's
setup-namespaces, post-restore, orphan-pts-master carrying an fd, ...), each of which we
acknowledge after `on_notify(script, pid, fds)` ran, then by one final response. A failure
becomes one line naming CRIU's log file and the last error it logged.
"""

from __future__ import annotations

import array
import os
import socket
import subprocess

from .errors import OcirunError

# The messages CRIU logs as errors on every run here, which never explain a failure: the
# runtime's capability set may lack CAP_SYS_RESOURCE (a VM's, a nested container's).
_HARMLESS = ("Can't setup RLIMIT_NOFILE for self",)
# Its closing words, which only say that something before failed, and the exit status of
# a helper it ran (iptables-restore, tar), which the next error explains.
_SUMMARY = (
    "Dumping FAILED.",
    "Restoring FAILED.",
    "failed with -1",
    "Pre-dumping FAILED.",
    "exited, status=",
)
_MAX_MSG = 10 * 4096  # runc's buffer; CRIU's largest responses are far smaller


def pb():
    """The generated message classes, or an error saying why there are none."""
    try:
        from . import _criu_rpc_pb2
    except ImportError as e:
        raise OcirunError(
            f"checkpoint/restore unavailable: ocirun was built without CRIU's "
            f"RPC bindings ({e}); rebuild with protoc installed"
        ) from None
    return _criu_rpc_pb2


class CriuError(OcirunError):
    pass


def last_error(log: str) -> str | None:
    """The last line CRIU logged as an error (without its timestamp), skipping the known
    harmless ones; None without a log or an error in it."""
    try:
        with open(log, "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if "Error (" not in line or any(h in line for h in _HARMLESS + _SUMMARY):
            continue
        text = line.split(") ", 1)[1] if line.startswith("(") and ") " in line else line
        return text.strip()
    return None


def failure(what: str, log: str | None, detail: str = "") -> CriuError:
    """One line: what failed, CRIU's own words if any, the log file and its last error."""
    msg = f"{what}{': ' + detail if detail else ''}"
    if log:
        err = last_error(log)
        msg += f" (log {log}" + (f": {err})" if err else ")")
    return CriuError(msg)


class Criu:
    def __init__(self, path: str):
        self.path = path

    def call(
        self,
        req,
        *,
        log: str | None = None,
        on_notify=None,
        stdio=None,
        before=None,
        extra_fds: tuple[int, ...] = (),
    ):
        """Send `req` to a new `criu swrk`, answer its notifications, return its final
        response. `stdio`: the fds CRIU gets as 0, 1, 2 (a restore hands them to the tree:
        inherit_fd); `before(pid)` runs once CRIU is started, before it gets the request
        (a restore puts CRIU in the container's cgroups then); `extra_fds` stay open in
        CRIU under the same numbers (namespace files named by inherit_fd)."""
        pbm = pb()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        proc = None
        try:
            fd = theirs.fileno()
            stdin, stdout, stderr = stdio or (
                subprocess.DEVNULL,
                subprocess.DEVNULL,
                subprocess.DEVNULL,
            )
            try:
                proc = subprocess.Popen(
                    [self.path, "swrk", str(fd)],
                    pass_fds=(fd, *extra_fds),
                    stdin=stdin,
                    stdout=stdout,
                    stderr=stderr,
                    close_fds=True,
                )
            except OSError as e:
                raise CriuError(f"run CRIU {self.path}: {e.strerror or e}") from None
            theirs.close()
            if before is not None:
                before(proc.pid)
            ours.sendall(req.SerializeToString())
            kind = pbm.criu_req_type.Name(req.type)
            while True:
                resp, fds = self._recv(ours, pbm, kind, log)
                if resp.type != pbm.NOTIFY:
                    break
                try:
                    if on_notify is not None:
                        on_notify(resp.notify.script, resp.notify.pid, fds)
                finally:
                    for f in fds:
                        os.close(f)
                ours.sendall(pbm.criu_req(type=pbm.NOTIFY, notify_success=True).SerializeToString())
            if resp.type != req.type:
                raise failure(f"CRIU {kind}: unexpected response {resp.type}", log)
            if not resp.success:
                detail = resp.cr_errmsg.strip()
                if any(h in detail for h in _HARMLESS + _SUMMARY):  # not the cause
                    detail = ""
                if not detail and resp.cr_errno:
                    detail = os.strerror(resp.cr_errno)
                raise failure(f"CRIU {kind.lower()} failed", log, detail)
            return resp
        except BaseException:
            if proc is not None and proc.poll() is None:
                proc.kill()
            raise
        finally:
            ours.close()
            if theirs.fileno() >= 0:
                theirs.close()
            if proc is not None:
                proc.wait()

    @staticmethod
    def _recv(sock: socket.socket, pbm, kind: str, log: str | None):
        fds = array.array("i")
        data, anc, _flags, _addr = sock.recvmsg(
            _MAX_MSG, socket.CMSG_SPACE(16 * fds.itemsize), socket.MSG_CMSG_CLOEXEC
        )
        for level, type_, raw in anc:
            if level == socket.SOL_SOCKET and type_ == socket.SCM_RIGHTS:
                fds.frombytes(raw[: len(raw) - len(raw) % fds.itemsize])
        if not data:
            for f in fds:
                os.close(f)
            raise failure(f"CRIU {kind.lower()} failed: CRIU exited without an answer", log)
        resp = pbm.criu_resp()
        try:
            resp.ParseFromString(data)
        except Exception as e:  # google.protobuf.message.DecodeError
            for f in fds:
                os.close(f)
            raise failure(f"CRIU {kind.lower()}: bad response ({e})", log) from None
        return resp, list(fds)

    def version(self) -> str:
        """ "4.2" (with the sublevel when there is one), asked over RPC."""
        pbm = pb()
        v = self.call(pbm.criu_req(type=pbm.VERSION)).version
        text = f"{v.major_number}.{v.minor_number}"
        if v.HasField("sublevel") and v.sublevel:
            text += f".{v.sublevel}"
        return text

    def version_number(self) -> int:
        """major * 10000 + minor * 100 + sublevel, as runc compares versions."""
        parts = [int(p) for p in self.version().split(".")] + [0, 0]
        return parts[0] * 10000 + parts[1] * 100 + parts[2]

    def mem_track(self) -> bool:
        """Whether this kernel lets CRIU track memory changes (soft-dirty bits): pre-dump and
        --parent-path need it."""
        pbm = pb()
        req = pbm.criu_req(type=pbm.FEATURE_CHECK)
        req.features.mem_track = True
        return self.call(req).features.mem_track


def find(flag: str | None) -> Criu:
    """The CRIU binary: `--criu` (a path, or a name looked up on PATH), else `criu` on PATH."""
    import shutil

    name = flag or "criu"
    path = name if "/" in name else shutil.which(name)
    if not path or not os.access(path, os.X_OK) or os.path.isdir(path):
        where = f"--criu {flag}" if flag else "criu on PATH"
        raise CriuError(
            f"CRIU not found ({where}): checkpoint/restore needs CRIU >= 3.0 "
            "(give its path with --criu)"
        )
    return Criu(os.path.abspath(path))


def describe(flag: str | None) -> tuple[str | None, str | None]:
    """(version, None) when CRIU is usable, (None, why not) otherwise: for `features` and
    `--version` (which podman asks on every `podman info`: `criu --version`, not the RPC,
    and the bindings found, not imported)."""
    from importlib.util import find_spec

    try:
        criu = find(flag)
        if find_spec("google.protobuf") is None or find_spec("ocirun._criu_rpc_pb2") is None:
            pb()  # raises, saying why
            raise OcirunError("the protobuf package is missing")
        try:
            out = subprocess.run(
                [criu.path, "--version"], capture_output=True, text=True, timeout=10
            ).stdout
        except (OSError, subprocess.SubprocessError) as e:
            return None, f"run {criu.path} --version: {e}"
        for line in out.splitlines():
            if line.startswith("Version:"):
                return f"{line.split(':', 1)[1].strip()} ({criu.path})", None
        return None, f"{criu.path} --version printed no version"
    except OcirunError as e:
        return None, e.message
