"""Invalid bundles and configs given to a real `ocirun create`.

Each must fail before anything exists: rc != 0, one clean line on stderr whose problems
(joined by "; ") each name the JSON path (`config.json: /linux/namespaces/2/type: ...`), no
traceback, no state dir, no process, no mount (the `rt` fixture checks the last three).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from clitools import call
from testenv import OCIRUN


def refused(rt, r: subprocess.CompletedProcess, cid: str = "c1") -> list[str]:
    """Assert a clean refusal on one line that left nothing; return its problems (the
    line split at "; config.json: ")."""
    try:
        assert r.returncode != 0, f"accepted: {r.stdout}{r.stderr}"
        assert "Traceback" not in r.stderr, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, f"not one line: {r.stderr!r}"
        first, *rest = lines[0].split("; config.json: ")
        lines = [first] + ["config.json: " + p for p in rest]
        assert r.stdout == ""
        listed = subprocess.run(
            [OCIRUN, "--root", rt.root, "list", "-q"], capture_output=True, text=True, timeout=30
        )
        assert listed.returncode == 0 and listed.stdout == "", listed.stdout + listed.stderr
        if cid and os.path.isdir(rt.root):
            assert not os.path.exists(os.path.join(rt.root, cid))
        return lines
    finally:
        if r.returncode == 0:
            subprocess.run(
                [OCIRUN, "--root", rt.root, "delete", "--force", cid],
                capture_output=True,
                timeout=30,
            )


# --------------------------------------------------------------------------- config.json


def ns_append(entry):
    return lambda c: c["linux"]["namespaces"].append(entry)


def setter(*path_and_value):
    *path, key, value = path_and_value

    def mutate(c):
        d = c
        for p in path:
            d = d[p]
        d[key] = value

    return mutate


def without(*path_and_key):
    *path, key = path_and_key

    def mutate(c):
        d = c
        for p in path:
            d = d[p]
        del d[key]

    return mutate


def drop_namespace(t):
    def mutate(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != t]

    return mutate


def both(*fns):
    def mutate(c):
        for fn in fns:
            fn(c)

    return mutate


# (id, mutate, [needles of line 1, needles of line 2, ...]): one expected line per problem,
# each line starting "config.json: <json pointer>: ".
BAD = [
    (
        "namespace-type",
        setter("linux", "namespaces", 2, {"type": "foo"}),
        [["/linux/namespaces/2/type: 'foo' is not one of ["]],
    ),
    (
        "namespace-duplicate",
        ns_append({"type": "pid"}),
        [["/linux/namespaces/6/type:", "duplicate", "'pid'"]],
    ),
    (
        "namespace-path-relative",
        setter("linux", "namespaces", 1, {"type": "network", "path": "proc/1/ns/net"}),
        [["/linux/namespaces/1/path:", "absolute", "proc/1/ns/net"]],
    ),
    (
        "namespaces-not-a-list",
        setter("linux", "namespaces", {"type": "pid"}),
        [["/linux/namespaces:", "is not of type 'array'"]],
    ),
    (
        "userns-without-mappings",
        ns_append({"type": "user"}),
        [["/linux:", "uid mappings"], ["/linux:", "gid mappings"]],
    ),
    ("cwd-relative", setter("process", "cwd", "tmp"), [["/process/cwd:", "absolute", "'tmp'"]]),
    ("args-empty", setter("process", "args", []), [["/process/args:", "empty"]]),
    (
        "args-not-a-list",
        setter("process", "args", "sh -c true"),
        [["/process/args:", "is not of type 'array'"]],
    ),
    (
        "args-item-not-a-string",
        setter("process", "args", ["sh", 5]),
        [["/process/args/1:", "5 is not of type 'string'"]],
    ),
    ("ociVersion-2", setter("ociVersion", "2.0.0"), [["/ociVersion:", "'2.0.0'"]]),
    ("ociVersion-garbage", setter("ociVersion", "abc"), [["/ociVersion:", "'abc'"]]),
    ("ociVersion-missing", without("ociVersion"), [["/: 'ociVersion' is a required property"]]),
    (
        "rlimit-unknown",
        lambda c: c["process"]["rlimits"].append({"type": "RLIMIT_FOO", "soft": 1, "hard": 1}),
        [["/process/rlimits/1/type:", "RLIMIT_FOO"]],
    ),
    (
        "rlimit-malformed",
        setter("process", "rlimits", 0, {"type": "nofile", "soft": 1, "hard": 1}),
        [["/process/rlimits/0/type:", "'nofile'"]],
    ),
    (
        "rlimit-soft-above-hard",
        setter("process", "rlimits", 0, {"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}),
        [["/process/rlimits/0:", "2048", "1024"]],
    ),
    (
        "hook-path-relative",
        setter("hooks", {"prestart": [{"path": "bin/true"}]}),
        [["/hooks/prestart/0/path:", "absolute", "bin/true"]],
    ),
    (
        "hook-timeout-zero",
        setter("hooks", {"poststart": [{"path": "/bin/true", "timeout": 0}]}),
        [["/hooks/poststart/0/timeout:", "0"]],
    ),
    (
        "device-type-x",
        setter("linux", "devices", [{"path": "/dev/foo", "type": "x", "major": 1, "minor": 3}]),
        [["/linux/devices/0/type: 'x' is not one of ["]],
    ),
    (
        "mount-without-destination",
        lambda c: c["mounts"].append({"type": "tmpfs", "source": "tmpfs"}),
        [["/mounts/7: 'destination' is a required property"]],
    ),
    (
        "mount-destination-empty",
        lambda c: c["mounts"].append({"destination": "", "type": "tmpfs", "source": "tmpfs"}),
        [["/mounts/7/destination:", "empty"]],
    ),
    ("uid-negative", setter("process", "user", "uid", -1), [["/process/user/uid:", "-1"]]),
    (
        "gid-string",
        setter("process", "user", "gid", "0"),
        [["/process/user/gid:", "'0' is not of type 'integer'"]],
    ),
    ("hostname-not-a-string", setter("hostname", 5), [["/hostname: 5 is not of type 'string'"]]),
    ("hostname-without-uts", drop_namespace("uts"), [["/hostname:", "uts"]]),
    ("sysctl-escaping", setter("linux", "sysctl", {"../x": "1"}), [["/linux/sysctl/", "'../x'"]]),
    (
        "terminal-not-bool",
        setter("process", "terminal", "yes"),
        [["/process/terminal:", "'yes' is not of type 'boolean'"]],
    ),
    ("root-missing", without("root"), [["/: 'root' is a required property"]]),
    ("root-path-missing", without("root", "path"), [["/root: 'path' is a required property"]]),
    ("process-missing", without("process"), [["/: 'process' is a required property"]]),
    (
        "two-problems",
        both(setter("process", "cwd", "tmp"), setter("hostname", 5)),
        [["/process/cwd:", "absolute"], ["/hostname:", "not of type 'string'"]],
    ),
    (
        "three-problems",
        both(
            setter("process", "user", "uid", -1),
            setter("process", "cwd", "rel"),
            lambda c: c["process"]["env"].append("NO_EQUALS"),
        ),
        [["/process/user/uid:"], ["/process/cwd:"], ["/process/env/"]],
    ),
]

XFAIL: dict[str, str] = {}


@pytest.mark.parametrize(
    "mutate, expected",
    [
        pytest.param(
            m,
            e,
            id=i,
            marks=[pytest.mark.xfail(strict=True, reason=XFAIL[i])] if i in XFAIL else [],
        )
        for i, m, e in BAD
    ],
)
def test_bad_config_is_refused(rt, make_bundle, mutate, expected):
    r = call(rt, "create", "--bundle", make_bundle(mutate=mutate), "c1")
    lines = refused(rt, r)
    for line in lines:
        assert line.startswith("config.json: /"), f"not 'config.json: <path>: ...': {line!r}"
    assert len(lines) == len(expected), f"expected {len(expected)} line(s), got {lines}"
    unmatched = list(lines)
    for needles in expected:
        match = next((ln for ln in unmatched if all(n in ln for n in needles)), None)
        assert match is not None, f"no line with {needles} in {lines}"
        unmatched.remove(match)


@pytest.mark.parametrize("cmd", ["create", "run"])
def test_bad_config_is_refused_by_run_too(rt, make_bundle, cmd):
    r = call(rt, cmd, "--bundle", make_bundle(mutate=setter("process", "cwd", "tmp")), "c1")
    assert refused(rt, r) == ["config.json: /process/cwd: must be an absolute path, got 'tmp'"]


def test_same_bad_config_refused_twice(rt, make_bundle):
    """The validation cache must never remember a bad config as good."""
    bundle = make_bundle(mutate=setter("hostname", 5))
    first = refused(rt, call(rt, "create", "--bundle", bundle, "c1"))
    second = refused(rt, call(rt, "create", "--bundle", bundle, "c1"))
    assert first == second == ["config.json: /hostname: 5 is not of type 'string'"]


# --------------------------------------------------------------------------- the bundle itself


def write_raw(tmp_path, raw: str | None, name="bad") -> str:
    d = tmp_path / name
    d.mkdir()
    if raw is not None:
        (d / "config.json").write_text(raw)
    return str(d)


def test_bundle_missing(rt, tmp_path):
    missing = str(tmp_path / "nope")
    lines = refused(rt, call(rt, "create", "--bundle", missing, "c1"))
    assert len(lines) == 1 and missing in lines[0] and "no such" in lines[0].lower(), lines


def test_bundle_is_a_file(rt, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    lines = refused(rt, call(rt, "create", "--bundle", str(f), "c1"))
    assert len(lines) == 1 and str(f) in lines[0] and "not a directory" in lines[0], lines


def test_config_missing(rt, tmp_path):
    bundle = write_raw(tmp_path, None)
    lines = refused(rt, call(rt, "create", "--bundle", bundle, "c1"))
    assert len(lines) == 1 and "config.json" in lines[0] and "not found" in lines[0], lines
    assert bundle in lines[0]


def test_config_is_a_directory(rt, tmp_path):
    bundle = write_raw(tmp_path, None)
    os.mkdir(os.path.join(bundle, "config.json"))
    lines = refused(rt, call(rt, "create", "--bundle", bundle, "c1"))
    assert len(lines) == 1 and "config.json" in lines[0], lines


@pytest.mark.parametrize(
    "raw, where",
    [
        ('{\n "ociVersion": "1.3.0",\n oops\n}', "line 3, column 2"),
        ("", "line 1, column 1"),
        ('{"ociVersion": "1.3.0",', "line 1"),
    ],
    ids=["garbage", "empty", "truncated"],
)
def test_config_not_json(rt, tmp_path, raw, where):
    bundle = write_raw(tmp_path, raw)
    lines = refused(rt, call(rt, "create", "--bundle", bundle, "c1"))
    assert len(lines) == 1, lines
    assert os.path.join(bundle, "config.json") in lines[0]
    assert "invalid JSON" in lines[0] and where in lines[0], lines


def test_config_with_nan(rt, tmp_path, make_bundle):
    """Python's json accepts NaN; JSON (and runc) does not."""
    cfg = json.loads(Path(make_bundle(), "config.json").read_text())
    raw = json.dumps(cfg).replace('"hostname": "ocirun-demo"', '"hostname": NaN')
    assert "NaN" in raw
    lines = refused(rt, call(rt, "create", "--bundle", write_raw(tmp_path, raw), "c1"))
    assert len(lines) == 1 and "NaN" in lines[0], lines


