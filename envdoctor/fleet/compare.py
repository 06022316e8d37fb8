"""Phase 1 on paper: the facts that should be equal on every node, their majority value
and the odd nodes, as findings with stable codes. Pure: works on plain dicts, so a
simulated fleet of thousands of records is compared exactly like a real one.

A *rank record* is small and sent by every rank: ``rank``, ``local_rank``, ``node``,
``boot_id``, ``digest`` (a hash of its comparable values) and ``clock`` (wall time right
after a barrier). The comparable *values* themselves travel once per distinct digest.
"""
from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from envdoctor.fleet.codes import code
from envdoctor.model import Finding, Report, Severity

CLOCK_SKEW_LIMIT_S = 1.0


def _gpus(facts) -> List[Dict[str, Any]]:
    return facts.value("gpus") or []


def _sorted_unique(values) -> List[Any]:
    return sorted({v for v in values if v is not None}, key=str)


def _torch(facts, key: str):
    torch = facts.value("torch")
    return torch.get(key) if isinstance(torch, dict) else None


# field -> (label, finding code, extractor(facts, fleet facts, report))
FIELDS: "OrderedDict[str, Tuple[str, str, Callable[..., Any]]]" = OrderedDict([
    ("driver", ("NVIDIA driver", "ED903", lambda f, x, r: f.value("driver.version"))),
    ("cuda_driver", ("newest CUDA of the driver", "ED904", lambda f, x, r: f.value("driver.cuda_max"))),
    ("torch", ("torch", "ED904", lambda f, x, r: _torch(f, "version"))),
    ("torch_cuda", ("torch's CUDA", "ED904", lambda f, x, r: _torch(f, "cuda"))),
    ("nccl_torch", ("NCCL (torch.cuda.nccl.version)", "ED905", lambda f, x, r: x.get("nccl_torch"))),
    ("nccl_loaded", ("libnccl loaded", "ED905", lambda f, x, r: x.get("nccl_loaded") or [])),
    ("nccl_net_plugins", ("NCCL net plugin", "ED906", lambda f, x, r: x.get("nccl_net_plugins") or [])),
    ("nccl_env", ("NCCL_* variables", "ED907", lambda f, x, r: (x.get("network_env") or {}).get("NCCL", {}))),
    ("ucx_env", ("UCX_* variables", "ED907", lambda f, x, r: (x.get("network_env") or {}).get("UCX", {}))),
    ("fi_env", ("FI_* variables", "ED907", lambda f, x, r: (x.get("network_env") or {}).get("FI", {}))),
    ("gpu_model", ("GPU model", "ED908", lambda f, x, r: _sorted_unique(g.get("name") for g in _gpus(f)))),
    ("gpu_count", ("GPU count", "ED908", lambda f, x, r: len(_gpus(f)) if f.has("gpus") else None)),
    ("gpu_memory", ("GPU memory (MiB)", "ED908",
                    lambda f, x, r: _sorted_unique(g.get("memory_total_mib") for g in _gpus(f)))),
    ("compute_cap", ("compute capability", "ED908",
                     lambda f, x, r: _sorted_unique(g.get("compute_cap") for g in _gpus(f)))),
    ("infiniband", ("InfiniBand ports", "ED909", lambda f, x, r: [
        f"{p['device']}/{p['port']} {p.get('state')} {p.get('rate') or ''}".strip()
        for p in (x.get("infiniband") or [])])),
    ("check_errors", ("errors of `envdoctor check`", "ED914",
                      lambda f, x, r: sorted({fi.code for fi in r.findings if fi.severity == Severity.ERROR}))),
])


def node_values(report: Report, fleet: Mapping[str, Any]) -> Dict[str, Any]:
    """The comparable values of one rank, from its check report and its fleet facts."""
    values = {}
    for name, (_label, _code, extract) in FIELDS.items():
        try:
            values[name] = extract(report.facts, fleet, report)
        except Exception as exc:  # a malformed fact is a value to compare, not a crash
            values[name] = f"unreadable: {type(exc).__name__}"
    return values


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def digest(values: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(values).encode()).hexdigest()[:16]


def display(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in sorted(value.items())) or "(none set)"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "(none)"
    return str(value)


@dataclass
class Group:
    """Ranks that share a node name and the same comparable values."""

    label: str
    node: str
    ranks: List[int]
    digest: str
    values: Dict[str, Any] = field(default_factory=dict)


def group_ranks(records: Sequence[Mapping[str, Any]], values_by_digest: Mapping[str, Mapping[str, Any]]) -> List[Group]:
    by_key: "OrderedDict[Tuple[str, str], List[int]]" = OrderedDict()
    for rec in sorted(records, key=lambda r: r["rank"]):
        by_key.setdefault((rec["node"], rec["digest"]), []).append(rec["rank"])
    digests_per_node: Dict[str, int] = {}
    for node, _digest in by_key:
        digests_per_node[node] = digests_per_node.get(node, 0) + 1
    groups = []
    for (node, dig), ranks in by_key.items():
        label = node if digests_per_node[node] == 1 else f"{node} (ranks {_ranges(ranks)})"
        groups.append(Group(label=label, node=node, ranks=ranks, digest=dig,
                            values=dict(values_by_digest.get(dig, {}))))
    return groups


