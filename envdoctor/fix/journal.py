"""What each ``envdoctor fix`` run changed, so ``--undo`` can put it back.

One directory per run that changed something::

    ~/.cache/envdoctor/runs/<run id>/manifest.json   what was done, in order
    ~/.cache/envdoctor/runs/<run id>/backups/        copies of edited files
    ~/.cache/envdoctor/runs/<run id>/quarantine/     moved stale build outputs
    ~/.cache/envdoctor/runs/<run id>/UNDONE          present once undone

The manifest is rewritten atomically after every entry, so a run that fails
half-way still knows what it had done.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, List, Mapping, Optional

from envdoctor.fix.fsops import FixError, atomic_write, cache_dir


def runs_dir(env: Optional[Mapping[str, str]] = None) -> str:
    return os.path.join(cache_dir(env), "runs")


class Journal:
    """The record of one run; the directory is created on the first entry."""

    def __init__(self, env: Optional[Mapping[str, str]] = None, run_id: Optional[str] = None):
        now = time.time_ns()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now // 10**9))
        # The nanoseconds keep ids of runs within one second in order; the pid keeps them unique.
        self.run_id = run_id or f"{stamp}.{now % 10**9:09d}-{os.getpid()}"
        self.path = os.path.join(runs_dir(env), self.run_id)
        self.entries: List[Dict[str, Any]] = []

    @property
    def backup_dir(self) -> str:
        return os.path.join(self.path, "backups")

    @property
    def quarantine_dir(self) -> str:
        return os.path.join(self.path, "quarantine")

    def record(self, entry: Dict[str, Any]) -> None:
        self.entries.append(dict(entry, time=time.time()))
        try:
            os.makedirs(self.path, exist_ok=True)
        except OSError as exc:
            raise FixError(f"cannot create {self.path}: {exc.strerror or exc}") from None
        data = {"run": self.run_id, "entries": self.entries}
        atomic_write(os.path.join(self.path, "manifest.json"),
                     (json.dumps(data, indent=2) + "\n").encode("utf-8"), mode=0o600)


def load_runs(env: Optional[Mapping[str, str]] = None) -> List[Dict[str, Any]]:
    """All recorded runs, oldest first, each with ``path`` and ``undone``."""
    root = runs_dir(env)
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    runs = []
    for name in names:
        manifest = os.path.join(root, name, "manifest.json")
        try:
            with open(manifest, "r", encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            continue  # not a run directory, or one that never recorded an entry
        data["path"] = os.path.join(root, name)
        data["undone"] = os.path.exists(os.path.join(root, name, "UNDONE"))
        runs.append(data)
    return runs


def mark_undone(run: Mapping[str, Any]) -> None:
    atomic_write(os.path.join(run["path"], "UNDONE"), time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()).encode())
