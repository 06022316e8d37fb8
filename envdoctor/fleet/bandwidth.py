"""Phase 2 on paper: nccl-tests' bandwidth arithmetic, the sourced table of expected
all-reduce bandwidth, the ring schedule of the pairwise test and its verdict. Pure.

nccl-tests (doc/PERFORMANCE.md) define, for a collective of S bytes taking t seconds
on n ranks: algbw = S / t, and for all-reduce busbw = algbw * 2(n-1)/n, the figure
that can be compared with the hardware's link bandwidth whatever n is. GB here is
1e9 bytes, as there.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from envdoctor.fleet.codes import code
from envdoctor.model import Finding

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
# A pair below this fraction of the good pairs is slow (ED913). gloo runs on CPU
# cores shared with everything else on the machine, so it needs a wider margin.
SLOW_PAIR_FRACTION = {"nccl": 0.5, "gloo": 0.25}


class SizeError(ValueError):
    pass


def parse_size(text: str) -> int:
    """"64K" -> 65536, "1M" -> 1048576, "8" -> 8 (binary units, as nccl-tests' -b/-e)."""
    match = _SIZE.match(text)
    if not match:
        raise SizeError(f"{text!r} is not a size (examples: 4096, 64K, 16M, 1G)")
    value = int(float(match.group(1)) * _UNITS[match.group(2).upper()])
    if value < 4:
        raise SizeError(f"{text!r}: an all-reduce of float32 needs at least 4 bytes")
    return value - value % 4


def parse_sizes(text: str) -> List[int]:
    sizes = sorted({parse_size(part) for part in text.split(",") if part.strip()})
    if not sizes:
        raise SizeError("no sizes given (examples: 64K,1M,16M)")
    return sizes


def format_size(n: int) -> str:
    for unit, factor in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def algbw(size_bytes: float, seconds: float) -> float:
    """GB/s (1e9 bytes per second)."""
    return size_bytes / seconds / 1e9 if seconds > 0 else 0.0


def allreduce_busbw(algbw_gbps: float, ranks: int) -> float:
    return algbw_gbps * 2 * (ranks - 1) / ranks if ranks > 0 else 0.0


def sweep_rows(times: Mapping[int, Sequence[float]], ranks: int) -> List[Dict[str, Any]]:
    """``times``: size -> every rank's mean seconds per all-reduce. The operation is as
    slow as its slowest rank, so the row's time is the maximum over ranks."""
    rows = []
    for size in sorted(times):
        t = max(times[size])
        alg = algbw(size, t)
        rows.append({"bytes": size, "size": format_size(size), "time_us": round(t * 1e6, 2),
                     "algbw_gbps": round(alg, 4), "busbw_gbps": round(allreduce_busbw(alg, ranks), 4),
                     "rank_time_us": [round(x * 1e6, 2) for x in times[size]]})
    return rows


def expected_busbw(gpu_names: Sequence[str], gpus_per_node: int, nodes: int, ranks: int, backend: str,
                   table_rows: Optional[Sequence[Mapping[str, Any]]] = None) -> Optional[Dict[str, Any]]:
    """The sourced row for this job, or None: one node, every GPU in the all-reduce, NCCL."""
    if backend != "nccl" or nodes != 1 or not gpu_names or ranks != gpus_per_node:
        return None
    if table_rows is None:
        from envdoctor.knowledge import _data

        table_rows = _data.rows("allreduce_busbw")
    for row in table_rows:
        if row["gpus_per_node"] == gpus_per_node and all(
                re.search(row["gpu_pattern"], name, re.IGNORECASE) for name in gpu_names):
            return dict(row)
    return None


def bandwidth_findings(rows: Sequence[Mapping[str, Any]], expected: Optional[Mapping[str, Any]]) -> List[Finding]:
    if not rows or not expected:
        return []
    best = max(rows, key=lambda r: r["busbw_gbps"])
    if best["busbw_gbps"] >= expected["busbw_gbps"]:
        return []
    largest = max(r["bytes"] for r in rows)
    note = ""
    if largest < expected.get("message_bytes", 0):
        note = (f" The sweep's largest message was {format_size(largest)}; the figure is for "
                f"{format_size(expected['message_bytes'])}: rerun with --sizes "
                f"{format_size(expected['message_bytes'])} "
                "before drawing conclusions.")
    return [code("ED912").finding(
        f"best all-reduce bus bandwidth {best['busbw_gbps']:.1f} GB/s (at {best['size']}) is below the "
        f"{expected['busbw_gbps']:g} GB/s expected of a healthy {expected['id']} node "
        f"(source: {expected.get('source')}).{note}",
        evidence=tuple(f"{r['size']}: busbw {r['busbw_gbps']:.2f} GB/s" for r in rows))]


def ring_rounds(ranks: int) -> List[List[Tuple[int, int]]]:
    """The pairs (i, i+1 mod n) of a ring, in rounds in which no rank is in two pairs.
    Two rounds (three when n is odd) whatever n is: the test's cost does not grow with
    the job."""
    if ranks < 2:
        return []
    if ranks == 2:
        return [[(0, 1)]]
    edges = [(i, (i + 1) % ranks) for i in range(ranks)]
    even = [e for e in edges[:ranks - (ranks % 2)] if e[0] % 2 == 0]
    odd = [e for e in edges[:ranks - (ranks % 2)] if e[0] % 2 == 1]
    rounds = [even, odd]
    if ranks % 2:
        rounds.append([edges[-1]])
    return [r for r in rounds if r]


def reference_bandwidth(values: Sequence[float]) -> float:
    """The bandwidth of the good pairs: the 90th percentile (robust to one lucky pair,
    and not dragged down when half the pairs touch one slow rank)."""
    ordered = sorted(values)
    return ordered[int(round(0.9 * (len(ordered) - 1)))] if ordered else 0.0


def analyse_pairs(pairs: Sequence[Mapping[str, Any]], node_of: Mapping[int, str], backend: str = "nccl"
                  ) -> Tuple[List[Dict[str, Any]], List[Finding]]:
    """``pairs``: ``{"a", "b", "gbps"}``. Marks slow pairs (below SLOW_PAIR_FRACTION of the
    good pairs for the backend) and names slow ranks (every pair
    slow, at least two pairs) or slow links (a slow pair whose ranks are otherwise fine)."""
    if len(pairs) < 2:
        return [dict(p, slow=False) for p in pairs], []
    ref = reference_bandwidth([p["gbps"] for p in pairs])
    fraction = SLOW_PAIR_FRACTION.get(backend, SLOW_PAIR_FRACTION["nccl"])
    marked = [dict(p, slow=p["gbps"] < fraction * ref) for p in pairs]
    per_rank: Dict[int, List[bool]] = {}
    for p in marked:
        per_rank.setdefault(p["a"], []).append(p["slow"])
        per_rank.setdefault(p["b"], []).append(p["slow"])
    slow_ranks = sorted(r for r, flags in per_rank.items() if len(flags) >= 2 and all(flags))
    findings: List[Finding] = []
    for rank in slow_ranks:
        mine = [p for p in marked if rank in (p["a"], p["b"])]
        findings.append(code("ED913").finding(
            f"rank {rank} ({node_of.get(rank, '?')}) is slow: every pair it is in reached at most "
            f"{max(p['gbps'] for p in mine):.3f} GB/s, against {ref:.3f} GB/s for the good pairs.",
            evidence=tuple(f"ranks {p['a']}-{p['b']}: {p['gbps']:.3f} GB/s" for p in mine)))
    for p in marked:
        if p["slow"] and p["a"] not in slow_ranks and p["b"] not in slow_ranks:
            findings.append(code("ED913").finding(
                f"the link between rank {p['a']} ({node_of.get(p['a'], '?')}) and rank {p['b']} "
                f"({node_of.get(p['b'], '?')}) is slow: {p['gbps']:.3f} GB/s against {ref:.3f} GB/s "
                "for the good pairs.",
                evidence=(f"ranks {p['a']}-{p['b']}: {p['gbps']:.3f} GB/s",)))
    return marked, findings
