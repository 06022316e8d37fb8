"""``envdoctor require``: check the project's declared requirements, or write them (``--init``)."""
from __future__ import annotations

import os
import sys

import click

from envdoctor import exitcodes
from envdoctor.options import (CONTEXT_SETTINGS, fail_on_option, format_option, output_option, redact_option,
                               step_summary_option, stdout_unicode, timeout_option, use_color)


@click.command("require", context_settings=CONTEXT_SETTINGS, epilog=exitcodes.HELP_EPILOG)
@click.option("--require", "require_file", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="The TOML file with the [tool.envdoctor.require] table (default: the nearest pyproject.toml with "
                   "one, from the current directory upward; with --init: ./pyproject.toml).")
@click.option("--init", is_flag=True,
              help="Write the table from this machine (pins what works here) into pyproject.toml, for you to edit.")
@click.option("--print", "print_only", is_flag=True, help="With --init: print the table instead of writing it.")
@click.option("--force", is_flag=True, help="With --init: replace an existing table.")
@format_option()
@output_option
@fail_on_option
@step_summary_option
@redact_option
@timeout_option
def require_command(require_file, init, print_only, force, fmt, output, fail_on, step_summary, no_redact, timeout):
    """Check this machine against the project's declared requirements.

    The requirements are a [tool.envdoctor.require] table in pyproject.toml
    (driver, torch, torch_cuda, nvcc, gcc, compute_capability, gpus,
    gpu_memory_gb, nccl, imports, cuda_kernels; see docs/ci.md). Each is a
    check with a stable code (ED801-ED811) and an unmet one is an error.
    `envdoctor check` runs them too, together with every other check.

    \b
    Examples:
      envdoctor require                          # only the declared requirements
      envdoctor require --format junit -o requirements.xml
      envdoctor require --init                   # write the table into ./pyproject.toml
      envdoctor require --init --print           # or just show it
      envdoctor require --require ci/gpu-runner.toml
    """
    from envdoctor import require

    if (print_only or force) and not init:
        raise click.UsageError("--print and --force go with --init")
    if init:
        _init(require_file or "pyproject.toml", print_only, force, timeout)
        return
    try:
        requirements = require.resolve(require_file)
    except require.RequirementError as exc:
        raise click.UsageError(str(exc))
    if not requirements:
        raise click.UsageError(f"no [{require.TABLE}] table found in a pyproject.toml from {os.getcwd()} upward; "
                               "write one with `envdoctor require --init`, or name a file with --require")

    from envdoctor.cli import _emit, exit_status
    from envdoctor.render import Redactor, render
    from envdoctor.render.github import write_step_summary

    report = require.run_check(requirements, paths=(), only=("ED8*",), timeout=timeout)
    redactor = Redactor.from_environment(enabled=not no_redact)
    text = render(report, fmt, redactor=redactor, color=use_color(None, bool(output)) and fmt == "text",
                  unicode=stdout_unicode() or bool(output))
    _emit(text, output)
    write_step_summary(report, redactor, os.environ, step_summary, title="envdoctor requirements")
    sys.exit(exit_status(report, fail_on))


def _init(path: str, print_only: bool, force: bool, timeout: float) -> None:
    from envdoctor import engine, require

    report = engine.run_check(paths=(), only=("none",), timeout=timeout)  # the facts; no rule is needed
    table = require.format_table(require.pin_table(report.facts))
    if print_only:
        click.echo(table, nl=False)
        return
    shown = require.display_path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            old = fh.read()
    except FileNotFoundError:
        old = None
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"cannot read {shown}: {getattr(exc, 'strerror', None) or exc}")
    try:
        new = require.edited_pyproject(old, table, shown, force=force)
    except require.RequirementError as exc:
        raise click.UsageError(str(exc))
    try:
        require.write_atomically(path, new)
    except OSError as exc:
        raise click.ClickException(f"cannot write {shown}: {exc.strerror or exc}")
    verb = "created" if old is None else ("replaced the table in" if require.table_of(
        require.parse_toml(old, shown)) is not None else "added the table to")
    click.echo(f"{verb} {shown}:\n\n{table}", nl=False)
    click.echo("\nEdit it, then check with `envdoctor require` (or `envdoctor check`).")


if __name__ == "__main__":  # pragma: no cover
    require_command(prog_name="envdoctor require")
