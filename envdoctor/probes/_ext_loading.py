"""Load compiled extensions in a subprocess of the diagnosed Python, and say why one does not load.

Used by the builds probe. One subprocess tests every file (importing torch once);
when loading one file kills the process, the rest are tested again in a new
process, and that file is tested again alone (it may only clash with one loaded
before it) before it is reported as the crash.
"""
from __future__ import annotations

import json
import os
import re
import signal
from typing import Any, Dict, List, Optional, Tuple

from envdoctor.probes.base import ProbeContext

IMPORT_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext_import_script.py")
IMPORT_MARK = "@@envdoctor-import "
IMPORT_TIMEOUT = 60.0  # importing torch (2-8 s) plus loading the libraries


Outcome = Tuple[Optional[bool], Optional[str], Optional[str]]  # (imports, import_error, import_note)


def import_check(ctx: ProbeContext, paths: List[str],
                 names: Optional[Dict[str, List[str]]] = None) -> Dict[str, Outcome]:
    """Load each extension in a subprocess of ``ctx.python``; a crash costs only the file that crashed.

    A file that killed a process in which other files had already loaded is tested
    again alone: two libraries registering the same ``TORCH_LIBRARY`` namespace (a
    CPU and a CUDA build of one op) abort a process that loads both, yet each
    imports fine on its own, which is all a user's ``import`` does. It is reported
    as failing only when it fails alone too; the conflict is kept as a note.
    """
    results: Dict[str, Outcome] = {}
    pending = list(paths)
    while pending:
        res, outcomes, started = _run_batch(ctx, pending, names if names is not None else {})
        results.update(outcomes)
        loaded_before = [p for p in pending if p in outcomes]
        pending = [p for p in pending if p not in results]
        if not pending:
            break
        culprit = started if started in pending else pending[0]
        results[culprit] = _culprit_outcome(ctx, res, culprit, loaded_before if started == culprit else [])
        pending = [p for p in pending if p != culprit]
    return results


def _run_batch(ctx: ProbeContext, paths: List[str],
               names: Dict[str, List[str]]) -> Tuple[Any, Dict[str, Outcome], Optional[str]]:
    """One subprocess loading ``paths`` in order: (its result, outcomes reported, the file it was loading);
    ``names`` gets what each Python extension module defines."""
    env = dict(ctx.env)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    res = ctx.runner.run([ctx.python, IMPORT_SCRIPT] + paths, env=env,
                         timeout=max(IMPORT_TIMEOUT, ctx.timeout) + 5 * len(paths))
    outcomes: Dict[str, Outcome] = {}
    started = None
    for line in res.stdout.splitlines():
        if not line.startswith(IMPORT_MARK):
            continue
        try:
            item = json.loads(line[len(IMPORT_MARK):])
        except ValueError:
            continue
        if item.get("start"):
            started = item.get("path")
        elif item.get("path") in paths:
            outcomes[item["path"]] = (item.get("ok"), explain_import_error(item.get("error")), None)
            if isinstance(item.get("names"), list):
                names[item["path"]] = [str(n) for n in item["names"]]
            started = None
    return res, outcomes, started


def _culprit_outcome(ctx: ProbeContext, res: Any, culprit: str, loaded_before: List[str]) -> Outcome:
    death = _death_message(res, culprit)
    if not loaded_before or res.error:  # alone already, or it hung: a second try would hang again
        return False, death, None
    alone, outcomes, _started = _run_batch(ctx, [culprit], {})
    why = _conflict_line(res)
    note = (f"{death} after {', '.join(os.path.basename(p) for p in loaded_before)} had been loaded in the "
            f"same process{': ' + why if why else ''}")
    if culprit in outcomes:
        ok, error, _ = outcomes[culprit]
        return (True, None, note + "; alone it imports") if ok else (ok, error, note)
    return False, _death_message(alone, culprit), note


def _conflict_line(res: Any) -> Optional[str]:
    """The line of the dying process's stderr that says why (a TORCH_LIBRARY namespace clash)."""
    lines = [line.strip() for line in (res.stderr or "").splitlines() if line.strip()]
    for line in lines:
        if "TORCH_LIBRARY" in line or "namespace" in line:
            return line[:300]
    return None


def _death_message(res: Any, path: str) -> str:
    if res.error:
        return f"loading {os.path.basename(path)}: {res.error}"
    if res.returncode is not None and res.returncode < 0:
        try:
            name = signal.Signals(-res.returncode).name
        except ValueError:
            name = f"signal {-res.returncode}"
        return f"loading {os.path.basename(path)} killed the process ({name})"
    tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["no output"]
    return f"loading {os.path.basename(path)} failed: {tail[0][:300]}"


def explain_import_error(error: Optional[str]) -> Optional[str]:
    """Add what a mangled undefined symbol names: a libtorch one means it was built for another torch."""
    if not error:
        return error
    match = re.search(r"undefined symbol: (_Z\w+)", error)
    if not match:
        return error
    name = demangle_light(match.group(1))
    if name and re.match(r"(c10|at|torch|caffe2)::", name):
        return f"{error} ({name}: a libtorch symbol; built against a different torch)"
    return f"{error} ({name})" if name else error


def demangle_light(symbol: str) -> Optional[str]:
    """``_ZN3c106Device3strEv`` -> ``c10::Device::str``: the nested name only, enough to say whose it is."""
    match = re.match(r"_ZN?K?(\d.*)", symbol)
    if not match:
        return None
    rest, parts = match.group(1), []
    while rest and rest[0].isdigit():
        digits = re.match(r"\d+", rest).group(0)
        length = int(digits)
        parts.append(rest[len(digits):len(digits) + length])
        rest = rest[len(digits) + length:]
        if rest.startswith("I"):  # template arguments: stop, the prefix is what matters
            break
    return "::".join(p for p in parts if p) or None
