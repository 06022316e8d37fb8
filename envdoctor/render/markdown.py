"""Markdown report to paste into a GitHub issue.

It holds a short summary table, the findings, raw tool outputs in ``<details>``
blocks, and the report data as JSON, so that ``envdoctor check --from issue.md``
re-diagnoses it with the current rules. Redacted by default, and kept under
GitHub's comment size limit.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from envdoctor.model import Report, Severity
from envdoctor.render.jsonfmt import report_data
from envdoctor.render.redact import Redactor
from envdoctor.render.summary import summary

GITHUB_COMMENT_LIMIT = 65536  # characters GitHub accepts in an issue comment
SIZE_BUDGET = 60000  # stay clearly below it
RAW_OUTPUT_LIMIT = 4000  # characters of one tool output shown in a <details> block
DATA_MARKER = "<!-- envdoctor-report-json -->"

_ICON = {Severity.ERROR: "❌", Severity.WARNING: "⚠️", Severity.INFO: "ℹ️", Severity.OK: "✅"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fence(text: str, lang: str = "") -> str:
    # A fence longer than any run of backticks inside, so pasted outputs cannot break out.
    longest = max((len(run) for run in text.split("\n") for run in _backtick_runs(run)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}"


def _backtick_runs(line: str) -> List[str]:
    runs, current = [], ""
    for ch in line:
        if ch == "`":
            current += ch
        elif current:
            runs.append(current)
            current = ""
    if current:
        runs.append(current)
    return runs


def _findings_section(report: Report, redactor: Redactor) -> List[str]:
    problems = [f for f in report.findings if f.severity != Severity.OK]
    if not problems:
        return ["**No problems found.**", ""]
    out = ["### Findings", ""]
    for f in problems:
        out.append(f"#### {_ICON[f.severity]} {f.code} {redactor.text(f.title)}")
        out.append("")
        out.append(redactor.text(f.message))
        out.append("")
        if f.evidence:
            out.append("Evidence: " + "; ".join(f"`{redactor.text(e)}`" for e in f.evidence))
            out.append("")
        for i, fix in enumerate(f.fixes):
            label = "Fix" if i == 0 else ("Then" if fix.follow_up else "Or")
            out.append(f"**{label}:** {redactor.text(fix.summary)}")
            if fix.commands:
                out.append("")
                out.append(_fence("\n".join(redactor.text(c) for c in fix.commands), "sh"))
            out.append("")
    return out


def _raw_sections(report: Report, redactor: Redactor, limit: int) -> List[str]:
    out: List[str] = []
    for fact in report.facts:
        if not fact.raw or not fact.raw.strip():
            continue
        raw = redactor.text(fact.raw)
        if len(raw) > limit:
            raw = raw[:limit] + f"\n… ({len(raw) - limit} more characters cut)"
        out.append(f"<details><summary>{fact.key}: {_cell(redactor.text(fact.source or 'raw output'))}</summary>")
        out.append("")
        out.append(_fence(raw))
        out.append("")
        out.append("</details>")
        out.append("")
    return out


def _data_section(data: Dict[str, Any]) -> List[str]:
    return [
        "<details><summary>Report data (for <code>envdoctor check --from</code>)</summary>",
        "",
        DATA_MARKER,
        _fence(json.dumps(data, separators=(",", ":"), sort_keys=False), "json"),
        "",
        "</details>",
        "",
    ]


def _summary_table(report: Report, redactor: Redactor) -> List[str]:
    head = ["| | |", "|---|---|"]
    for label, lines in summary(report.facts):
        head.append(f"| {label} | {_cell(redactor.text('; '.join(lines)))} |")
    counts = {s: sum(1 for f in report.findings if f.severity == s) for s in (Severity.ERROR, Severity.WARNING)}
    head.append(f"| Result | {counts[Severity.ERROR]} error(s), {counts[Severity.WARNING]} warning(s) |")
    head.append("")
    return head


def render_overview(report: Report, redactor: Redactor, title: str = "envdoctor report") -> str:
    """The summary table and the findings, without raw outputs and report data (a CI job summary)."""
    return "\n".join([f"## {title}", ""] + _summary_table(report, redactor) + _findings_section(report, redactor))


def render_markdown(report: Report, redactor: Redactor, budget: int = SIZE_BUDGET) -> str:
    head = ["## envdoctor report", ""] + _summary_table(report, redactor)
    body = _findings_section(report, redactor)
    footer = [f"<sub>envdoctor {report.meta.get('envdoctor_version', '')}"
              f"{' (redacted)' if redactor.enabled else ''}</sub>", ""]

    data = report_data(report, redactor)
    # Shrink until it fits: first the shown raw outputs, then the raw text inside the data.
    for raw_limit, keep_raw_in_data in ((RAW_OUTPUT_LIMIT, True), (1000, True), (1000, False), (0, False)):
        payload = _strip_raw(data) if not keep_raw_in_data else data
        raws = _raw_sections(report, redactor, raw_limit) if raw_limit else []
        text = "\n".join(head + body + raws + _data_section(payload) + footer)
        if len(text) <= budget:
            return text
    return text  # the findings alone exceed the budget: still the best we can do


def _strip_raw(data: Dict[str, Any]) -> Dict[str, Any]:
    stripped = dict(data)
    stripped["facts"] = [dict(f, raw=None) for f in data.get("facts", [])]
    stripped["meta"] = dict(data.get("meta", {}), raw_outputs_dropped=True)
    return stripped


def extract_report_data(text: str) -> Optional[Dict[str, Any]]:
    """Find the embedded report JSON in a pasted Markdown report (None if absent)."""
    text = text.replace("\r\n", "\n")
    at = text.find(DATA_MARKER)
    if at < 0:
        return None
    rest = text[at + len(DATA_MARKER):].lstrip("\n")
    if not rest.startswith("```"):
        return None
    fence_len = len(rest) - len(rest.lstrip("`"))
    fence = "`" * fence_len
    body_start = rest.find("\n") + 1
    body_end = rest.find("\n" + fence, body_start)
    if body_end < 0:
        return None
    return json.loads(rest[body_start:body_end])
