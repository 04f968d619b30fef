"""The container's process: environment, cwd, user, umask, rlimits, privileges, capabilities,
executable lookup and exit codes, as seen from inside a real container."""

from __future__ import annotations

import os
import re
import resource
import subprocess
from pathlib import Path

import pytest
from testenv import BUNDLE_CAPS, ROOTFS

from ocirun.tables import CAPS

DEFAULT_CAPS = BUNDLE_CAPS


def mask(names) -> int:
    return sum(1 << CAPS[n] for n in set(names))


def proc_status(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def caps_of(text: str) -> dict[str, int]:
    st = proc_status(text)
    return {k: int(st[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def set_process(**fields):
    def mutate(cfg):
        cfg["process"].update(fields)

    return mutate


@pytest.fixture
def rootfs_copy(tmp_path):
    dest = tmp_path / "rootfs"
    subprocess.run(["cp", "-a", str(ROOTFS), str(dest)], check=True)
    return dest


# --- environment ------------------------------------------------------------------------


def test_env_is_exactly_process_env(rt, make_bundle):
    env = ["PATH=/bin:/sbin", "FOO=bar baz", "EMPTY=", "MULTI=a=b=c", "HOME=/h"]
    r = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["env"], mutate=set_process(env=env)),
        "env-exact",
        env=dict(os.environ, OCIRUN_LEAK="1"),
    )
    # `env` (not a shell, which would add PWD/SHLVL) prints its environment as execve gave it.
    assert r.stdout.splitlines() == env
    assert "OCIRUN_LEAK" not in r.stdout


def test_env_without_path_uses_default_lookup(rt, make_bundle):
    r = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["env"], mutate=set_process(env=["ONLY=1"])),
        "env-nopath",
    )
    assert r.stdout.splitlines() == ["ONLY=1", "HOME=/root"]


@pytest.mark.parametrize(
    "user,env,home",
    [
        ({"uid": 0, "gid": 0}, [], "/root"),  # root's entry in the image
        ({"uid": 65534, "gid": 65534}, [], "/nonexistent"),
        ({"uid": 4242, "gid": 4242}, [], "/"),  # no entry: runc's "/"
        ({"uid": 0, "gid": 0}, ["HOME=/mine"], "/mine"),  # the config's own wins
    ],
)
def test_home_from_the_containers_passwd(rt, make_bundle, user, env, home):
    """As runc and crun: without HOME in process.env, the init sets it from the container's
    /etc/passwd entry for process.user.uid, else /."""
    r = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["env"], mutate=set_process(user=user, env=["PATH=/bin"] + env)),
        "home",
    )
    assert [e for e in r.stdout.splitlines() if e.startswith("HOME=")] == [f"HOME={home}"]


def test_home_from_an_odd_passwd(rt, make_bundle, rootfs_copy):
    """Comments, short lines, a line longer than the init's buffer, no final newline."""
    (rootfs_copy / "etc" / "passwd").write_text(
        "# comment\nbroken\nx:" + "y" * 9000 + ":7:7::/long:/bin/sh\n"
        "a:x:7:7::/seven:/bin/sh\nb:x:8:8::/eight"
    )

    def run_as(uid):
        def mutate(cfg):
            cfg["root"]["path"] = str(rootfs_copy)
            cfg["process"].update(user={"uid": uid, "gid": uid}, env=["PATH=/bin"])

        out = rt.ok("run", "--bundle", make_bundle(args=["env"], mutate=mutate), "home").stdout
        return [e for e in out.splitlines() if e.startswith("HOME=")]

    assert run_as(7) == ["HOME=/seven"]
    assert run_as(8) == ["HOME=/eight"]


# --- cwd --------------------------------------------------------------------------------


def test_cwd(rt, make_bundle):
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["pwd"], mutate=set_process(cwd="/usr/bin")), "cwd"
    ).stdout
    assert out.strip() == "/usr/bin"


def test_missing_cwd_is_created(rt, make_bundle, rootfs_copy):
    assert not (rootfs_copy / "work").exists()

    def mutate(cfg):
        cfg["root"]["path"] = str(rootfs_copy)
        cfg["process"]["cwd"] = "/work/deep/dir"

    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", "pwd; stat -c %F ."], mutate=mutate),
        "cwd-new",
    ).stdout
    assert out.splitlines() == ["/work/deep/dir", "directory"]
    assert (rootfs_copy / "work" / "deep" / "dir").is_dir()


# --- user -------------------------------------------------------------------------------


