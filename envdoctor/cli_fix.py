"""``envdoctor fix``: a thin click layer over :mod:`envdoctor.fix`."""
from __future__ import annotations

import json
import os
import sys
from typing import Any, Dict, List, Optional

import click

from envdoctor import exitcodes
from envdoctor.fix import apply as apply_mod, settings as settings_mod, undo as undo_mod, verify as verify_mod
from envdoctor.fix.fsops import FixError
from envdoctor.fix.journal import Journal
from envdoctor.fix.plan import Options, Plan, plan_fixes
from envdoctor.fix.rcfile import RcFileError
from envdoctor.model import SCHEMA_VERSION, FactSet, Report
from envdoctor.runner import Runner
from envdoctor.options import CONTEXT_SETTINGS

MARK = {"done": "done", "skipped": "skipped", "failed": "FAILED"}


class UsageError(Exception):
    """The command line or an input file is wrong (exit 2)."""


def _load_report(from_file: Optional[str], paths: List[str], need_engine: bool) -> Report:
    if from_file:
        try:
            with open(from_file, "r", encoding="utf-8") as fh:
                return Report.from_dict(json.load(fh))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"cannot read the report {from_file}: {exc}") from None
    try:
        from envdoctor.engine import run_check
    except ImportError:
        if need_engine:
            raise FixError("the check engine (envdoctor.engine) is not available in this installation; "
                           "pass a saved report with --from report.json") from None
        return Report(facts=FactSet(), meta={"note": "no check was run"})
    return run_check(env=dict(os.environ), paths=paths or (".",))  # the project: cwd or --path


def _echo_plan(plan: Plan) -> None:
    if not plan.steps:
        click.echo("Nothing to fix: no finding calls for a change envdoctor can make.")
    for number, step in enumerate(plan.steps, 1):
        codes = f" [{', '.join(step.codes)}]" if step.codes else ""
        click.echo(f"{number}. {step.description}{codes}")
        for command in step.commands:
            click.echo(f"     $ {command}")
        if step.blocked:
            click.echo(f"     (will be skipped: {step.blocked})")
        if step.diff:
            click.echo("".join("     " + line for line in step.diff.splitlines(keepends=True)), nl=False)
    for note in plan.notes:
        click.echo(f"note: {note}")


def _confirm_factory(yes: bool, err: bool):
    aborted = {"value": False}

    def confirm(step) -> bool:
        if yes:
            return True
        if aborted["value"]:
            return False
        try:
            return click.confirm(f"Apply: {step.description}?", default=False, err=err)
        except click.Abort:  # end of input: treat this and every later step as "no"
            aborted["value"] = True
            return False

    return confirm


def _echo_results(results) -> None:
    for r in results:
        first, _, rest = r.reason.partition("\n")
        click.echo(f"[{MARK[r.status]}] {r.step.description}: {first}")
        if rest:
            click.echo("".join("    " + line + "\n" for line in rest.splitlines()), nl=False)
        for line in (r.detail or {}).get("runs", []):
            click.echo(f"    runs: {line}")
        if (r.detail or {}).get("env"):
            click.echo("    built with: " + " ".join(f"{k}={v}" for k, v in r.detail["env"].items()))
        if (r.detail or {}).get("log"):
            click.echo(f"    build log: {r.detail['log']}")


def _echo_verification(ver: Dict[str, Any], failed_steps: bool = False) -> None:
    summary = ver["summary"]
    click.echo("")
    click.echo("Before/after:")
    click.echo(f"  before: {', '.join(summary['before']) or 'no findings'}")
    if summary["after"] is None:
        click.echo(f"  after:  not known ({ver['check'].get('error')})")
    else:
        click.echo(f"  after:  {', '.join(summary['after']) or 'no findings'}")
        click.echo(f"  resolved: {', '.join(summary['resolved']) or '-'}; new: {', '.join(summary['new']) or '-'}")
    if "extension_build" in ver:
        p = ver["extension_build"]
        state = ("ok" + (" (cached)" if p.get("cached") else "")) if p.get("ok") else f"failed: {p.get('error')}"
        click.echo(f"  CUDA extension build in the new shell: {state}")
    if "build" in ver:
        b = ver["build"]
        state = "ok" if b.get("ok") else f"failed: {b.get('error')}"
        click.echo(f"  op build: {state}" + (f" ({b.get('variant')}, {b.get('seconds')}s)" if b.get("ok") else ""))
    if "smoke" in ver:
        s = ver["smoke"]
        click.echo("  smoke-train: " + ("not available" if s.get("unavailable") else
                                        ("ok" if s.get("ok") else f"failed: {s.get('error')}")))
    if failed_steps:  # one verdict per run: a failed step is never followed by "healthy"
        click.echo("Not fixed: a step above failed (its error is shown with it).")
    else:
        click.echo("Environment is healthy." if ver["healthy"] else "Environment is not healthy yet.")


