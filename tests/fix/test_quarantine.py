"""Stale build outputs move to a restorable quarantine; sources and links never move."""
from __future__ import annotations

import os

import pytest

from envdoctor.fix.fsops import FixError
from envdoctor.fix.quarantine import quarantine, restore, why_not_build_output
from tests.fix.ext_fixtures import write_old_msda_ops, write_stale_build


def _tree(root):
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as fh:
                out[os.path.relpath(full, root)] = fh.read()
    return out


def test_stale_build_dir_is_moved_and_restored_exactly(tmp_path):
    project = write_old_msda_ops(str(tmp_path / "ops"))
    build = write_stale_build(project)
    before = _tree(build)
    dest = quarantine(build, str(tmp_path / "q"), 0)
    assert not os.path.exists(build) and _tree(dest) == before
    assert os.path.isfile(os.path.join(project, "setup.py"))  # the project itself stays
    restore(build, dest)
    assert _tree(build) == before and not os.path.exists(dest)


def test_compiled_extension_file_is_accepted_only_if_elf(tmp_path):
    so = tmp_path / "ext.cpython-311-x86_64-linux-gnu.so"
    so.write_bytes(b"\x7fELF" + b"\0" * 60)
    assert why_not_build_output(str(so)) is None
    fake = tmp_path / "notes.so"
    fake.write_bytes(b"my notes")
    assert "not an ELF" in why_not_build_output(str(fake))


@pytest.mark.parametrize("marker", ["setup.py", "pyproject.toml", ".git", "__init__.py"])
def test_source_dir_is_refused(tmp_path, marker):
    src = tmp_path / "build"
    src.mkdir()
    (src / "build.ninja").write_text("x")
    (src / marker).mkdir() if marker == ".git" else (src / marker).write_text("user code")
    with pytest.raises(FixError, match="looks like a source directory"):
        quarantine(str(src), str(tmp_path / "q"), 0)
    assert (src / "build.ninja").exists()


def test_dir_without_build_traces_is_refused(tmp_path):
    mine = tmp_path / "build"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(FixError, match="no build-system traces"):
        quarantine(str(mine), str(tmp_path / "q"), 0)
    assert (mine / "thesis.tex").read_text() == "years of work"


def test_symlink_is_refused_and_target_untouched(tmp_path):
    project = write_old_msda_ops(str(tmp_path / "ops"))
    real_build = write_stale_build(project)
    link = tmp_path / "linked-build"
    link.symlink_to(real_build)
    with pytest.raises(FixError, match="symbolic link"):
        quarantine(str(link), str(tmp_path / "q"), 0)
    assert link.is_symlink() and os.path.isdir(real_build)


def test_relative_path_is_refused(tmp_path):
    assert "not an absolute path" in why_not_build_output("build")


def test_restore_refuses_to_overwrite(tmp_path):
    project = write_old_msda_ops(str(tmp_path / "ops"))
    build = write_stale_build(project)
    dest = quarantine(build, str(tmp_path / "q"), 0)
    os.makedirs(build)  # a new build happened meanwhile
    with pytest.raises(FixError, match="something new exists"):
        restore(build, dest)
    assert os.path.isdir(dest)
