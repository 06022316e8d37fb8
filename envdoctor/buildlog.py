"""Turn a 300-line failed build log into the first real error, a few lines of context,
and, when the error is a known environment problem, what it means and how to fix it.

The log knowledge itself lives in :mod:`envdoctor.explain` (the same engine as
``envdoctor explain``); this module only shapes it for a failed build.
"""
from __future__ import annotations

import re
from typing import Optional

from envdoctor import explain as log_explain


_WARNING = re.compile(r"\bwarning\b|Warning:", re.I)


def first_error(log: str, context: int = 5) -> Optional[str]:
    """The first real error line and up to ``context`` lines after it, or None."""
    found = log_explain.first_error(log, context=context)
    if found is None:
        return None
    line_no, line, around = found
    lines = log.replace("\r\n", "\n").split("\n")
    after = [ln.rstrip() for ln in lines[line_no:line_no + context] if ln.strip()]
    return "\n".join([line] + after)


def explanation(log: str) -> Optional[str]:
    """What the first error means and how to fix it, or None.

    A build log also carries noise from before the failure (torch's own
    "driver too old" UserWarning on a machine without a GPU): a known cause is
    taken from the first error's line or after it, never from a warning.
    """
    found = [e for e in log_explain.explain(log) if not _WARNING.search(e.line)]
    first = log_explain.first_error(log)
    if first is not None:
        found = [e for e in found if e.line_no >= first[0]]
    if not found:
        return None
    best = found[0]
    return f"{best.diagnosis} Fix: {best.fix}"


def summarize_failure(log: str, log_path: str) -> str:
    """What a person needs after a failed build, in a dozen lines at most."""
    parts = []
    error = first_error(log)
    parts.append("first error:\n" + _indent(error) if error else "the build failed without a recognisable "
                 "compiler error; last lines:\n" + _indent("\n".join(log.strip().splitlines()[-5:])))
    why = explanation(log)
    if why:
        parts.append("what it means: " + why)
    parts.append(f"full log: {log_path}")
    return "\n".join(parts)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
