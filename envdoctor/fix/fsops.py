"""File operations that never lose a user's byte.

* :func:`atomic_write`: temp file in the same directory, fsync, ``os.replace``;
  mode and owner of the old file are kept; on any failure the temp file is
  removed and the original is untouched.
* A symlinked file is written through: the link's TARGET is replaced and the
  link stays a link (users keep dotfiles in a git repo and link them).
* :func:`locked_dir`: an advisory ``flock`` on the target's directory, so two
  ``envdoctor fix`` runs editing the same file cannot interleave their
  read-modify-write cycles. Locking the directory leaves no stray lock file.
* Every failure is a :class:`FixError` with a sentence a person can act on.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import tempfile
import time
from typing import Callable, Iterator, Mapping, Optional


class FixError(Exception):
    """A fix step cannot be carried out; the message says why and what was left as it was."""


def sha256(data: Optional[bytes]) -> Optional[str]:
    return None if data is None else hashlib.sha256(data).hexdigest()


def cache_dir(env: Optional[Mapping[str, str]] = None) -> str:
    """envdoctor's cache root: $XDG_CACHE_HOME/envdoctor or ~/.cache/envdoctor."""
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(base, "envdoctor")


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    return exc.strerror or str(exc)


def resolve_target(path: str) -> str:
    """The file to really write: symlinks followed; refuse a directory or a missing parent."""
    real = os.path.realpath(path)
    if os.path.isdir(real):
        raise FixError(f"{path} is a directory, not a file; nothing was changed. "
                       "Move it away or pass --rc with the file to edit.")
    parent = os.path.dirname(real) or "."
    if not os.path.isdir(parent):
        raise FixError(f"cannot write {path}: the directory {parent} does not exist; nothing was changed")
    return real


def read_optional(path: str) -> Optional[bytes]:
    """The file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise FixError(f"{path} is a directory, not a file; nothing was changed") from None
    except OSError as exc:
        raise FixError(f"cannot read {path}: {_describe(exc)}; nothing was changed") from None


def check_writable(path: str) -> None:
    """Refuse a file its owner marked read-only (checked on the mode bits: root passes os.access)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise FixError(f"{path} is read-only (mode {stat.filemode(st.st_mode)}); nothing was changed. "
                       f"Make it writable (chmod u+w {path}) if envdoctor should edit it.")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write(path: str, data: bytes, mode: Optional[int] = None) -> None:
    """Replace ``path`` (already resolved, see :func:`resolve_target`) with ``data`` atomically."""
    parent = os.path.dirname(path) or "."
    try:
        old = os.stat(path)
    except FileNotFoundError:
        old = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".envdoctor-tmp", dir=parent)
    except OSError as exc:
        raise FixError(f"cannot write {path}: {_describe(exc)}; nothing was changed") from None
    try:
        try:
            _write_all(fd, data)
            if old is not None:
                os.fchmod(fd, stat.S_IMODE(old.st_mode))
                with contextlib.suppress(PermissionError):
                    os.fchown(fd, old.st_uid, old.st_gid)
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(fd, (0o644 if mode is None else mode) & ~umask)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise FixError(f"cannot write {path}: {_describe(exc)}; the file was left as it was") from None
    _fsync_dir(parent)


def _fsync_dir(path: str) -> None:
    # The rename is durable only once the directory entry is on disk.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def locked_dir(path: str, timeout: float = 30.0) -> Iterator[None]:
    """Hold an exclusive advisory lock on directory ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise FixError(f"cannot lock {path}: {_describe(exc)}; nothing was changed") from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise FixError(f"another envdoctor run holds the lock on {path} for over "
                                   f"{timeout:g}s; nothing was changed") from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def edit_file(path: str, transform: Callable[[Optional[bytes]], Optional[bytes]],
              backup_dir: Optional[str] = None, expect_sha: Optional[str] = "any") -> dict:
    """Read-modify-write ``path`` under the lock. ``transform(old) -> new`` (None = delete).

    ``expect_sha`` guards against a file that changed after the user saw the
    diff: pass the sha256 of the content the plan was made from (None for "absent").
    Returns a record: path, real_path, existed, changed, backup, old_sha, new_sha.
    """
    real = resolve_target(path)
    with locked_dir(os.path.dirname(real) or "."):
        old = read_optional(real)
        if expect_sha != "any" and sha256(old) != expect_sha:
            raise FixError(f"{path} changed after the plan was made; nothing was changed. Re-run to see the new diff.")
        new = transform(old)
        record = {"path": path, "real_path": real, "existed": old is not None, "changed": new != old,
                  "backup": None, "old_sha": sha256(old), "new_sha": sha256(new)}
        if new == old:
            return record
        check_writable(real)
        if old is not None and backup_dir is not None:
            record["backup"] = write_backup(real, old, backup_dir)
        if new is None:
            try:
                os.unlink(real)
            except OSError as exc:
                raise FixError(f"cannot remove {path}: {_describe(exc)}") from None
        else:
            atomic_write(real, new)
        return record


def write_backup(real: str, data: bytes, backup_dir: str) -> str:
    """Keep a copy of ``data`` (mode 0600: rc files can hold secrets) and return its path."""
    try:
        os.makedirs(backup_dir, exist_ok=True)
    except OSError as exc:
        raise FixError(f"cannot create the backup directory {backup_dir}: {_describe(exc)}; "
                       "nothing was changed") from None
    name = os.path.basename(real).lstrip(".") or "file"
    target = os.path.join(backup_dir, f"{name}.{sha256(real.encode())[:8]}.bak")
    atomic_write(target, data, mode=0o600)
    return target
