"""Report -> Plan: what ``envdoctor fix`` would do, with the diff of every file it would touch.

Planning reads files (to show diffs) but never writes one. Applying is
:mod:`envdoctor.fix.apply`'s job, behind a ``confirm`` callback.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from envdoctor.fix import project, rcfile, settings as settings_mod, sources
from envdoctor.fix.fsops import FixError, read_optional, sha256
from envdoctor.fix.quarantine import why_not_build_output
from envdoctor.fix.settings import EnvSettings, SettingsError
from envdoctor.model import Finding, Fix, Report, Severity

KNOWN_ACTIONS = ("set_env", "quarantine", "rebuild_op", "rebuild_extension", "patch_sources", "pip_install")
# Environment first (later steps build with it), sources before the rebuild that compiles them.
KIND_ORDER = ("rc", "ci_env", "pip", "quarantine", "patch", "rebuild_extension", "manual")
RC_FILES = {"bash": ".bashrc", "zsh": ".zshrc", "fish": ".config/fish/config.fish"}


@dataclass
class Options:
    """What the user asked for. With no selector at all, everything the findings call for is planned."""

    write_rc: bool = False
    shell: str = "bash"
    rc_path: Optional[str] = None
    write_ci_env: bool = False
    quarantine_stale: bool = False
    rebuild_paths: Sequence[str] = ()
    patch_paths: Sequence[str] = ()
    yes: bool = False
    arch_list: Optional[str] = None  # --arch: the GPUs the user builds for (TORCH_CUDA_ARCH_LIST)
    only: Sequence[str] = ()  # --only: fix only findings with these codes (ED6* a prefix)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def everything(self) -> bool:
        return not (self.write_rc or self.write_ci_env or self.quarantine_stale
                    or self.rebuild_paths or self.patch_paths)

    def selects(self, code: str) -> bool:
        return not self.only or any(code == p or (p.endswith("*") and code.startswith(p[:-1])) for p in self.only)

    def rc_file(self) -> str:
        if self.rc_path:
            return os.path.abspath(os.path.expanduser(self.rc_path))
        home = self.env.get("HOME") or os.path.expanduser("~")
        return os.path.join(home, RC_FILES.get(self.shell, ".bashrc"))


@dataclass
class Step:
    """One thing to do. ``blocked`` says why it will be skipped whatever the answer."""

    kind: str
    description: str
    params: Dict[str, Any] = field(default_factory=dict)
    diff: str = ""
    codes: Tuple[str, ...] = ()
    commands: Tuple[str, ...] = ()
    blocked: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        params = {k: v for k, v in self.params.items() if k not in ("new",)}
        return {"kind": self.kind, "description": self.description, "params": params, "diff": self.diff,
                "codes": list(self.codes), "commands": list(self.commands), "blocked": self.blocked}


@dataclass
class Plan:
    steps: List[Step] = field(default_factory=list)
    settings: EnvSettings = field(default_factory=EnvSettings)
    notes: List[str] = field(default_factory=list)
    rebuild_op: bool = False  # a finding asked for the op to be rebuilt
    after: Optional[Report] = None  # the rules run on the facts the plan would produce
    caused: List[Finding] = field(default_factory=list)  # errors the plan itself would cause

    def to_dict(self) -> Dict[str, Any]:
        return {"steps": [s.to_dict() for s in self.steps], "settings": self.settings.to_dict(),
                "notes": list(self.notes), "rebuild_op": self.rebuild_op,
                "after": [f.code for f in self.after.findings] if self.after is not None else None,
                "caused": [f.code for f in self.caused]}


def _toolkit_version(facts, cuda_home: str) -> Optional[str]:
    for tk in facts.value("toolkits", []) or []:
        if isinstance(tk, dict) and cuda_home in (tk.get("root"), tk.get("real_root")):
            return str(tk.get("version") or "")
    return None


def choose_fix(finding: Finding, facts) -> Optional[Fix]:
    """The fix to apply for a finding: the first one with an action envdoctor knows.

    Among several set_env alternatives, prefer the toolkit whose version matches
    the CUDA version torch was built for (a different toolkit compiles
    extensions that torch refuses to load, or fails the version check).
    Installing packages (pip) is chosen only when it is the finding's best fix:
    it is never picked silently as a fallback for a manual first choice.
    """
    actionable = [f for f in finding.fixes if f.action in KNOWN_ACTIONS and not f.follow_up
                  and (f.action != "pip_install" or f is finding.fixes[0])]
    if not actionable:
        return None
    torch_cuda = str((facts.value("torch", {}) or {}).get("cuda") or "")
    env_fixes = [f for f in actionable if f.action == "set_env"]
    if torch_cuda and len(env_fixes) > 1:
        for fix in env_fixes:
            home = str((fix.params.get("vars") or {}).get("CUDA_HOME") or "")
            version = _toolkit_version(facts, home)
            if version and version.split(".")[:2] == torch_cuda.split(".")[:2]:
                return fix
    return actionable[0]


def _ordered(findings: Sequence[Finding]) -> List[Finding]:
    # The most severe finding wins a conflict; the report's order breaks ties.
    return sorted(findings, key=lambda f: -f.severity.rank)


def _rc_step(options: Options, env_settings: EnvSettings, codes: Tuple[str, ...]) -> Step:
    path = options.rc_file()
    block = settings_mod.render_block(env_settings, options.shell)
    description = f"write the environment block into {path}"
    try:
        old = read_optional(path)
        new = rcfile.apply_block(old or b"", block)
    except (FixError, rcfile.RcFileError) as exc:
        # Asked for but impossible: the step is kept so that it reports "failed" with the reason.
        return Step("rc", description, {"path": path, "error": str(exc)}, codes=codes, blocked=str(exc))
    params = {"path": path, "old_sha": sha256(old), "new": new, "shell": options.shell}
    if new == (old or b""):
        return Step("rc", f"{path} already holds this block", params, codes=codes,
                    blocked="already up to date; nothing to change")
    return Step("rc", description, params,
                diff=sources.unified_diff(path, old or b"", new), codes=codes)


def _ci_step(options: Options, env_settings: EnvSettings, codes: Tuple[str, ...]) -> Step:
    env_file, path_file = options.env.get("GITHUB_ENV"), options.env.get("GITHUB_PATH")
    env_lines, path_lines = settings_mod.ci_lines(env_settings, options.env)
    step = Step("ci_env", "append the environment to $GITHUB_ENV / $GITHUB_PATH",
                {"env_file": env_file, "path_file": path_file, "env_lines": env_lines, "path_lines": path_lines},
                diff="".join(f"+{line}\n" for line in env_lines + path_lines), codes=codes)
    if not env_file or not path_file:
        step.blocked = "GITHUB_ENV / GITHUB_PATH are not set: not running in GitHub Actions"
        step.params["error"] = options.write_ci_env  # asked for explicitly: a failure, not a skip
    return step


def _quarantine_steps(paths: Sequence[str], codes: Tuple[str, ...]) -> List[Step]:
    steps = []
    for path in paths:
        step = Step("quarantine", f"move stale build output {path} to the quarantine (restorable)",
                    {"path": path}, codes=codes)
        step.blocked = why_not_build_output(path)
        steps.append(step)
    return steps


def _patch_steps(paths: Sequence[str], codes: Tuple[str, ...]) -> List[Step]:
    steps = []
    for path in paths:
        files = list(sources.iter_source_files(path)) if os.path.isdir(path) else [path]
        for name in files:
            old = read_optional(name)
            if old is None:
                steps.append(Step("patch", f"patch {name}", {"path": name}, codes=codes, blocked="file not found"))
                continue
            new = sources.patch_bytes(old)
            if new != old:
                steps.append(Step("patch", f"port {name} to the current torch C++ API",
                                  {"path": name, "old_sha": sha256(old), "new": new},
                                  diff=sources.unified_diff(name, old, new), codes=codes))
    return steps


MAX_ROUNDS = 16  # each round takes one fix and re-diagnoses; a plan never needs more


def _torch_build(fix: Fix) -> Optional[Tuple[str, str, Tuple[str, ...]]]:
    """(release, CUDA, argv) a pip_install fix installs, when it installs torch."""
    release, cuda = fix.params.get("torch"), fix.params.get("cuda")
    return (str(release), str(cuda), tuple(fix.params.get("argv") or ())) if release and cuda else None


def _projected_report(report: Report, settings: EnvSettings, torch_build) -> Report:
    from envdoctor import engine

    build = (torch_build[0], torch_build[1]) if torch_build else None
    argv = list(torch_build[2]) if torch_build else None
    return engine.diagnose(project.project(report.facts, settings, build, argv))


def _choose(report: Report, options: Options) -> Tuple[List[Tuple[Finding, Fix]], EnvSettings, List[str],
                                                       Optional[Tuple[str, str]], Report, List[str]]:
    """Take fixes one at a time, most severe first, re-running the rules on the facts the
    plan so far would produce: a fix is chosen for the machine as it will be, not as it was
    (after CUDA_HOME moves to CUDA 13.0, nvcc 11.8's compiler pin is no longer needed)."""
    settings, chosen, env_codes, notes = EnvSettings(), [], [], []
    if options.arch_list:
        settings.vars["TORCH_CUDA_ARCH_LIST"] = options.arch_list
        settings.sources["TORCH_CUDA_ARCH_LIST"] = "--arch"
    torch_build = None
    handled = set()
    current = _projected_report(report, settings, torch_build) if options.arch_list else report
    for _ in range(MAX_ROUNDS):
        changed = False
        for finding in _ordered(_open_findings(report, current)):
            if finding.code in handled or not options.selects(finding.code):
                continue
            fix = choose_fix(finding, current.facts)
            if fix is None:
                continue
            handled.add(finding.code)
            position = len(chosen)
            chosen.append((finding, fix))
            # follow-ups (quarantine, then rebuild) come with the chosen fix
            chosen.extend((finding, f) for f in finding.fixes if f.follow_up and f.action in KNOWN_ACTIONS)
            if fix.action == "set_env":
                conflicts = len(settings.conflicts)
                try:
                    settings_mod.merge(finding.code, fix.params, settings)
                    env_codes.append(finding.code)
                    changed = True
                except SettingsError as exc:
                    notes.append(f"{finding.code}: not applied: {exc}")
                if len(settings.conflicts) > conflicts or finding.code not in env_codes:
                    del chosen[position:]  # not (fully) applied: this plan does not address the finding
            elif fix.action == "pip_install" and options.everything and options.yes and _torch_build(fix):
                torch_build = _torch_build(fix)
                changed = True
            if changed:
                break  # the machine the next fix is chosen for has changed
        if not changed:
            break
        current = _projected_report(report, settings, torch_build)
    return chosen, settings, env_codes, torch_build, current, notes


def _open_findings(report: Report, current: Report) -> List[Finding]:
    """The findings still to fix on the projected machine: what the rules find there, plus the
    report's findings whose rule could not judge the projection (its facts are not in the report,
    e.g. a report pasted from an issue, or a finding no rule here produces)."""
    if current is report:
        return list(report.findings)
    judged = {r.rule for r in current.results if r.status in ("passed", "fired")}
    seen = {f.code for f in current.findings}
    return list(current.findings) + [f for f in report.findings if f.code not in judged and f.code not in seen]


def _manual_step(finding: Finding) -> Step:
    first = finding.fixes[0]
    commands = tuple(first.commands)
    blocked = ("envdoctor cannot do this itself; run the commands shown" if commands
               else "envdoctor cannot do this itself; do what the step says")
    return Step("manual", f"{finding.code}: {first.summary}", codes=(finding.code,), commands=commands,
                blocked=blocked)


def plan_fixes(report: Report, options: Options) -> Plan:
    """Turn a report (and the user's explicit requests) into an ordered, coherent plan.

    The plan is checked by running the rules on the facts it would produce: an error
    the plan itself causes (a code the report did not have) refuses the plan.
    """
    from envdoctor.fix import projects  # it builds on this module's Step and Options
    plan = Plan()
    chosen, plan.settings, env_codes, torch_build, after, notes = _choose(report, options)
    plan.notes.extend(notes)
    plan.notes.extend(f"conflict: {c}" for c in plan.settings.conflicts)
    plan.after = after
    before_codes = {f.code for f in report.findings}
    taken = {finding.code for finding, _ in chosen}
    # An error the plan causes and leaves (no step of the plan addresses it) refuses the plan.
    plan.caused = [f for f in after.findings if f.severity == Severity.ERROR and f.code not in before_codes
                   and f.code not in taken]
    if options.everything:
        for finding in _ordered(_open_findings(report, after)):
            if finding.code not in taken and finding.fixes and options.selects(finding.code) \
                    and choose_fix(finding, after.facts) is None:
                plan.steps.append(_manual_step(finding))
    if not plan.settings.is_empty():
        if options.write_rc or options.everything:
            plan.steps.append(_rc_step(options, plan.settings, tuple(env_codes)))
        if options.write_ci_env or (options.everything and options.env.get("GITHUB_ENV")):
            plan.steps.append(_ci_step(options, plan.settings, tuple(env_codes)))
    elif options.write_rc or options.write_ci_env:
        plan.notes.append("no finding calls for environment changes; the rc file is left alone")
    for finding, fix in chosen:
        code = (finding.code,)
        if fix.action == "pip_install" and options.everything:
            argv = [str(a) for a in fix.params.get("argv", [])]
            step = Step("pip", f"{finding.code}: {fix.summary}", {"argv": argv}, codes=code,
                        commands=tuple(fix.commands))
            if not argv or argv[0] != "pip" or "sudo" in argv:
                step.blocked = f"not a plain 'pip ...' command: {argv!r}"
            elif not options.yes:
                step.blocked = "envdoctor runs pip only with --yes; or paste the command shown"
            plan.steps.append(step)
        elif fix.action == "quarantine" and (options.quarantine_stale or options.everything):
            plan.steps.extend(_quarantine_steps([str(p) for p in fix.params.get("paths", [])], code))
        elif fix.action == "patch_sources" and options.everything:
            plan.steps.extend(_patch_steps([str(p) for p in fix.params.get("files", [])], code))
        elif fix.action == "rebuild_extension" and options.everything:
            plan.steps.append(projects.finding_rebuild_step(str(fix.params.get("path", "")), code, report,
                                                            options.env))
        elif fix.action == "rebuild_op":
            plan.rebuild_op = True
    plan.steps.extend(_patch_steps([os.path.abspath(p) for p in options.patch_paths], ()))
    plan.steps.extend(projects.plan_steps(report, options, _patch_steps))  # the user's own extensions
    _dedupe(plan)
    return plan


def _dedupe(plan: Plan) -> None:
    """One step per file or directory, even when several findings name it."""
    seen = set()
    kept = []
    for step in plan.steps:
        target = step.params.get("path") or (tuple(step.params["argv"]) if step.params.get("argv") else None)
        key = (step.kind, target) if target else None
        if key is not None and key in seen:
            continue
        if key is not None:
            seen.add(key)
        kept.append(step)
    plan.steps = sorted(kept, key=lambda s: KIND_ORDER.index(s.kind))
