"""``envdoctor explain LOGFILE|-``: say what a build or runtime log means and how to fix it."""
from __future__ import annotations

import json
import sys
import textwrap
from typing import Any, Dict, List, Optional, Tuple

import click

from envdoctor import exitcodes
from envdoctor.explain import Explanation, explain, first_error
from envdoctor.options import CONTEXT_SETTINGS

SCHEMA_VERSION = 1
MAX_BYTES = 64 * 1024 * 1024  # a log bigger than this is read up to here: the first error is near the top


def read_log(stream) -> str:
    data = stream.read(MAX_BYTES)
    if isinstance(data, bytes):
        # Logs mix encodings (compiler output, users' paths): never fail on a byte.
        return data.decode("utf-8", errors="replace")
    return data


def as_json(name: str, found: List[Explanation], first: Optional[Tuple[int, str, List[str]]]) -> Dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "input": name,
        "recognised": bool(found),
        "first_error": None if first is None else {"line_no": first[0], "line": first[1], "context": first[2]},
        "explanations": [e.to_dict() for e in found],
    }


def _wrap(text: str, indent: str) -> str:
    return textwrap.fill(text, width=100, initial_indent=indent, subsequent_indent=indent,
                         break_long_words=False, break_on_hyphens=False)


def as_text(name: str, found: List[Explanation], first: Optional[Tuple[int, str, List[str]]]) -> str:
    out: List[str] = []
    if first is not None:
        out += [f"First error in {name} (line {first[0]}):", f"  {first[1]}", ""]
    if not found:
        out.append(f"No known problem recognised in {name}.")
        out.append("`envdoctor check` looks at the environment itself; docs/explain.md lists what explain knows.")
        return "\n".join(out) + "\n"
    main, others = found[0], found[1:]
    out += _describe(main, "What it is")
    for other in others:
        out.append("")
        out += _describe(other, "Also possible" if other.confidence == "low" else "Also found")
    return "\n".join(out) + "\n"


def _describe(item: Explanation, heading: str) -> List[str]:
    return [f"{heading}: {item.category} ({item.confidence} confidence), line {item.line_no}:",
            f"  > {item.line}",
            _wrap("What it means: " + item.diagnosis, "  "),
            _wrap("Fix: " + item.fix, "  ")]


@click.command(name="explain", context_settings=CONTEXT_SETTINGS)
@click.argument("logfile", type=click.File("rb"), metavar="LOGFILE|-")
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True,
              help="Output format. json is the stable, machine-readable interface.")
def explain_command(logfile, fmt: str) -> None:
    """Explain a build or runtime log: what went wrong, the key line, and the fix.

    Reads LOGFILE (or standard input with -), finds the first real error
    (warnings skipped) and matches it against known CUDA/PyTorch environment
    problems. Exits 0 when something was recognised, 1 when nothing was.

    \b
    Examples:
      sh make.sh 2>&1 | tee build.log; envdoctor explain build.log
      python train.py 2>&1 | envdoctor explain -
      envdoctor explain --format json build.log
    """
    raw_name = str(getattr(logfile, "name", "-"))
    name = "standard input" if raw_name in ("-", "<stdin>") or not raw_name else raw_name
    text = read_log(logfile)
    found = explain(text)
    first = first_error(text)
    if fmt == "json":
        sys.stdout.write(json.dumps(as_json(name, found, first), indent=2, ensure_ascii=False) + "\n")
    else:
        click.echo(as_text(name, found, first), nl=False)
    sys.exit(exitcodes.OK if found else exitcodes.FINDINGS)
