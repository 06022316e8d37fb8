"""Renderers: Report -> text | json | markdown | github | junit. Pure functions, plus loading a
saved report (JSON or a pasted Markdown report) for ``envdoctor check --from``."""
from __future__ import annotations

import json
from typing import Optional

from envdoctor.model import Report
from envdoctor.render.redact import Redactor

# Each renderer is imported when its format is asked for: a check compiles only the one it prints.

FORMATS = ("text", "json", "markdown", "github", "junit")


class ReportFileError(ValueError):
    """A --from file that is not an envdoctor report."""


def render(report: Report, fmt: str, redactor: Optional[Redactor] = None, color: bool = False,
           verbose: bool = False, quiet: bool = False, unicode: bool = True) -> str:
    redactor = redactor or Redactor.from_environment()
    if fmt == "json":
        from envdoctor.render.jsonfmt import render_json

        return render_json(report, redactor)
    if fmt == "markdown":
        from envdoctor.render.markdown import render_markdown

        return render_markdown(report, redactor)
    if fmt == "github":
        from envdoctor.render.github import render_github

        return render_github(report, redactor)
    if fmt == "junit":
        from envdoctor.render.junit import render_junit

        return render_junit(report, redactor)
    if fmt == "text":
        from envdoctor.render.text import render_text

        # The text goes to the user's own terminal, but may be pasted: redact it the same way.
        return redactor.text(render_text(report, color=color, verbose=verbose, quiet=quiet, unicode=unicode))
    raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def load_report_text(text: str, name: str = "report") -> Report:
    """Parse a saved JSON report or a Markdown report with embedded data."""
    from envdoctor.render.markdown import extract_report_data

    stripped = text.lstrip()
    try:
        data = json.loads(stripped) if stripped.startswith("{") else extract_report_data(text)
    except json.JSONDecodeError as exc:
        raise ReportFileError(f"{name}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if data is None:
        raise ReportFileError(f"{name}: no envdoctor report data found (expected a JSON report from "
                              "`envdoctor check --format json` or a Markdown report from `--format markdown`)")
    if not isinstance(data, dict) or "facts" not in data:
        raise ReportFileError(f"{name}: not an envdoctor report (no 'facts')")
    try:
        return Report.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportFileError(f"{name}: {exc}") from None


__all__ = ["FORMATS", "Redactor", "ReportFileError", "load_report_text", "render"]
