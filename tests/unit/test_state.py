"""The state dir's pure helpers: container ids (checked before any path is built from
them), and paths.py's os-free path functions the hot commands use."""

import os

import pytest

from ocirun import paths, state
from ocirun.errors import UsageError


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


@pytest.mark.parametrize("path", ["/", "/a/b", "/a//b/", "/a/./b/../c", "/..", "/a/..",
                                  "rel", "rel/../x", "./x/.", "../up", "a//b", "."])
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
