"""Move stale build outputs out of the way, restorably; never touch a user's sources.

A path is accepted only when it really is a build output:

* a directory with build-system traces at its top (``build.ninja``,
  ``.ninja_log``, ``temp.*`` / ``lib.*`` from setuptools, or object files) and
  no sign of being a source tree (``setup.py``, ``pyproject.toml``, ``.git``,
  ``CMakeLists.txt``, ...);
* or a compiled extension: a regular ``*.so`` file that starts with the ELF magic.

A symbolic link is always refused (moving it would not move what it points to,
and following it could reach outside the project).
"""
from __future__ import annotations

import errno
import os
import shutil
from typing import List, Optional, Tuple

from envdoctor.fix.fsops import FixError

SOURCE_MARKERS = ("setup.py", "setup.cfg", "pyproject.toml", ".git", "CMakeLists.txt", "Makefile",
                  "make.sh", "__init__.py", "requirements.txt")
BUILD_MARKERS = ("build.ninja", ".ninja_log", ".ninja_deps", "CMakeCache.txt")
ELF_MAGIC = b"\x7fELF"


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == ELF_MAGIC
    except OSError:
        return False


def _dir_traces(path: str) -> Tuple[List[str], List[str]]:
    """(build traces, source markers) at the top of directory ``path``."""
    names = os.listdir(path)
    sources = [n for n in names if n in SOURCE_MARKERS]
    if "CMakeCache.txt" in names:  # a CMake build tree has its own generated Makefile
        sources = [n for n in sources if n != "Makefile"]
    traces = [n for n in names if n in BUILD_MARKERS]
    traces += [n for n in names if (n.startswith("temp.") or n.startswith("lib."))
               and os.path.isdir(os.path.join(path, n)) and not os.path.islink(os.path.join(path, n))]
    traces += [n for n in names if n.endswith(".o")][:3]
    return traces, sources


def why_not_build_output(path: str) -> Optional[str]:
    """None when ``path`` may be quarantined, else the reason it may not."""
    if not os.path.isabs(path):
        return f"{path} is not an absolute path"
    if not os.path.lexists(path):
        return f"{path} does not exist"
    if os.path.islink(path):
        return f"{path} is a symbolic link; envdoctor never moves or follows links"
    real = os.path.realpath(path)
    home = os.path.realpath(os.path.expanduser("~"))
    if real in ("/", home) or os.getcwd().startswith(real + os.sep) or os.getcwd() == real:
        return f"{path} is a directory envdoctor will never move"
    if os.path.isfile(path):
        if not path.endswith(".so"):
            return f"{path} is not a compiled extension (*.so)"
        if not _is_elf(path):
            return f"{path} is named .so but is not an ELF shared object"
        return None
    if not os.path.isdir(path):
        return f"{path} is neither a regular file nor a directory"
    try:
        traces, sources = _dir_traces(path)
    except OSError as exc:
        return f"cannot list {path}: {exc.strerror or exc}"
    if sources:
        return f"{path} looks like a source directory (it contains {', '.join(sorted(sources))})"
    if not traces:
        return (f"{path} shows no build-system traces (build.ninja, .ninja_log, temp.*, lib.*, *.o); "
                "it may hold your own files")
    return None


def quarantine(path: str, quarantine_dir: str, index: int) -> str:
    """Move ``path`` into ``quarantine_dir``; returns where it went. Raises FixError with the reason."""
    reason = why_not_build_output(path)
    if reason:
        raise FixError(f"not quarantined: {reason}")
    try:
        os.makedirs(quarantine_dir, exist_ok=True)
    except OSError as exc:
        raise FixError(f"cannot create {quarantine_dir}: {exc.strerror or exc}; nothing was moved") from None
    dest = os.path.join(quarantine_dir, f"{index:03d}-{os.path.basename(path.rstrip(os.sep))}")
    _move(path, dest)
    return dest


def restore(src: str, dest: str) -> None:
    """Put a quarantined ``dest`` back at ``src`` (refuses to overwrite something new there)."""
    if os.path.lexists(src):
        raise FixError(f"cannot restore {src}: something new exists there now; the quarantined copy "
                       f"stays at {dest}")
    if not os.path.lexists(dest):
        raise FixError(f"cannot restore {src}: the quarantined copy {dest} is gone")
    parent = os.path.dirname(src)
    if not os.path.isdir(parent):
        raise FixError(f"cannot restore {src}: its directory {parent} no longer exists")
    _move(dest, src)


def move(src: str, dest: str) -> None:
    """Rename, or copy then remove across file systems; FixError with the reason, the source intact."""
    _move(src, dest)


def _move(src: str, dest: str) -> None:
    try:
        os.rename(src, dest)  # same file system: atomic
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # another file system: copy, then remove
            raise FixError(f"cannot move {src}: {exc.strerror or exc}; it was left in place") from None
    try:
        if os.path.isdir(src):
            shutil.copytree(src, dest, symlinks=True)
            shutil.rmtree(src)
        else:
            shutil.copy2(src, dest)
            os.unlink(src)
    except OSError as exc:
        if os.path.exists(src) and os.path.isdir(dest):
            shutil.rmtree(dest, ignore_errors=True)  # the source is intact: drop the partial copy
        raise FixError(f"cannot move {src} to {dest}: {exc.strerror or exc}") from None