def _ranges(ranks: Sequence[int]) -> str:
    out, start, prev = [], None, None
    for r in sorted(ranks):
        if start is None:
            start = prev = r
        elif r == prev + 1:
            prev = r
        else:
            out.append(f"{start}-{prev}" if prev != start else str(start))
            start = prev = r
    if start is not None:
        out.append(f"{start}-{prev}" if prev != start else str(start))
    return ",".join(out)


def _names(labels: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(labels[:limit])
    return shown + (f" and {len(labels) - limit} more" if len(labels) > limit else "")


def compare_groups(groups: Sequence[Group]) -> Tuple[List[Dict[str, Any]], List[Finding]]:
    """One table row per field (majority value, its nodes, the odd nodes) and a finding
    per field that differs. The majority counts nodes, not ranks; on a tie, the value of
    the node of the lowest rank (rank 0) is the reference."""
    rows: List[Dict[str, Any]] = []
    findings: List[Finding] = []
    ordered = sorted(groups, key=lambda g: min(g.ranks))
    for name, (label, code_name, _extract) in FIELDS.items():
        buckets: "OrderedDict[str, List[Group]]" = OrderedDict()
        for g in ordered:
            buckets.setdefault(canonical(g.values.get(name)), []).append(g)
        majority_key = max(buckets, key=lambda k: len(buckets[k]))  # first (rank 0's) wins ties
        majority = buckets[majority_key]
        odd = [(g, g.values.get(name)) for k, gs in buckets.items() if k != majority_key for g in gs]
        value = majority[0].values.get(name)
        rows.append({"field": name, "label": label, "code": code_name, "majority": value,
                     "majority_display": display(value), "majority_nodes": [g.label for g in majority],
                     "odd": [{"node": g.label, "ranks": g.ranks, "value": v, "display": display(v)} for g, v in odd]})
        if odd:
            per_value: "OrderedDict[str, List[str]]" = OrderedDict()
            for g, v in odd:
                per_value.setdefault(display(v), []).append(g.label)
            odd_text = "; ".join(f"{_names(nodes)} {'has' if len(nodes) == 1 else 'have'} {shown}"
                                 for shown, nodes in per_value.items())
            findings.append(code(code_name).finding(
                f"{label}: {odd_text}; the majority ({len(majority)} of {len(ordered)} nodes: "
                f"{_names([g.label for g in majority])}) {'has' if len(majority) == 1 else 'have'} {display(value)}.",
                evidence=tuple(f"{g.label}: {name} = {display(v)}" for g, v in odd[:16])))
    findings += _ports_down(ordered)
    return rows, findings


def _ports_down(groups: Sequence[Group]) -> List[Finding]:
    down = []
    for g in groups:
        for port in g.values.get("infiniband") or []:
            state = port.split(" ")[1] if " " in port else ""
            if state and state != "ACTIVE":
                down.append(f"{g.label}: {port}")
    if not down:
        return []
    return [code("ED909").finding("InfiniBand ports not ACTIVE: " + "; ".join(down[:16]) + ".",
                                  evidence=tuple(down[:16]))]


def duplicate_hostnames(records: Sequence[Mapping[str, Any]]) -> List[Finding]:
    boots: "OrderedDict[str, List[str]]" = OrderedDict()
    for rec in sorted(records, key=lambda r: r["rank"]):
        if rec.get("boot_id") and rec["boot_id"] not in boots.setdefault(rec["node"], []):
            boots[rec["node"]].append(rec["boot_id"])
    dups = [(node, ids) for node, ids in boots.items() if len(ids) > 1]
    return [code("ED910").finding(
        f"node name {node} is used by {len(ids)} different machines (boot ids "
        f"{', '.join(i[:8] for i in ids)}).", evidence=(f"{node}: boot ids {', '.join(ids)}",))
        for node, ids in dups]


def clock_skew(records: Sequence[Mapping[str, Any]], limit: float = CLOCK_SKEW_LIMIT_S
               ) -> Tuple[Optional[float], Dict[str, float], List[Finding]]:
    """Skew of each node's clock against rank 0's, read right after a common barrier."""
    clocks = {r["rank"]: r.get("clock") for r in records if r.get("clock") is not None}
    if 0 not in clocks:
        return None, {}, []
    offsets: Dict[str, float] = {}
    for rec in records:
        if rec.get("clock") is None:
            continue
        offset = rec["clock"] - clocks[0]
        if abs(offset) >= abs(offsets.get(rec["node"], 0.0)):
            offsets[rec["node"]] = offset
    skew = max(offsets.values()) - min(offsets.values()) if offsets else 0.0
    off = {n: o for n, o in offsets.items() if abs(o) > limit}
    if not off:
        return skew, offsets, []
    return skew, offsets, [code("ED911").finding(
        "clocks differ from rank 0's by more than " + f"{limit:g} s: "
        + ", ".join(f"{n} {o:+.2f} s" for n, o in off.items()) + ".",
        evidence=tuple(f"{n}: {o:+.3f} s" for n, o in off.items()))]
