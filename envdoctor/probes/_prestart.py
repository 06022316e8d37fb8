"""Start the probes' child processes before anything else, so a full check costs about one torch import.

A full ``envdoctor check`` waits for a child interpreter that imports torch
(seconds). Everything the parent does before starting that child (importing
click, the rules, the knowledge tables) would add to the wall time, so the
entry points call :func:`start_for` first, with only the standard library
loaded, and the torch probe later adopts the running child with :func:`take`
when it would have started exactly the same command (same interpreter, script
and environment). Otherwise the early child is killed and the probe runs its
own: the facts never depend on this shortcut.

The driver probe's child (NVML and libcuda through ctypes, ``_driver_libs``) is
started the same way right after the torch child, for ``--quick`` too, where it
is the slowest probe: its command depends on the library search, so
``_driver_libs.prestart`` builds it (after the torch child is already running)
and registers it here with :func:`start`.

The probe also reads the child here (:func:`read_until_done`), so that it need
not wait for the child to exit once everything has been reported.

Only ``subprocess`` and friends are imported here; keep it that way.
"""
from __future__ import annotations

import atexit
import os
import selectors
import signal
import subprocess
import sys
import threading
import time

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_torch_script.py")

# Options after which the torch child is not needed (or the command will not run).
_NO_TORCH = ("--quick", "--from", "-h", "--help")

# name ("torch", "driver") -> (argv tuple, env dict, Popen, monotonic start, extra) of an early child
_pending: dict = {}
_discard_registered = False


def _check_without(argv, options) -> bool:
    """True for ``envdoctor check [options]`` when none of ``options`` (nor ``--from=``) is among them."""
    args = list(argv or ())
    if not args or args[0] != "check":
        return False
    for arg in args[1:]:
        if arg == "--":
            break
        if arg in options or arg.startswith("--from="):
            return False
    return True


def wants_torch_child(argv) -> bool:
    """True for a plain full ``check`` (``envdoctor check [options]``) without --quick/--from/--help."""
    return _check_without(argv, _NO_TORCH)


def child_env(env) -> dict:
    """The environment the torch probe gives its child: what ``Runner.run`` builds from the
    probe's env (``LC_ALL``/``LANG`` default to C, the probe's own values win) plus
    ``PYTHONDONTWRITEBYTECODE`` (``check`` only reads)."""
    result = dict(env)
    result["LC_ALL"] = "C"
    result["LANG"] = "C"
    result.update(env)
    result["PYTHONDONTWRITEBYTECODE"] = "1"
    return result


def wants_driver_child(argv) -> bool:
    """True for ``envdoctor check [options]``, --quick included, without --from/--help."""
    return _check_without(argv, ("--from", "-h", "--help"))


def start_for(argv) -> bool:
    """Start the torch child now if ``argv`` is a full check, and the driver probe's child for any
    check of this machine; True if the torch child is running."""
    if os.environ.get("ENVDOCTOR_NO_PRESTART"):
        return False
    if wants_torch_child(argv) and "torch" not in _pending:
        start("torch", (sys.executable, SCRIPT), child_env(os.environ))
    if wants_driver_child(argv) and "driver" not in _pending:
        # Its command comes from the library search (envdoctor modules): the torch child goes first.
        try:
            from envdoctor.probes import _driver_libs

            _driver_libs.prestart()
        except Exception:  # the probe runs its child the ordinary way and says what went wrong
            pass
    return "torch" in _pending


def start(name, argv, env, extra=None) -> bool:
    """Start ``argv`` in ``env`` now as the early child ``name``; ``extra`` is handed back by
    :func:`take` with it (what was observed just before it started)."""
    global _discard_registered
    command = tuple(str(a) for a in argv)
    env = dict(env)
    started = time.monotonic()
    try:
        # Exactly what Runner.run does: no stdin, pipes, own process group (killed as a group).
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env, start_new_session=True)
    except OSError:
        return False  # the probe will start it the ordinary way and report what went wrong
    if not _discard_registered:
        atexit.register(discard)
        _discard_registered = True
    _pending[name] = (command, env, proc, started, extra)
    return True


