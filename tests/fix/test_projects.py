"""Finding the user's extensions, planning their port/rebuild, and proving (or failing) a rebuild,
on source trees the tests write themselves and with scripted build/import results."""
from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from envdoctor.fix import projects, rebuild, undo
from envdoctor.fix.fsops import FixError
from envdoctor.fix.journal import Journal
from envdoctor.fix.plan import Options, plan_fixes
from envdoctor.model import Fact, FactSet, Report
from envdoctor.probes import _ext_device, _ext_projects, builds
from envdoctor.rules.builds import shell_path
from envdoctor.runner import CommandResult, FakeRunner
from tests.fix.ext_fixtures import MODULE, write_current_msda_ops, write_egg, write_project

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "elf")
KERNEL_SO = os.path.join(FIXTURES, "kernel_sm90_ptx120.so")
CPU_SO = os.path.join(FIXTURES, "no_device_code.so")
SO_NAME = f"{MODULE}.cpython-311-x86_64-linux-gnu.so"
# What nvcc 13.0 printed for an undefined identifier planted in a .cu (recorded from a real build).
NVCC_ERROR_LOG = """\
running build_ext
[1/2] /usr/local/cuda-13.0/bin/nvcc --generate-dependencies-with-compile -c {cu} -o {cu}.o
FAILED: {cu}.o
/usr/local/cuda-13.0/bin/nvcc --generate-dependencies-with-compile -c {cu} -o {cu}.o
{cu}(15): error: identifier "planted_undefined_symbol" is undefined
    planted_undefined_symbol(value);
    ^

1 error detected in the compilation of "{cu}".
ninja: build stopped: subcommand failed.
Traceback (most recent call last):
  File "setup.py", line 40, in <module>
RuntimeError: Error compiling objects for extension
"""


def test_elf_device_code_of_a_real_nvcc_library_and_of_a_cpu_one():
    code = _ext_device.device_code(KERNEL_SO)
    assert (code["sm"], code["ptx"], code["error"]) == ([90], [120], None)
    assert _ext_device.covers(code, "9.0") and _ext_device.covers(code, "12.0") and not _ext_device.covers(code, "8.6")
    assert _ext_device.device_code(CPU_SO) == {"sm": [], "ptx": [], "archs": [], "error": None}
    assert "not a readable ELF" in _ext_device.device_code(__file__)["error"]


def test_project_found_once_with_module_calls_install_mode_and_silent_fallback(tmp_path):
    root, ops = write_project(str(tmp_path))
    # a second extension nested in the project (its own setup.py): found as its own root, once
    write_current_msda_ops(os.path.join(ops, "third_party", "other"))
    found = _ext_projects.describe([root, root])
    roots = sorted(p["root"] for p in found)
    assert roots == sorted([ops, os.path.join(ops, "third_party", "other")])
    item = next(p for p in found if p["root"] == ops)
    assert item["modules"] == [MODULE] and item["install"] == "environment"
    assert item["make_sh"] == os.path.join(ops, "make.sh")
    uses = item["uses"][MODULE]
    assert uses["calls"] == ["ms_deform_attn_forward"]
    assert uses["wrappers"] == [os.path.join(ops, "functions", "scale_func.py")]
    # the wrapper's own `except ModuleNotFoundError: raise` is not a fallback; the bare except is
    assert uses["fallbacks"] == [{"file": os.path.join(ops, "modules", "scale.py"), "line": 11,
                                  "except": "bare except:", "guards": "ScaleFunction"}]


def test_jit_load_calls_are_found(tmp_path):
    (tmp_path / "jit.py").write_text("from torch.utils.cpp_extension import load\nop = load(name='myop', "
                                     "sources=['op.cu'])\n")
    (tmp_path / "plain.py").write_text("def load(x):\n    return x\n")
    (tmp_path / "mention.py").write_text('HELP = "call torch.utils.cpp_extension.load(name=...)"\n')
    found = _ext_projects.describe([str(tmp_path)])
    assert [(p["kind"], p["modules"], p["line"]) for p in found] == [("jit", ["myop"], 2)]


def test_nested_source_roots_report_each_old_api_use_once(tmp_path):
    outer = write_project(str(tmp_path))[1]
    (tmp_path / "setup.py").write_text("from torch.utils.cpp_extension import CppExtension\n")
    facts = builds.probe_builds(_ctx(str(tmp_path)))
    uses = next(f for f in facts if f.key == "ext_sources").value
    keys = [(u["file"], u["line"], u["api"]) for u in uses]
    assert len(keys) == len(set(keys)) and any(k[0].startswith(outer) for k in keys)