def test_user_ids_and_groups(rt, make_bundle):
    user = {"uid": 1000, "gid": 1000, "additionalGids": [10, 20, 30]}
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(
            args=[
                "sh",
                "-c",
                "id -u; id -g; id -G; grep -E '^(Uid|Gid|Groups):' /proc/self/status",
            ],
            mutate=set_process(user=user),
        ),
        "user-ids",
    ).stdout
    lines = out.splitlines()
    assert lines[0] == "1000"
    assert lines[1] == "1000"
    assert lines[2].split() == ["1000", "10", "20", "30"]  # gid, then additionalGids
    st = proc_status(out)
    assert st["Uid"].split() == ["1000"] * 4  # real, effective, saved, fs
    assert st["Gid"].split() == ["1000"] * 4
    assert sorted(int(g) for g in st["Groups"].split()) == [10, 20, 30]


def test_root_user_has_no_supplementary_groups(rt, make_bundle):
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", "grep -E '^(Uid|Gid|Groups):' /proc/self/status"]),
        "user-root",
    ).stdout
    st = proc_status(out)
    assert st["Uid"].split() == ["0"] * 4
    assert st["Gid"].split() == ["0"] * 4
    assert st["Groups"] == ""


@pytest.mark.parametrize("umask,expected", [(23, "0027"), (0o077, "0077"), (None, "0022")])
def test_umask(rt, make_bundle, umask, expected):
    def mutate(cfg):
        if umask is not None:
            cfg["process"]["user"]["umask"] = umask

    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", "umask"], mutate=mutate),
        f"umask-{expected}",
    ).stdout
    assert out.strip() == expected


def test_umask_applies_to_created_files(rt, make_bundle):
    def mutate(cfg):
        cfg["process"]["user"]["umask"] = 0o027

    script = "mkdir /dev/shm/d; touch /dev/shm/f; stat -c %a /dev/shm/d /dev/shm/f"
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=mutate), "umask-files"
    ).stdout
    assert out.split() == ["750", "640"]


# --- rlimits ----------------------------------------------------------------------------


def test_rlimits(rt, make_bundle):
    rlimits = [
        {"type": "RLIMIT_NOFILE", "soft": 512, "hard": 800},
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
    ]
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(
            args=[
                "sh",
                "-c",
                "ulimit -n; ulimit -Hn; ulimit -u; ulimit -Hu; "
                "ulimit -c; grep -E '^Max (open files|processes|core)' "
                "/proc/self/limits",
            ],
            mutate=set_process(rlimits=rlimits),
        ),
        "rlimits",
    ).stdout
    lines = out.splitlines()
    assert lines[:5] == ["512", "800", "300", "400", "0"]
    limits = {
        m[1]: [m[2], m[3]]
        for m in (re.match(r"^(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", line) for line in lines[5:])
    }
    assert limits["Max open files"] == ["512", "800"]
    assert limits["Max processes"] == ["300", "400"]
    assert limits["Max core file size"] == ["0", "0"]


def test_default_config_nofile(rt, make_bundle):
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", "ulimit -n; ulimit -Hn"]), "rlimit-default"
    ).stdout
    assert out.split() == ["1024", "1024"]
    # The host's differ (else the check above would prove nothing).
    assert resource.getrlimit(resource.RLIMIT_NOFILE) != (1024, 1024)


def test_failing_rlimit_is_a_clean_error(rt, make_bundle):
    # Above fs.nr_open, setrlimit(RLIMIT_NOFILE) fails (EPERM) even with CAP_SYS_RESOURCE.
    nr_open = int(open("/proc/sys/fs/nr_open").read())
    too_high = nr_open + 1
    r = rt.cli(
        "run",
        "--bundle",
        make_bundle(
            args=["true"],
            mutate=set_process(
                rlimits=[{"type": "RLIMIT_NOFILE", "soft": too_high, "hard": too_high}]
            ),
        ),
        "rlimit-fail",
    )
    assert r.returncode != 0
    assert "setrlimit" in r.stderr
    assert "Operation not permitted" in r.stderr
    assert str(too_high) in r.stderr
    assert "Traceback" not in r.stderr
    assert rt.cli("state", "rlimit-fail").returncode != 0


# --- noNewPrivileges, oomScoreAdj ------------------------------------------------------