def spawn(argv, env):
    """Start ``argv`` now as the torch probe's child: ``(Popen, monotonic start)``, or None if it
    cannot be started (the caller's runner then reports why, in its usual words)."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=dict(env), start_new_session=True)
    except (OSError, ValueError):
        return None
    return proc, started


def read_until_done(proc, started, timeout, done_line=None):
    """Read the child's stdout and stderr until stdout holds the complete ``done_line`` (its
    last report; None: no such line, read to the end), the child closes both, or ``timeout``
    seconds from ``started`` pass.

    Returns ``(stdout, stderr, returncode, error)``. When the child has reported, it is
    not waited for: tearing down an interpreter that imported torch takes 0.7-0.9 s
    (measured on the development machine) and changes no fact, so the child is killed
    and reaped in the background. A child that has not reported by the deadline is
    killed; ``error`` says "timed out after ...", like ``Runner.run``.
    """
    out, err = bytearray(), bytearray()
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ, out)
    selector.register(proc.stderr, selectors.EVENT_READ, err)
    deadline = started + timeout
    try:
        while selector.get_map() and not _has_line(out, done_line):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                more_out, more_err = kill(proc)
                return bytes(out) + (more_out or b""), bytes(err) + (more_err or b""), None, \
                    f"timed out after {timeout:g}s"
            _read_ready(selector, remaining)
        if _has_line(out, done_line):
            while selector.get_map() and _read_ready(selector, 0):
                pass  # what it wrote to stderr before reporting is already in the pipe
            _finish_in_background(proc)
            return bytes(out), bytes(err), None, None
    finally:
        selector.close()
    try:  # both pipes closed without a report: it exited (or is exiting): its status says how
        return bytes(out), bytes(err), proc.wait(timeout=max(0.1, deadline - time.monotonic())), None
    except subprocess.TimeoutExpired:
        kill(proc)
        return bytes(out), bytes(err), None, f"timed out after {timeout:g}s"


def _has_line(buffer, line):
    if line is None:
        return False
    index = buffer.find(line)
    return index >= 0 and buffer.find(b"\n", index) >= 0


def _read_ready(selector, wait):
    """Read once from every ready pipe; False when none was ready."""
    events = selector.select(wait)
    for key, _mask in events:
        chunk = os.read(key.fd, 65536)
        if chunk:
            key.data.extend(chunk)
        else:
            selector.unregister(key.fileobj)
    return bool(events)


def _finish_in_background(proc):
    """Kill the child that has reported everything and reap it, off the critical path."""
    def finish():
        kill(proc)
        for pipe in (proc.stdout, proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass
    threading.Thread(target=finish, name="envdoctor-torch-reaper", daemon=True).start()


def take(argv, env, name="torch"):
    """The early child ``name`` as ``(Popen, monotonic start)`` if it runs exactly ``argv`` in ``env``.

    A child that does not match is killed (it would only compete for the CPU)
    and None is returned: the caller runs its own.
    """
    taken = take_with_extra(argv, env, name)
    return taken[:2] if taken and taken[0] is not None else None


def take_with_extra(argv, env, name):
    """Like :func:`take`, as ``(Popen, monotonic start, extra)``; ``(None, None, extra)`` when the
    early child ran another command (it is killed), None when there was none."""
    entry = _pending.pop(name, None)
    if entry is None:
        return None
    command, child_environment, proc, started, extra = entry
    if tuple(str(a) for a in argv) == command and dict(env) == child_environment:
        return proc, started, extra
    kill(proc)
    return None, None, extra


def discard() -> None:
    """Kill the early children nobody adopted (a usage error, a check that ended early)."""
    while _pending:
        _name, entry = _pending.popitem()
        kill(entry[2])


def kill(proc):
    """Kill the child's process group; return whatever (stdout, stderr) it had written."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            try:
                proc.kill()
            except OSError:
                pass
    try:
        return proc.communicate(timeout=2)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        return b"", b""
