"""GitHub Actions: workflow-command annotations within GitHub's limits, and a job summary.

GitHub shows at most 10 annotations of each type (error, warning, notice) per
step and drops the rest silently. So at most 10 of each are printed, worst
first; when some are left out, one notice says how many and where they are (it
takes the tenth notice slot). The job summary (``$GITHUB_STEP_SUMMARY``) carries
every finding, in the Markdown of ``envdoctor.render.markdown``.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional

from envdoctor.model import Report, Severity
from envdoctor.render.redact import Redactor

_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
ANNOTATIONS_PER_TYPE = 10  # https://docs.github.com/actions (annotation limits per step)


def _escape(text: str) -> str:
    # https://docs.github.com/actions/reference/workflow-commands-for-github-actions (data escaping)
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape(text).replace(":", "%3A").replace(",", "%2C")


def render_github(report: Report, redactor: Redactor, limit: int = ANNOTATIONS_PER_TYPE) -> str:
    by_level: Dict[str, List[str]] = {"error": [], "warning": [], "notice": []}
    for finding in report.findings:
        level = _LEVEL.get(finding.severity)
        if level is None:
            continue
        body = finding.message
        if finding.fixes:
            body += "\nFix: " + finding.fixes[0].summary
            body += "".join("\n  " + c for c in finding.fixes[0].commands)
        title = f"{finding.code} {finding.title}"
        by_level[level].append(f"::{level} title={_escape_property(redactor.text(title))}::"
                               f"{_escape(redactor.text(body))}")
    left_out = {level: max(0, len(lines) - limit) for level, lines in by_level.items()}
    if any(left_out.values()) and len(by_level["notice"]) >= limit:
        left_out["notice"] += 1  # the tenth notice slot carries the line about the rest
    lines: List[str] = []
    for level, shown in by_level.items():
        lines.extend(shown[:len(shown) - left_out[level]])
    if any(left_out.values()):
        counted = ", ".join(f"{n} more {level}{'s' if n > 1 else ''}" for level, n in left_out.items() if n)
        lines.append(f"::notice title=envdoctor::{counted} not shown as annotations (GitHub shows "
                     f"{limit} per type per step): see the job summary or the report.")
    if not lines:
        lines.append("::notice title=envdoctor::No problems found.")
    return "\n".join(lines) + "\n"


def step_summary_path(env: Mapping[str, str], wanted: Optional[bool]) -> Optional[str]:
    """Where the job summary goes: $GITHUB_STEP_SUMMARY, by default only in GitHub Actions."""
    path = env.get("GITHUB_STEP_SUMMARY")
    if wanted is False or not path:
        return None
    if wanted is None and env.get("GITHUB_ACTIONS") != "true":
        return None
    return path


def write_step_summary(report: Report, redactor: Redactor, env: Mapping[str, str],
                       wanted: Optional[bool] = None, title: str = "envdoctor report") -> Optional[str]:
    """Append the job summary (GitHub reads the file after the step). Returns the path written,
    or None. A summary that cannot be written is not worth failing the check for: it says so on
    standard error."""
    path = step_summary_path(env, wanted)
    if path is None:
        return None
    from envdoctor.render.markdown import render_overview  # only when a summary is written

    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(render_overview(report, redactor, title=title) + "\n")
    except OSError as exc:
        import sys

        print(f"envdoctor: cannot append the job summary to {path}: {exc.strerror or exc}", file=sys.stderr)
        return None
    return path
