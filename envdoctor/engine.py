"""The engine: run probes (concurrently) into facts, run rules over facts into a report.

    cli -> engine -> probes (facts) -> rules (findings) -> report -> renderer / fixer

Nothing here prints. A probe or rule that raises becomes a "crashed" result and
the run goes on.
"""
from __future__ import annotations

import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Dict, Iterable, List, Mapping, Optional, Sequence

from envdoctor import __version__
from envdoctor.model import CheckResult, Fact, FactSet, Finding, Report, Severity
from envdoctor.probes import ProbeContext, load_probes
from envdoctor.probes.base import Probe
from envdoctor.rules import all_rules, load_failures
from envdoctor.rules.base import NotApplicable, Rule, RuleContext, normalise


def _run_probe(probe: Probe, ctx: ProbeContext) -> List[Fact]:
    started = time.monotonic()
    try:
        facts = list(probe.fn(ctx))
    except Exception as exc:  # a crashing probe is a result, not a crash
        facts = [Fact.unavailable(key, f"probe '{probe.name}' crashed: {type(exc).__name__}: {exc}",
                                  source=f"probe {probe.name}") for key in probe.keys]
    elapsed = time.monotonic() - started
    facts.append(Fact(key=f"probe.{probe.name}.seconds", value=round(elapsed, 3), source="envdoctor"))
    return facts


def collect_facts(ctx: ProbeContext, names: Optional[Sequence[str]] = None) -> FactSet:
    """Run the probes (all, or those producing ``names``) concurrently."""
    probes, failures = load_probes(names)
    facts = FactSet()
    for module_name, error in failures:
        facts.add(Fact.unavailable(f"probe.{module_name}", f"probe module failed to load: {error}",
                                   source="envdoctor"))
    if not probes:
        return facts
    # Probes mostly wait on subprocesses and the filesystem: threads are enough.
    with ThreadPoolExecutor(max_workers=max(4, len(probes))) as pool:
        for batch in pool.map(lambda p: _run_probe(p, ctx), probes):
            for fact in batch:
                facts.add(fact)
    return facts


def _selected(rules: Iterable[Rule], only: Sequence[str], skip: Sequence[str]) -> List[Rule]:
    def matches(code: str, patterns: Sequence[str]) -> bool:
        return any(code == p or (p.endswith("*") and code.startswith(p[:-1])) for p in patterns)

    chosen = [r for r in rules if not only or matches(r.code, only)]
    return [r for r in chosen if not matches(r.code, skip)]


def diagnose(facts: FactSet, only: Sequence[str] = (), skip: Sequence[str] = (),
             meta: Optional[Mapping[str, object]] = None, rules: Optional[Sequence[Rule]] = None) -> Report:
    """Run the rules over ``facts``. Works the same on live facts and on a loaded report."""
    report = Report(facts=facts, meta=dict(meta or {}))
    for fact in facts:
        # probe modules that could not be loaded (their facts are simply absent)
        if fact.key.startswith("probe.") and not fact.available and fact.key.count(".") == 1:
            report.results.append(CheckResult(rule=fact.key, area="envdoctor", title=f"probe {fact.key[6:]}",
                                              status="crashed", detail=fact.error or ""))
    for name, error in load_failures():
        report.results.append(CheckResult(rule=f"rules.{name}", area="envdoctor", title=f"rules module {name}",
                                          status="crashed", detail=error))
    for rule in _selected(rules if rules is not None else all_rules(), only, skip):
        missing = rule.missing(facts)
        if missing:
            report.results.append(CheckResult(rule.code, rule.area, rule.title, "skipped",
                                              "not available: " + ", ".join(missing)))
            continue
        try:
            outcome = rule.fn(RuleContext(facts=facts, rule=rule))
            if isinstance(outcome, NotApplicable):
                report.results.append(CheckResult(rule.code, rule.area, rule.title, "skipped",
                                                  "not applicable: " + outcome.reason))
                continue
            findings = normalise(outcome)
        except Exception as exc:
            report.results.append(CheckResult(rule.code, rule.area, rule.title, "crashed",
                                              f"{type(exc).__name__}: {exc}"))
            continue
        status = "fired" if any(f.severity != Severity.OK for f in findings) else "passed"
        report.results.append(CheckResult(rule.code, rule.area, rule.title, status))
        report.findings.extend(findings)
    report.findings.sort(key=lambda f: (-f.severity.rank, f.code))
    return report


def run_meta(ctx: Optional[ProbeContext] = None) -> Dict[str, object]:
    return {
        "envdoctor_version": __version__,
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "platform": platform.platform(terse=True),
        "quick": bool(ctx.quick) if ctx else False,
    }


def run_check(env: Optional[Mapping[str, str]] = None, paths: Sequence[str] = (".",), quick: bool = False,
              only: Sequence[str] = (), skip: Sequence[str] = (), runner=None, root: str = "/",
              timeout: float = 10.0, python: Optional[str] = None) -> Report:
    """Probe this machine and diagnose it. ``env`` replaces os.environ for the probes."""
    ctx = ProbeContext(env=dict(os.environ if env is None else env), runner=runner, root=root,
                       paths=tuple(paths), quick=quick, timeout=timeout)
    if python:
        ctx.python = python
    # Before the probes: platform.platform() forks `uname -p`, which would otherwise run
    # after the torch probe, on the check's critical path.
    meta = run_meta(ctx)
    started = time.monotonic()
    facts = collect_facts(ctx)
    meta["probe_seconds"] = round(time.monotonic() - started, 3)
    return diagnose(facts, only=only, skip=skip, meta=meta)


def probe_facts(names: Sequence[str], env: Optional[Mapping[str, str]] = None, runner=None,
                timeout: float = 10.0) -> FactSet:
    """Run only the probes that produce the given fact keys (e.g. ``["gpus", "driver"]``)."""
    ctx = ProbeContext(env=dict(os.environ if env is None else env), runner=runner, timeout=timeout, paths=())
    return collect_facts(ctx, names=names)


# Probes whose facts decide whether an extension build can work.
# A C++-only build needs only the C++ compiler the environment names.
CPU_BUILD_BLOCKERS = ("ED402",)
BUILD_PROBES = ("toolkits", "torch", "torch.status", "compiler", "environment", "driver", "gpus")


def build_facts(env: Optional[Mapping[str, str]] = None, runner=None, quick: bool = True) -> FactSet:
    """The facts ``envdoctor build`` and ``fix`` decide a build with: the same probes as
    ``check`` (torch read from its files in quick mode: the build imports torch itself)."""
    ctx = ProbeContext(env=dict(os.environ if env is None else env), runner=runner, paths=(), quick=quick)
    return collect_facts(ctx, names=BUILD_PROBES)


def build_blockers(facts: FactSet, cuda: bool = True, skip: Sequence[str] = ()) -> List[Finding]:
    """Error-level findings of the build-blocking rules: what would make an extension build fail.

    Used by ``envdoctor build`` and ``envdoctor fix`` to refuse with an explanation (the
    findings, by code, with their fixes) instead of a wall of compiler errors.
    """
    rules = [r for r in all_rules() if r.blocks_build and (cuda or r.code in CPU_BUILD_BLOCKERS)
             and r.code not in skip]
    report = diagnose(facts, rules=rules)
    return [f for f in report.findings if f.severity == Severity.ERROR]


def build_preflight(env: Optional[Mapping[str, str]] = None, cuda: bool = True, runner=None) -> List[Finding]:
    """``build_blockers`` for the machine ``env`` describes."""
    return build_blockers(build_facts(env, runner), cuda=cuda)
