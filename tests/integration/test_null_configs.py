"""JSON null in foreign configs (ocirun/gonull.py): a `runc spec` config with null members
in many places runs, and the process sees what it sees under runc (run side by side when
runc is installed); null map elements are their zero value; a null array element is refused
on one line naming its path (runc reads "" there: docs/compat.md); `exec --process` and
`update --resources` read their nulls the same way."""

from __future__ import annotations

import json
import shutil

import foreignlib as fl
import pytest
from clitools import call, ok
from testenv import OCIRUN

RUNC = shutil.which("runc")
MASKED = ("/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/sys/firmware")
# The probe of foreignlib, plus a mkdir the seccomp rule below refuses.
SCRIPT = fl.PROBE + "mkdir /dev/nul-probe 2>/dev/null && echo mkdir=ok || echo mkdir=denied\n"
FIELDS = (*fl.CAP_FIELDS, "id", "NoNewPrivs", "Seccomp", "env", "nofile", "uid_map", "hostname")


def _base() -> dict:
    """`runc spec`'s config; `ocirun spec`'s (which writes the same) without runc."""
    return fl.tool_spec(RUNC or OCIRUN)


def _shm(cfg: dict) -> dict:
    return next(m for m in cfg["mounts"] if m["destination"] == "/dev/shm")


def null_members(cfg: dict) -> None:
    p, linux = cfg["process"], cfg["linux"]
    p["env"] = None
    p["rlimits"] = None
    p["capabilities"]["ambient"] = None
    p["user"]["additionalGids"] = None
    p["oomScoreAdj"] = None
    cfg["root"]["readonly"] = None
    cfg["annotations"] = None
    cfg["hooks"] = {"prestart": None, "poststop": None}
    _shm(cfg)["options"] = None
    linux["uidMappings"] = None
    linux["maskedPaths"] = None
    linux["sysctl"] = None
    linux["resources"]["devices"] = None
    linux["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": None,
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "args": None}],
    }


def null_map_elements(cfg: dict) -> None:
    cfg["annotations"] = {"org.example.a": None}
    cfg["linux"]["sysctl"] = {"net.ipv4.ip_forward": None}
    cfg["hooks"] = {"createRuntime": [{"path": "/bin/true", "timeout": None}]}
    cfg["process"]["user"]["uid"] = None
    cfg["linux"]["seccomp"] = None


@pytest.fixture
def side(tmp_path, rt):
    runs = fl.SideBySide(tmp_path, rt.root, fl.pristine_rootfs(tmp_path / "rootfs", None))
    yield runs
    left = runs.cleanup()
    assert not left, f"left behind: {left}"


def _run(side, cfg: dict, what: str, monkeypatch, after=None) -> dict:
    """{runtime: CompletedProcess}; runc only where it is installed (said on stdout, -s
    shows it; the ocirun side has expectations of its own). `after(cfg)` changes the
    config after foreignlib has put the probe in."""
    adapt = fl.adapt

    def adapt_then(c, rootfs, script=fl.PROBE):
        c = adapt(c, rootfs, script)
        if after:
            after(c)
        return c

    monkeypatch.setattr(fl, "adapt", adapt_then)
    if RUNC is None:
        print(f"{what}: runc is not installed: ocirun checked alone, not compared")
        return {"ocirun": side.run("ocirun", cfg, what, script=SCRIPT)}
    return side.both(cfg, what, script=SCRIPT)


def _absolute_sh(cfg: dict) -> None:
    """Without process.env there is no PATH: runc does not find "sh" (docs/compat.md)."""
    cfg["process"]["args"][0] = "/bin/sh"


def _same_as_runc(procs: dict) -> None:
    if "runc" not in procs:
        return
    theirs = procs["runc"]
    assert theirs.returncode == 0, theirs.stderr
    ours, runc = fl.parse(procs["ocirun"].stdout), fl.parse(theirs.stdout)
    diff = fl.differences(ours, runc, (*FIELDS, "mkdir"))
    for mp in ("/", "/dev/shm"):
        a, b = ours["mount_opts"].get(mp), runc["mount_opts"].get(mp)
        if a != b:
            diff[f"mount_opts {mp}"] = {"ocirun": a, "runc": b}
    masked = {
        rt: sorted(m for m in seen["mounts"] if m.split()[0] in MASKED)
        for rt, seen in (("ocirun", ours), ("runc", runc))
    }
    if masked["ocirun"] != masked["runc"]:
        diff["masked paths"] = masked
    assert not diff, fl.describe(diff)


def test_null_members_run_as_if_absent(side, monkeypatch):
    cfg = _base()
    null_members(cfg)
    procs = _run(side, cfg, "members", monkeypatch, after=_absolute_sh)
    r = procs["ocirun"]
    assert r.returncode == 0, r.stderr
    seen = fl.parse(r.stdout)
    assert seen["mkdir"] == "denied"  # the rule with "args": null is applied
    assert seen["CapAmb"] == "0000000000000000"
    assert not [m for m in seen["mounts"] if m.split()[0] in MASKED]  # maskedPaths: none
    assert seen["mount_opts"]["/"].startswith("rw,")  # root.readonly: false
    assert "nosuid" not in seen["mount_opts"]["/dev/shm"]  # options: none
    _same_as_runc(procs)


