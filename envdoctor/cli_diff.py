"""``envdoctor diff A B``: what differs between two machines, tied to the findings it causes or clears."""
from __future__ import annotations

import os
import sys

import click

from envdoctor import exitcodes
from envdoctor.options import CONTEXT_SETTINGS, redact_option, timeout_option


def _load(name: str, label: str, timeout: float):
    """A report from a file (JSON or pasted Markdown), or ``-``: this machine, now."""
    from envdoctor import engine, require
    from envdoctor.render import ReportFileError, load_report_text

    if name == "-":
        try:
            requirements = require.find_requirements(".")
        except require.RequirementError as exc:
            raise click.UsageError(f"{label} (this machine): {exc}")
        return require.run_check(requirements, timeout=timeout), "this machine"
    try:
        with open(name, "rb") as fh:
            text = fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise click.UsageError(f"{label}: cannot read {name}: {exc.strerror or exc}")
    try:
        saved = load_report_text(text, name=f"{label} ({name})")
    except ReportFileError as exc:
        raise click.UsageError(str(exc))
    return engine.diagnose(saved.facts, meta=saved.meta), os.path.basename(name)


@click.command("diff", context_settings=CONTEXT_SETTINGS, epilog=exitcodes.HELP_EPILOG)
@click.argument("report_a", metavar="A")
@click.argument("report_b", metavar="B")
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True,
              help="Output format. json is the stable, machine-readable interface.")
@redact_option
@timeout_option
def diff_command(report_a, report_b, fmt, no_redact, timeout):
    """Say what differs between two machines, and which findings each difference causes or clears.

    A and B are reports: JSON (`envdoctor check --format json`), a Markdown
    report pasted from an issue (`--format markdown`), or `-` for this machine
    now. Both are re-diagnosed with the current rules. Compared: driver, GPUs,
    CUDA toolkits, nvcc, CUDA_HOME and the other variables, the torch build,
    compilers, Python, compiled extensions and declared requirements; one line
    each.

    \b
    Examples:
      envdoctor diff works.json ci.json
      envdoctor diff issue-1234.md -             # a pasted report vs this machine
      envdoctor diff --format json a.json b.json
    """
    from envdoctor import diff
    from envdoctor.render import Redactor
    from envdoctor.rules import all_rules

    a, name_a = _load(report_a, "A", timeout)
    b, name_b = _load(report_b, "B", timeout)
    redactor = Redactor.from_environment(enabled=not no_redact)
    result = diff.compare(a, b, redactor=redactor, needs={r.code: r.needs for r in all_rules()})
    render = diff.render_json if fmt == "json" else diff.render_text
    click.echo(render(result, name_a, name_b), nl=False)
    sys.exit(exitcodes.OK if result.same else exitcodes.FINDINGS)


if __name__ == "__main__":  # pragma: no cover
    diff_command(prog_name="envdoctor diff")
