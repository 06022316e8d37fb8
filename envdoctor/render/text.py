"""Plain-text report for people at a terminal. Layout may change; JSON is the stable interface.

Colour and glyphs live here, not in the result types.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Dict, List

import click

from envdoctor.model import CheckResult, Finding, Report, Severity
from envdoctor.render.summary import area_order, area_title, summary

GLYPHS = {"passed": "✓", "fired_warning": "!", "fired_error": "✗", "fired_info": "i", "skipped": "-",
          "crashed": "✗"}
ASCII_GLYPHS = {"passed": "ok", "fired_warning": "!", "fired_error": "x", "fired_info": "i", "skipped": "-",
                "crashed": "x"}
SEVERITY_COLOUR = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "cyan", Severity.OK: "green"}


def _severity_word(severity: Severity) -> str:
    return {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "info", Severity.OK: "ok"}[severity]


class _Style:
    def __init__(self, color: bool, unicode: bool):
        self.color = color
        self.glyphs = GLYPHS if unicode else ASCII_GLYPHS

    def __call__(self, text: str, **kwargs) -> str:
        return click.style(text, **kwargs) if self.color else text


def _result_key(result: CheckResult, findings: List[Finding]) -> str:
    if result.status != "fired":
        return result.status
    worst = max((f.severity for f in findings), key=lambda s: s.rank, default=Severity.WARNING)
    return {Severity.ERROR: "fired_error", Severity.WARNING: "fired_warning"}.get(worst, "fired_info")


def render_text(report: Report, color: bool = False, verbose: bool = False, quiet: bool = False,
                unicode: bool = True) -> str:
    style = _Style(color, unicode)
    out: List[str] = []
    by_code: Dict[str, List[Finding]] = defaultdict(list)
    for finding in report.findings:
        by_code[finding.code].append(finding)

    if not quiet:
        out.append(style("envdoctor check", bold=True) + _header_note(report))
        out.append("")
        width = max(len(label) for label, _ in summary(report.facts))
        for label, lines in summary(report.facts):
            for i, line in enumerate(lines):
                out.append(f"  {(label if i == 0 else ''):<{width}}  {line}")
        out.append("")
        out.extend(_checks_section(report, by_code, style, verbose))

    problems = [f for f in report.findings if f.severity != Severity.OK]
    shown = problems if verbose else [f for f in problems if f.severity != Severity.INFO or not quiet]
    if shown:
        out.append(style("Findings", bold=True))
        for finding in shown:
            out.extend(_finding_block(finding, style))
    out.append(_footer(report, style))
    return "\n".join(out) + "\n"


def _header_note(report: Report) -> str:
    if report.meta.get("source_file"):
        return f" (re-diagnosed from {report.meta['source_file']})"
    if report.meta.get("quick"):
        return " (quick: torch not imported)"
    return ""


def _checks_section(report: Report, by_code: Dict[str, List[Finding]], style: _Style, verbose: bool) -> List[str]:
    out: List[str] = []
    groups: Dict[str, List[CheckResult]] = defaultdict(list)
    for result in report.results:
        if result.status == "skipped" and not verbose:
            continue
        groups[result.area].append(result)
    for area in sorted(groups, key=area_order):
        out.append(style(area_title(area), bold=True))
        for result in groups[area]:
            key = _result_key(result, by_code.get(result.rule, []))
            glyph = style.glyphs[key]
            colour = {"passed": "green", "fired_error": "red", "crashed": "red", "fired_warning": "yellow",
                      "fired_info": "cyan"}.get(key)
            glyph = style(glyph, fg=colour) if colour else glyph
            line = f"  {glyph} {result.title}"
            if result.status == "fired":
                titles = sorted({f.title for f in by_code.get(result.rule, [])})
                if titles and titles != [result.title]:
                    line += ": " + "; ".join(titles)
                line += f"  [{result.rule}]"
            elif result.status in ("skipped", "crashed"):
                line += f"  ({result.status}: {result.detail})"
            out.append(line)
        out.append("")
    return out


def _finding_block(finding: Finding, style: _Style) -> List[str]:
    colour = SEVERITY_COLOUR[finding.severity]
    head = style(f"{finding.code} {_severity_word(finding.severity)}", fg=colour, bold=True)
    lines = [f"{head}  {finding.title}"]
    lines.extend("    " + part for part in finding.message.splitlines())
    if finding.evidence:
        lines.append("    evidence: " + "; ".join(finding.evidence))
    for i, fix in enumerate(finding.fixes):
        label = "fix" if i == 0 else ("then" if fix.follow_up else "or")
        lines.append(f"    {style(label, bold=True)}: {fix.summary}")
        for command in fix.commands:
            lines.append(f"        {command}")
        if fix.action:
            lines.append("        (envdoctor fix can apply this)")
    if finding.docs:
        lines.append(f"    docs: {finding.docs}")
    lines.append("")
    return lines


def _footer(report: Report, style: _Style) -> str:
    counts = {s: sum(1 for f in report.findings if f.severity == s) for s in Severity}
    crashed = sum(1 for r in report.results if r.status == "crashed")
    parts = [f"{counts[Severity.ERROR]} error(s)", f"{counts[Severity.WARNING]} warning(s)",
             f"{counts[Severity.INFO]} note(s)"]
    if crashed:
        parts.append(f"{crashed} check(s) crashed")
    text = ", ".join(parts) + "."
    if counts[Severity.ERROR] == 0 and counts[Severity.WARNING] == 0 and not crashed:
        text = style("No problems found. ", fg="green") + text
    return text + " (This text layout may change; use --format json in scripts.)"
