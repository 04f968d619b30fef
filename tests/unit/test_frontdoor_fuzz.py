"""The front door's record parser and output encoders (csrc/launcher) against hostile input.

csrc/launcher/record_fuzz.c, built here with AddressSanitizer and UBSan (any overflow, out
of bounds read or undefined behaviour aborts it), is fed the records fastrecord.py writes,
every truncation of them, mutations, oversized and garbage ones; and byte strings to encode,
compared with what the Python side (json.dumps, log.quote, _lean's indent) writes.
Seeded: a failure reproduces.
"""

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from ocirun import _lean, fastrecord, log

SRC = Path(__file__).resolve().parents[2] / "csrc" / "launcher"
SEED = 16


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler (scripts/deps.sh installs gcc)")
    out = tmp_path_factory.mktemp("fuzz") / "record_fuzz"
    subprocess.run(
        [
            cc,
            "-std=gnu11",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-g",
            "-O1",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-o",
            str(out),
            *(str(SRC / f) for f in ("record_fuzz.c", "record.c", "out.c", "cgroup.c")),
        ],
        check=True,
    )
    env = dict(
        os.environ,
        ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
        UBSAN_OPTIONS="print_stacktrace=1",
    )

    def run(mode: str, data: bytes) -> bytes:
        p = subprocess.run([str(out), mode], input=data, capture_output=True, env=env, timeout=30)
        assert p.returncode == 0 and not p.stderr, (data[:200], p.stderr.decode()[:2000])
        return p.stdout

    return run


STATE = {
    "pid": 4242,
    "start_time": 987654321,
    "ociVersion": "1.3.0",
    "bundle": "/b/ü x",
    "rootfs": "/b/ü x/rootfs",
    "created": "2026-12-07T12:00:00.000000001Z",
    "annotations": {"k": "v", "n": {"deep": [1, "a,b", {}], "e": []}},
    "cgroup_paths": {
        "mode": "v1",
        "dirs": {"freezer": "/sys/fs/cgroup/freezer/c", "devices": "/sys/fs/cgroup/devices/c"},
        "created": [
            "/sys/fs/cgroup/freezer/p",
            "/sys/fs/cgroup/freezer/c",
            "/sys/fs/cgroup/devices/c",
        ],
    },
}


def record(tmp_path, **changes) -> bytes:
    (tmp_path / "state.json").write_text("{}")
    return fastrecord.render(str(tmp_path), dict(STATE, **changes), "/sys/fs/cgroup/devices/c")


def test_a_record_reads_back_field_for_field(harness, tmp_path):
    raw = record(tmp_path)
    st = os.stat(tmp_path / "state.json")
    out = harness("record", raw).decode().splitlines()
    assert out == [
        f"state={st.st_ino} {st.st_size} {st.st_mtime_ns}",
        "pid=4242",
        "start_time=987654321",
        "freezer=/sys/fs/cgroup/freezer/c/freezer.state",
        "frozen=FROZEN",
        "procs_dir=/sys/fs/cgroup/devices/c",
        "rmdir=/sys/fs/cgroup/devices/c",
        "rmdir=/sys/fs/cgroup/freezer/c",
        "rmdir_parent=/sys/fs/cgroup/freezer/p",
        "cgroup=/sys/fs/cgroup/freezer/c",
        "cgroup=/sys/fs/cgroup/devices/c",
        "python_start=0",
        "python_delete=0",
        "ociVersion=1.3.0",
        "bundle=/b/ü x",
        "rootfs=/b/ü x/rootfs",
        "created=2026-12-07T12:00:00.000000001Z",
        "annotations=" + json.dumps(STATE["annotations"]),
    ]


def test_python_must_act_is_recorded(harness, tmp_path):
    hooks = {"poststart": [{"path": "/x"}], "poststop": [{"path": "/y"}]}
    out = harness("record", record(tmp_path, hooks=hooks)).decode()
    assert "python_start=1\npython_delete=1\n" in out and "rmdir" not in out
    for changes in (
        {"host_mounts": []},
        {"cgroup_paths": dict(STATE["cgroup_paths"], driver="systemd")},
    ):
        assert "python_delete=1\n" in harness("record", record(tmp_path, **changes)).decode()
    # kill --all and delete --force in C: cgroupfs v1/hybrid only (v2, systemd: Python)
    for changes in (
        {"cgroup_paths": dict(STATE["cgroup_paths"], driver="systemd")},
        {"cgroup_paths": dict(STATE["cgroup_paths"], mode="v2")},
        {"cgroup_paths": None},
    ):
        assert "cgroup=" not in harness("record", record(tmp_path, **changes)).decode()


def test_values_the_format_cannot_carry_mean_no_record(tmp_path):
    for changes in (
        {"bundle": "/a\nb"},
        {"rootfs": "/a\0b"},
        {"bundle": "/a\udcff"},
        {"start_time": None},
        {"pid": 0},
        {"created": 5},
    ):
        with pytest.raises(ValueError):
            record(tmp_path, **changes)
    fastrecord.write(str(tmp_path), dict(STATE, bundle="/a\nb"), None)
    assert not (tmp_path / fastrecord.NAME).exists()