def _ctx(path):
    from envdoctor.probes.base import ProbeContext

    return ProbeContext(runner=FakeRunner(), env={"PATH": "/nonexistent"}, paths=(path,), scan_depth=6, quick=True)


def _report(project_facts, extra=None):
    facts = FactSet()
    facts.add(Fact("ext_projects", project_facts, source="test"))
    facts.add(Fact("torch", {"version": "2.14.1+cu130", "cuda": "13.0"}, source="test"))
    facts.add(Fact("builds", [], source="test"))
    for key, value in (extra or {}).items():
        facts.add(Fact(key, value, source="test"))
    return Report(facts=facts)


def test_plan_ports_then_rebuilds_every_project_that_needs_it(tmp_path):
    root, ops = write_project(str(tmp_path))
    report = _report(_ext_projects.describe([root]))
    plan = plan_fixes(report, Options(env={"HOME": str(tmp_path / "home")}))
    kinds = [s.kind for s in plan.steps]
    assert kinds.count("patch") == 3 and kinds[-1] == "rebuild_extension", kinds
    step = plan.steps[-1]
    assert step.params["path"] == ops and "its sources use torch C++ APIs" in step.description
    spec = step.params["spec"]
    assert spec["install"] == "environment" and spec["run_from"] == root
    assert spec["calls"] == {MODULE: ["ms_deform_attn_forward"]}
    assert spec["fallbacks"][MODULE][0]["except"] == "bare except:"


def test_plan_leaves_a_ported_and_built_project_alone(tmp_path):
    ops = write_current_msda_ops(str(tmp_path / "ops"))
    shutil.copy(KERNEL_SO, os.path.join(ops, SO_NAME))
    plan = plan_fixes(_report(_ext_projects.describe([ops])), Options(env={}))
    assert [s.kind for s in plan.steps] == []
    os.remove(os.path.join(ops, SO_NAME))
    plan = plan_fixes(_report(_ext_projects.describe([ops])), Options(env={}))
    assert [s.description for s in plan.steps] == [
        f"clean, rebuild, build it in place and prove {MODULE} in {ops} ({MODULE} is not built)"]


def test_rebuild_path_includes_the_port_of_that_path(tmp_path):
    ops = write_project(str(tmp_path))[1]
    plan = plan_fixes(_report([]), Options(rebuild_paths=[ops], env={}))
    assert [s.kind for s in plan.steps] == ["patch", "patch", "patch", "rebuild_extension"]
    assert plan.steps[-1].params["spec"]["modules"] == [MODULE]


def test_commands_render_home_paths_so_the_shell_expands_them():
    assert shell_path("~/My Projects/ops") == "\"$HOME\"/'My Projects/ops'"
    assert shell_path("/home/u/p/ops", home="/home/u") == '"$HOME"/p/ops'
    assert shell_path("/opt/p ops") == "'/opt/p ops'"


class _Builder:
    """A scripted `setup.py build_ext --inplace` and import test."""

    def __init__(self, ops, library=None, build_log="", rc=0, proof=None):
        self.ops, self.library, self.build_log, self.rc, self.proof = ops, library, build_log, rc, proof

    def __call__(self, argv):
        if argv[1:3] == ("setup.py", "build_ext"):
            if self.rc == 0 and self.library:
                shutil.copy(self.library, os.path.join(self.ops, SO_NAME))
            return CommandResult(argv, self.rc, self.build_log, "", duration=1.0)
        if argv[1] == "-c":
            proof = self.proof if self.proof is not None else {
                MODULE: {"file": os.path.join(self.ops, SO_NAME), "missing": []}, "__gpu__": False}
            return CommandResult(argv, 0, json.dumps(proof) + "\n")
        raise AssertionError(argv)


def _runner(builder):
    return FakeRunner({sys.executable: builder})


