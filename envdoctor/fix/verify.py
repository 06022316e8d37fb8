"""Prove the repair: check again in a fresh environment, rebuild the op, smoke-train.

"Fresh" means a new ``bash`` that sources ONLY the envdoctor block (written to
a temp file): the user's rc file may ``return`` early for non-interactive
shells, and this process's own environment cannot change (a child never
changes its parent's). The block file and the program are passed to bash as
positional arguments, never pasted into the command string.
"""
from __future__ import annotations

import json
import sys
import tempfile
from typing import Any, Dict, List, Mapping, Optional

from envdoctor.fix import probe_build, rebuild, settings as settings_mod
from envdoctor.fix.settings import EnvSettings
from envdoctor.model import Report

CHECK_TIMEOUT = 600.0
SMOKE_TIMEOUT = 3600.0
_SOURCE_AND_RUN = 'source "$1" >/dev/null 2>&1; shift; exec "$@"'


def shell_env(settings: EnvSettings, shell: str, env: Mapping[str, str], runner) -> Dict[str, str]:
    """The environment a new shell gets after sourcing the block (bash really runs it)."""
    if settings.is_empty():
        return dict(env)
    if shell == "fish":  # fish is rarely installed where tests run: same semantics, in Python
        return settings_mod.apply_to_env(settings, env)
    block = settings_mod.render_block(settings, "bash")
    with tempfile.NamedTemporaryFile("wb", suffix=".sh", prefix="envdoctor-block-") as fh:
        fh.write(block)
        fh.flush()
        result = runner.run(["bash", "-c", _SOURCE_AND_RUN, "envdoctor-verify", fh.name, "env", "-0"],
                            timeout=60, env=dict(env))
    if not result.ok:
        return settings_mod.apply_to_env(settings, env)
    parsed = {}
    for item in result.stdout.split("\0"):
        name, sep, value = item.partition("=")
        if sep and name:
            parsed[name] = value
    # The runner forces the C locale on children; keep the user's own locale settings.
    for name in ("LC_ALL", "LANG"):
        if name in env:
            parsed[name] = env[name]
        else:
            parsed.pop(name, None)
    return parsed


def _json_of(result) -> Optional[Dict[str, Any]]:
    try:
        data = json.loads(result.stdout)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def run_check(env: Mapping[str, str], runner, paths: List[str]) -> Dict[str, Any]:
    argv = [sys.executable, "-m", "envdoctor", "check", "--format", "json", "--fail-on", "never"]
    for path in paths:
        argv += ["--path", path]
    result = runner.run(argv, timeout=CHECK_TIMEOUT, env=dict(env))
    data = _json_of(result)
    if data is None or "findings" not in data:
        return {"available": False, "error": f"envdoctor check gave no JSON report ({result.describe_failure()})"}
    findings = [{"code": f.get("code"), "severity": f.get("severity"), "title": f.get("title", "")}
                for f in data.get("findings", [])]
    return {"available": True, "findings": findings}


def run_smoke(env: Mapping[str, str], runner, steps: int) -> Dict[str, Any]:
    argv = [sys.executable, "-m", "envdoctor", "smoke", "--format", "json", "--steps", str(steps)]
    result = runner.run(argv, timeout=SMOKE_TIMEOUT, env=dict(env))
    data = _json_of(result)
    if data is None:
        return {"ok": False, "unavailable": True,
                "error": f"envdoctor smoke gave no JSON report ({result.describe_failure()})"}
    data.setdefault("ok", result.ok)
    return data


def findings_of(report: Report) -> List[Dict[str, Any]]:
    return [{"code": f.code, "severity": f.severity.value, "title": f.title} for f in report.findings]


def summarize(before: List[Dict[str, Any]], after: Dict[str, Any]) -> Dict[str, Any]:
    """Which finding codes went away, stayed, or appeared."""
    before_codes = [f["code"] for f in before]
    if not after.get("available"):
        return {"before": before_codes, "after": None, "resolved": [], "remaining": [], "new": []}
    after_codes = [f["code"] for f in after["findings"]]
    return {"before": before_codes, "after": after_codes,
            "resolved": [c for c in before_codes if c not in after_codes],
            "remaining": [c for c in after_codes if c in before_codes],
            "new": [c for c in after_codes if c not in before_codes]}


def verify(report: Report, settings: EnvSettings, shell: str, env: Mapping[str, str], runner, *,
           paths: List[str], rebuild_op: bool = True, smoke_steps: Optional[int] = 5,
           prove_build: bool = True) -> Dict[str, Any]:
    """Everything after applying; ``healthy`` is the verdict the exit code reports."""
    fresh = shell_env(settings, shell, env, runner)
    after = run_check(fresh, runner, paths)
    out: Dict[str, Any] = {"check": after, "summary": summarize(findings_of(report), after)}
    healthy = after.get("available", False) and not any(
        f.get("severity") == "error" for f in after.get("findings", []))
    if not after.get("available"):
        out["reasons"] = [after["error"]]
    torch = report.facts.value("torch") or {}
    if prove_build and torch.get("cuda"):
        # The proof that a CUDAExtension builds in the new shell: a one-kernel extension built
        # with exactly that shell's environment (nothing filled in), cached by what decides a build.
        probe = probe_build.run(fresh, runner, str(torch.get("version")))
        out["extension_build"] = probe
        healthy = healthy and bool(probe.get("ok"))
    if rebuild_op:
        cuda = bool(torch.get("cuda"))
        op = rebuild.rebuild_op(dict(fresh), runner, extra_args=["--cuda"] if cuda else [])
        out["build"] = op
        healthy = healthy and bool(op.get("ok"))
    if smoke_steps:
        smoke = run_smoke(fresh, runner, smoke_steps)
        out["smoke"] = smoke
        if not smoke.get("unavailable"):  # the smoke-train counts only where it exists
            healthy = healthy and bool(smoke.get("ok"))
    out["healthy"] = bool(healthy)
    out["env"] = {k: fresh.get(k) for k in ("CUDA_HOME", "PATH", "LD_LIBRARY_PATH", "TORCH_CUDA_ARCH_LIST")
                  if fresh.get(k) is not None}
    return out

