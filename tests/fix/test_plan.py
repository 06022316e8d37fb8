"""Planner and helpers on hand-made reports and fake runners (no builds)."""
from __future__ import annotations

import os
import sys

from envdoctor.fix import rebuild, verify
from envdoctor.fix.apply import Context, apply_plan
from envdoctor.fix.journal import Journal
from envdoctor.fix.plan import Options, choose_fix, plan_fixes
from envdoctor.fix.settings import EnvSettings, apply_to_env
from envdoctor.model import Finding, Fix, Severity
from envdoctor.runner import FakeRunner, Runner
from tests.fix import reports
from tests.fix.ext_fixtures import write_old_msda_ops, write_stale_build


def _two_toolkit_finding():
    fixes = tuple(
        Fix(summary=f"use {root}", action="set_env", params={"vars": {"CUDA_HOME": root}})
        for root in ("/usr/local/cuda-12.4", "/usr/local/cuda-13.0"))
    return Finding(code="ED301", severity=Severity.ERROR, area="toolkit", title="t", message="m", fixes=fixes)


def test_choose_fix_prefers_the_toolkit_matching_torch():
    rep = reports.report([_two_toolkit_finding()], toolkits=[
        {"root": "/usr/local/cuda-12.4", "real_root": "/usr/local/cuda-12.4", "version": "12.4"},
        {"root": "/usr/local/cuda-13.0", "real_root": "/usr/local/cuda-13.0", "version": "13.0"}])
    assert choose_fix(rep.findings[0], rep.facts).params["vars"]["CUDA_HOME"] == "/usr/local/cuda-13.0"
    rep12 = reports.report([_two_toolkit_finding()], toolkits=rep.facts.value("toolkits"), torch_cuda="12.4")
    assert choose_fix(rep12.findings[0], rep12.facts).params["vars"]["CUDA_HOME"] == "/usr/local/cuda-12.4"


def test_everything_mode_orders_steps(tmp_path):
    project = write_old_msda_ops(str(tmp_path / "ops"))
    build = write_stale_build(project)
    rep = reports.report([
        reports.finding("ED690", "rebuild_extension", {"path": project}),
        reports.finding("ED604", "patch_sources", {"files": [os.path.join(project, "src", "cpu",
                                                                          "ms_deform_attn_cpu.cpp")]}),
        reports.finding("ED601", "quarantine", {"paths": [build]}),
        reports.cuda_home_finding(),
        reports.manual_finding(),
    ])
    plan = plan_fixes(rep, Options(env={"HOME": str(tmp_path)}))
    assert [s.kind for s in plan.steps] == ["rc", "quarantine", "patch", "rebuild_extension", "manual"]
    only_rc = plan_fixes(rep, Options(write_rc=True, env={"HOME": str(tmp_path)}))
    assert [s.kind for s in only_rc.steps] == ["rc"]


def test_pip_with_sudo_or_not_pip_is_blocked(tmp_path):
    rep = reports.report([reports.finding("ED201", "pip_install", {"argv": ["sudo", "pip", "install", "x"]})])
    plan = plan_fixes(rep, Options(yes=True, env={"HOME": str(tmp_path)}))
    assert "not a plain 'pip ...' command" in plan.steps[0].blocked


def test_same_path_from_two_findings_is_one_step(tmp_path):
    project = write_old_msda_ops(str(tmp_path / "ops"))
    build = write_stale_build(project)
    rep = reports.report([reports.finding("ED601", "quarantine", {"paths": [build]}),
                          reports.finding("ED602", "quarantine", {"paths": [build]})])
    assert len(plan_fixes(rep, Options(quarantine_stale=True, env={})).steps) == 1


def test_crashing_step_is_failed_and_the_rest_still_runs(tmp_path, monkeypatch):
    from envdoctor.fix import apply as apply_mod

    project = write_old_msda_ops(str(tmp_path / "ops"))
    build = write_stale_build(project)
    rep = reports.report([reports.cuda_home_finding(), reports.finding("ED601", "quarantine", {"paths": [build]})])
    env = {"HOME": str(tmp_path)}
    plan = plan_fixes(rep, Options(env=env))

    def boom(step, plan, ctx):
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(apply_mod.EXECUTORS, "rc", boom)
    results = apply_plan(plan, lambda step: True, Context(env=env, runner=FakeRunner(), journal=Journal(env)))
    assert [(r.status, r.reason) for r in results] == [
        ("failed", "internal error: RuntimeError: disk on fire"), ("done", results[1].reason)]
    assert not os.path.exists(build)


def test_build_env_sets_archs_and_force_cuda_without_a_gpu(tmp_path):
    fake_cuda = tmp_path / "cuda"
    (fake_cuda / "bin").mkdir(parents=True)
    nvcc = fake_cuda / "bin" / "nvcc"
    nvcc.write_text("#!/bin/sh\n")
    nvcc.chmod(0o755)
    runner = FakeRunner({sys.executable: "7.5 8.0 8.6\n"})
    env = rebuild.build_env({"CUDA_HOME": str(fake_cuda)}, runner)
    assert env["TORCH_CUDA_ARCH_LIST"] == "7.5;8.0;8.6+PTX" and env["FORCE_CUDA"] == "1" and int(env["MAX_JOBS"]) >= 1
    kept = rebuild.build_env({"CUDA_HOME": str(fake_cuda), "TORCH_CUDA_ARCH_LIST": "9.0", "MAX_JOBS": "1"}, runner)
    assert kept["TORCH_CUDA_ARCH_LIST"] == "9.0" and kept["MAX_JOBS"] == "1"
    no_toolkit = rebuild.build_env({"CUDA_HOME": str(tmp_path / "missing")}, runner)
    assert "TORCH_CUDA_ARCH_LIST" not in no_toolkit and "FORCE_CUDA" not in no_toolkit


def test_build_env_real_torch_arch_list():
    # The probe really asks this torch (no GPU here): its arch list, newest with +PTX.
    archs = rebuild.default_arch_list(Runner(), dict(os.environ))
    assert archs and archs.endswith("+PTX") and all(a.replace("+PTX", "").replace(".", "").isdigit()
                                                    for a in archs.split(";"))


def test_rebuild_op_reads_the_build_json():
    out = '{"schema_version": 1, "build": {"ok": true, "variant": "cuda", "path": "/x.so", "seconds": 3.0}}'
    runner = FakeRunner({sys.executable: (0, out)})
    assert rebuild.rebuild_op({}, runner)["variant"] == "cuda"
    missing = FakeRunner({sys.executable: (2, "")})
    result = rebuild.rebuild_op({}, missing)
    assert result["ok"] is False and result["unavailable"] is True


def test_fresh_shell_env_matches_the_python_model(tmp_path):
    settings = EnvSettings(vars={"CUDA_HOME": "/usr/local/cuda-13.0"}, path_prepend=["/usr/local/cuda-13.0/bin"],
                           ld_library_path_prepend=["/usr/local/cuda-13.0/lib64"])
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "en_US.UTF-8"}
    fresh = verify.shell_env(settings, "bash", env, Runner())
    model = apply_to_env(settings, env)
    for name in ("CUDA_HOME", "PATH", "LD_LIBRARY_PATH", "LANG"):
        assert fresh[name] == model[name]
    assert "LC_ALL" not in fresh


def test_summary_before_after():
    summary = verify.summarize([{"code": "ED301"}, {"code": "ED101"}],
                               {"available": True, "findings": [{"code": "ED101"}, {"code": "ED999"}]})
    assert summary["resolved"] == ["ED301"] and summary["remaining"] == ["ED101"] and summary["new"] == ["ED999"]
