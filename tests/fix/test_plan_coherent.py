"""Plans are judged by running the rules on the machine they would produce.

Each case starts from the facts of a real machine state (the healthy machine of the rule cases,
changed the way the state changes it) and checks that the plan fixes what it should, pins
nothing it does not need, and never leaves an error it causes.
"""
from __future__ import annotations

from envdoctor.engine import diagnose
from envdoctor.fix import project
from envdoctor.fix.plan import Options, plan_fixes
from envdoctor.fix.settings import EnvSettings
from envdoctor.model import Finding, Fix, Severity
from tests.unit.test_rules_cases import CUDA13, DISTRO118, DISTRO_CUDART, MISSING, make_facts

NO_GPU = {"torch:cuda_available": False, "torch:device_count": 0, "driver.present": False, "gpus": MISSING,
          "driver.version": MISSING, "driver.cuda_max": MISSING, "driver.kernel_module_version": MISSING,
          "driver.smi": MISSING}
# Debian's CUDA 11.8 package installed, /usr/bin first on PATH, CUDA_HOME unset, torch cu130, no GPU:
# torch's builder takes CUDA_HOME=/usr and nvcc 11.8.
DISTRO_FIRST = dict(NO_GPU, **{
    "toolkits": [dict(DISTRO118), dict(CUDA13)], "env.vars": {}, "nvcc.path": "/usr/bin/nvcc",
    "nvcc.real_path": "/usr/lib/nvidia-cuda-toolkit/bin/nvcc", "nvcc.toolkit": "/usr", "nvcc.version": "11.8.89",
    "torch:cpp_ext_cuda_home": "/usr", "torch:cpp_ext_cuda_home_source": "which nvcc",
    "cuda.linker_cudart": dict(DISTRO_CUDART),
    "compiler.all": [{"name": "gcc", "path": "/usr/bin/gcc", "version": "12.2.0"},
                     {"name": "gcc-11", "path": "/usr/bin/gcc-11", "version": "11.3.0"},
                     {"name": "g++-11", "path": "/usr/bin/g++-11", "version": "11.3.0"}],
    "builds": [], "ext_sources": [], "detectron2": None})


def plan_for(changes, **options):
    report = diagnose(make_facts(changes))
    return report, plan_fixes(report, Options(env={"HOME": "/nonexistent-home"}, **options))


def test_distribution_toolkit_first_on_path_moves_builds_to_13_and_pins_no_compiler():
    report, plan = plan_for(DISTRO_FIRST)
    codes = {f.code: f for f in report.findings}
    assert "ED204" in codes and codes["ED204"].severity == Severity.ERROR
    assert "11.8.89" in codes["ED204"].message and "13.0" in codes["ED204"].message
    assert "cannot find -lcudart" not in " ".join(f.message for f in report.findings)
    assert "ED401" not in codes  # nvcc 11.8 runs its own gcc-11
    variables = plan.settings.vars
    assert variables["CUDA_HOME"] == "/usr/local/cuda-13.0"
    assert plan.settings.path_prepend == ["/usr/local/cuda-13.0/bin"]
    assert not {"CC", "CXX", "NVCC_CCBIN"} & set(variables)  # 13.0 takes gcc 12: nothing to pin
    # With no GPU, healthy needs an arch list; it is chosen for the nvcc the plan moves to (13.0 has no 7.0).
    assert variables["TORCH_CUDA_ARCH_LIST"] == "7.5;8.0;8.6;9.0;10.0;12.0+PTX"
    assert plan.caused == [] and [f.code for f in plan.after.findings if f.severity == Severity.ERROR] == []


def test_the_mixed_runtime_is_named_and_fixed():
    # Distribution toolkit merely installed; the wrapper in /usr/local/bin first: CUDA_HOME=/usr/local.
    report, plan = plan_for(dict(DISTRO_FIRST, **{"nvcc.path": "/usr/local/bin/nvcc", "nvcc.toolkit":
                                                  "/usr/local/cuda-13.0", "nvcc.version": "13.0.88",
                                                  "torch:cpp_ext_cuda_home": "/usr/local"}))
    codes = {f.code: f for f in report.findings}
    assert "libcudart.so" in codes["ED207"].message and "11.8.89" in codes["ED207"].message
    assert "ED207" in codes["ED203"].message  # ED203 says what linking does, instead of a wrong -lcudart claim
    assert plan.settings.vars["CUDA_HOME"] == "/usr/local/cuda-13.0"
    assert "ED207" not in {f.code for f in plan.after.findings}


