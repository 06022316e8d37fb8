"""Generate the reference docs from the code: ``docs/cli.md`` from every command's
``--help`` and ``docs/codes/<CODE>.md`` from every rule's docstring.

    python -m envdoctor.docsgen          # write the files
    python -m envdoctor.docsgen --check  # exit 1 if they are out of date (used by the tests)
"""
from __future__ import annotations

import os
import sys
from typing import Dict, List, Optional

import click

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.join(os.path.dirname(HERE), "docs")


def _context(command: click.Command, name: str, parent: Optional[click.Context] = None) -> click.Context:
    # As when run: the command's own context_settings apply (``-h``/``--help``) and a
    # sub-command inherits the group's. resilient_parsing: no arguments are given here.
    return command.make_context(name, [], parent=parent, resilient_parsing=True,
                                terminal_width=100, max_content_width=100)


def cli_reference() -> str:
    from envdoctor.cli import cli

    root = _context(cli, "envdoctor")
    out = ["# CLI reference", "",
           "Generated from `--help` by `python -m envdoctor.docsgen`; do not edit by hand.", "",
           "## envdoctor", "", "```text", cli.get_help(root), "```", ""]
    for name in cli.list_commands(root):
        command = cli.get_command(root, name)
        out += [f"## envdoctor {name}", "", "```text", command.get_help(_context(command, name, root)), "```", ""]
    return "\n".join(out)


def code_pages() -> Dict[str, str]:
    from envdoctor.rules import all_rules

    pages = {}
    for rule in all_rules():
        needs = ", ".join(f"`{k}`" for k in rule.needs) or "none"
        optional = ", ".join(f"`{k}`" for k in rule.reads if k not in rule.needs)
        pages[f"{rule.code}.md"] = "\n".join([
            f"# {rule.code}: {rule.title}", "",
            f"- Area: {rule.area}",
            f"- Facts it needs (skipped when one is not available): {needs}",
            f"- Facts it also reads when present: {optional or 'none'}",
            f"- `envdoctor fix` can apply a fix: {'yes' if rule.fixable else 'no (it prints the commands)'}",
            f"- Stops extension builds (`envdoctor build` refuses): {'yes' if rule.blocks_build else 'no'}",
            "", rule.doc.strip(), "",
            "Skip it with `envdoctor check --skip " + rule.code + "`.", "",
        ])
    from envdoctor.fleet.codes import FLEET_CODES

    for fc in FLEET_CODES.values():
        pages[f"{fc.code}.md"] = "\n".join([
            f"# {fc.code}: {fc.title}", "",
            "- Area: fleet (raised by `envdoctor fleet`, across the ranks of a distributed job)",
            f"- Severity: {fc.severity.value}",
            "", fc.doc.strip(), "",
            "See [the fleet guide](../fleet.md).", "",
        ])
    index = ["# Finding codes", "", "Codes are stable and never reused.", "", "| code | area | title |",
             "|---|---|---|"]
    index += [f"| [{r.code}]({r.code}.md) | {r.area} | {r.title} |" for r in all_rules()]
    index += [f"| [{c.code}]({c.code}.md) | fleet | {c.title} |" for c in FLEET_CODES.values()]
    pages["README.md"] = "\n".join(index) + "\n"
    return pages


def expected_files() -> Dict[str, str]:
    files = {os.path.join(DOCS, "cli.md"): cli_reference()}
    for name, text in code_pages().items():
        files[os.path.join(DOCS, "codes", name)] = text
    return files


def stale_files(ignore_wrapping: bool = False) -> List[str]:
    """Generated files that differ from what the code says now. ``ignore_wrapping``
    compares with white space folded, so a click release that wraps help text
    differently does not count as a change."""
    fold = (lambda t: " ".join(t.split())) if ignore_wrapping else (lambda t: t)
    stale = []
    for path, text in expected_files().items():
        try:
            with open(path, encoding="utf-8") as fh:
                if fold(fh.read()) != fold(text):
                    stale.append(path)
        except OSError:
            stale.append(path)
    return stale


def main(argv: List[str]) -> int:
    if "--check" in argv:
        stale = stale_files()
        for path in stale:
            print(f"out of date: {os.path.relpath(path)}")
        if stale:
            print("run: python -m envdoctor.docsgen")
        return 1 if stale else 0
    os.makedirs(os.path.join(DOCS, "codes"), exist_ok=True)
    for path, text in expected_files().items():
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    print(f"wrote {len(expected_files())} files under {os.path.relpath(DOCS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