@pytest.mark.parametrize("nnp,expected", [(True, "1"), (False, "0")])
def test_no_new_privileges(rt, make_bundle, nnp, expected):
    assert proc_status(open("/proc/self/status").read())["NoNewPrivs"] == "0"
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(
            args=["grep", "NoNewPrivs", "/proc/self/status"],
            mutate=set_process(noNewPrivileges=nnp),
        ),
        f"nnp-{expected}",
    ).stdout
    assert proc_status(out)["NoNewPrivs"] == expected


def test_oom_score_adj(rt, make_bundle):
    assert open("/proc/self/oom_score_adj").read().strip() != "500"
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["cat", "/proc/self/oom_score_adj"], mutate=set_process(oomScoreAdj=500)),
        "oom",
    ).stdout
    assert out.strip() == "500"
    assert open("/proc/self/oom_score_adj").read().strip() != "500"


def host_has_cap(name: str) -> bool:
    return bool(caps_of(open("/proc/self/status").read())["CapEff"] >> CAPS[name] & 1)


def test_failing_oom_score_adj_is_a_clean_error(rt, make_bundle):
    if host_has_cap("CAP_SYS_RESOURCE"):
        pytest.skip("with CAP_SYS_RESOURCE a negative oom_score_adj is allowed")
    r = rt.cli(
        "run",
        "--bundle",
        make_bundle(args=["true"], mutate=set_process(oomScoreAdj=-500)),
        "oom-fail",
    )
    assert r.returncode != 0
    assert "oom_score_adj" in r.stderr and "Permission denied" in r.stderr
    assert "Traceback" not in r.stderr
    assert rt.cli("state", "oom-fail").returncode != 0


# --- capabilities -----------------------------------------------------------------------


def test_default_capabilities(rt, make_bundle):
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["grep", "^Cap", "/proc/self/status"]), "caps-default"
    ).stdout
    caps = caps_of(out)
    want = mask(DEFAULT_CAPS)
    assert want == 0xA80425FB
    assert caps == {"CapInh": 0, "CapPrm": want, "CapEff": want, "CapBnd": want, "CapAmb": 0}
    # Not the host's (full) set.
    assert caps_of(open("/proc/self/status").read())["CapBnd"] != want


def test_single_capability(rt, make_bundle):
    def mutate(cfg):
        cfg["process"]["capabilities"] = {
            s: ["CAP_CHOWN"] for s in ("bounding", "effective", "permitted")
        }

    script = (
        "grep ^Cap /proc/self/status; "
        "touch /dev/shm/f; chown 1:1 /dev/shm/f && echo chown-ok; "
        "mknod /dev/shm/n c 1 3 2>/dev/null || echo mknod-denied"
    )
    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", script], mutate=mutate), "caps-chown"
    ).stdout
    caps = caps_of(out)
    assert caps == {"CapInh": 0, "CapPrm": 1, "CapEff": 1, "CapBnd": 1, "CapAmb": 0}
    assert "chown-ok" in out and "mknod-denied" in out


def test_ambient_capability_for_non_root(rt, make_bundle):
    def mutate(cfg):
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}
        cfg["process"]["capabilities"] = {
            s: ["CAP_NET_BIND_SERVICE"]
            for s in ("bounding", "effective", "permitted", "inheritable", "ambient")
        }

    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", "id -u; grep ^Cap /proc/self/status"], mutate=mutate),
        "caps-ambient",
    ).stdout
    assert out.splitlines()[0] == "1000"
    bit = 1 << CAPS["CAP_NET_BIND_SERVICE"]
    assert caps_of(out) == {
        "CapInh": bit,
        "CapPrm": bit,
        "CapEff": bit,
        "CapBnd": bit,
        "CapAmb": bit,
    }


def test_runc_spec_capabilities_run(rt, make_bundle):
    """runc spec's default: ambient capabilities that are not inheritable. The kernel can't
    raise them; runc runs the container without them, and so does ocirun (with a warning)."""
    kept = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

    def mutate(cfg):
        cfg["process"]["capabilities"] = {
            s: kept for s in ("bounding", "effective", "permitted", "ambient")
        }

    log = Path(make_bundle()) / "log.json"
    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["grep", "^Cap", "/proc/self/status"], mutate=mutate),
        "caps-runc-spec",
        global_args=("--log", str(log), "--log-format", "json"),
    ).stdout
    assert caps_of(out) == {
        "CapInh": 0,
        "CapPrm": mask(kept),
        "CapEff": mask(kept),
        "CapBnd": mask(kept),
        "CapAmb": 0,
    }
    text = log.read_text()  # runc >= 1.2's words, one line per capability
    for cap in ("CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE"):
        assert f"can't raise ambient capability {cap}: operation not permitted" in text, text


