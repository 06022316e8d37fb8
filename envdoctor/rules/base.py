"""Rules as data: a plain function plus its metadata (code, area, title, needed facts).

A rule reads facts and returns findings; it never prints and never touches the
system. The docstring of a rule's function is its user documentation (it becomes
``docs/codes/<CODE>.md``). Codes are stable and never reused.

Writing a rule::

    @rule("ED101", area="driver", title="Driver runs torch's CUDA build",
          needs=("driver.version", "torch"))
    def driver_too_old_for_torch(ctx):
        \"\"\"<user documentation: what, why it matters, how to fix>\"\"\"
        torch = ctx.value("torch")
        ...
        return ctx.finding(Severity.ERROR, "driver 470.82 supports CUDA <= 11.4; torch 2.3.0 was built for CUDA 12.1",
                           evidence=("driver.version", "torch.cuda"), fixes=[Fix(...)])

Return None (or an empty list) when the check passes, one Finding, or a list of
Findings (e.g. one per stale build). Return ``ctx.not_applicable("why")`` when the
check has nothing to look at on this machine (no GPU, no build dirs): the report
then shows it as skipped instead of a misleading ✓.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union

from envdoctor.model import FactSet, Finding, Fix, Severity



class NotApplicable:
    """Returned by a rule that has nothing to check here; the engine marks it skipped."""

    def __init__(self, reason: str):
        self.reason = reason


RuleResult = Union[None, Finding, Iterable[Finding], NotApplicable]


@dataclass(frozen=True)
class Rule:
    code: str
    area: str
    title: str
    needs: Tuple[str, ...]
    fn: Callable[["RuleContext"], RuleResult]
    doc: str = ""
    blocks_build: bool = False  # its findings stop an extension build (build preflight)
    fixable: bool = False  # envdoctor fix can apply at least one of its fixes
    reads: Tuple[str, ...] = ()  # further facts it reads when present (needs + reads = every input)

    @property
    def inputs(self) -> Tuple[str, ...]:
        return tuple(dict.fromkeys(self.needs + self.reads))

    @property
    def docs_path(self) -> str:
        return f"docs/codes/{self.code}.md"

    def missing(self, facts: FactSet) -> List[str]:
        """Needed fact keys that are absent or not available."""
        return [key for key in self.needs if not facts.has(key)]


@dataclass
class RuleContext:
    """What a rule function receives: the facts, and a way to make its findings."""

    facts: FactSet
    rule: Rule

    def value(self, key: str, default: Any = None) -> Any:
        return self.facts.value(key, default)

    def has(self, key: str) -> bool:
        return self.facts.has(key)

    def not_applicable(self, reason: str) -> NotApplicable:
        return NotApplicable(reason)

    def finding(
        self,
        severity: Severity,
        message: str,
        evidence: Sequence[str] = (),
        fixes: Sequence[Fix] = (),
        title: Optional[str] = None,
    ) -> Finding:
        return Finding(
            code=self.rule.code,
            severity=severity,
            area=self.rule.area,
            title=title or self.rule.title,
            message=message,
            evidence=tuple(evidence),
            fixes=tuple(fixes),
            docs=self.rule.docs_path,
        )


_REGISTRY: List[Rule] = []


def rule(code: str, area: str, title: str, needs: Sequence[str] = (), blocks_build: bool = False,
         fixable: bool = False, reads: Sequence[str] = ()):
    """Register a rule function. ``title`` names what is checked ("Driver runs torch's CUDA build")."""

    def decorate(fn):
        if any(r.code == code for r in _REGISTRY):
            raise ValueError(f"rule code {code} registered twice")
        registered = Rule(code=code, area=area, title=title, needs=tuple(needs), fn=fn,
                          doc=inspect.getdoc(fn) or "", blocks_build=blocks_build, fixable=fixable,
                          reads=tuple(reads))
        _REGISTRY.append(registered)
        fn.rule = registered
        return fn

    return decorate


def registered_rules() -> List[Rule]:
    return sorted(_REGISTRY, key=lambda r: r.code)


def normalise(result: RuleResult) -> List[Finding]:
    if result is None:
        return []
    if isinstance(result, Finding):
        return [result]
    return [f for f in result if f is not None]
