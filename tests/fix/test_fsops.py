"""Writing user files: atomic, backed up, locked, and clear when it cannot be done."""
from __future__ import annotations

import errno
import multiprocessing
import os
import stat
import threading

import pytest

from envdoctor.fix import fsops, rcfile
from envdoctor.fix.fsops import FixError, edit_file


def _write(path, data: bytes, mode=0o644):
    with open(path, "wb") as fh:
        fh.write(data)
    os.chmod(path, mode)


def test_atomic_write_keeps_mode(tmp_path):
    target = tmp_path / "rc"
    _write(target, b"old\n", 0o640)
    fsops.atomic_write(str(target), b"new\n")
    assert target.read_bytes() == b"new\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["rc"]  # no temp file left behind


def test_symlinked_file_is_written_through_and_stays_a_link(tmp_path):
    real = tmp_path / "dotfiles" / "bashrc"
    real.parent.mkdir()
    _write(real, b"export A=1\n")
    link = tmp_path / ".bashrc"
    link.symlink_to(real)
    record = edit_file(str(link), lambda old: old + b"# added\n", str(tmp_path / "backups"))
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"export A=1\n# added\n"
    assert record["real_path"] == str(real)


def test_read_only_file_is_refused_and_untouched(tmp_path):
    target = tmp_path / "rc"
    _write(target, b"keep me\n", 0o444)
    with pytest.raises(FixError, match="read-only"):
        edit_file(str(target), lambda old: old + b"more\n", str(tmp_path / "backups"))
    assert target.read_bytes() == b"keep me\n"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o444


def test_missing_file_is_created(tmp_path):
    target = tmp_path / "rc"
    record = edit_file(str(target), lambda old: (old or b"") + b"x\n", str(tmp_path / "backups"))
    assert target.read_bytes() == b"x\n" and record["existed"] is False and record["backup"] is None


def test_directory_in_place_of_the_file_is_refused(tmp_path):
    target = tmp_path / ".bashrc"
    target.mkdir()
    (target / "inside").write_bytes(b"user data")
    with pytest.raises(FixError, match="is a directory"):
        edit_file(str(target), lambda old: b"x", str(tmp_path / "backups"))
    assert (target / "inside").read_bytes() == b"user data"


def test_missing_parent_directory_is_a_clear_error(tmp_path):
    with pytest.raises(FixError, match="does not exist"):
        edit_file(str(tmp_path / "nope" / "rc"), lambda old: b"x", None)


@pytest.mark.parametrize("fail_in", ["write", "fsync"])
def test_disk_full_leaves_the_original_intact(tmp_path, monkeypatch, fail_in):
    target = tmp_path / "rc"
    original = b"line 1\r\nline 2 \xff no newline"
    _write(target, original)
    backups = tmp_path / "backups"
    calls = {"n": 0}
    real = getattr(os, fail_in)

    def full(*args):
        calls["n"] += 1
        # Let the backup succeed, then run out of space while writing the new rc file.
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args)

    monkeypatch.setattr(fsops.os, fail_in, full)
    with pytest.raises(FixError, match="no space left on the device"):
        edit_file(str(target), lambda old: old + b"\nexport X=1\n", str(backups))
    monkeypatch.undo()
    assert target.read_bytes() == original
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("rc", "backups")]
    assert leftovers == []


def test_disk_full_while_writing_the_backup_changes_nothing(tmp_path, monkeypatch):
    target = tmp_path / "rc"
    _write(target, b"original\n")

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fsops.os, "write", full)
    with pytest.raises(FixError, match="no space left"):
        edit_file(str(target), lambda old: b"new\n", str(tmp_path / "backups"))
    monkeypatch.undo()
    assert target.read_bytes() == b"original\n"


def test_backup_holds_the_previous_bytes_privately(tmp_path):
    target = tmp_path / "rc"
    _write(target, b"secret=1\n")
    record = edit_file(str(target), lambda old: b"new\n", str(tmp_path / "backups"))
    with open(record["backup"], "rb") as fh:
        assert fh.read() == b"secret=1\n"
    assert stat.S_IMODE(os.stat(record["backup"]).st_mode) == 0o600


def test_changed_since_plan_is_refused(tmp_path):
    target = tmp_path / "rc"
    _write(target, b"v1\n")
    plan_sha = fsops.sha256(b"v0\n")
    with pytest.raises(FixError, match="changed after the plan"):
        edit_file(str(target), lambda old: b"v2\n", None, expect_sha=plan_sha)
    assert target.read_bytes() == b"v1\n"


def _append_many(path: str, tag: str, count: int) -> None:
    for i in range(count):
        edit_file(path, lambda old, i=i: (old or b"") + f"{tag}{i}\n".encode(), None)


def test_concurrent_processes_never_lose_an_update(tmp_path):
    # A read-modify-write without the lock loses lines when two writers interleave.
    target = str(tmp_path / "rc")
    _write(target, b"head\n")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(target, tag, 40)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    lines = open(target, "rb").read().splitlines()
    assert lines[0] == b"head"
    assert sorted(lines[1:]) == sorted([f"a{i}".encode() for i in range(40)] + [f"b{i}".encode() for i in range(40)])


def test_concurrent_block_writers_leave_exactly_one_block(tmp_path):
    from envdoctor.fix.settings import EnvSettings, render_block

    target = str(tmp_path / "rc")
    original = b"export KEEP=1\nno newline at end"
    _write(target, original)
    blocks = [render_block(EnvSettings(vars={"CUDA_HOME": f"/opt/cuda-{n}"})) for n in range(2)]
    errors = []

    def writer(block):
        try:
            for _ in range(25):
                edit_file(target, lambda old: rcfile.apply_block(old, block), None)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(b,)) for b in blocks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    final = open(target, "rb").read()
    assert final.count(rcfile.START) == 1
    assert rcfile.remove_block(final) == original
