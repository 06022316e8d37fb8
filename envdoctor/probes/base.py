"""What every probe receives: a context holding the runner, the environment and the
filesystem root. Probes read the system only through it, so tests can point them
at recorded outputs, a fake PATH and a temporary directory tree.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from envdoctor.model import Fact
from envdoctor.runner import Runner


@dataclass
class ProbeContext:
    """Inputs shared by all probes.

    env:     the environment to diagnose (defaults to os.environ). Probes read
             variables from here, never from os.environ directly.
    runner:  runs external commands (argv lists, timeouts, LC_ALL=C).
    root:    filesystem prefix for well-known locations ("/" in real runs; a
             temporary directory in tests), joined with ``path()``.
    paths:   directories to scan for build dirs and compiled extensions.
    python:  the interpreter whose torch is diagnosed (subprocess probes).
    quick:   don't import torch; read torch facts from its installed files.
    timeout: default timeout for external commands, in seconds.
    """

    env: Dict[str, str] = field(default_factory=lambda: dict(os.environ))
    runner: Runner = None  # type: ignore[assignment]
    root: str = "/"
    paths: Sequence[str] = (".",)
    python: str = sys.executable
    quick: bool = False
    timeout: float = 10.0
    scan_depth: int = 4

    def __post_init__(self) -> None:
        if self.runner is None:
            self.runner = Runner(env=self.env, default_timeout=self.timeout)

    def path(self, *parts: str) -> str:
        """A well-known absolute path under ``root`` (``path('/usr/local/cuda')``)."""
        joined = os.path.join(*parts)
        if self.root in ("", "/"):
            return joined
        return os.path.join(self.root, joined.lstrip("/"))

    def which(self, name: str) -> Optional[str]:
        """First executable ``name`` on this context's PATH (not the process's)."""
        found = self.which_all(name)
        return found[0] if found else None

    def which_all(self, name: str) -> List[str]:
        result: List[str] = []
        for entry in self.env.get("PATH", "").split(os.pathsep):
            if not entry:
                continue
            candidate = os.path.join(entry, name)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK) and candidate not in result:
                result.append(candidate)
        return result


ProbeFn = Callable[[ProbeContext], List[Fact]]


@dataclass(frozen=True)
class Probe:
    name: str
    fn: ProbeFn
    keys: Sequence[str]  # fact keys it produces (docs/facts.md)
    slow: bool = False  # starts a Python subprocess importing torch: started first


def read_text(path: str, limit: int = 65536) -> Optional[str]:
    """A small text file (a /proc entry, version.json, a wrapper script), or None if unreadable."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(limit)
    except OSError:
        return None


def facts_from_mapping(values: Mapping[str, object], source: str) -> List[Fact]:
    """Convenience for probes that observe several plain values from one source."""
    return [Fact(key=k, value=v, source=source) for k, v in values.items()]