def test_no_capabilities_object_means_no_capabilities(rt, make_bundle):
    """As runc and crun: a process without `capabilities` runs with every set empty, not
    with the runtime's own (root's) capabilities."""

    def mutate(cfg):
        del cfg["process"]["capabilities"]

    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["grep", "^Cap", "/proc/self/status"], mutate=mutate),
        "nocaps",
    ).stdout
    assert caps_of(out) == dict.fromkeys(("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"), 0)


def test_unknown_capability_is_a_warning(rt, make_bundle):
    def mutate(cfg):
        cfg["process"]["capabilities"] = {
            s: ["CAP_CHOWN", "CAP_NOT_YET_INVENTED"] for s in ("bounding", "effective", "permitted")
        }

    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["grep", "^Cap", "/proc/self/status"], mutate=mutate),
        "caps-unknown",
    ).stdout
    assert caps_of(out)["CapEff"] == 1


def test_non_root_without_ambient_has_no_effective_caps(rt, make_bundle):
    """Capabilities of a uid-1000 process: exactly what the config gives, across execve."""

    def mutate(cfg):
        cfg["process"]["user"] = {"uid": 1000, "gid": 1000}

    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=["grep", "^Cap", "/proc/self/status"], mutate=mutate),
        "caps-nonroot",
    ).stdout
    caps = caps_of(out)
    # execve as a non-root user with no ambient set clears permitted and effective.
    assert caps == {
        "CapInh": 0,
        "CapPrm": 0,
        "CapEff": 0,
        "CapBnd": mask(DEFAULT_CAPS),
        "CapAmb": 0,
    }


# --- executable lookup ------------------------------------------------------------------


def test_path_lookup_uses_process_env(rt, make_bundle):
    def mutate(cfg):
        cfg["process"]["env"] = ["PATH=/nonexistent:/usr/bin:/bin"]

    out = rt.ok(
        "run", "--bundle", make_bundle(args=["sh", "-c", "echo found"], mutate=mutate), "path-ok"
    ).stdout
    assert out.strip() == "found"


def test_path_lookup_failure(rt, make_bundle):
    def mutate(cfg):
        cfg["process"]["env"] = ["PATH=/nonexistent"]

    r = rt.cli(
        "run", "--bundle", make_bundle(args=["sh", "-c", "true"], mutate=mutate), "path-miss"
    )
    assert r.returncode != 0
    assert 'exec: "sh": executable file not found in $PATH' in r.stderr
    assert rt.cli("state", "path-miss").returncode != 0


@pytest.mark.parametrize(
    "cwd,arg", [("/bin", "./busybox"), ("/", "bin/busybox"), ("/usr", "../bin/busybox")]
)
def test_relative_executable_is_relative_to_cwd(rt, make_bundle, cwd, arg):
    def mutate(cfg):
        cfg["process"]["cwd"] = cwd
        cfg["process"]["env"] = ["PATH=/nonexistent"]  # not found via PATH

    out = rt.ok(
        "run",
        "--bundle",
        make_bundle(args=[arg, "echo", f"ran {arg}"], mutate=mutate),
        f"relexe-{cwd.strip('/') or 'root'}",
    ).stdout
    assert out.strip() == f"ran {arg}"


def test_missing_absolute_executable(rt, make_bundle):
    r = rt.cli("run", "--bundle", make_bundle(args=["/no/such/binary"]), "exe-missing")
    assert r.returncode != 0
    assert '"/no/such/binary"' in r.stderr and "no such file or directory" in r.stderr
    assert rt.cli("state", "exe-missing").returncode != 0


# --- exit codes -------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 42, 255])
def test_exit_code_propagates(rt, make_bundle, code):
    r = rt.cli("run", "--bundle", make_bundle(args=["sh", "-c", f"exit {code}"]), f"exit-{code}")
    assert r.returncode == code, r.stderr
    assert rt.cli("state", f"exit-{code}").returncode != 0  # run deletes it


def test_killed_by_signal_is_128_plus_signal(rt, make_bundle):
    # Without a pid namespace the shell is not an init, which would ignore the signal.
    def mutate(cfg):
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "pid"]

    r = rt.cli(
        "run",
        "--bundle",
        make_bundle(args=["sh", "-c", "kill -9 $$; sleep 5"], mutate=mutate),
        "exit-signal",
    )
    assert r.returncode == 128 + 9, r.stderr
