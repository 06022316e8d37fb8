"""``envdoctor explain LOGFILE|-``: say what a build or runtime log means and how to fix it."""
from __future__ import annotations

import json
import sys
import textwrap
from typing import Any, Dict, List, Optional

import click

from envdoctor import exitcodes
from envdoctor.explain import Analysis, Explanation, analyse, read_stream
from envdoctor.explain import here as here_facts
from envdoctor.options import CONTEXT_SETTINGS

SCHEMA_VERSION = 2


def as_json(name: str, result: Analysis, machine_source: Optional[str]) -> Dict[str, Any]:
    first = result.first_error
    return {
        "schema_version": SCHEMA_VERSION,
        "input": name,
        "recognised": result.recognised,
        "notices": result.notices,
        "first_error": None if first is None else {"line_no": first[0], "line": first[1], "context": first[2]},
        "explanations": [e.to_dict() for e in result.explanations],
        "hint": result.hint,
        "log_facts": result.log_facts,
        "machine": {"source": machine_source, "facts_used": result.machine_used} if machine_source else None,
    }


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, width=100, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


def as_text(name: str, result: Analysis, machine_line: Optional[str]) -> str:
    out: List[str] = [f"Note: {notice}" for notice in result.notices]
    if result.notices:
        out.append("")
    if machine_line:
        out += [machine_line, ""]
    first = result.first_error
    if first is not None:
        out += [f"First error in {name} (line {first[0]}):", f"  {first[1]}", ""]
    if not result.explanations:
        out.append(f"No known problem recognised in {name}.")
        if result.hint:
            out.append(_wrap("What to look for: " + result.hint, ""))
        out.append("`envdoctor check` looks at the environment itself; docs/explain.md lists what explain knows.")
        return "\n".join(out) + "\n"
    signatures = set()
    for position, item in enumerate(result.explanations):
        if position:
            out.append("")
        heading = "What it is" if position == 0 else \
            "Or, reading the same line differently" if item.signature in signatures else "Also found"
        signatures.add(item.signature)
        out += _describe(item, heading)
    return "\n".join(out) + "\n"


def _describe(item: Explanation, heading: str) -> List[str]:
    lines = [f"{heading}: {item.category} ({item.confidence} confidence, {item.score:.2f}), line {item.line_no}:",
             f"  > {item.line}"]
    for number, text in item.evidence[1:3]:
        lines.append(f"  > (line {number}) {text}")
    lines += [_wrap("What it means: " + item.diagnosis, "  "), _wrap("Fix: " + item.fix, "  ")]
    return lines


def _fail(message: str) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(exitcodes.USAGE)


@click.command(name="explain", context_settings=CONTEXT_SETTINGS)
@click.argument("logfile", metavar="LOGFILE|-")
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True,
              help="Output format. json is the stable, machine-readable interface.")
@click.option("--here", is_flag=True, help="Also probe this machine (container? which nvcc? driver?) to choose "
              "between the readings of an ambiguous message.")
@click.option("--from", "from_report", metavar="REPORT", type=click.Path(dir_okay=False),
              help="Use the machine facts of a saved report (`envdoctor check --format json|markdown`) instead.")
def explain_command(logfile: str, fmt: str, here: bool, from_report: Optional[str]) -> None:
    """Explain a build or runtime log: what went wrong, the key line, and the fix.

    Reads LOGFILE (or standard input with -) in any common encoding (UTF-8,
    UTF-16 as PowerShell writes it, latin-1), without colour codes; finds the
    first real error (warnings, their source lines and INFO lines skipped) and
    ranks the known CUDA/PyTorch problems it shows, root causes before their
    consequences, with the other readings of ambiguous messages. A log larger
    than 32 MiB is read head and tail; the output says what was skipped.

    Exit status: 0 a known problem was recognised, 1 none was (the output
    may still say what to look for), 2 the log or report cannot be read or
    the options are wrong.

    \b
    Examples:
      sh make.sh 2>&1 | tee build.log; envdoctor explain build.log
      python train.py 2>&1 | envdoctor explain -
      envdoctor explain --here build.log
      envdoctor explain --from report.json their-build.log
      envdoctor explain --format json build.log
    """
    if here and from_report:
        _fail("--here and --from are exclusive: use this machine's facts or the report's.")
    name = "standard input" if logfile == "-" else logfile
    try:
        if logfile == "-":
            log = read_stream(sys.stdin.buffer)
        else:
            with open(logfile, "rb") as stream:
                log = read_stream(stream)
    except OSError as exc:
        _fail(f"cannot read {name}: {exc.strerror or exc}")
    machine: Dict[str, Any] = {}
    machine_source = machine_line = None
    if from_report:
        from envdoctor.render import ReportFileError, load_report_text
        try:
            with open(from_report, encoding="utf-8", errors="replace") as fh:
                report = load_report_text(fh.read(), name=from_report)
        except OSError as exc:
            _fail(f"cannot read {from_report}: {exc.strerror or exc}")
        except ReportFileError as exc:
            _fail(str(exc))
        machine = here_facts.from_factset(report.facts)
        machine_source = from_report
    elif here:
        machine = here_facts.probe_here()
        machine_source = "this machine"
    if machine_source:
        machine_line = f"Machine facts ({machine_source}): {here_facts.describe(machine)}."
    result = analyse(log, machine)
    if fmt == "json":
        sys.stdout.write(json.dumps(as_json(name, result, machine_source), indent=2, ensure_ascii=False) + "\n")
    else:
        click.echo(as_text(name, result, machine_line), nl=False)
    sys.exit(exitcodes.OK if result.recognised else exitcodes.FINDINGS)
