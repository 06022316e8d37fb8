"""Plan -> results: carry out each step the ``confirm`` callback agrees to.

``confirm`` owns dry-run and yes/no (the CLI builds it); the executors below
never look at flags. Every step ends as done, skipped or failed with a reason,
and one failed step never leaves a half-written file (all writes go through
:func:`envdoctor.fix.fsops.edit_file`).
"""
from __future__ import annotations

import base64
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional

from envdoctor.fix import rcfile, rebuild
from envdoctor.fix.fsops import FixError, edit_file
from envdoctor.fix.journal import Journal
from envdoctor.fix.plan import Plan, Step
from envdoctor.fix.quarantine import quarantine
from envdoctor.fix.settings import apply_to_env

DONE, SKIPPED, FAILED = "done", "skipped", "failed"
PIP_TIMEOUT = 3600.0


@dataclass
class StepResult:
    step: Step
    status: str
    reason: str = ""
    detail: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return {"kind": self.step.kind, "description": self.step.description, "status": self.status,
                "reason": self.reason, "detail": self.detail}


@dataclass
class Context:
    """What executors may use: the user's environment, a runner, the run's journal."""

    env: Mapping[str, str]
    runner: Any
    journal: Journal
    build_env: Optional[Dict[str, str]] = None  # filled lazily: the repaired environment + build needs
    gpu_visible: Optional[bool] = None
    log: Callable[[str], None] = lambda message: None


def fixed_env(plan: Plan, ctx: Context) -> Dict[str, str]:
    """The environment after the repair (as a new shell sourcing the block would see it), for builds."""
    if ctx.build_env is None:
        ctx.build_env = rebuild.build_env(apply_to_env(plan.settings, ctx.env), ctx.runner, ctx.gpu_visible)
    return ctx.build_env


def _apply_rc(step: Step, plan: Plan, ctx: Context) -> str:
    params = step.params
    seen: Dict[str, Optional[bytes]] = {}

    def transform(old: Optional[bytes]) -> bytes:
        seen["old"] = old
        return params["new"]

    record = edit_file(params["path"], transform, ctx.journal.backup_dir, expect_sha=params["old_sha"])
    if not record["changed"]:
        return "already up to date"
    span = rcfile.find_block(seen["old"] or b"")
    previous = span.raw(seen["old"]) if span else None
    ctx.journal.record(dict(record, kind="rc",
                            previous_block=base64.b64encode(previous).decode() if previous is not None else None))
    return f"wrote the block; backup: {record['backup'] or 'none (the file was new)'}"


def _append(path: str, lines: List[str]) -> None:
    if not lines:
        return
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("".join(line + "\n" for line in lines))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise FixError(f"cannot append to {path}: {exc.strerror or exc}") from None


def _apply_ci(step: Step, plan: Plan, ctx: Context) -> str:
    _append(step.params["env_file"], step.params["env_lines"])
    _append(step.params["path_file"], step.params["path_lines"])
    return f"appended {len(step.params['env_lines'])} variable(s) and {len(step.params['path_lines'])} PATH entries"


def _apply_pip(step: Step, plan: Plan, ctx: Context) -> str:
    # Always this interpreter's pip: the active environment, never a system pip, never sudo.
    argv = [sys.executable, "-m", *step.params["argv"]]
    result = ctx.runner.run(argv, timeout=PIP_TIMEOUT, env=dict(ctx.env))
    if not result.ok:
        raise FixError(f"pip failed: {result.describe_failure()}")
    return "pip finished"


def _apply_quarantine(step: Step, plan: Plan, ctx: Context) -> str:
    src = step.params["path"]
    dest = quarantine(src, ctx.journal.quarantine_dir, len(ctx.journal.entries))
    ctx.journal.record({"kind": "quarantine", "src": src, "dest": dest})
    return f"moved to {dest}"


def _apply_patch(step: Step, plan: Plan, ctx: Context) -> str:
    params = step.params
    record = edit_file(params["path"], lambda old: params["new"], ctx.journal.backup_dir,
                       expect_sha=params["old_sha"])
    if not record["changed"]:
        return "already patched"
    ctx.journal.record(dict(record, kind="edit"))
    return f"patched; backup: {record['backup']}"


def _apply_rebuild(step: Step, plan: Plan, ctx: Context) -> str:
    info = rebuild.rebuild_extension(step.params["path"], fixed_env(plan, ctx), ctx.runner, ctx.journal,
                                     step.params.get("spec"))
    step.params["result"] = info
    mods = ", ".join(info["import"]["modules"])
    kernels = sorted({a for d in info.get("device", {}).values() for a in d.get("sm", [])})
    device = f" with CUDA kernels for {', '.join(f'sm_{a}' for a in kernels)}" if kernels else " (no CUDA kernels)"
    where = f"; installed for the environment ({info['pth']})" if info.get("pth") else ""
    return f"built and imported {mods}{device} in {info['seconds']}s{where}"


EXECUTORS: Dict[str, Callable[[Step, Plan, Context], str]] = {
    "rc": _apply_rc, "ci_env": _apply_ci, "pip": _apply_pip, "quarantine": _apply_quarantine,
    "patch": _apply_patch, "rebuild_extension": _apply_rebuild,
}


def apply_plan(plan: Plan, confirm: Callable[[Step], bool], ctx: Context) -> List[StepResult]:
    """Run every step in order; a failure is recorded and the run goes on."""
    results = []
    for step in plan.steps:
        if step.blocked:
            status = FAILED if step.params.get("error") else SKIPPED
            results.append(StepResult(step, status, step.blocked))
            continue
        executor = EXECUTORS.get(step.kind)
        if executor is None:
            results.append(StepResult(step, SKIPPED, "nothing envdoctor can apply"))
            continue
        if not confirm(step):
            results.append(StepResult(step, SKIPPED, "not confirmed"))
            continue
        ctx.log(f"-> {step.description}")
        try:
            reason = executor(step, plan, ctx)
            detail = step.params.get("result", {}) if step.kind == "rebuild_extension" else {}
            results.append(StepResult(step, DONE, reason, detail))
        except FixError as exc:
            results.append(StepResult(step, FAILED, str(exc)))
        except Exception as exc:  # noqa: BLE001 - a crashed step must not stop the others
            results.append(StepResult(step, FAILED, f"internal error: {type(exc).__name__}: {exc}"))
    return results
