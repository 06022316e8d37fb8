"""The NVIDIA HPC SDK layout (tests/fixtures/nvhpc, reconstructed from published sources):
the probe, the build model's verdict with the SDK's compilers first on PATH, and the plan."""
from __future__ import annotations

import os

from envdoctor.engine import diagnose
from envdoctor.fix.plan import Options, plan_fixes
from envdoctor.model import FactSet, Severity
from envdoctor.probes import nvhpc as nvhpc_probe, toolkits
from envdoctor.probes.base import ProbeContext
from envdoctor.rules import _build_model as model
from tests.fixtures import nvhpc
from tests.fixtures.fake_bin import path_with
from tests.unit.test_rules_cases import MISSING, make_facts

NO_GPU = {"torch:cuda_available": False, "torch:device_count": 0, "driver.present": False, "gpus": MISSING,
          "driver.version": MISSING, "driver.cuda_max": MISSING, "driver.kernel_module_version": MISSING,
          "driver.smi": MISSING, "builds": [], "ext_sources": [], "detectron2": None}


def sdk_machine(tmp_path, path_dirs=("compilers/bin", "cuda/bin"), module_loaded=True, env=None):
    """The SDK under a fake root with its nvhpc module loaded the way the module does it."""
    root = str(tmp_path)
    nvhpc.build(root)
    release = nvhpc.release(root)
    modulepath = nvhpc.write_modulefiles(root, os.path.join(root, "modulefiles"))
    variables = {"PATH": path_with(":".join(os.path.join(release, d) for d in path_dirs)),
                 "MODULEPATH": modulepath}
    if module_loaded:
        variables.update(LOADEDMODULES="nvhpc/25.9", _LMFILES_=os.path.join(modulepath, "nvhpc", "25.9"),
                         NVHPC_ROOT=release)
    variables.update(env or {})
    return release, ProbeContext(env=variables, root=root, paths=())


def probed(ctx) -> FactSet:
    return FactSet(toolkits.probe(ctx))


def test_sdk_toolkits_are_found_with_their_cuda_versions_and_math_libs(tmp_path):
    release, ctx = sdk_machine(tmp_path)
    facts = probed(ctx)
    found = {os.path.relpath(t["real_root"], release): t for t in facts.value("toolkits")}
    assert sorted(found) == ["cuda/12.9", "cuda/13.0"]
    default, older = found["cuda/13.0"], found["cuda/12.9"]
    assert (default["kind"], default["version"], older["version"]) == ("nvhpc", "13.0.88", "12.9.86")
    assert default["aliases"] == [os.path.join(release, "cuda")]  # cuda/bin etc. lead to 13.0
    assert default["nvhpc"] == {"release": release, "version": "25.9", "compilers": os.path.join(release, "compilers"),
                                "compilers_lib": os.path.join(release, "compilers/lib"),
                                "cuda_versions": ["12.9", "13.0"], "default_cuda": "13.0"}
    assert default["missing_headers"] == ["cublas_v2.h", "cublasLt.h", "cusparse.h", "cusolverDn.h", "curand.h",
                                         "cufft.h"]
    assert default["lib_include_dir"] == os.path.join(release, "math_libs/13.0/targets/x86_64-linux/include")
    assert older["lib_include_dir"] == os.path.join(release, "math_libs/12.9/targets/x86_64-linux/include")
    # The module offers the SDK's cuda (the default version); loading it makes torch guess compilers/.
    assert default["module"] == {"name": "nvhpc/25.9", "file": os.path.join(ctx.root, "modulefiles/nvhpc/25.9"),
                                 "loaded": True, "replaces": None, "builds_use": os.path.join(release, "compilers")}
    assert facts.value("nvcc.path") == os.path.join(release, "compilers/bin/nvcc")
    assert facts.value("nvcc.toolkit") == os.path.join(release, "cuda/13.0")


def test_sdk_found_at_its_default_prefix_without_any_hint(tmp_path):
    _, ctx = sdk_machine(tmp_path, path_dirs=(), module_loaded=False, env={"MODULEPATH": ""})
    found = probed(ctx).value("toolkits")
    assert [(t["kind"], os.path.basename(t["real_root"]), t["found_via"]) for t in found] == [
        ("nvhpc", "12.9", ["NVIDIA HPC SDK"]), ("nvhpc", "13.0", ["NVIDIA HPC SDK"])]
    assert all(t["module"] is None for t in found)


