"""Signatures as data: what a known problem looks like in a log, in several phrasings.

A :class:`Signature` names one known problem (its category), the phrasings
that show it, how sure a phrasing alone makes us (``confidence``), whether it
is a root cause, a symptom other causes produce, or the user's own words
(``strength``), the other categories the same words can mean
(``alternatives``), and the categories it explains when both appear
(``explains``: a cause ranks before its consequences). Each signature carries
must-fire and must-not-fire examples; the tests run them all.

A :class:`Phrasing` is found from a cheap lower-case literal (``anchor``) and
then a regular expression on a bounded window around it, so a 5 MB line costs
little more than a short one.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

CAUSE, SYMPTOM, TALK = "cause", "symptom", "talk"

Text = Union[str, Callable[["Context"], str]]


@dataclass(frozen=True)
class Phrasing:
    anchor: str  # lower-case literal that every match contains
    regex: "re.Pattern[str]"

    def __post_init__(self) -> None:
        if self.anchor != self.anchor.lower():
            raise ValueError(f"anchor must be lower case: {self.anchor!r}")


def phrase(anchor: str, pattern: str, flags: int = re.I) -> Phrasing:
    return Phrasing(anchor, re.compile(pattern, flags))


@dataclass(frozen=True)
class Alternative:
    category: str
    confidence: float  # before context; context and machine facts move it
    diagnosis: Text
    fix: Text


@dataclass(frozen=True)
class Signature:
    id: str
    category: str
    phrasings: Tuple[Phrasing, ...]
    diagnosis: Text
    fix: Text
    confidence: float = 0.9
    strength: str = CAUSE
    alternatives: Tuple[Alternative, ...] = ()
    explains: Tuple[str, ...] = ()  # categories this one causes
    any_role: bool = False  # counts even on a warning line (torch's "sm_86 is not compatible" is a UserWarning)
    must_fire: Tuple[str, ...] = ()
    must_not_fire: Tuple[str, ...] = ()


@dataclass
class Context:
    """What a diagnosis or fix text may use: the match's groups, the log's facts, this machine's facts."""

    groups: Tuple[Optional[str], ...]
    line: str
    facts: Any  # LogFacts
    machine: Dict[str, Any] = field(default_factory=dict)

    def group(self, index: int, default: str = "") -> str:
        value = self.groups[index] if index < len(self.groups) else None
        return value if value else default


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def render(text: Text, ctx: Context) -> str:
    if callable(text):
        return text(ctx)
    values = _Blank({f"g{i}": v or "" for i, v in enumerate(ctx.groups)})
    values.update({k: v for k, v in vars(ctx.facts).items() if isinstance(v, str)})
    return string.Formatter().vformat(text, (), values)


def first_group(ctx: Context, *indexes: int, default: str = "") -> str:
    for index in indexes:
        if ctx.group(index):
            return ctx.group(index)
    return default


def all_phrasings(signatures: Sequence[Signature]) -> Dict[str, Tuple[Signature, Phrasing]]:
    return {f"{s.id}/{i}": (s, p) for s in signatures for i, p in enumerate(s.phrasings)}