def test_every_truncation_is_refused(harness, tmp_path):
    raw = record(tmp_path)
    for n in range(len(raw)):
        assert harness("record", raw[:n]) == b"invalid\n", n


def test_malformed_records_are_refused(harness, tmp_path):
    raw = record(tmp_path).decode()
    lines = raw.splitlines(keepends=True)
    end = lines.index("end\n")
    bad = [
        raw.replace("ocirun-record 2", "ocirun-record 1"),
        raw + "pid=1\n",
        raw + "\n",
        raw.replace("pid=4242", "pid=0"),
        raw.replace("pid=4242", "pid=2147483648"),
        raw.replace("pid=4242", "pid=-1"),
        raw.replace("pid=4242", "pid=+1"),
        raw.replace("pid=4242", "pid=04242"),
        raw.replace("pid=4242", "pid="),
        raw.replace("start_time=987654321", "start_time=18446744073709551616"),
        raw.replace("python_start=0", "python_start=2"),
        raw.replace("frozen=FROZEN\n", ""),
        raw.replace("procs_dir=/", "procs_dir=x"),
        raw.replace('"k": "v"', '"k": "v"]'),
        raw.replace('"k": "v"', '"k": "v\x01"'),
        raw.replace("annotations={", "annotations=["),
        raw.replace("pid=4242\n", "pid=4242\npid=4242\n"),
        raw.replace("pid=4242\n", ""),
        raw.replace("pid=", "pid:"),
        raw.replace("pid=4242\n", "unknown=1\npid=4242\n"),
        raw.replace("state=", "state=1 2\nx="),
        raw.replace("\n", "\r\n"),
        raw.replace("bundle=/b", "bundle=/b\0"),
        "".join(lines[:end]) + "rmdir=/x\n" * 65 + "end\n",
        "".join(lines[:end]) + "cgroup=/x\n" * 65 + "end\n",
        raw.replace("cgroup=/", "cgroup=x"),
        raw.replace("cgroup=/sys/fs/cgroup/devices/c", "cgroup="),
        "".join(lines[:end]) + "annotations_x={}\nend\n",
        "".join(lines[:end]) + "end",
        "",
        "\n",
        "end\n",
        "ocirun-record 2\nend\n",
    ]
    for text in bad:
        assert harness("record", text.encode()) == b"invalid\n", text
    big = "".join(lines[:end]) + "annotations={" + '"a": "' + "x" * (1 << 20) + '"}\nend\n'
    assert harness("record", big.encode()) == b"invalid\n"
    deep = "".join(lines[:end]) + "annotations=" + "[" * 300 + "]" * 300 + "\nend\n"
    assert harness("record", deep.encode()) == b"invalid\n"


def test_mutated_and_garbage_records_never_crash(harness, tmp_path):
    rng = random.Random(SEED)
    raw = record(tmp_path)
    alphabet = b'=\n\0 {}[]",\\/0123456789azAZ\xff\xc3'
    for _ in range(300):
        data = bytearray(raw)
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            pos = rng.randrange(len(data) + 1)
            if op < 0.4 and data:
                data[min(pos, len(data) - 1)] = rng.choice(alphabet)
            elif op < 0.7:
                data[pos:pos] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
            else:
                del data[pos : pos + rng.randint(1, 30)]
        out = harness("record", bytes(data))
        assert out == b"invalid\n" or out.startswith(b"state="), out
    for _ in range(100):
        garbage = bytes(rng.randrange(256) for _ in range(rng.randint(0, 3000)))
        harness("record", b"ocirun-record 2\n" + garbage)


def random_bytes(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.3:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
    if kind < 0.6:  # valid UTF-8 from all planes, then maybe cut mid-character
        s = "".join(
            chr(
                rng.choice(
                    [
                        rng.randrange(0x80),
                        rng.randrange(0x80, 0x800),
                        rng.randrange(0x800, 0xD800),
                        rng.randrange(0xE000, 0x10000),
                        rng.randrange(0x10000, 0x110000),
                    ]
                )
            )
            for _ in range(20)
        )
        b = s.encode()
        return b[: rng.randint(0, len(b))]
    # the sequences a decoder gets wrong: overlong, surrogates, beyond U+10FFFF, truncated
    pieces = [
        b"\xc0\xaf",
        b"\xe0\x80\xaf",
        b"\xed\xa0\x80",
        b"\xf4\x90\x80\x80",
        b"\xf0\x9f",
        b"\xe2\x82",
        b"\xf8\x88\x80\x80\x80",
        b"\xc2",
        b"\x80",
        b"a",
        b'"',
        b"\\",
        b"\x7f",
    ]
    return b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))


