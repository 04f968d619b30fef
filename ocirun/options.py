"""What the command line asks of `create`/`run` and `exec`, and what create hands to run."""

from __future__ import annotations

import _socket  # the C module: `socket` costs ~5 ms to import


class CreateOptions:
    """create's command-line options."""

    def __init__(
        self,
        bundle: str = ".",
        pid_file: str | None = None,
        console_socket: str | None = None,
        no_pivot: bool = False,
        no_new_keyring: bool = False,
        preserve_fds: int = 0,
        systemd_cgroup: bool = False,
        rootless_cgroups: bool = False,
        config: str = "config.json",
    ):
        self.config = config  # crun's --config: the config file, relative to the bundle
        self.bundle, self.pid_file, self.console_socket = bundle, pid_file, console_socket
        self.systemd_cgroup = systemd_cgroup
        self.rootless_cgroups = rootless_cgroups  # skip cgroups we can't write (runc's rule)
        self.no_pivot, self.no_new_keyring = no_pivot, no_new_keyring
        self.preserve_fds = preserve_fds


class Created:
    """What `create` hands to `run`: the init pid, the parent end of the sync socket and,
    for a terminal without --console-socket, our end of the console socket."""

    def __init__(self, pid: int, sync: _socket.socket, console: _socket.socket | None = None):
        self.pid, self.sync, self.console = pid, sync, console


class ExecOptions:
    """exec's command-line options."""

    def __init__(
        self,
        process_file: str | None = None,
        args: list[str] | None = None,
        tty: bool = False,
        user: str | None = None,
        additional_gids: list[int] | None = None,
        cwd: str | None = None,
        env: list[str] | None = None,
        caps: list[str] | None = None,
        no_new_privs: bool = False,
        detach: bool = False,
        pid_file: str | None = None,
        console_socket: str | None = None,
        preserve_fds: int = 0,
    ):
        self.process_file, self.args, self.tty = process_file, list(args or []), tty
        self.user, self.additional_gids, self.cwd = user, list(additional_gids or []), cwd
        self.env, self.caps, self.no_new_privs = list(env or []), list(caps or []), no_new_privs
        self.detach, self.pid_file, self.console_socket = detach, pid_file, console_socket
        self.preserve_fds = preserve_fds
