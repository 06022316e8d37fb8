"""Options shared by several commands, defined once."""
from __future__ import annotations

import os
import sys

import click

from envdoctor.render import FORMATS

FAIL_ON = ("error", "warning", "info", "never")
# Every command answers -h as well as --help, also when run on its own (python -m envdoctor.cli_fix).
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}


def format_option(choices=FORMATS, default="text"):
    return click.option("--format", "fmt", type=click.Choice(choices), default=default, show_default=True,
                        help="Output format. json is the stable, machine-readable interface.")


output_option = click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
                             help="Write the report to this file instead of standard output.")
fail_on_option = click.option("--fail-on", type=click.Choice(FAIL_ON), default="error", show_default=True,
                              help="Exit with status 1 when a finding is at least this severe.")
only_option = click.option("--only", multiple=True, metavar="CODE",
                           help="Run only these checks (repeatable; ED2* selects a group).")
skip_option = click.option("--skip", multiple=True, metavar="CODE",
                           help="Skip these checks (repeatable; ED6* skips a group).")
verbose_option = click.option("-v", "--verbose", is_flag=True, help="Show skipped checks and every note.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="Show only the findings.")
color_option = click.option("--color/--no-color", default=None,
                            help="Colour the text output (default: only on a terminal, never when NO_COLOR is set).")
redact_option = click.option("--no-redact", is_flag=True,
                             help="Keep user, host and home path and GPU UUIDs in the report "
                                  "(credentials are never printed unless this is given).")
dry_run_option = click.option("-n", "--dry-run", is_flag=True, help="Show what would be done; change nothing.")
yes_option = click.option("-y", "--yes", is_flag=True, help="Apply without asking (for CI).")
step_summary_option = click.option(
    "--step-summary/--no-step-summary", default=None,
    help="Append a Markdown summary of the findings to $GITHUB_STEP_SUMMARY (default: when GITHUB_ACTIONS=true).")
timeout_option = click.option("--timeout", type=click.FloatRange(min=0.5), default=10.0, show_default=True,
                              help="Seconds any single external command may take.")


def use_color(flag, to_file: bool) -> bool:
    if flag is not None:
        return bool(flag)
    if to_file or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def stdout_unicode() -> bool:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower()
    return "utf" in encoding