def _do_undo(options: Options, fmt: str) -> int:
    outcomes = undo_mod.undo_last_run(options.env)
    if outcomes is None:
        outcomes = [undo_mod.remove_block_from(options.rc_file(), options.env)]
    if fmt == "json":
        click.echo(json.dumps({"schema_version": SCHEMA_VERSION, "undo": [
            {"status": s, "message": m} for s, m in outcomes]}, indent=2))
    else:
        for status, message in outcomes:
            click.echo(f"[{MARK.get(status, status)}] {message}")
    return exitcodes.FINDINGS if any(s == "failed" for s, _ in outcomes) else exitcodes.OK


def _print_env(plan: Plan, shell: str) -> int:
    if plan.settings.is_empty():
        click.echo("# envdoctor: no finding calls for environment changes")
    for line in settings_mod.export_lines(plan.settings, shell):
        click.echo(line)
    return exitcodes.OK


def _matches(code: str, patterns) -> bool:
    return any(code == p or (p.endswith("*") and code.startswith(p[:-1])) for p in patterns)


def _options(opts: Dict[str, Any], env: Dict[str, str]) -> Options:
    return Options(write_rc=opts["write_bashrc"] or bool(opts["rc"]), shell=opts["shell"], rc_path=opts["rc"],
                   write_ci_env=opts["write_ci_env"], quarantine_stale=opts["quarantine_stale"],
                   rebuild_paths=list(opts["rebuild"]), patch_paths=list(opts["patch_sources"]),
                   yes=opts["yes"], env=env, arch_list=_arch_option(opts.get("arch") or ()),
                   only=tuple(opts["only"]))


def _arch_option(values) -> Optional[str]:
    """--arch values joined into one TORCH_CUDA_ARCH_LIST, refused when torch's builder would refuse it."""
    if not values:
        return None
    from envdoctor.parsers import arch_list

    value = ";".join(values)
    parsed = arch_list.parse(value)
    if not parsed.ok or not parsed.entries:
        raise UsageError(f"--arch {value!r}: torch's extension builder would refuse it ({parsed.error()}); "
                         "give compute capabilities such as 8.6 or 9.0 (+PTX allowed), or names such as Ampere")
    return arch_list.join(parsed.entries)


def _apply_and_verify(plan: Plan, report: Report, opts: Dict[str, Any], env: Dict[str, str],
                      paths: List[str], out: Dict[str, Any]) -> bool:
    """Apply the confirmed steps, verify, fill ``out``; returns whether the environment is healthy."""
    fmt = opts["format"]
    runner = Runner()
    ctx = apply_mod.Context(env=env, runner=runner, journal=Journal(env),
                            log=(lambda m: click.echo(m, err=True)) if fmt == "text" else (lambda m: None))
    results = apply_mod.apply_plan(plan, _confirm_factory(opts["yes"], err=fmt != "text"), ctx)
    out["results"] = [r.to_dict() for r in results]
    if fmt == "text":
        _echo_results(results)
    failed = any(r.status == apply_mod.FAILED for r in results)
    if not (plan.steps or plan.rebuild_op):
        return not failed and not any(f.severity.value == "error" for f in report.findings)
    # Verify even when everything was already in place: the verdict is about the
    # environment a new shell gets, which this run's own process does not have.
    # envdoctor's own op is rebuilt when a finding asks for it, not on every run.
    ver = verify_mod.verify(report, plan.settings, opts["shell"], env, runner, paths=paths,
                            rebuild_op=plan.rebuild_op and not opts["no_rebuild"],
                            prove_build=not opts["no_rebuild"],
                            smoke_steps=None if opts["no_smoke"] else opts["smoke_steps"])
    out["verification"] = ver
    if fmt == "text":
        _echo_verification(ver, failed)
        if any(r.status == apply_mod.DONE and r.step.kind in ("rc", "ci_env") for r in results):
            click.echo('This shell still has the old environment; run:  eval "$(envdoctor fix --print-env)"')
    return ver["healthy"] and not failed


def run_fix(opts: Dict[str, Any]) -> int:
    env = dict(os.environ)
    options = _options(opts, env)
    fmt = opts["format"]
    if opts["undo"]:
        return _do_undo(options, fmt)
    explicit_paths = list(opts["rebuild"]) + list(opts["patch_sources"])
    for path in explicit_paths:
        if not os.path.exists(path):
            raise UsageError(f"{path} does not exist")
    for path in opts["path"]:
        if not os.path.isdir(path):
            raise UsageError(f"{path} is not a directory")
    paths = [os.path.abspath(p) for p in explicit_paths] + [os.path.abspath(p) for p in opts["path"]]
    need_engine = not explicit_paths or options.write_rc or options.write_ci_env or opts["print_env"]
    report = _load_report(opts["from_file"], paths, need_engine)
    if opts["only"]:
        report.findings = [f for f in report.findings if _matches(f.code, opts["only"])]
    plan = plan_fixes(report, options)
    if opts["print_env"]:
        return _print_env(plan, opts["shell"])
    if fmt == "text":
        _echo_plan(plan)
    out: Dict[str, Any] = {"schema_version": SCHEMA_VERSION, "plan": plan.to_dict(), "dry_run": opts["dry_run"]}
    if plan.caused:
        # A plan that would leave an error it causes is not applied (the rules were run on its result).
        if fmt == "text":
            click.echo("The plan is refused: applied, it would cause "
                       + "; ".join(f"{f.code} ({f.message})" for f in plan.caused))
        out["refused"] = [f.code for f in plan.caused]
        out["healthy"] = False
    elif not opts["dry_run"]:
        out["healthy"] = _apply_and_verify(plan, report, opts, env, paths, out)
    if fmt == "json":
        click.echo(json.dumps(out, indent=2, default=str))
    return exitcodes.OK if out.get("healthy", True) else exitcodes.FINDINGS


