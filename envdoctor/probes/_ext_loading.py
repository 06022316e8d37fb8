"""Load compiled extensions in a subprocess of the diagnosed Python, and say why one does not load.

Used by the builds probe. One subprocess tests every file (importing torch once);
when loading one file kills the process, that file is reported as the crash and
the rest are tested again in a new process.
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


def import_check(ctx: ProbeContext, paths: List[str]) -> Dict[str, Tuple[Optional[bool], Optional[str]]]:
    """Load each extension in a subprocess of ``ctx.python``; a crash costs only the file that crashed."""
    results: Dict[str, Tuple[Optional[bool], Optional[str]]] = {}
    pending = list(paths)
    while pending:
        env = dict(ctx.env)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        res = ctx.runner.run([ctx.python, IMPORT_SCRIPT] + pending, env=env,
                             timeout=max(IMPORT_TIMEOUT, ctx.timeout) + 5 * len(pending))
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
            elif item.get("path") in pending:
                results[item["path"]] = (item.get("ok"), explain_import_error(item.get("error")))
                started = None
        pending = [p for p in pending if p not in results]
        if not pending:
            break
        culprit = started if started in pending else pending[0]
        results[culprit] = (False, _death_message(res, culprit))
        pending = [p for p in pending if p != culprit]
    return results


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