CUDA_ENV = {"CUDA_HOME": "/usr/local/cuda-13.0", "FORCE_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "9.0"}


def test_a_failed_build_shows_the_first_compiler_error_and_keeps_the_log(tmp_path):
    ops = write_current_msda_ops(str(tmp_path / "ops"))
    cu = os.path.join(ops, "src", "cuda", "ms_deform_attn_cuda.cu")
    journal = Journal({"HOME": str(tmp_path / "home")})
    builder = _Builder(ops, build_log=NVCC_ERROR_LOG.format(cu=cu), rc=1)
    with pytest.raises(FixError) as err:
        rebuild.rebuild_extension(ops, CUDA_ENV, _runner(builder), journal, {"modules": [MODULE]})
    text = str(err.value)
    assert f'{cu}(15): error: identifier "planted_undefined_symbol" is undefined' in text
    assert "planted_undefined_symbol(value);" in text  # the offending line follows
    assert text.index("planted_undefined_symbol") < text.index("full log:")
    assert "Traceback" not in text.split("first error:")[1].split("full log:")[0]
    log = text.split("full log: ")[1].strip()
    with open(log, encoding="utf-8") as fh:
        assert "RuntimeError: Error compiling objects" in fh.read()


def test_rebuild_proves_import_calls_and_device_code_then_states_the_implementation(tmp_path, monkeypatch):
    root, ops = write_project(str(tmp_path))
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setattr(rebuild, "site_dir", lambda: str(site))
    spec = projects.spec_of(_ext_projects.describe([root])[0])
    journal = Journal({"HOME": str(tmp_path / "home")})
    info = rebuild.rebuild_extension(ops, CUDA_ENV, _runner(_Builder(ops, KERNEL_SO)), journal, spec)
    assert info["import"]["ok"] and info["device"][os.path.join(ops, SO_NAME)]["sm"] == [90]
    pth = (site / f"envdoctor-{MODULE}.pth").read_text()
    assert pth.startswith(f"import sys; sys.path.insert(0, {ops!r})")
    assert info["runs"][0].startswith(f"{MODULE}: the compiled module runs on a GPU (none is visible here)")
    assert "sm_90" in info["runs"][0] and "ms_deform_attn_forward all exist" in info["runs"][0]
    assert "scale.py:11 (bare except:) catches every failure around ScaleFunction and goes on without it, " \
           "in silence" in info["runs"][1]


@pytest.mark.parametrize("library, proof, words", [
    (CPU_SO, None, "carries no CUDA device code although the build had FORCE_CUDA=1"),
    (KERNEL_SO, {MODULE: {"file": "EGG", "missing": ["ms_deform_attn_forward"]}, "__gpu__": False},
     "lacks ms_deform_attn_forward, which its Python wrapper calls"),
    (KERNEL_SO, {MODULE: {"file": "EGG", "missing": []}, "__gpu__": False}, ".egg/MultiScaleDeformableAttention.py first, not the library just built"),
    (KERNEL_SO, {MODULE: {"error": "ImportError: undefined symbol: _ZN3c10"}}, "fails in a fresh interpreter"),
])
def test_installed_but_broken_states_fail_the_rebuild(tmp_path, monkeypatch, library, proof, words):
    root, ops = write_project(str(tmp_path))
    monkeypatch.setattr(rebuild, "site_dir", lambda: str(tmp_path / "site"))
    if proof and MODULE in proof and proof[MODULE].get("file") == "EGG":
        proof[MODULE]["file"] = os.path.join(write_egg(str(tmp_path / "site")), f"{MODULE}.py")
    spec = projects.spec_of(_ext_projects.describe([root])[0])
    with pytest.raises(FixError) as err:
        rebuild.rebuild_extension(ops, CUDA_ENV, _runner(_Builder(ops, library, proof=proof)),
                                  Journal({"HOME": str(tmp_path / "home")}), spec)
    assert words in str(err.value)


def test_undo_puts_the_old_library_back_after_a_rebuild(tmp_path, monkeypatch):
    """detectron2-like: the module lives in a package; the old CPU-only _C is kept and restored."""
    repo = tmp_path / "detectron2-src"
    (repo / "detectron2").mkdir(parents=True)
    (repo / "setup.py").write_text("from torch.utils.cpp_extension import CUDAExtension\n"
                                   "ext = CUDAExtension('detectron2._C', [])\n")
    old = repo / "detectron2" / "_C.cpython-311-x86_64-linux-gnu.so"
    shutil.copy(CPU_SO, old)
    home = {"HOME": str(tmp_path / "home")}

    def build(argv):
        if argv[1:3] == ("setup.py", "build_ext"):
            shutil.copy(KERNEL_SO, old)
            return CommandResult(argv, 0, "", duration=1.0)
        return CommandResult(argv, 0, json.dumps({"detectron2._C": {"file": str(old), "missing": []}}) + "\n")

    monkeypatch.setenv("HOME", home["HOME"])
    spec = projects.spec_of(projects.describe_path(str(repo), _report([])))
    assert spec["modules"] == ["detectron2._C"]
    info = rebuild.rebuild_extension(str(repo), CUDA_ENV, FakeRunner({sys.executable: build}), Journal(home), spec)
    assert info["quarantined"] == [str(old)] and _ext_device.device_code(str(old))["sm"] == [90]
    outcomes = undo.undo_last_run(home)
    assert [s for s, _ in outcomes] == ["done", "done"], outcomes
    assert _ext_device.device_code(str(old))["sm"] == []  # the old CPU-only _C is back


def test_leftover_copy_in_build_lib_points_the_rebuild_at_the_project():
    from tests.unit.test_rules_cases import FRESH, OPS, findings_of

    leftover = f"{OPS}/build/lib.linux-x86_64-cpython-38/ext.so"
    found = findings_of("ED602", {"builds": [{"path": leftover, "kind": "extension", "owner": "other",
                                              "imports": False, "built_with": dict(FRESH, python="3.8"),
                                              "import_error": "ImportError: wrong Python"}]})
    (finding,) = found
    quarantine, rebuild_fix = finding.fixes
    assert quarantine.params == {"paths": [f"{OPS}/build"]}
    assert rebuild_fix.params == {"path": OPS} and rebuild_fix.commands[0].startswith(f"cd {OPS} && ")


def test_setup_py_gets_the_force_cuda_escape_hatch_only_where_needed():
    from envdoctor.fix import sources

    gpu_only = "import os\nimport torch\nif torch.cuda.is_available() and CUDA_HOME is not None:\n    pass\n"
    patched = sources.patch_setup_text(gpu_only)
    assert '(torch.cuda.is_available() or os.environ.get("FORCE_CUDA") == "1") and CUDA_HOME' in patched
    assert patched.count("\n") == gpu_only.count("\n")
    already = gpu_only.replace("is not None:", "is not None or os.environ.get('FORCE_CUDA'):")
    assert sources.patch_setup_text(already) == already
    assert sources.patch_setup_text(gpu_only.replace("import os\n", "")) == gpu_only.replace("import os\n", "")


def test_failure_meaning_comes_from_the_first_error_not_an_earlier_warning():
    from envdoctor import buildlog

    log = ("UserWarning: CUDA initialization: The NVIDIA driver on your system is too old (found version 12020).\n"
           "Traceback (most recent call last):\n  File \"setup.py\", line 47, in get_extensions\n"
           "NotImplementedError: Cuda is not availabel\n"
           "UserWarning: CUDA initialization: The NVIDIA driver on your system is too old (found version 12020).\n")
    summary = buildlog.summarize_failure(log, "/tmp/x.log")
    assert summary.splitlines()[:2] == ["first error:", "    NotImplementedError: Cuda is not availabel"]
    assert "what it means" not in summary  # torch's "driver too old" warning is not why the build failed


def test_fix_dry_run_plans_the_projects_extensions_end_to_end(tmp_path):
    import subprocess

    from envdoctor.model import SCHEMA_VERSION  # noqa: F401 - the report below is read back by --from

    root, ops = write_project(str(tmp_path / "work"))
    report = _report(_ext_projects.describe([root]), {"detectron2": None})
    saved = tmp_path / "report.json"
    saved.write_text(json.dumps(report.to_dict()))
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=repo, HOME=str(tmp_path / "home"))
    result = subprocess.run([sys.executable, "-m", "envdoctor", "fix", "-n", "--from", str(saved)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line[:1].isdigit()]
    assert lines == [
        f"1. port {ops}/src/ms_deform_attn.h to the current torch C++ API",
        f"2. port {ops}/src/cpu/ms_deform_attn_cpu.cpp to the current torch C++ API",
        f"3. port {ops}/src/cuda/ms_deform_attn_cuda.cu to the current torch C++ API",
        f"4. clean, rebuild, install it into the environment and prove {MODULE} in {ops} (its sources use torch "
        "C++ APIs this torch no longer compiles)"]
    assert f"$ cd {ops} && FORCE_CUDA=1 python setup.py build_ext --inplace" in result.stdout


def test_undo_after_a_rebuild_also_restores_the_old_build_dir(tmp_path):
    ops = write_current_msda_ops(str(tmp_path / "ops"))
    old_build = os.path.join(ops, "build")
    os.makedirs(os.path.join(old_build, "temp.linux-x86_64-cpython-311"))
    with open(os.path.join(old_build, "temp.linux-x86_64-cpython-311", "build.ninja"), "w") as fh:
        fh.write("# old\n")
    home = {"HOME": str(tmp_path / "home")}

    def build(argv):
        if argv[1:3] == ("setup.py", "build_ext"):
            os.makedirs(os.path.join(ops, "build", "temp.linux-x86_64-cpython-311"))
            with open(os.path.join(ops, "build", "temp.linux-x86_64-cpython-311", "build.ninja"), "w") as fh:
                fh.write("# new\n")
            shutil.copy(KERNEL_SO, os.path.join(ops, SO_NAME))
            return CommandResult(argv, 0, "", duration=1.0)
        return CommandResult(argv, 0, json.dumps({MODULE: {"file": os.path.join(ops, SO_NAME), "missing": []}}))

    rebuild.rebuild_extension(ops, CUDA_ENV, FakeRunner({sys.executable: build}), Journal(home), {"modules": [MODULE]})
    outcomes = undo.undo_last_run(home)
    assert [s for s, _ in outcomes] == ["done", "done"], outcomes
    with open(os.path.join(old_build, "temp.linux-x86_64-cpython-311", "build.ninja")) as fh:
        assert fh.read() == "# old\n"
    assert not os.path.exists(os.path.join(ops, SO_NAME))


def test_build_env_adds_cpath_for_library_headers_only_the_torch_wheels_ship(tmp_path):
    toolkit, wheel = tmp_path / "cuda-13.0", tmp_path / "nvidia" / "cu13" / "include"
    (toolkit / "bin").mkdir(parents=True)
    (toolkit / "bin" / "nvcc").write_text("#!/bin/sh\n")
    (toolkit / "bin" / "nvcc").chmod(0o755)
    (toolkit / "include").mkdir()
    (toolkit / "include" / "cublas_v2.h").write_text("")
    wheel.mkdir(parents=True)
    for header in ("cublas_v2.h", "cusparse.h", "cusolverDn.h"):
        (wheel / header).write_text("")
    assert rebuild.missing_header_dirs(str(toolkit), [str(wheel)]) == {"cusparse.h": str(wheel),
                                                                      "cusolverDn.h": str(wheel)}
    env = rebuild.build_env({"CUDA_HOME": str(toolkit), "TORCH_CUDA_ARCH_LIST": "9.0", "CPATH": "/mine"},
                            FakeRunner(), gpu_visible=False, header_dirs=[str(wheel)])
    assert env["CPATH"] == os.pathsep.join(["/mine", str(wheel)]) and env["FORCE_CUDA"] == "1"
    assert env["TORCH_CUDA_ARCH_LIST"] == "9.0"  # the user's value is kept
    (toolkit / "include" / "cusparse.h").write_text("")
    (toolkit / "include" / "cusolverDn.h").write_text("")
    complete = rebuild.build_env({"CUDA_HOME": str(toolkit), "TORCH_CUDA_ARCH_LIST": "9.0"}, FakeRunner(),
                                 gpu_visible=False, header_dirs=[str(wheel)])
    assert "CPATH" not in complete


def test_commands_from_a_report_read_back_with_home_paths_expand():
    """A saved report is redacted (home -> ~); rules re-run on it must not write `cd '~/...'`."""
    from tests.unit.test_rules_cases import FRESH, findings_of

    build = "~/My Mask2Former/ops/build"
    (finding,) = findings_of("ED601", {"builds": [{"path": build, "kind": "build_dir", "owner": "mask2former",
                                                   "built_with": dict(FRESH, torch="1.9.0")}]})
    quarantine, rebuild_fix = finding.fixes
    assert quarantine.commands == ("mv -- \"$HOME\"/'My Mask2Former/ops/build' "
                                   "\"$HOME\"/'My Mask2Former/ops/build.stale'",)
    assert rebuild_fix.commands[0].startswith("cd \"$HOME\"/'My Mask2Former/ops' && ")


def test_detectron2_cpu_only_fix_command_names_every_build_variable():
    from tests.unit.test_rules_cases import CU13_WHEEL, CUDA13, D2_CHECKOUT, SITE, findings_of

    (finding,) = findings_of("ED705", {"detectron2": dict(D2_CHECKOUT, c_has_cuda=False),
                                       "toolkits": [dict(CUDA13), dict(CU13_WHEEL)], "gpus": []})
    fix = finding.fixes[0]
    assert fix.action == "rebuild_extension" and fix.params == {"path": "/home/u/detectron2"}
    assert fix.commands == (
        "cd /home/u/detectron2 && FORCE_CUDA=1 CUDA_HOME=/usr/local/cuda-13.0 "
        "TORCH_CUDA_ARCH_LIST='7.5;8.0;8.6;9.0;10.0;12.0+PTX' "
        f'CPATH={SITE}/nvidia/cu13/include"${{CPATH:+:$CPATH}}" python -m pip install --no-build-isolation -e .',)
