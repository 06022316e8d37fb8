"""Core data types of envdoctor: pure data, no I/O.

The data flows one way::

    probes -> Fact -> rules -> Finding -> Report -> renderers / fixer

Every value a probe observes becomes a :class:`Fact`. A value that could not be
observed is ``None`` with ``error`` saying why ("not available" is one explicit
state, never an exception). Fact values are plain JSON types (str, int, float,
bool, None, list, dict) so that a report saved as JSON can be loaded on another
machine and re-diagnosed with the same rules.
"""
from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

SCHEMA_VERSION = 1


class Severity(str, enum.Enum):
    """How bad a finding is. Ordered: OK < INFO < WARNING < ERROR."""

    OK = "ok"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    def at_least(self, other: "Severity") -> bool:
        return self.rank >= other.rank


_SEVERITY_RANK = {Severity.OK: 0, Severity.INFO: 1, Severity.WARNING: 2, Severity.ERROR: 3}


@dataclass(frozen=True)
class Fact:
    """One observed value and where it came from.

    key:    dotted name, see ``envdoctor/FACTS.md`` for the catalogue.
    value:  a JSON-able value, or None when not available.
    source: what produced it ("nvidia-smi --query-gpu", "env CUDA_HOME", ...).
    raw:    the raw text it was parsed from, if any (kept for reports).
    error:  why the value is not available (None when it is).
    """

    key: str
    value: Any
    source: str = ""
    raw: Optional[str] = None
    error: Optional[str] = None

    @property
    def available(self) -> bool:
        return self.error is None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Fact":
        return cls(
            key=data["key"],
            value=data.get("value"),
            source=data.get("source", ""),
            raw=data.get("raw"),
            error=data.get("error"),
        )

    @classmethod
    def unavailable(cls, key: str, error: str, source: str = "", raw: Optional[str] = None) -> "Fact":
        return cls(key=key, value=None, source=source, raw=raw, error=error)


class FactSet:
    """An immutable-ish mapping ``key -> Fact`` with convenient accessors."""

    def __init__(self, facts: Iterable[Fact] = ()):
        self._facts: Dict[str, Fact] = {}
        for fact in facts:
            self._facts[fact.key] = fact

    def add(self, fact: Fact) -> None:
        self._facts[fact.key] = fact

    def get(self, key: str) -> Optional[Fact]:
        return self._facts.get(key)

    def has(self, key: str) -> bool:
        """True when the fact was observed and is available."""
        fact = self._facts.get(key)
        return fact is not None and fact.available

    def value(self, key: str, default: Any = None) -> Any:
        fact = self._facts.get(key)
        if fact is None or not fact.available:
            return default
        return fact.value

    def keys(self) -> List[str]:
        return sorted(self._facts)

    def __iter__(self):
        return iter(self._facts[k] for k in sorted(self._facts))

    def __len__(self) -> int:
        return len(self._facts)

    def __contains__(self, key: str) -> bool:
        return key in self._facts

    def to_list(self) -> List[Dict[str, Any]]:
        return [f.to_dict() for f in self]

    @classmethod
    def from_list(cls, items: Iterable[Dict[str, Any]]) -> "FactSet":
        return cls(Fact.from_dict(item) for item in items)


@dataclass(frozen=True)
class Fix:
    """How to repair a finding.

    summary:  one line for people.
    commands: exact lines a person can paste into a shell (no sudo unless unavoidable).
    action:   name of a fixer envdoctor can apply itself (``envdoctor fix``), or None.
    params:   arguments for that fixer (JSON-able).
    safe:     True when the action only touches files envdoctor can back up and undo.
    follow_up: True when this fix is done AFTER the one before it (quarantine, then
              rebuild), not instead of it. Fixes without it are alternatives.
    """

    summary: str
    commands: Tuple[str, ...] = ()
    action: Optional[str] = None
    params: Dict[str, Any] = field(default_factory=dict)
    safe: bool = True
    follow_up: bool = False

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["commands"] = list(self.commands)
        return d

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Fix":
        return cls(
            summary=data.get("summary", ""),
            commands=tuple(data.get("commands", ())),
            action=data.get("action"),
            params=dict(data.get("params") or {}),
            safe=bool(data.get("safe", True)),
            follow_up=bool(data.get("follow_up", False)),
        )


@dataclass(frozen=True)
class Finding:
    """What a rule concluded.

    code:     stable code, never reused (e.g. "ED101").
    severity: Severity.
    area:     group in the text report ("driver", "toolkit", "torch", "compiler", "env", "builds", ...).
    title:    short line.
    message:  what was observed and what was expected, with the values.
    evidence: fact keys (and short "key = value" strings) supporting it.
    fixes:    ways out, best first. Several when there are real alternatives.
    docs:     relative docs path of the code's page.
    """

    code: str
    severity: Severity
    area: str
    title: str
    message: str
    evidence: Tuple[str, ...] = ()
    fixes: Tuple[Fix, ...] = ()
    docs: str = ""

    def to_dict(self) -> Dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "area": self.area,
            "title": self.title,
            "message": self.message,
            "evidence": list(self.evidence),
            "fixes": [f.to_dict() for f in self.fixes],
            "docs": self.docs,
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Finding":
        return cls(
            code=data["code"],
            severity=Severity(data["severity"]),
            area=data.get("area", "other"),
            title=data.get("title", ""),
            message=data.get("message", ""),
            evidence=tuple(data.get("evidence", ())),
            fixes=tuple(Fix.from_dict(f) for f in data.get("fixes", ())),
            docs=data.get("docs", ""),
        )


@dataclass(frozen=True)
class CheckResult:
    """The outcome of running one rule: passed, skipped (missing facts), fired, or crashed."""

    rule: str  # the rule's code
    area: str
    title: str  # what the rule checks, for the ✓ line
    status: str  # "passed" | "fired" | "skipped" | "crashed"
    detail: str = ""  # why skipped / the exception text when crashed

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "CheckResult":
        return cls(**{k: data.get(k, "") for k in ("rule", "area", "title", "status", "detail")})


@dataclass
class Report:
    """Everything one run of ``envdoctor check`` knows. Rendering is separate."""

    facts: FactSet
    findings: List[Finding] = field(default_factory=list)
    results: List[CheckResult] = field(default_factory=list)
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def worst(self) -> Severity:
        worst = Severity.OK
        for finding in self.findings:
            if finding.severity.rank > worst.rank:
                worst = finding.severity
        return worst

    def to_dict(self) -> Dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "meta": dict(self.meta),
            "facts": self.facts.to_list(),
            "findings": [f.to_dict() for f in self.findings],
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Report":
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(
                f"unsupported report schema_version {version!r} (this envdoctor reads {SCHEMA_VERSION})"
            )
        return cls(
            facts=FactSet.from_list(data.get("facts", [])),
            findings=[Finding.from_dict(f) for f in data.get("findings", [])],
            results=[CheckResult.from_dict(r) for r in data.get("results", [])],
            meta=dict(data.get("meta", {})),
        )