def test_driver_470_with_torch_cu130_plan_is_one_coherent_world():
    old_driver = {"driver.version": "470.82.01", "driver.cuda_max": "11.4",
                  "driver.kernel_module_version": "470.82.01", "env.vars": {},
                  "torch:cpp_ext_cuda_home": "/usr/local", "torch:cpp_ext_cuda_home_source": "which nvcc",
                  "nvcc.path": "/usr/local/bin/nvcc"}
    report, plan = plan_for(old_driver, yes=True)
    pip = [s for s in plan.steps if s.kind == "pip" and "ED101" in s.codes]
    assert len(pip) == 1 and "cu118" in " ".join(pip[0].params["argv"])
    # detectron2 built for the old torch is reinstalled against the new one (another command, not a duplicate)
    assert len({tuple(s.params["argv"]) for s in plan.steps if s.kind == "pip"}) == \
        len([s for s in plan.steps if s.kind == "pip"])
    assert "ED304" not in {f.code for f in plan.after.findings}  # torchvision comes with torch
    # torch moves to CUDA 11.8: CUDA_HOME must not be pointed at the 13.0 toolkit (a major mismatch);
    # no 11.x nvcc is installed, so that step is manual, with its commands.
    assert plan.settings.vars.get("CUDA_HOME") != "/usr/local/cuda-13.0"
    manual = {s.codes[0]: s for s in plan.steps if s.kind == "manual"}
    assert manual["ED203"].commands and "cuda-11.8" in " ".join(manual["ED203"].commands)
    assert all(s.commands or "commands shown" not in s.blocked for s in manual.values())
    assert plan.caused == []
    # Without --yes pip is not run: the plan stays with this torch and its 13.0 toolkit.
    _, plan = plan_for(old_driver)
    assert plan.settings.vars.get("CUDA_HOME") == "/usr/local/cuda-13.0"
    assert [s.blocked for s in plan.steps if s.kind == "pip"][0].startswith("envdoctor runs pip only with --yes")


def test_a_plan_that_causes_an_error_is_refused():
    # A (hand-made) fix that points CUDA_HOME at a toolkit of another CUDA major than torch's.
    cuda12 = dict(CUDA13, root="/usr/local/cuda-12.8", real_root="/usr/local/cuda-12.8", aliases=[],
                  version="12.8.93")
    report = diagnose(make_facts({"toolkits": [dict(CUDA13), cuda12]}))
    assert "ED204" not in {f.code for f in report.findings}
    bad = Fix(summary="s", action="set_env", params={"vars": {"CUDA_HOME": "/usr/local/cuda-12.8"},
                                                      "path_prepend": ["/usr/local/cuda-12.8/bin"]})
    report.findings.append(Finding(code="ED999", severity=Severity.WARNING, area="toolkit", title="t",
                                   message="m", fixes=(bad,)))
    plan = plan_fixes(report, Options(env={"HOME": "/nonexistent-home"}))
    assert "ED204" in [f.code for f in plan.caused]


def test_manual_step_without_commands_does_not_point_at_missing_commands():
    report = diagnose(make_facts())
    report.findings.append(Finding(code="ED998", severity=Severity.ERROR, area="driver", title="t", message="m",
                                   fixes=(Fix(summary="Reboot after the driver update"),)))
    plan = plan_fixes(report, Options(env={"HOME": "/nonexistent-home"}))
    (step,) = [s for s in plan.steps if s.kind == "manual"]
    assert "commands shown" not in step.blocked and "do what the step says" in step.blocked


def test_arch_option_replaces_torchs_list():
    _, plan = plan_for(DISTRO_FIRST, arch_list="8.6")
    assert plan.settings.vars["TORCH_CUDA_ARCH_LIST"] == "8.6"
    assert "ED508" not in {f.code for f in plan.after.findings}


def test_projection_follows_path_and_cpath():
    facts = make_facts(DISTRO_FIRST)
    settings = EnvSettings(vars={"CUDA_HOME": "/usr/local/cuda-13.0", "CPATH": "/x/include"},
                           path_prepend=["/usr/local/cuda-13.0/bin"], unset=["CC"])
    projected = project.project(facts, settings)
    assert projected.value("nvcc.path") == "/usr/local/cuda-13.0/bin/nvcc"
    assert projected.value("nvcc.version") == "13.0.88"
    assert projected.value("torch")["cpp_ext_cuda_home"] == "/usr/local/cuda-13.0"
    assert projected.value("env.vars")["CPATH"] == "/x/include"
    installed = project.project(facts, EnvSettings(), torch_build=("2.7.1", "11.8"))
    assert installed.value("torch")["cuda"] == "11.8" and installed.value("torch")["version"] == "2.7.1+cu118"
