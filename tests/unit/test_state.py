"""The state dir's pure helpers: container ids (checked before any path is built from
them), and paths.py's os-free path functions the hot commands use."""

import os

import pytest

from ocirun import paths, state
from ocirun.errors import StateDamaged, UsageError

# --------------------------------------------------------------------------- check_id


@pytest.mark.parametrize("cid", ["abc", "a.b-c_d+e", "A1", "0", "a" * 200, "..a", "x.."])
def test_check_id_valid(cid):
    state.check_id(cid)


@pytest.mark.parametrize(
    "cid,fragment",
    [
        ("", 'invalid container id ""'),
        ("a/b", 'invalid container id "a/b"'),
        ("/abs", 'must not contain "/"'),
        (".", "reserved"),
        ("..", "reserved"),
        ("a b", "only letters, digits"),
        ("a\nb", 'invalid container id "a\\nb"'),
        ("abc\n", "only letters, digits"),
        ("caf\u00e9", "only letters, digits"),
        ("a:b", "only letters, digits"),
    ],
)
def test_check_id_invalid(cid, fragment):
    with pytest.raises(UsageError) as ei:
        state.check_id(cid)
    assert fragment in str(ei.value)
    assert "\n" not in str(ei.value)


@pytest.mark.parametrize("cid", ["..", ".", "../x", "a/../../b", "/etc"])
def test_a_bad_id_is_refused_before_any_path_is_built(tmp_path, cid):
    """`delete ../other-root/c` once reached outside the root (runc refuses the id too)."""
    (tmp_path / "root").mkdir()
    with pytest.raises(UsageError):
        state.Container.load(str(tmp_path / "root"), cid)
    with pytest.raises(UsageError):
        state.Container.create(str(tmp_path / "root"), cid)
    assert os.listdir(tmp_path / "root") == []


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/a/b",
        "/a//b/",
        "/a/./b/../c",
        "/..",
        "/a/..",
        "rel",
        "rel/../x",
        "./x/.",
        "../up",
        "a//b",
        ".",
    ],
)
def test_abspath_is_os_path_abspath(path):
    assert paths.abspath(path) == os.path.abspath(path)


@pytest.mark.parametrize("d, name", [("/a", "b"), ("/a/", "b"), ("/", "x"), ("/a/b", "c.d")])
def test_in_dir_is_os_path_join(d, name):
    assert paths.in_dir(d, name) == os.path.join(d, name)


def test_exists_and_is_dir(tmp_path):
    f = tmp_path / "f"
    f.write_text("")
    (tmp_path / "link").symlink_to("d")
    assert paths.exists(str(f)) and not paths.is_dir(str(f))
    assert paths.is_dir(str(tmp_path)) and paths.exists(str(tmp_path))
    assert not paths.exists(str(tmp_path / "link"))  # dangling: follows symlinks, as os.path
    (tmp_path / "d").mkdir()
    assert paths.is_dir(str(tmp_path / "link"))
    assert not paths.exists(str(tmp_path / "nope"))
    assert not paths.exists("nul\x00in a path")  # ValueError from stat: just "no"


# --------------------------------------------------------------------------- damaged state


GOOD = b'{"id": "c1", "pid": 42, "start_time": 7, "bundle": "/b"}'


@pytest.mark.parametrize(
    "raw, why",
    [
        (GOOD[:20], "invalid JSON"),
        (b"", "empty file"),
        (b" \n", "empty file"),
        (b"[1]", "not a JSON object"),
        (b"{}", "no init pid"),
        (b'{"pid": "1"}', "no init pid"),
        (b"\xff\xfe", "invalid JSON"),
        (b"[" * 5000, "invalid JSON"),
    ],
)
def test_a_damaged_state_file_is_an_error_naming_it(tmp_path, raw, why):
    d = tmp_path / "c1"
    d.mkdir()
    (d / "state.json").write_bytes(raw)
    with pytest.raises(StateDamaged) as e:
        state.Container.load(str(tmp_path), "c1")
    msg = str(e.value)
    assert msg.startswith(f"{d}/state.json: damaged container state (") and why in msg, msg
    assert "\n" not in msg
    with pytest.raises(StateDamaged):
        state.peek(str(tmp_path), "c1")
    c = state.Container.load(str(tmp_path), "c1", damaged_ok=True)  # delete --force
    with c:
        assert c.data == {} and c.damage == msg


def test_cgroups_from_the_record_written_before_them(tmp_path):
    d = tmp_path / "c1"
    d.mkdir()
    with state.Container.load(str(tmp_path), "c1") as c:  # no state.json: a create died
        assert c.cgroup_paths() is None
        c.save_cgroups({"mode": "v1", "dirs": {"cpu": "/x"}, "created": ["/x"]})
        assert c.cgroup_paths()["created"] == ["/x"]
    (d / "state.json").write_bytes(GOOD[:-1] + b', "cgroup_paths": {"dirs": {"cpu": "/y"}}}')
    with state.Container.load(str(tmp_path), "c1") as c:  # state.json's win
        assert c.cgroup_paths() == {"dirs": {"cpu": "/y"}}
