"""Explain a build or runtime log: which known problem it shows, the key line, and the fix.

* :func:`explain` -> a list of :class:`Explanation`, most likely first (alternatives
  of an ambiguous message follow the reading they compete with);
* :func:`first_error` -> the first real error line of a log (warnings, their
  source lines, notes, CMake probes and INFO lines skipped), used after a
  failed build to show the one line that matters;
* :func:`analyse` -> both, plus what only consequences say, what the log tells
  about its machine, and what was skipped of a huge input.

Modules: :mod:`.reading` (bytes -> clean lines), :mod:`.roles` (a role per
line), :mod:`.catalog` (the signatures, as data), :mod:`.logfacts` (facts the
log states), :mod:`.fixtext` (fixes from those facts), :mod:`.analysis`
(events -> ranked diagnoses), :mod:`.talk` (users' own words), :mod:`.here`
(this machine's facts).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from envdoctor.explain.analysis import Analysis, Explanation, analyse
from envdoctor.explain.reading import Log, from_bytes, from_text, read_stream


def explain(text: str, machine: Optional[Dict[str, Any]] = None) -> List[Explanation]:
    """Every known problem the log shows, most likely first. Empty when nothing is recognised."""
    return analyse(from_text(text or ""), machine).explanations


def first_error(text: str, context: int = 3) -> Optional[Tuple[int, str, List[str]]]:
    """``(line_no, line, context_lines)`` of the first real error; None when the log shows none."""
    log = from_text(text or "")
    found = analyse(log).first_error
    if found is None or context == 3:
        return found
    index = found[0] - 1
    start, end = max(0, index - context), min(len(log.lines), index + context + 1)
    return found[0], found[1], log.lines[start:end]


__all__ = ["Analysis", "Explanation", "Log", "analyse", "explain", "first_error", "from_bytes", "from_text",
           "read_stream"]
