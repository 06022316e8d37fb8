"""The fleet verdict as text (for people; may change), JSON (the stable interface,
``schema_version``) or Markdown (for an issue or a ticket). Pure.

Node names are the subject of a fleet report and are kept; everything else goes
through the same redaction as ``envdoctor check`` (credentials, home, user, GPU UUIDs).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any, List, Mapping, Optional

from envdoctor.render.redact import Redactor

FORMATS = ("text", "json", "markdown")


def fleet_redactor(enabled: bool = True) -> Redactor:
    redactor = Redactor.from_environment(enabled=enabled)
    return dataclasses.replace(redactor, host=None)


def render(result: Mapping[str, Any], fmt: str, redactor: Optional[Redactor] = None) -> str:
    redactor = redactor or fleet_redactor()
    # The per-rank list holds only numbers, digests and node names (kept by design):
    # left out of redaction, which would otherwise cost rank 0 more than the comparison.
    data = redactor.data({k: v for k, v in result.items() if k != "ranks"})
    data["ranks"] = result.get("ranks", [])
    if fmt == "json":
        data["meta"] = dict(data["meta"], redacted=redactor.enabled)
        return json.dumps(data, indent=2) + "\n"
    if fmt == "markdown":
        return render_markdown(data)
    if fmt == "text":
        return render_text(data)
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _headline(data: Mapping[str, Any]) -> str:
    meta = data["meta"]
    return (f"envdoctor fleet: {meta['ranks_gathered']} of {meta['world_size']} ranks on {meta['nodes']} "
            f"node{'s' if meta['nodes'] != 1 else ''}, {meta['seconds']:.1f} s (launcher: {meta['launcher']}"
            f"{', prolog' if meta.get('prolog') else ''})")


def _sweep_title(sweep: Mapping[str, Any]) -> str:
    return (f"All-reduce sweep ({sweep['backend']}, {sweep['ranks']} ranks; "
            "busbw = algbw x 2(n-1)/n, as nccl-tests)")


def _expected_line(sweep: Mapping[str, Any]) -> str:
    exp = sweep.get("expected")
    if not exp:
        return "expected: no sourced figure for this hardware and job shape (measured only)"
    return f"expected: at least {exp['busbw_gbps']:g} GB/s busbw for {exp['id']} (source: {exp['source']})"


def _pair_line(p: Mapping[str, Any], nodes: Mapping[int, str]) -> str:
    return (f"ranks {p['a']}-{p['b']} ({nodes.get(p['a'], '?')} - {nodes.get(p['b'], '?')}): "
            f"{p['gbps']:.3f} GB/s{'  SLOW' if p.get('slow') else ''}")


def render_text(data: Mapping[str, Any]) -> str:
    out: List[str] = [_headline(data), ""]
    nodes = {r["rank"]: r["node"] for r in data["ranks"]}
    if data["missing"]:
        out.append("Missing or stalled ranks")
        for m in data["missing"]:
            out.append(f"  rank {m['rank']} ({m.get('node') or 'node unknown'}): last step {m.get('step') or 'none'}")
        out.append("")
    if data["table"]:
        out.append("Consistency (majority value [its nodes]; odd nodes below)")
        width = max(len(r["label"]) for r in data["table"]) + 2
        for row in data["table"]:
            where = "all nodes" if not row["odd"] else ", ".join(row["majority_nodes"][:6]) + (
                " ..." if len(row["majority_nodes"]) > 6 else "")
            out.append(f"  {row['label']:<{width}}{row['majority_display']}  [{where}]")
            for odd in row["odd"][:12]:
                out.append(f"  {'':<{width}}odd: {odd['node']}: {odd['display']}")
            if len(row["odd"]) > 12:
                out.append(f"  {'':<{width}}... and {len(row['odd']) - 12} more odd nodes")
        clock = data["clock"]
        if clock.get("skew_s") is not None:
            out.append(f"  {'clock skew':<{width}}{clock['skew_s']:.3f} s across nodes")
        out.append("")
    sweep = data["sweep"]
    if sweep["rows"]:
        out.append(_sweep_title(sweep))
        out.append(f"  {'size':>6}  {'time (us)':>11}  {'algbw (GB/s)':>12}  {'busbw (GB/s)':>12}")
        for r in sweep["rows"]:
            out.append(f"  {r['size']:>6}  {r['time_us']:>11.1f}  {r['algbw_gbps']:>12.3f}  {r['busbw_gbps']:>12.3f}")
        out.append("  " + _expected_line(sweep))
        out.append("")
    pairs = data["pairwise"]["pairs"]
    if pairs:
        from envdoctor.fleet.bandwidth import format_size

        out.append(f"Pairwise test (ring neighbours, {format_size(data['pairwise']['bytes'])} ping-pong)")
        out += ["  " + _pair_line(p, nodes) for p in pairs[:64]]
        if len(pairs) > 64:
            out.append(f"  ... and {len(pairs) - 64} more pairs")
        out.append("")
    if data.get("barrier_latency_us") is not None:
        out += [f"Barrier latency (gloo, median): {data['barrier_latency_us']:.1f} us", ""]
    for error in data.get("internal_errors", []):
        out.append(f"envdoctor failed: {error}")
    if data["findings"]:
        out.append("Findings")
        for f in data["findings"]:
            out.append(f"{f['code']} {f['severity']}  {f['title']}")
            out.append(f"    {f['message']}")
            out.append(f"    docs: {f['docs']}")
    else:
        out.append("No findings: the nodes agree" + (" and the collectives ran." if sweep["rows"] else "."))
    return "\n".join(out) + "\n"


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(data: Mapping[str, Any]) -> str:
    out: List[str] = [f"### {_headline(data)}", ""]
    nodes = {r["rank"]: r["node"] for r in data["ranks"]}
    if data["findings"]:
        out += ["| code | severity | finding |", "|---|---|---|"]
        out += [f"| {f['code']} | {f['severity']} | {_md_cell(f['message'])} |" for f in data["findings"]]
        out.append("")
    if data["table"]:
        out += ["| fact | majority | odd nodes |", "|---|---|---|"]
        for row in data["table"]:
            odd = "; ".join(f"{o['node']}: {o['display']}" for o in row["odd"][:12]) or "none"
            out.append(f"| {_md_cell(row['label'])} | {_md_cell(row['majority_display'])} | {_md_cell(odd)} |")
        out.append("")
    sweep = data["sweep"]
    if sweep["rows"]:
        out += [f"**{_sweep_title(sweep)}**", "", "| size | time (us) | algbw (GB/s) | busbw (GB/s) |",
                "|---:|---:|---:|---:|"]
        out += [f"| {r['size']} | {r['time_us']:.1f} | {r['algbw_gbps']:.3f} | {r['busbw_gbps']:.3f} |"
                for r in sweep["rows"]]
        out += ["", _expected_line(sweep), ""]
    if data["pairwise"]["pairs"]:
        out += ["**Pairwise test**", ""] + [f"- {_pair_line(p, nodes)}" for p in data["pairwise"]["pairs"][:64]] + [""]
    return "\n".join(out) + "\n"
