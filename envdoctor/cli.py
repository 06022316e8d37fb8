"""The command line: a thin layer over the library. Exit codes live in envdoctor.exitcodes.

Sub-commands other than ``check`` are loaded on first use, so ``envdoctor check``
does not pay for importing the op builder or the smoke-train.
"""
from __future__ import annotations

import importlib
import os
import sys
import tempfile
from typing import Dict, Optional, Tuple

import click

from envdoctor import __version__, exitcodes
from envdoctor.model import Severity
from envdoctor.options import (CONTEXT_SETTINGS, color_option, fail_on_option, format_option, only_option, output_option,
                               quiet_option, redact_option, skip_option, step_summary_option, stdout_unicode,
                               timeout_option, use_color, verbose_option)

# name -> (module, attribute) of commands defined in their own modules
LAZY_COMMANDS: Dict[str, Tuple[str, str]] = {
    "fix": ("envdoctor.cli_fix", "fix_command"),
    "build": ("envdoctor.cli_build", "build_command"),
    "smoke": ("envdoctor.cli_smoke", "smoke_command"),
    "explain": ("envdoctor.cli_explain", "explain_command"),
    "require": ("envdoctor.cli_require", "require_command"),
    "diff": ("envdoctor.cli_diff", "diff_command"),
    "fleet": ("envdoctor.cli_fleet", "fleet_command"),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx, name):
        if name in LAZY_COMMANDS:
            module_name, attr = LAZY_COMMANDS[name]
            try:
                command = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as exc:
                return _unavailable_command(name, f"{type(exc).__name__}: {exc}")
        else:
            command = super().get_command(ctx, name)
        if command is not None and not command.epilog:
            command.epilog = exitcodes.HELP_EPILOG  # one table of exit statuses for every command
        return command


def _unavailable_command(name: str, why: str) -> click.Command:
    @click.command(name=name, help=f"(unavailable in this installation: {why})",
                   context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    def unavailable():
        raise click.ClickException(f"'envdoctor {name}' could not be loaded: {why}")

    return unavailable


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="envdoctor")
def cli():
    """envdoctor: a CUDA environment doctor for deep-learning projects.

    It checks the NVIDIA driver, CUDA toolkits, PyTorch, the host compiler and
    your compiled extensions against a sourced compatibility matrix, says what
    is wrong with the evidence, and fixes what it can without sudo.

    \b
    Examples:
      envdoctor check                       # diagnose this machine
      envdoctor check --format markdown -o report.md   # paste into an issue
      envdoctor fix --write-bashrc          # set CUDA_HOME & co. in ~/.bashrc
      envdoctor build                       # build the MSDeformAttn op
      envdoctor smoke                       # prove it with a short training run
    """