def test_json_strings_as_python_writes_them(harness):
    rng = random.Random(SEED)
    for _ in range(300):
        data = random_bytes(rng)
        want = json.dumps(data.decode(errors="replace"))
        assert harness("json", data).decode() == want, data


# Code points where the C side's str.isprintable() is exact (out.c: beyond these it is an
# approximation, documented in docs/fastpath.md).
QUOTE_POOL = [chr(c) for c in range(0x100)] + list(
    "€ü漢字😀\u2028\u200b\ufeff\ufffd\u1680\u061c\ue000\uffff\U000e0001\U000f0000\u3000"
)


def test_log_quote_as_python_writes_it(harness):
    rng = random.Random(SEED)
    for _ in range(300):
        s = "".join(rng.choice(QUOTE_POOL) for _ in range(rng.randint(0, 30)))
        assert harness("quote", s.encode()).decode() == log.quote(s), repr(s)


def random_json(rng: random.Random, depth: int = 0):
    r = rng.random()
    if depth > 4 or r < 0.3:
        return rng.choice([0, -5, 1.5, True, False, None, "", "a,b", "{[x]}", '"q"', "ü\n"])
    if r < 0.65:
        return {
            rng.choice(["a", "b", "c,", "d:", "{"]) + str(i): random_json(rng, depth + 1)
            for i in range(rng.randint(0, 4))
        }
    return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def test_reindent_matches_pythons_indent(harness):
    rng = random.Random(SEED)
    for _ in range(200):
        obj = {"k": random_json(rng)}
        got = harness("reindent", _lean.dumps(obj).encode()).decode()
        assert got == _lean.dumps(obj, indent=2), obj


def test_cgroup_procs_as_the_kernel_writes_them_and_garbage(harness):
    """kill --all and delete --force read every pid of cgroup.procs (cgroup.c): one decimal
    a line; anything else is refused (Python's manager then acts), never misread."""
    assert harness("procs", b"") == b""
    assert harness("procs", b"1\n22\n2147483647\n") == b"1\n22\n2147483647\n"
    many = b"".join(b"%d\n" % (k + 1) for k in range(70000))
    assert harness("procs", many) == many
    bad_ones = (b"1", b"1\n2", b"2147483648\n", b"-1\n", b"1 2\n", b"\n", b"x\n", b"1\n\n", b"0\n")
    for bad in bad_ones:
        assert harness("procs", bad) == b"invalid\n", bad
    rng = random.Random(SEED)
    for _ in range(200):
        data = bytes(rng.choice(b"0123456789\n \x00-9") for _ in range(rng.randint(0, 200)))
        out = harness("procs", data)
        assert out == b"invalid\n" or out == b"".join(
            b"%d\n" % int(x) for x in data.split(b"\n")[:-1] if int(x) > 0
        ), data


# The same parser as shipped: the cffi module ocirun._status (csrc/launcher/build_status.py),
# driven in process by Hypothesis. A record either parses to the values it holds or is
# refused; nothing it holds escapes the buffer (the parser points into it).
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def parse(data: bytes):
    from ocirun._status import ffi, lib

    buf = ffi.new("char[]", data + b"\0")  # one writable byte past the end, as rec_read's
    r = ffi.new("struct record *")
    return lib.rec_parse(buf, len(data), r), r, buf, ffi


LINES = st.sampled_from(
    [
        b"ocirun-record 2",
        b"state=1 2 3",
        b"pid=7",
        b"start_time=9",
        b"freezer=/f",
        b"frozen=FROZEN",
        b"procs_dir=/p",
        b"rmdir=/r",
        b"rmdir_parent=/q",
        b"cgroup=/c",
        b"python_start=0",
        b"python_delete=1",
        b"ociVersion=1.3.0",
        b"bundle=/b",
        b"rootfs=/b/r",
        b"created=x",
        b'annotations={"a": [1, {"b": "c"}]}',
        b"end",
    ]
)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(st.one_of(LINES, st.binary(max_size=40)), max_size=30), st.booleans())
def test_the_shipped_parser_through_cffi(lines, newline):
    data = b"\n".join(lines) + (b"\n" if newline else b"")
    rc, r, buf, ffi = parse(data)
    if rc == 0:
        assert data.startswith(b"ocirun-record 2\n") and data.endswith(b"\nend\n")
        assert r.pid > 0 and 0 <= r.n_rmdir <= 64 and 0 <= r.n_cgroup <= 64
        for i in range(r.n_cgroup):
            assert ffi.string(r.cgroup[i]).startswith(b"/")
            assert buf <= r.cgroup[i] < buf + len(data)
    else:
        assert rc == -1


def test_a_written_record_parses_through_cffi(tmp_path):
    rc, r, _buf, ffi = parse(record(tmp_path))
    assert rc == 0 and r.pid == 4242 and r.start_time == 987654321
    assert [ffi.string(r.cgroup[i]) for i in range(r.n_cgroup)] == [
        b"/sys/fs/cgroup/freezer/c",
        b"/sys/fs/cgroup/devices/c",
    ]