@pytest.mark.parametrize("raw, kind", [("[1, 2]", "array"), ('"x"', "string"), ("null", "null")])
def test_config_not_an_object(rt, tmp_path, raw, kind):
    lines = refused(rt, call(rt, "create", "--bundle", write_raw(tmp_path, raw), "c1"))
    assert len(lines) == 1 and "object" in lines[0] and kind in lines[0], lines


def test_rootfs_missing(rt, tmp_path, make_bundle):
    missing = str(tmp_path / "no-rootfs")
    bundle = make_bundle(mutate=setter("root", "path", missing))
    lines = refused(rt, call(rt, "create", "--bundle", bundle, "c1"))
    assert len(lines) == 1 and missing in lines[0] and "no such" in lines[0].lower(), lines


def test_rootfs_relative_missing(rt, make_bundle):
    """root.path relative to the bundle (the usual "rootfs"), absent there."""
    bundle = make_bundle(mutate=setter("root", "path", "rootfs"))
    lines = refused(rt, call(rt, "create", "--bundle", bundle, "c1"))
    assert len(lines) == 1 and os.path.join(bundle, "rootfs") in lines[0], lines


@pytest.mark.parametrize(
    "cid, needle",
    [
        ("a/b", '"a/b"'),
        ("..", '".."'),
        (".", '"."'),
        ("", '""'),
        ("a b", '"a b"'),
        ("a\nb", '"a\\nb"'),
        ("../../etc", '"../../etc"'),
    ],
    ids=["slash", "dotdot", "dot", "empty", "space", "newline", "traversal"],
)
def test_invalid_container_id(rt, make_bundle, cid, needle):
    r = call(rt, "create", "--bundle", make_bundle(args=["true"]), cid)
    lines = refused(rt, r, cid="")
    assert len(lines) == 1, lines
    assert "invalid container id" in lines[0] and needle in lines[0], lines
    if os.path.isdir(rt.root):
        assert [e for e in os.listdir(rt.root) if not e.startswith(".")] == []


# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(setter("ociVersion", "1.0.2-dev"), id="ociVersion-1.0.2-dev"),
        pytest.param(setter("ociVersion", "1.0.0"), id="ociVersion-1.0.0"),
        pytest.param(setter("ociVersion", "1.2.1"), id="ociVersion-1.2.1"),
        pytest.param(setter("org.example.unknown", {"any": 1}), id="unknown-property"),
        pytest.param(lambda c: c["process"].update(extra=True), id="unknown-process-property"),
    ],
)
def test_accepted_config_runs(rt, make_bundle, mutate):
    """What containerd/podman write (ociVersion 1.0.2-dev), older 1.x versions, and unknown
    properties (config.md: runtimes MUST ignore unknown properties) run."""
    bundle = make_bundle(args=["sh", "-c", "echo accepted; exit 5"], mutate=mutate)
    r = call(rt, "run", "--bundle", bundle, "c1")
    assert "Traceback" not in r.stderr
    assert r.returncode == 5, r.stderr
    assert r.stdout == "accepted\n"