@cli.command("check", epilog=exitcodes.HELP_EPILOG)
@format_option()
@output_option
@fail_on_option
@only_option
@skip_option
@click.option("--path", "paths", multiple=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Where to look for build/ dirs and compiled extensions (repeatable; default: the current directory).")
@click.option("--quick", is_flag=True, help="Don't import torch: read its facts from its installed files (much faster).")
@click.option("--from", "from_file", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="Re-diagnose a saved report (JSON, or a Markdown report pasted from an issue) instead of this machine.")
@click.option("--require", "require_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Check the requirements of this TOML file's [tool.envdoctor.require] table (default: the nearest "
                   "pyproject.toml with one, from the current directory upward). See docs/ci.md.")
@step_summary_option
@redact_option
@verbose_option
@quiet_option
@color_option
@timeout_option
def check_command(fmt, output, fail_on, only, skip, paths, quick, from_file, require_file, step_summary,
                  no_redact, verbose, quiet, color, timeout):
    """Diagnose the CUDA / PyTorch environment of this machine.

    Reads only: it writes no file (unless -o is given) and makes no network
    request. Every finding comes with its evidence and the exact fix.

    \b
    In GitHub Actions it also appends a Markdown job summary to
    $GITHUB_STEP_SUMMARY (see --step-summary).

    \b
    Examples:
      envdoctor check
      envdoctor check --path ~/Mask2Former      # also look at its builds
      envdoctor check --format json -o env.json --fail-on warning
      envdoctor check --format markdown > report.md   # redacted, for an issue
      envdoctor check --from report.md           # re-diagnose a pasted report
      envdoctor check --only 'ED2*' --quick      # toolkit checks, no torch import
      envdoctor check --require ci/gpu.toml --format junit -o envdoctor.xml
    """
    from envdoctor import require
    from envdoctor.render import Redactor, ReportFileError, load_report_text, render
    from envdoctor.render.github import write_step_summary

    try:  # a saved report carries its own requirement facts; --require replaces them
        requirements = require.resolve(require_file, discover=not from_file)
    except require.RequirementError as exc:
        raise click.UsageError(str(exc))

    if from_file:
        text = _read_input(from_file)
        try:
            saved = load_report_text(text, name=from_file)
        except ReportFileError as exc:
            raise click.UsageError(str(exc))
        meta = dict(saved.meta, source_file=os.path.basename(from_file) if from_file != "-" else "stdin")
        report = require.diagnose_with(saved.facts, requirements, only=only, skip=skip, meta=meta)
    else:
        report = require.run_check(requirements, paths=paths or (".",), quick=quick, only=only, skip=skip,
                                   timeout=timeout)

    redactor = Redactor.from_environment(enabled=not no_redact)
    text = render(report, fmt, redactor=redactor, color=use_color(color, bool(output)) and fmt == "text",
                  verbose=verbose, quiet=quiet, unicode=stdout_unicode() or bool(output))
    _emit(text, output)
    write_step_summary(report, redactor, os.environ, step_summary)
    sys.exit(exit_status(report, fail_on))


@cli.command("rules")
@format_option(choices=("text", "json"))
def rules_command(fmt):
    """List every check with its stable code, area and title.

    \b
    Examples:
      envdoctor rules
      envdoctor rules --format json
    """
    import json

    from envdoctor.rules import all_rules

    rules = all_rules()
    if fmt == "json":
        click.echo(json.dumps([{"code": r.code, "area": r.area, "title": r.title, "fixable": r.fixable,
                                "docs": r.docs_path} for r in rules], indent=2))
        return
    for r in rules:
        click.echo(f"{r.code}  {r.area:<10}  {r.title}{'  [fixable]' if r.fixable else ''}")


def exit_status(report, fail_on: str) -> int:
    """1 for findings at or above ``fail_on``; else 3 when a check crashed (a preflight
    must not pass silently on a half-done diagnosis); else 0."""
    if fail_on != "never":
        threshold = Severity(fail_on)
        if any(f.severity.at_least(threshold) for f in report.findings):
            return exitcodes.FINDINGS
    if any(r.status == "crashed" for r in report.results):
        return exitcodes.INTERNAL
    return exitcodes.OK


def _read_input(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.read()
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", errors="replace")
    except OSError as exc:
        raise click.UsageError(f"cannot read {path}: {exc.strerror or exc}")


def _emit(text: str, output: Optional[str]) -> None:
    if not output:
        click.echo(text, nl=False)
        return
    directory = os.path.dirname(os.path.abspath(output))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".envdoctor-", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, output)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}")
    click.echo(f"report written to {output}", err=True)


def main(argv=None) -> None:
    """Console entry point: maps unexpected failures to exit status 3 without a traceback."""
    # A full check waits for a child importing torch: start it before anything else runs.
    # (``python -m envdoctor`` has already done so, before even importing this module.)
    from envdoctor.probes import _prestart

    _prestart.start_for(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=argv, prog_name="envdoctor", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(exitcodes.FINDINGS)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exitcodes.USAGE if isinstance(exc, click.UsageError) else exc.exit_code)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # envdoctor itself failed: say so plainly, exit 3
        click.echo(f"envdoctor failed: {type(exc).__name__}: {exc}", err=True)
        if os.environ.get("ENVDOCTOR_DEBUG"):
            raise
        click.echo("Set ENVDOCTOR_DEBUG=1 to see the traceback, and please report it.", err=True)
        sys.exit(exitcodes.INTERNAL)
