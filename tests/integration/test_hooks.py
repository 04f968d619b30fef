"""Hooks (runtime-spec 1.3 config.md "POSIX-platform Hooks", runtime.md lifecycle), on real
containers: where each kind runs (namespaces, before/after pivot_root), what it gets (the
state JSON on stdin, exactly its env, its args with argv[0], its timeout), the order over
create/start/delete, and what a failing hook does to the operation.

Every hook here is `/bin/sh -c RECORDER` (dash on the host; busybox sh inside the container
for startContainer): it records its stdin, its own argv and environ (from /proc/self, i.e.
exactly what execve gave), its namespaces and its position in one shared order file.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from clitools import call, fails, ok

HOOK_ENV = ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOOK_VAR=some value", "EMPTY="]
ANNOTATIONS = {"org.test.hooks": "yes", "com.example/two": "a b"}
NS = ("mnt", "net", "uts", "ipc", "pid")

# $1: the hook's name, $2: the directory to record into (as the hook sees it).
# Redirections are opened by the shell's forked child, whose argv/environ are the shell's.
RECORDER = r"""
name=$1; out=$2
cat > "$out/$name.state"
tr '\0' '\n' < /proc/self/cmdline > "$out/$name.argv"
tr '\0' '\n' < /proc/self/environ > "$out/$name.environ"
for ns in mnt net uts ipc pid; do echo "$ns $(readlink /proc/self/ns/$ns)"; done > "$out/$name.ns"
hostname > "$out/$name.hostname"
cat /etc/hostname > "$out/$name.etc_hostname"
echo "$name" >> "$out/order"
"""

IN_CONTAINER_OUT = "/home"  # the host's record dir is bound here (exists in the rootfs)


# --------------------------------------------------------------------------- helpers


def recorder(
    name: str,
    out: str,
    *,
    in_container: bool = False,
    timeout: int | None = None,
    env: list[str] | None = None,
) -> dict:
    argv0 = "sh" if in_container else f"hook-argv0-{name}"  # busybox dispatches on argv[0]
    hook = {
        "path": "/bin/sh",
        "args": [argv0, "-c", RECORDER, "recorder", name, out],
        "env": list(HOOK_ENV if env is None else env),
    }
    if timeout is not None:
        hook["timeout"] = timeout
    return hook


def failing(code: int, marker: str | None = None, path: str = "/bin/sh") -> dict:
    script = (f"echo ran >> {marker}; " if marker else "") + f"echo hook says no >&2; exit {code}"
    return {"path": path, "args": ["sh", "-c", script], "env": list(HOOK_ENV)}


def sleeper(seconds: int, timeout: int) -> dict:
    return {"path": "/bin/sleep", "args": ["sleep", str(seconds)], "timeout": timeout}


def bind(host: Path, dest: str = IN_CONTAINER_OUT) -> dict:
    return {"destination": dest, "type": "bind", "source": str(host), "options": ["rbind", "rw"]}


def with_hooks(hooks: dict, out: Path | None = None, annotations: dict | None = None):
    def mutate(cfg):
        cfg["hooks"] = hooks
        cfg["annotations"] = dict(annotations or ANNOTATIONS)
        if out is not None:
            cfg["mounts"].append(bind(out))

    return mutate


def ns_of(pid: int | str) -> dict[str, str]:
    return {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NS}


def read_ns(path: Path) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in path.read_text().splitlines())


def wait_file(path: Path, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.exists(), f"{path} never appeared"
    return path.read_text()


def wait_stopped(rt, cid: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        st = rt.state(cid)
        if st["status"] == "stopped" or time.monotonic() > deadline:
            return st
        time.sleep(0.05)


def all_kinds(out: Path) -> dict:
    o = str(out)
    return {
        "prestart": [recorder("prestart", o)],
        "createRuntime": [recorder("createRuntime", o)],
        "createContainer": [recorder("createContainer", o)],
        "startContainer": [recorder("startContainer", IN_CONTAINER_OUT, in_container=True)],
        "poststart": [recorder("poststart", o)],
        "poststop": [recorder("poststop", o)],
    }


def lifecycle(rt, make_bundle, tmp_path, hooks_fn=all_kinds, args=("sleep", "30")):
    """create (recording the init's namespaces) -> start -> delete --force; returns
    (record dir, bundle, state after create)."""
    out = tmp_path / "rec"
    out.mkdir()
    bundle = make_bundle(args=list(args), mutate=with_hooks(hooks_fn(out), out))
    ok(call(rt, "create", "--bundle", bundle, "hk", env=dict(os.environ, FOO_LEAK="1")))
    try:
        st = rt.state("hk")
        (out / "init.ns").write_text("".join(f"{k} {v}\n" for k, v in ns_of(st["pid"]).items()))
        ok(call(rt, "start", "hk", env=dict(os.environ, FOO_LEAK="1")))
    finally:
        ok(call(rt, "delete", "--force", "hk", env=dict(os.environ, FOO_LEAK="1")))
    return out, bundle, st


KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


# --------------------------------------------------------------------------- what hooks get


def test_order_over_create_start_delete(rt, make_bundle, tmp_path):
    """Every kind, two hooks of one kind in their array order, across the three commands."""

    def hooks(out):
        h = all_kinds(out)
        h["prestart"] = [recorder("prestart-1", str(out)), recorder("prestart-2", str(out))]
        return h

    out, _, _ = lifecycle(rt, make_bundle, tmp_path, hooks)
    assert (out / "order").read_text().split() == [
        "prestart-1",
        "prestart-2",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ]


def test_state_on_stdin(rt, make_bundle, tmp_path):
    out, bundle, st = lifecycle(rt, make_bundle, tmp_path)
    states = {k: json.loads((out / f"{k}.state").read_text()) for k in KINDS}
    for kind, s in states.items():
        assert s["id"] == "hk", kind
        assert s["bundle"] == bundle, kind
        assert s["annotations"] == ANNOTATIONS, kind
        assert s["ociVersion"] == "1.3.0", kind
    for kind in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart"):
        assert states[kind]["pid"] == st["pid"], kind
    # after lifecycle step 2 the environment exists: "created" (runtime.md, crun)
    for kind in ("prestart", "createRuntime", "createContainer"):
        assert states[kind]["status"] == "created", kind
    assert states["poststart"]["status"] == "running"
    assert states["poststop"]["status"] == "stopped"


def test_poststart_sees_the_process_running_even_if_it_exited(rt, make_bundle, tmp_path):
    out, _, st = lifecycle(rt, make_bundle, tmp_path, args=("true",))
    state = json.loads((out / "poststart.state").read_text())
    assert state["status"] == "running" and state["pid"] == st["pid"]


def test_start_container_state_status(rt, make_bundle, tmp_path):
    out, _, _ = lifecycle(rt, make_bundle, tmp_path)
    assert json.loads((out / "startContainer.state").read_text())["status"] == "created"


def test_env_is_exactly_the_hooks(rt, make_bundle, tmp_path):
    """Nothing of the runtime's environment (FOO_LEAK=1, PATH, ...) reaches a hook."""
    out, _, _ = lifecycle(rt, make_bundle, tmp_path)
    for kind in KINDS:
        environ = (out / f"{kind}.environ").read_text().splitlines()
        assert sorted(environ) == sorted(HOOK_ENV), kind


def test_hook_without_env(rt, make_bundle, tmp_path):
    """Without `env`, the hooks the runtime runs get the runtime's own environment, as with
    runc and crun (FOO_LEAK=1 is in the environment the tests call ocirun with); those run
    inside the container get an empty one. The shell exports PWD to its commands, so the
    shell's own initial environ is what is measured (the redirection is opened by it)."""

    def hooks_raw(out):
        script = 'tr "\\0" "\\n" < /proc/self/environ > "$2/$1.env"'
        h = {}
        for k in ("prestart", "createContainer", "startContainer", "poststart", "poststop"):
            dest = IN_CONTAINER_OUT if k == "startContainer" else str(out)
            h[k] = [
                {
                    "path": "/bin/sh",
                    "args": ["sh", "-c", "PATH=/usr/bin:/bin; " + script, "x", k, dest],
                }
            ]
        return h

    out, _, _ = lifecycle(rt, make_bundle, tmp_path, hooks_raw)
    for k in ("prestart", "poststart", "poststop"):
        assert "FOO_LEAK=1" in (out / f"{k}.env").read_text().splitlines(), k
    for k in ("createContainer", "startContainer"):
        assert (out / f"{k}.env").read_text() == "", k


def test_hook_with_empty_env_gets_an_empty_environment(rt, make_bundle, tmp_path):
    def hooks_raw(out):
        script = 'wc -c < /proc/self/environ > "$2/$1.envsize"'
        return {
            k: [
                {
                    "path": "/bin/sh",
                    "env": [],
                    "args": ["sh", "-c", "PATH=/usr/bin:/bin; " + script, "x", k, str(out)],
                }
            ]
            for k in ("prestart", "poststart")
        }

    out, _, _ = lifecycle(rt, make_bundle, tmp_path, hooks_raw)
    for k in ("prestart", "poststart"):
        assert (out / f"{k}.envsize").read_text().strip() == "0", k


def test_args_with_argv0(rt, make_bundle, tmp_path):
    out, _, _ = lifecycle(rt, make_bundle, tmp_path)
    for kind in KINDS:
        argv = (out / f"{kind}.argv").read_text().splitlines()
        argv0 = "sh" if kind == "startContainer" else f"hook-argv0-{kind}"
        dest = IN_CONTAINER_OUT if kind == "startContainer" else str(out)
        # RECORDER spans several lines: compare around it.
        assert argv[0] == argv0, kind
        assert argv[1] == "-c", kind
        assert argv[-3:] == ["recorder", kind, dest], kind


def test_namespaces_of_each_kind(rt, make_bundle, tmp_path):
    """prestart/createRuntime/poststart/poststop: the runtime's namespaces;
    createContainer/startContainer: the container's."""
    out, _, _ = lifecycle(rt, make_bundle, tmp_path)
    host = ns_of("self")
    init = read_ns(out / "init.ns")
    assert all(host[n] != init[n] for n in NS), (host, init)
    for kind in ("prestart", "createRuntime", "poststart", "poststop"):
        assert read_ns(out / f"{kind}.ns") == host, kind
    for kind in ("createContainer", "startContainer"):
        assert read_ns(out / f"{kind}.ns") == init, kind


def test_create_container_before_pivot_start_container_after(rt, make_bundle, tmp_path):
    """createContainer sees the host's / (its path and output dir are host paths);
    startContainer sees the container's / (the rootfs's /etc/hostname) and its hostname."""
    out, _, _ = lifecycle(rt, make_bundle, tmp_path)
    host_etc = Path("/etc/hostname").read_text()
    rootfs_etc = (
        Path(__file__).resolve().parents[2] / "bundles/busybox/rootfs/etc/hostname"
    ).read_text()
    assert host_etc != rootfs_etc
    assert (out / "createContainer.etc_hostname").read_text() == host_etc
    assert (out / "startContainer.etc_hostname").read_text() == rootfs_etc
    assert (out / "startContainer.hostname").read_text().strip() == "ocirun-demo"


def test_create_container_path_resolves_on_host(rt, make_bundle, tmp_path):
    """A createContainer hook whose path exists only on the host (a script in tmp_path)."""
    out = tmp_path / "rec"
    out.mkdir()
    script = tmp_path / "host-only-hook"
    script.write_text(f"#!/bin/sh\necho createContainer-ran > {out}/cc\n")
    script.chmod(0o755)
    bundle = make_bundle(
        args=["true"], mutate=with_hooks({"createContainer": [{"path": str(script)}]})
    )
    ok(call(rt, "create", "--bundle", bundle, "hk"))
    ok(call(rt, "delete", "--force", "hk"))
    assert (out / "cc").read_text() == "createContainer-ran\n"


def test_start_container_path_resolves_in_container(rt, make_bundle, tmp_path):
    """A startContainer hook whose path exists only in the container (a bind-mounted dir)."""
    out = tmp_path / "rec"
    out.mkdir()
    (out / "inner-hook").write_text("#!/bin/sh\necho startContainer-ran > /home/sc\n")
    (out / "inner-hook").chmod(0o755)
    assert not Path("/home/inner-hook").exists()
    bundle = make_bundle(
        args=["true"], mutate=with_hooks({"startContainer": [{"path": "/home/inner-hook"}]}, out)
    )
    ok(call(rt, "create", "--bundle", bundle, "hk"))
    try:
        ok(call(rt, "start", "hk"))
        assert wait_file(out / "sc") == "startContainer-ran\n"
    finally:
        ok(call(rt, "delete", "--force", "hk"))


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create_and_leaves_nothing(rt, make_bundle, tmp_path, kind):
    out = tmp_path / "rec"
    out.mkdir()
    later = recorder("later", str(out))  # a hook after the failing one must not run
    bundle = make_bundle(
        args=["sh", "-c", f"echo ran > {IN_CONTAINER_OUT}/process"],
        mutate=with_hooks({kind: [failing(3, str(out / "failed")), later]}, out),
    )
    r = call(rt, "create", "--bundle", bundle, "hk")
    fails(r, kind, "exit status 3")
    # runc's words first (containerd shows them; runc's own bats suite greps them)
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error running {kind} hook #0: "), r.stderr
    assert (out / "failed").read_text() == "ran\n"
    assert not (out / "later.state").exists()
    assert rt.ok("list", "-q").stdout.split() == []
    assert not (out / "process").exists()


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_still_runs_poststop(rt, make_bundle, tmp_path, kind):
    """runtime-spec lifecycle: a failing prestart, createRuntime or createContainer hook
    stops and destroys the container and goes on at step 12, so the poststop hooks run
    (with status stopped, the state dir already gone), as runc's and crun's do (crun's
    test-poststop-hook-on-createruntime-failure)."""
    out = tmp_path / "rec"
    out.mkdir()
    hooks = {kind: [failing(3)], "poststop": [recorder("poststop", str(out))]}
    bundle = make_bundle(args=["true"], mutate=with_hooks(hooks, out))
    fails(call(rt, "run", "--bundle", bundle, "hk"), kind, "exit status 3")
    assert (out / "order").read_text().split() == ["poststop"]
    state = json.loads((out / "poststop.state").read_text())
    assert (state["id"], state["status"]) == ("hk", "stopped")
    assert rt.ok("list", "-q").stdout.split() == []


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_create_hook_timeout(rt, make_bundle, kind):
    bundle = make_bundle(args=["true"], mutate=with_hooks({kind: [sleeper(20, 1)]}))
    t0 = time.monotonic()
    r = call(rt, "create", "--bundle", bundle, "hk")
    elapsed = time.monotonic() - t0
    fails(r, kind, "timed out")
    assert elapsed < 8, f"create took {elapsed:.1f} s with a 1 s hook timeout"
    assert rt.ok("list", "-q").stdout.split() == []


def test_missing_prestart_hook_binary(rt, make_bundle, tmp_path):
    missing = str(tmp_path / "no-such-hook")
    bundle = make_bundle(args=["true"], mutate=with_hooks({"prestart": [{"path": missing}]}))
    fails(call(rt, "create", "--bundle", bundle, "hk"), "prestart", missing)
    assert rt.ok("list", "-q").stdout.split() == []


def test_failing_poststart_fails_start_and_destroys_container(rt, make_bundle, tmp_path):
    """runtime-spec 1.3 lifecycle step 9: an error, the container stopped and destroyed
    (steps 12-13: its cgroups and state go, its poststop hooks run). The later poststart
    hooks do not run."""
    out = tmp_path / "rec"
    out.mkdir()
    bundle = make_bundle(
        args=["sleep", "30"],
        mutate=with_hooks(
            {
                "poststart": [failing(4), recorder("poststart-2", str(out))],
                "poststop": [recorder("poststop", str(out))],
            }
        ),
    )
    ok(call(rt, "create", "--bundle", bundle, "hk"))
    try:
        pid = rt.state("hk")["pid"]
        r = call(rt, "start", "hk")
        fails(r, "poststart", "exit status 4")
        assert (
            not os.path.exists(f"/proc/{pid}")
            or open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
        )
        assert rt.cli("state", "hk").returncode != 0
        assert rt.ok("list", "-q").stdout.split() == []
        assert (out / "order").read_text().split() == ["poststop"]
        assert json.loads((out / "poststop.state").read_text())["status"] == "stopped"
    finally:
        ok(call(rt, "delete", "--force", "hk"))  # an engine's cleanup still succeeds


def test_poststart_timeout_fails_start(rt, make_bundle):
    bundle = make_bundle(args=["sleep", "30"], mutate=with_hooks({"poststart": [sleeper(20, 1)]}))
    ok(call(rt, "create", "--bundle", bundle, "hk"))
    try:
        t0 = time.monotonic()
        r = call(rt, "start", "hk")
        assert time.monotonic() - t0 < 8
        fails(r, "poststart", "timed out")
        assert rt.cli("state", "hk").returncode != 0
    finally:
        ok(call(rt, "delete", "--force", "hk"))


def test_failing_poststop_warns_and_delete_succeeds(rt, make_bundle, tmp_path):
    out = tmp_path / "rec"
    out.mkdir()
    log = tmp_path / "ocirun.log"
    bundle = make_bundle(
        args=["true"],
        mutate=with_hooks({"poststop": [failing(5), recorder("poststop-2", str(out))]}),
    )
    ok(call(rt, "create", "--bundle", bundle, "hk"))
    ok(call(rt, "start", "hk"))
    wait_stopped(rt, "hk")
    r = call(rt, "--log", str(log), "delete", "hk")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    text = log.read_text()
    warn = [line for line in text.splitlines() if "level=warning" in line]
    assert any("poststop" in w and "exit status 5" in w for w in warn), text
    assert (out / "order").read_text().split() == ["poststop-2"]
    assert json.loads((out / "poststop-2.state").read_text())["status"] == "stopped"
    assert rt.ok("list", "-q").stdout.split() == []


def _start_container_failure(rt, make_bundle, tmp_path):
    out = tmp_path / "rec"
    out.mkdir()
    bundle = make_bundle(
        args=["sh", "-c", f"echo ran > {IN_CONTAINER_OUT}/process"],
        mutate=with_hooks({"startContainer": [failing(6)]}, out),
    )
    ok(call(rt, "create", "--bundle", bundle, "hk"))
    try:
        r = call(rt, "start", "hk")
        st = wait_stopped(rt, "hk")
    finally:
        ok(call(rt, "delete", "--force", "hk"))
    return out, r, st


def test_failing_start_container_hook_process_never_runs(rt, make_bundle, tmp_path):
    out, r, st = _start_container_failure(rt, make_bundle, tmp_path)
    assert st["status"] == "stopped"
    time.sleep(0.2)
    assert not (out / "process").exists()


def test_failing_start_container_hook_fails_start(rt, make_bundle, tmp_path):
    _, r, _ = _start_container_failure(rt, make_bundle, tmp_path)
    fails(r, "startContainer", "exit status 6")
    assert "error running startContainer hook #0: " in r.stderr, r.stderr


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_ERRNO"])
def test_start_container_hook_runs_under_the_seccomp_filter(rt, make_bundle, action):
    """As runc: startContainer hooks run in the container after its seccomp filter is in
    place (runtime-spec: in the container's namespaces, as its process), so a syscall the
    profile refuses fails there too; a hook a signal ends says which ("bad system call")."""

    def mutate(cfg):
        cfg["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}],
        }
        cfg["hooks"] = {"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /x"]}]}

    r = call(rt, "run", "--bundle", make_bundle(args=["true"], mutate=mutate), "hk")
    fails(r, "error running startContainer hook #0: /bin/sh: ")
    if action == "SCMP_ACT_KILL":
        assert "killed by signal 31 (bad system call)" in r.stderr, r.stderr
    else:
        assert "Operation not permitted" in r.stderr and "exit status 1" in r.stderr, r.stderr
    assert rt.ok("list", "-q").stdout.split() == []