def test_only_a_release_directory_is_an_sdk(tmp_path):
    os.makedirs(tmp_path / "25.9" / "compilers")
    assert nvhpc_probe.release_of(str(tmp_path / "25.9" / "compilers")) is None  # no cuda/
    os.makedirs(tmp_path / "25.9" / "cuda")
    assert nvhpc_probe.release_of(str(tmp_path / "25.9" / "compilers" / "bin")) == str(tmp_path / "25.9")
    os.makedirs(tmp_path / "cuda-13" / "compilers")
    os.makedirs(tmp_path / "cuda-13" / "cuda")
    assert nvhpc_probe.release_of(str(tmp_path / "cuda-13")) is None  # not <YY.M>
    assert nvhpc_probe.describe(str(tmp_path / "25.9" / "compilers")) is None


def facts_for(ctx, **changes):
    facts = probed(ctx)
    env = ctx.env
    base = dict(NO_GPU, **{key: facts.value(key) for key in ("toolkits", "modules", "nvcc.path", "nvcc.real_path",
                                                              "nvcc.toolkit", "nvcc.version", "cuda.linker_cudart",
                                                              "cuda.system_headers")})
    variables = {k: env[k] for k in ("CUDA_HOME", "CPATH") if k in env}
    home = env.get("CUDA_HOME") or os.path.dirname(os.path.dirname(facts.value("nvcc.path")))
    base.update({"env.vars": variables, "torch:cpp_ext_cuda_home": home,
                 "torch:cpp_ext_cuda_home_source": "CUDA_HOME" if env.get("CUDA_HOME") else "which nvcc"})
    base.update(changes)
    return make_facts(base)


def test_compilers_first_on_path_is_named_and_fixed_to_the_matching_cuda(tmp_path):
    release, ctx = sdk_machine(tmp_path)
    facts = facts_for(ctx)
    prediction = model.predict(facts)
    assert prediction.cuda_home == os.path.join(release, "compilers") and prediction.toolkit is None
    report = diagnose(facts)
    found = {f.code: f for f in report.findings}
    guess = found["ED203"]
    assert guess.severity == Severity.ERROR
    assert guess.message.startswith(
        f"torch.utils.cpp_extension will use CUDA_HOME={release}/compilers (guessed from `which nvcc` = "
        f"{release}/compilers/bin/nvcc, a wrapper or link to {release}/cuda/13.0/bin/nvcc): the compilers directory "
        f"of the NVIDIA HPC SDK 25.9, not a CUDA toolkit. It has no include/cuda_runtime.h (sources that include it "
        f"stop) and no libcudart.so")
    assert f"{release}/compilers/lib has no libcudart.so and the linker finds none elsewhere, so every CUDA " \
           f"extension build fails to link (`cannot find -lcudart`)" in guess.message
    assert f"The real toolkit is {release}/cuda/13.0 (CUDA 13.0.88)" in guess.message
    fix = guess.fixes[0]
    math = f"{release}/math_libs/13.0/targets/x86_64-linux/include"
    assert fix.params == {"vars": {"CUDA_HOME": f"{release}/cuda/13.0", "CPATH": math},
                          "path_prepend": [f"{release}/cuda/13.0/bin"]}
    assert not any(c.startswith("module ") for c in fix.commands)  # nvhpc's module is what put compilers/ first
    plan = plan_fixes(report, Options(env={"HOME": "/nonexistent-home"}))
    assert plan.settings.vars["CUDA_HOME"] == f"{release}/cuda/13.0" and plan.settings.vars["CPATH"] == math
    after = {f.code for f in plan.after.findings}
    assert "ED203" not in after and "ED208" not in after and plan.caused == []


def test_cuda_home_at_the_sdk_toolkit_with_its_math_libs_is_silent(tmp_path):
    release, ctx = sdk_machine(tmp_path)
    ctx.env.update(CUDA_HOME=f"{release}/cuda/13.0", CPATH=f"{release}/math_libs/13.0/targets/x86_64-linux/include")
    found = {f.code for f in diagnose(facts_for(ctx)).findings}
    assert not {"ED203", "ED204", "ED205", "ED207", "ED208"} & found


def test_sdk_toolkit_without_its_math_libs_headers_says_where_they_are(tmp_path):
    release, ctx = sdk_machine(tmp_path)
    ctx.env.update(CUDA_HOME=f"{release}/cuda/13.0")
    found = {f.code: f for f in diagnose(facts_for(ctx)).findings}
    headers = found["ED208"]
    assert "cublas_v2.h" in headers.message
    assert headers.fixes[0].params == {"vars": {"CPATH": f"{release}/math_libs/13.0/targets/x86_64-linux/include"}}