@click.command("fix", context_settings=CONTEXT_SETTINGS)
@click.option("--write-bashrc", is_flag=True, help="Write the environment into one marked block in ~/.bashrc.")
@click.option("--shell", type=click.Choice(settings_mod.SHELLS), default="bash", show_default=True,
              help="Shell whose rc file and syntax to use (zsh: ~/.zshrc, fish: config.fish).")
@click.option("--rc", "rc", metavar="FILE", default=None, help="Write the block into FILE instead.")
@click.option("--write-ci-env", is_flag=True, help="Append the environment to $GITHUB_ENV / $GITHUB_PATH.")
@click.option("--print-env", is_flag=True, help='Print export lines: eval "$(envdoctor fix --print-env)".')
@click.option("--undo", is_flag=True, help="Undo the last fix run (rc block, patches, quarantined builds).")
@click.option("--rebuild", "rebuild", multiple=True, metavar="PATH",
              help="Clean, rebuild and import-test the torch extension (with a setup.py) in PATH.")
@click.option("--patch-sources", "patch_sources", multiple=True, metavar="PATH",
              help="Port deprecated torch C++ API uses in PATH (shows the diff, keeps a backup).")
@click.option("--path", "path", multiple=True, metavar="DIR",
              help="The project whose extensions to find, port, rebuild and prove (default: the current directory).")
@click.option("--quarantine-stale", is_flag=True, help="Move stale build outputs to a restorable quarantine.")
@click.option("--only", "only", multiple=True, metavar="CODE",
              help="Fix only the findings with this code (repeatable; ED6* matches a prefix).")
@click.option("--arch", "arch", multiple=True, metavar="CC",
              help="Build extensions for these GPUs (compute capability, e.g. 8.6; repeatable): sets "
                   "TORCH_CUDA_ARCH_LIST instead of torch's own list where no GPU is visible.")
@click.option("--no-smoke", is_flag=True, help="Skip the smoke-train after applying.")
@click.option("--smoke-steps", type=click.IntRange(1), default=5, show_default=True,
              help="Training steps of the smoke-train run after applying.")
@click.option("--no-rebuild", is_flag=True,
              help="Build nothing after applying: neither envdoctor's own op (when a finding asks for it) nor the "
                   "one-kernel CUDA extension that proves extension builds work in the new shell.")
@click.option("-n", "--dry-run", is_flag=True, help="Only show the plan and the diffs.")
@click.option("-y", "--yes", is_flag=True, help="Apply without asking (CI); also lets envdoctor run pip.")
@click.option("--format", "format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Output format; json is the stable interface (schema_version), text may change.")
@click.option("--from", "from_file", metavar="REPORT.json", default=None,
              help="Plan from a report saved by 'envdoctor check --format json'.")
def fix_command(**opts: Any) -> None:
    """Repair what can be repaired without root, then prove it.

    Shows the plan (every step, the diff of every file) and asks before each
    step; -n only shows it, --yes applies it all. Every edited file keeps a
    backup, every write is atomic, and --undo puts the last run back.

    \b
    Examples:
      envdoctor fix -n                         show what would change
      envdoctor fix --yes                      fix the environment and this project's extensions
      envdoctor fix --write-bashrc --yes       write the env block into ~/.bashrc
      eval "$(envdoctor fix --print-env)"      apply it to the current shell
      envdoctor fix --rebuild mask2former/modeling/pixel_decoder/ops
      envdoctor fix --patch-sources models/ops/src --yes
      envdoctor fix --undo

    Exit status: 0 healthy, 1 still unhealthy or a step failed, 2 usage error,
    3 envdoctor itself failed.
    """
    if opts["undo"] and (opts["write_bashrc"] or opts["write_ci_env"] or opts["rebuild"] or opts["patch_sources"]
                         or opts["print_env"] or opts["quarantine_stale"]):
        _fail(exitcodes.USAGE, "--undo cannot be combined with other fix actions")
    try:
        code = run_fix(opts)
    except UsageError as exc:
        _fail(exitcodes.USAGE, str(exc))
    except (FixError, RcFileError, settings_mod.SettingsError) as exc:
        _fail(exitcodes.FINDINGS, str(exc))
    except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback
        _fail(exitcodes.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
    sys.exit(code)


def _fail(code: int, message: str) -> None:
    click.echo(f"envdoctor fix: {message}", err=True)
    sys.exit(code)


def main() -> None:  # ``python -m envdoctor.cli_fix`` works before the command is registered
    fix_command(prog_name="envdoctor fix")


if __name__ == "__main__":
    main()