def test_null_map_elements_are_zero_values(side, monkeypatch):
    cfg = _base()
    null_map_elements(cfg)
    procs = _run(side, cfg, "maps", monkeypatch)
    r = procs["ocirun"]
    assert r.returncode == 0, r.stderr
    seen = fl.parse(r.stdout)
    assert seen["id"].startswith("uid=0(root)") and seen["mkdir"] == "ok"
    _same_as_runc(procs)


@pytest.mark.parametrize(
    "what, member, runc_runs",
    [("arg", ("process", "args"), True), ("mount", ("mounts",), False)],
)
def test_null_array_element_refused_naming_it(side, monkeypatch, what, member, runc_runs):
    """runc reads "" for a null string element (and runs), an empty mount for a null mount
    (and fails); ocirun refuses both on one line (docs/compat.md)."""
    at = {}

    def add_null(cfg):
        array = cfg[member[0]] if len(member) == 1 else cfg[member[0]][member[1]]
        at["path"] = "/" + "/".join(member) + f"/{len(array)}"
        array.append(None)

    procs = _run(side, _base(), what, monkeypatch, after=add_null)
    r = procs["ocirun"]
    assert r.returncode != 0 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{at['path']}: null is not of type" in lines[0], r.stderr
    if "runc" in procs:
        assert (procs["runc"].returncode == 0) == runc_runs, procs["runc"].stderr


def test_float_for_an_integer_refused_naming_it(side, monkeypatch):
    """Go refuses 1000.0 for an integer field ("cannot unmarshal number 1000.0 into Go
    struct field User.process.user.uid of type uint32"); ocirun too, naming the path."""
    cfg = _base()
    cfg["process"]["user"]["uid"] = 1000.0
    procs = _run(side, cfg, "float", monkeypatch)
    r = procs["ocirun"]
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "config.json: /process/user/uid: 1000.0 is not of type 'integer'"
    if "runc" in procs:
        assert procs["runc"].returncode != 0
        assert "cannot unmarshal number 1000.0" in procs["runc"].stderr


def test_exec_process_and_update_resources_with_nulls(rt, make_bundle, tmp_path):
    cid = "nulls"
    ok(call(rt, "run", "--detach", "--bundle", make_bundle(args=["sleep", "60"]), cid))
    try:
        proc = tmp_path / "process.json"
        proc.write_text(
            json.dumps(
                {
                    "args": ["sh", "-c", "id; echo PATH=$PATH"],
                    "cwd": "/",
                    "env": None,
                    "rlimits": None,
                    "user": {"uid": 1, "gid": 2, "additionalGids": None, "umask": None},
                    "terminal": None,
                    "capabilities": {"bounding": [], "ambient": None},
                }
            )
        )
        out = ok(call(rt, "exec", "--process", str(proc), cid)).stdout
        assert out.splitlines()[0] == "uid=1 gid=2", out
        res = tmp_path / "resources.json"
        res.write_text(json.dumps({"memory": None, "cpu": None, "pids": {"limit": 37}}))
        ok(call(rt, "update", "--resources", str(res), cid))
        stats = json.loads(ok(call(rt, "events", "--stats", cid)).stdout)
        assert stats["data"]["pids"]["limit"] == 37
    finally:
        ok(call(rt, "delete", "--force", cid))


def test_null_capabilities_are_none_at_create_and_the_containers_at_exec(rt, make_bundle, tmp_path):
    """runc reads `"capabilities": null` as none given: the container runs with every set
    empty, and an exec'd process file without capabilities (null or absent) gets the
    container's, not the runtime's (root's) own."""
    caps = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")

    def read(text):
        return {
            k: int(v, 16) for k, v in (ln.split(":\t") for ln in text.splitlines()) if k in caps
        }

    def no_caps(cfg):
        cfg["process"]["capabilities"] = None

    out = ok(
        call(
            rt, "run", "--bundle", make_bundle(["grep", "^Cap", "/proc/self/status"], no_caps), "nc"
        )
    ).stdout
    assert read(out) == dict.fromkeys(caps, 0), out
    cid = "nulls-caps"
    ok(call(rt, "run", "--detach", "--bundle", make_bundle(args=["sleep", "60"]), cid))
    try:
        init = read(
            open(f"/proc/{json.loads(ok(call(rt, 'state', cid)).stdout)['pid']}/status").read()
        )
        assert init["CapEff"] and init["CapEff"] != (1 << 41) - 1  # the bundle's own list
        for given in ({"capabilities": None}, {}):
            proc = tmp_path / "process.json"
            proc.write_text(
                json.dumps({"args": ["grep", "^Cap", "/proc/self/status"], "cwd": "/", **given})
            )
            out = ok(call(rt, "exec", "--process", str(proc), cid)).stdout
            assert read(out) == init, (given, out)
    finally:
        ok(call(rt, "delete", "--force", cid))
