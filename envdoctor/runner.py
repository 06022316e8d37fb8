"""Run external commands safely: argument lists only, ``LC_ALL=C``, always a timeout.

Every probe receives a runner (``Runner`` or ``FakeRunner``) instead of calling
``subprocess`` itself, so that probes can be tested on recorded real outputs.
A runner never raises for a failed, missing or hanging command: the result says
what happened.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class CommandResult:
    argv: Tuple[str, ...]
    returncode: Optional[int]  # None when the command did not run to completion
    stdout: str = ""
    stderr: str = ""
    error: Optional[str] = None  # "not found", "timed out after 10s", "permission denied", ...
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None and self.returncode == 0

    @property
    def output(self) -> str:
        """stdout and stderr together, as a person would have seen them."""
        if self.stdout and self.stderr:
            return self.stdout.rstrip("\n") + "\n" + self.stderr
        return self.stdout or self.stderr

    def describe_failure(self) -> str:
        """One line saying why the command did not succeed."""
        name = self.argv[0] if self.argv else "command"
        if self.error:
            return f"{name}: {self.error}"
        text = (self.stderr or self.stdout).strip().splitlines()
        tail = text[-1] if text else ""
        return f"{name} exited with status {self.returncode}" + (f": {tail}" if tail else "")


def base_env(extra: Optional[Mapping[str, str]] = None, env: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """The environment for child processes: the given (or current) one with C locale."""
    result = dict(os.environ if env is None else env)
    result["LC_ALL"] = "C"
    result["LANG"] = "C"
    if extra:
        result.update(extra)
    return result


class Runner:
    """Runs commands for real. ``env`` replaces the process environment when given."""

    def __init__(self, env: Optional[Mapping[str, str]] = None, default_timeout: float = DEFAULT_TIMEOUT):
        self.env = dict(env) if env is not None else None
        self.default_timeout = default_timeout

    def run(
        self,
        argv: Sequence[str],
        timeout: Optional[float] = None,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
        input: Optional[str] = None,
    ) -> CommandResult:
        argv = tuple(str(a) for a in argv)
        if not argv:
            return CommandResult(argv, None, error="empty command")
        limit = self.default_timeout if timeout is None else timeout
        child_env = base_env(extra=env, env=self.env)
        start = time.monotonic()
        try:
            # start_new_session: on timeout we kill the whole process group, so a
            # wrapper script's children cannot keep the pipes open and hang us.
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=child_env,
                cwd=cwd,
                start_new_session=True,
            )
        except FileNotFoundError:
            return CommandResult(argv, None, error="not found", duration=time.monotonic() - start)
        except PermissionError:
            return CommandResult(argv, None, error="permission denied", duration=time.monotonic() - start)
        except OSError as exc:
            return CommandResult(argv, None, error=f"could not start: {exc.strerror or exc}",
                                 duration=time.monotonic() - start)
        try:
            out, err = proc.communicate(input=input, timeout=limit)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            try:
                out, err = proc.communicate(timeout=2)
            except (subprocess.TimeoutExpired, ValueError, OSError):
                out, err = b"", b""
            return CommandResult(
                argv, None, decode_output(out), decode_output(err),
                error=f"timed out after {limit:g}s", duration=time.monotonic() - start,
            )
        return CommandResult(argv, proc.returncode, decode_output(out), decode_output(err),
                             duration=time.monotonic() - start)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError, OSError):
        try:
            proc.kill()
        except OSError:
            pass


def decode_output(data) -> str:
    """Command output as text; undecodable bytes become U+FFFD, never an exception."""
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


Responder = Callable[[Tuple[str, ...]], CommandResult]


@dataclass
class FakeRunner:
    """A runner for tests: maps command lines to recorded results.

    ``responses`` maps either a full argv tuple or just the program name (argv[0]
    or its basename) to a CommandResult, a (returncode, stdout) pair, a string
    (stdout, exit 0) or a callable taking the argv. Unknown commands are "not found".
    Every call is recorded in ``calls``.
    """

    responses: Dict[object, object] = field(default_factory=dict)
    calls: List[Tuple[str, ...]] = field(default_factory=list)

    def run(self, argv: Sequence[str], timeout: Optional[float] = None, env=None, cwd=None, input=None) -> CommandResult:
        argv = tuple(str(a) for a in argv)
        self.calls.append(argv)
        for key in (argv, argv[0] if argv else None, os.path.basename(argv[0]) if argv else None):
            if key is not None and key in self.responses:
                return _as_result(argv, self.responses[key])
        return CommandResult(argv, None, error="not found")


def _as_result(argv: Tuple[str, ...], response: object) -> CommandResult:
    if callable(response):
        response = response(argv)
    if isinstance(response, CommandResult):
        return CommandResult(argv, response.returncode, response.stdout, response.stderr, response.error,
                             response.duration)
    if isinstance(response, str):
        return CommandResult(argv, 0, response)
    if isinstance(response, tuple) and len(response) == 2:
        code, out = response
        return CommandResult(argv, code, out)
    if isinstance(response, tuple) and len(response) == 3:
        code, out, err = response
        return CommandResult(argv, code, out, err)
    raise TypeError(f"unsupported fake response {response!r}")
