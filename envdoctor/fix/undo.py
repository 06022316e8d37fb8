"""``envdoctor fix --undo``: put back what the last fix run changed.

For each recorded change, newest first:

* an rc file still exactly as envdoctor wrote it gets its previous bytes back
  (or is removed again if envdoctor created it);
* an rc file edited by the user since keeps their edits: only the block is
  taken out (or the block that was there before is put back);
* a patched source still as envdoctor wrote it is restored from its backup;
  one edited since is left alone and the backup's path is printed;
* quarantined build outputs move back where they were.
"""
from __future__ import annotations

import base64
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

from envdoctor.fix import rcfile
from envdoctor.fix.fsops import FixError, edit_file, read_optional, sha256
from envdoctor.fix.journal import Journal, load_runs, mark_undone
from envdoctor.fix.quarantine import move as _move, restore, why_not_build_output

Outcome = Tuple[str, str]  # (status "done" | "failed" | "skipped", message)


def _read_backup(entry: Dict[str, Any]) -> bytes:
    data = read_optional(entry["backup"]) if entry.get("backup") else None
    if data is None:
        raise FixError(f"the backup of {entry['path']} ({entry.get('backup')}) is missing; "
                       "the file was left as it is")
    return data


def _undo_rc(entry: Dict[str, Any]) -> str:
    previous_b64 = entry.get("previous_block")
    previous = base64.b64decode(previous_b64) if previous_b64 else None
    outcome = {}

    def transform(current: Optional[bytes]) -> Optional[bytes]:
        if sha256(current) == entry["new_sha"]:
            outcome["how"] = "restored the previous content exactly"
            if not entry["existed"]:
                outcome["how"] = "removed the file envdoctor had created"
                return None
            return _read_backup(entry)
        if current is None:
            outcome["how"] = "the file no longer exists; nothing to undo"
            return None
        outcome["how"] = "the file was edited since; removed only envdoctor's block"
        return rcfile.restore_block(current, previous)

    edit_file(entry["real_path"], transform)
    return f"{entry['path']}: {outcome['how']}"


def _undo_edit(entry: Dict[str, Any]) -> str:
    def transform(current: Optional[bytes]) -> Optional[bytes]:
        if sha256(current) != entry["new_sha"]:
            raise FixError(f"{entry['path']} was edited after envdoctor patched it; left as it is. "
                           f"The original is at {entry['backup']}")
        if not entry.get("existed", True):
            return None  # envdoctor created it (an environment's .pth file): it goes again
        return _read_backup(entry)

    edit_file(entry["real_path"], transform)
    if not entry.get("existed", True):
        return f"{entry['path']}: removed (envdoctor had created it)"
    return f"{entry['path']}: restored from {entry['backup']}"


def _undo_quarantine(entry: Dict[str, Any]) -> str:
    src, note = entry["src"], ""
    if os.path.lexists(src) and why_not_build_output(src) is None and os.path.lexists(entry["dest"]):
        # A rebuild made a new build output there (build/, the module's .so): it steps aside into the
        # run's directory, so that the old one can come back. Nothing is deleted.
        aside = os.path.join(os.path.dirname(os.path.dirname(entry["dest"])), "rebuilt")
        os.makedirs(aside, exist_ok=True)
        target = os.path.join(aside, os.path.basename(entry["dest"]))
        _move(src, target)
        note = f" (the rebuilt one is at {target})"
    restore(src, entry["dest"])
    return f"{src}: moved back from the quarantine{note}"


def _undo_built(entry: Dict[str, Any]) -> str:
    """Libraries a rebuild wrote: moved into the run's directory (never deleted), so that the
    quarantined ones they replaced can move back."""
    aside = entry["aside_dir"]
    moved = []
    for index, path in enumerate(entry.get("paths") or []):
        if not os.path.lexists(path):
            continue
        os.makedirs(aside, exist_ok=True)
        _move(path, os.path.join(aside, f"{index:03d}-{os.path.basename(path)}"))
        moved.append(os.path.basename(path))
    return f"moved the rebuilt {', '.join(moved) or 'libraries (already gone)'} to {aside}"


UNDOERS = {"rc": _undo_rc, "edit": _undo_edit, "quarantine": _undo_quarantine, "built": _undo_built}


def undo_last_run(env: Optional[Mapping[str, str]] = None) -> Optional[List[Outcome]]:
    """Undo the newest run that is not undone yet; None when there is none."""
    runs = [run for run in load_runs(env) if not run["undone"]]
    if not runs:
        return None
    run = runs[-1]
    outcomes: List[Outcome] = []
    for entry in reversed(run.get("entries", [])):
        undoer = UNDOERS.get(entry.get("kind"))
        if undoer is None:
            outcomes.append(("skipped", f"unknown entry kind {entry.get('kind')!r}"))
            continue
        try:
            outcomes.append(("done", undoer(entry)))
        except FixError as exc:
            outcomes.append(("failed", str(exc)))
    mark_undone(run)
    return outcomes


def remove_block_from(path: str, env: Optional[Mapping[str, str]] = None) -> Outcome:
    """No run recorded (cache cleared?): take the block out of ``path``, keeping a backup."""
    if not os.path.lexists(path):
        return ("skipped", f"{path} does not exist; nothing to undo")
    journal = Journal(env)
    record = edit_file(path, lambda old: rcfile.remove_block(old or b""), journal.backup_dir)
    if not record["changed"]:
        return ("skipped", f"{path} holds no envdoctor block; nothing to undo")
    # Recorded like a fix run, so that another --undo puts the block back.
    journal.record(dict(record, kind="rc", previous_block=None))
    return ("done", f"{path}: removed envdoctor's block (backup: {record['backup']})")
