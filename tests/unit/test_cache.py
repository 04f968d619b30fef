"""ocirun/cache.py: where the cache lives, its bounds, and that it never fails a caller."""

from __future__ import annotations

import errno
import os
import stat
import threading

import pytest

from ocirun import cache, spec


def test_location_env_override_and_disable(monkeypatch, tmp_path):
    monkeypatch.setenv(cache.ENV, str(tmp_path / "c"))
    assert cache.path("seccomp") == str(tmp_path / "c" / "seccomp")
    monkeypatch.setenv(cache.ENV, "")
    assert cache.base_dir() is None and cache.path("config") is None


def test_location_by_user(monkeypatch):
    monkeypatch.delenv(cache.ENV, raising=False)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert cache.base_dir() == "/var/cache/ocirun"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setenv("XDG_CACHE_HOME", "/home/u/.xdg")
    assert cache.base_dir() == "/home/u/.xdg/ocirun"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "/home/u")
    assert cache.base_dir() == "/home/u/.cache/ocirun"


def test_store_is_private_and_roundtrips(tmp_path):
    d = str(tmp_path / "a" / "store")
    with cache.Store(d) as s:
        assert s.put("k1", b"data") and s.get("k1") == b"data"
        assert s.get("k2") is None
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert os.listdir(d) == ["k1"]  # no temporary left


def test_untrusted_or_unusable_dir_is_not_used(tmp_path):
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, 0o777)
    with cache.Store(str(d)) as s:
        assert s.fd < 0 and "not group/world-writable" in s.why
        assert not s.put("k", b"x") and s.get("k") is None
    (tmp_path / "file").write_text("")
    with cache.Store(str(tmp_path / "file" / "sub")) as s:  # ENOTDIR
        assert s.fd < 0 and not s.put("k", b"x")
    (tmp_path / "target").mkdir()
    os.symlink(tmp_path / "target", tmp_path / "link")
    with cache.Store(str(tmp_path / "link")) as s:  # never through a link
        assert s.fd < 0
    with cache.Store(None) as s:
        assert s.fd < 0 and s.get("k") is None
    with cache.Store(str(tmp_path / "nul\0byte")) as s:
        assert s.fd < 0 and not s.put("k", b"x")


def test_count_bound_evicts_least_recently_used(tmp_path):
    d = str(tmp_path / "s")
    with cache.Store(d) as s:
        for i in range(cache.MAX_ENTRIES + 40):
            assert s.put(f"k{i}", b"")
            os.utime(f"k{i}", ns=(i * 10**9, i * 10**9), dir_fd=s.fd)  # k0 oldest
        names = set(os.listdir(d))
    assert len(names) == cache.MAX_ENTRIES
    assert "k0" not in names and f"k{cache.MAX_ENTRIES + 39}" in names


def test_size_bound(tmp_path):
    d = str(tmp_path / "s")
    blob = b"x" * (256 << 10)
    with cache.Store(d) as s:
        for i in range(40):
            s.put(f"b{i}", blob)
    total = sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d))
    assert total <= cache.MAX_BYTES and len(os.listdir(d)) >= cache.MAX_BYTES // len(blob) - 1


def test_a_hit_refreshes_an_old_entry(tmp_path):
    d = str(tmp_path / "s")
    with cache.Store(d) as s:
        s.put("k", b"v")
        os.utime("k", ns=(10**9, 10**9), dir_fd=s.fd)
        assert s.get("k") == b"v"
        assert os.stat("k", dir_fd=s.fd).st_mtime_ns > 10**18


def test_stale_temporaries_are_removed(tmp_path):
    d = tmp_path / "s"
    d.mkdir(mode=0o700)
    (d / ".k.123.ab.tmp").write_bytes(b"half")
    os.utime(d / ".k.123.ab.tmp", (1, 1))
    live = f".k.{os.getppid()}.cd.tmp"  # a live writer's
    (d / live).write_bytes(b"being written")
    with cache.Store(str(d)) as s:
        s.put("k", b"v")
    assert sorted(os.listdir(d)) == [live, "k"]


def test_full_disk_is_not_an_error(tmp_path, monkeypatch):
    d = str(tmp_path / "s")

    def enospc(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    with cache.Store(d) as s:
        monkeypatch.setattr(os, "write", enospc)
        assert not s.put("k", b"v")
    assert os.listdir(d) == []


def test_concurrent_writers_never_expose_a_partial_entry(tmp_path):
    d = str(tmp_path / "s")
    blobs = [bytes([i]) * 200_000 for i in range(4)]
    bad = []

    def writer(blob):
        with cache.Store(d) as s:
            for _ in range(20):
                s.put("same", blob)

    def reader():
        with cache.Store(d) as s:
            for _ in range(200):
                got = s.get("same")
                if got is not None and got not in blobs:
                    bad.append(len(got))

    threads = [threading.Thread(target=writer, args=(b,)) for b in blobs]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad
    assert os.listdir(d) == ["same"]


def test_drop_legacy_cache_under_root(tmp_path):
    root = tmp_path / "root"
    (root / ".cache" / "seccomp").mkdir(parents=True)
    (root / ".cache" / "abc").write_text("")
    (root / ".cache" / "seccomp" / "x.bpf").write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("")
    os.symlink(outside, root / ".cache" / "link")
    (root / "c1").mkdir()
    cache.drop_legacy(str(root))
    assert os.listdir(root) == ["c1"]
    assert os.listdir(outside) == ["keep"]  # a link is removed, never followed
    cache.drop_legacy(str(root))  # nothing there: no error


def test_verdict_key_covers_the_validator_libraries(monkeypatch):
    import jsonschema

    ids = spec._library_ids()
    assert os.path.dirname(os.path.abspath(jsonschema.__file__)) in ids, ids
    key = spec.cache_key(b"{}")
    monkeypatch.setattr(spec, "_library_ids", lambda: ids + "\nupgraded")
    assert spec.cache_key(b"{}") != key


@pytest.mark.parametrize("name", spec._VALIDATOR_SOURCES)
def test_verdict_key_covers_the_validator_code(name, tmp_path, monkeypatch):
    """A changed validator, loader, table or parser module changes every key."""
    real_open = open
    here = os.path.dirname(os.path.abspath(spec.__file__))

    def patched(path, *a, **kw):
        f = real_open(path, *a, **kw)
        if path == os.path.join(here, name):
            data = f.read() + b"\n# changed\n"
            f.close()
            import io

            return io.BytesIO(data)
        return f

    key = spec.cache_key(b"{}")
    monkeypatch.setattr("builtins.open", patched)
    assert spec.cache_key(b"{}") != key


def test_a_dead_writers_temporary_goes_with_the_next_write(tmp_path):
    """A writer SIGKILLed between its write and its rename left its temporary for 10 min
    (the kill sweep of tests/faults found one); a live writer's stays."""
    d = str(tmp_path / "s")
    with cache.Store(d) as s:
        s.put("a", b"1")
        dead = ".b.999999999.0123abcd.tmp"
        live = f".c.{os.getppid()}.0123abcd.tmp"
        for name in (dead, live):
            with open(os.path.join(d, name), "w"):
                pass
        s.put("d", b"2")
    assert sorted(os.listdir(d)) == sorted([live, "a", "d"])
    assert cache.tmp_writer(dead) == 999999999 and cache.tmp_writer("a") is None
