"""GitHub Actions workflow commands: one annotation per finding (CI preflight)."""
from __future__ import annotations

from typing import List

from envdoctor.model import Report, Severity
from envdoctor.render.redact import Redactor

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _escape(text: str) -> str:
    # https://docs.github.com/actions/reference/workflow-commands-for-github-actions (data escaping)
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape(text).replace(":", "%3A").replace(",", "%2C")


def render_github(report: Report, redactor: Redactor) -> str:
    lines: List[str] = []
    for finding in report.findings:
        level = _LEVEL.get(finding.severity)
        if level is None:
            continue
        body = finding.message
        if finding.fixes:
            body += "\nFix: " + finding.fixes[0].summary
            body += "".join("\n  " + c for c in finding.fixes[0].commands)
        title = f"{finding.code} {finding.title}"
        lines.append(f"::{level} title={_escape_property(redactor.text(title))}::{_escape(redactor.text(body))}")
    if not lines:
        lines.append("::notice title=envdoctor::No problems found.")
    return "\n".join(lines) + "\n"
