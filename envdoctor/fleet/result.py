"""Rank 0's verdict from what it gathered: the table, the findings, the sweep, as one
JSON-able dict (``kind: envdoctor-fleet``, ``schema_version``). Pure, so a simulated
fleet of any size goes through exactly this code (see benchmarks/bench_fleet.py)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional

from envdoctor import __version__
from envdoctor.fleet import bandwidth
from envdoctor.fleet.codes import code
from envdoctor.fleet.compare import clock_skew, compare_groups, duplicate_hostnames, group_ranks
from envdoctor.model import Finding, Severity

SCHEMA_VERSION = 1


@dataclass
class FleetState:
    """Everything rank 0 knows, filled in as the phases complete (the watchdog renders
    whatever is there)."""

    world_size: int
    launcher: str = "env"
    timeout: float = 0.0
    prolog: bool = False
    phase: str = "start"
    records: List[Dict[str, Any]] = field(default_factory=list)  # small records of the ranks gathered
    values: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # digest -> comparable values
    absent: Dict[int, Dict[str, Any]] = field(default_factory=dict)  # rank -> {"node", "step"} never ready
    stalled: Dict[int, Dict[str, Any]] = field(default_factory=dict)  # rank -> {"node", "step", "beating"}
    backend: Optional[str] = None
    sweep_times: Dict[int, List[float]] = field(default_factory=dict)  # size -> per-rank seconds
    sweep_ranks: int = 0
    pairs: List[Dict[str, Any]] = field(default_factory=list)  # {"a", "b", "gbps"} in global ranks
    pair_size: Optional[int] = None
    barrier_s: Optional[float] = None
    errors: List[str] = field(default_factory=list)  # collective failures (quoted in ED915)
    internal: List[str] = field(default_factory=list)  # envdoctor's own failures (exit 3)
    seconds: float = 0.0
    phase_seconds: Dict[str, float] = field(default_factory=dict)  # how long each finished phase took here
    _entered: float = field(default=0.0, repr=False)

    def enter(self, phase: str) -> None:
        now = time.monotonic()
        if self._entered:
            self.phase_seconds[self.phase.split(" ")[0]] = round(now - self._entered, 4)
        self.phase, self._entered = phase, now


def _absent_findings(state: FleetState) -> List[Finding]:
    out = []
    never = {r: a for r, a in state.absent.items() if a.get("step") is None}
    if never:
        out.append(code("ED901").finding(
            f"{len(never)} of {state.world_size} ranks never joined within the rendezvous window: "
            + ", ".join(f"rank {r}" for r in sorted(never)[:32]) + (" ..." if len(never) > 32 else "") + ".",
            evidence=tuple(f"rank {r}: no check-in" for r in sorted(never)[:32])))
    late = {r: a for r, a in state.absent.items() if a.get("step") is not None}
    for r, a in sorted(late.items())[:32]:
        out.append(code("ED902").finding(
            f"rank {r} ({a.get('node') or 'node unknown'}) joined but did not finish its checks within the "
            f"rendezvous window (last step: {a['step']}); it was left out of the fleet test.",
            evidence=(f"rank {r}: step = {a['step']}",)))
    for r, s in sorted(state.stalled.items())[:32]:
        how = ("its process is alive but stuck" if s.get("beating")
               else "its heartbeat stopped: the process died or is frozen")
        out.append(code("ED902").finding(
            f"rank {r} ({s.get('node') or 'node unknown'}) stopped answering during '{state.phase}' "
            f"(its last step: {s.get('step') or 'none'}); {how}.",
            evidence=(f"rank {r}: step = {s.get('step')}", f"rank {r}: heartbeat moving = {s.get('beating')}")))
    return out


def build_result(state: FleetState) -> Dict[str, Any]:
    groups = group_ranks(state.records, state.values)
    rows, findings = compare_groups(groups) if groups else ([], [])
    findings += duplicate_hostnames(state.records)
    skew, offsets, clock_findings = clock_skew(state.records)
    findings += clock_findings
    findings = _absent_findings(state) + findings
    node_of = {r["rank"]: r["node"] for r in state.records}
    sweep_rows = bandwidth.sweep_rows(state.sweep_times, state.sweep_ranks) if state.sweep_times else []
    expected = None
    if sweep_rows and state.backend:
        first = groups[0].values if groups else {}
        expected = bandwidth.expected_busbw(first.get("gpu_model") or [], first.get("gpu_count") or 0,
                                            len({r["node"] for r in state.records}), state.sweep_ranks,
                                            state.backend)
        findings += bandwidth.bandwidth_findings(sweep_rows, expected)
    pairs, pair_findings = bandwidth.analyse_pairs(state.pairs, node_of, state.backend or "nccl")
    findings += pair_findings
    if state.errors and not state.stalled:
        findings.append(code("ED915").finding(
            f"a collective failed during '{state.phase}': {state.errors[0]}", evidence=tuple(state.errors[:4])))
    findings.sort(key=lambda f: (-f.severity.rank, f.code))
    worst = max((f.severity for f in findings), key=lambda s: s.rank, default=Severity.OK)
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "envdoctor-fleet",
        "meta": {"envdoctor_version": __version__,
                 "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "launcher": state.launcher, "world_size": state.world_size, "ranks_gathered": len(state.records),
                 "nodes": len({r["node"] for r in state.records}), "timeout_s": state.timeout,
                 "prolog": state.prolog, "seconds": round(state.seconds, 3), "phase_reached": state.phase,
                 "phase_seconds": dict(state.phase_seconds)},
        "ranks": [{k: r.get(k) for k in ("rank", "local_rank", "node", "digest", "cuda_devices")}
                  for r in sorted(state.records, key=lambda r: r["rank"])],
        "missing": [{"rank": r, "node": a.get("node"), "step": a.get("step")} for r, a in sorted(state.absent.items())]
                   + [{"rank": r, "node": s.get("node"), "step": s.get("step"), "beating": s.get("beating")}
                      for r, s in sorted(state.stalled.items())],
        "table": rows,
        "clock": {"skew_s": None if skew is None else round(skew, 4),
                  "offsets_s": {n: round(o, 4) for n, o in offsets.items()}},
        "sweep": {"backend": state.backend, "ranks": state.sweep_ranks, "rows": sweep_rows, "expected": expected},
        "pairwise": {"bytes": state.pair_size, "pairs": pairs},
        "barrier_latency_us": None if state.barrier_s is None else round(state.barrier_s * 1e6, 1),
        "errors": list(state.errors),
        "internal_errors": list(state.internal),
        "findings": [f.to_dict() for f in findings],
        "summary": {"worst": worst.value,
                    "counts": {s.value: sum(1 for f in findings if f.severity == s)
                               for s in Severity if s != Severity.OK}},
    }


def exit_status(result: Mapping[str, Any], fail_on: str) -> int:
    """1 for findings at or above ``fail_on`` (a missing rank always counts), 3 when
    envdoctor itself failed, else 0."""
    from envdoctor import exitcodes

    findings = [Finding.from_dict(f) for f in result.get("findings", [])]
    if any(f.code in ("ED901", "ED902") for f in findings):
        return exitcodes.FINDINGS
    if fail_on != "never" and any(f.severity.at_least(Severity(fail_on)) for f in findings):
        return exitcodes.FINDINGS
    if result.get("internal_errors"):
        return exitcodes.INTERNAL
    return exitcodes.OK
