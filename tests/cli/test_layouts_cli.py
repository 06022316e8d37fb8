"""check and fix on HPC layouts, end to end in a subprocess.

Sealed: the NVIDIA HPC SDK (tests/fixtures/nvhpc) with its nvhpc module loaded, in a fake root:
the report is taken there (torch's own CUDA_HOME guess included, from the fake PATH) and
``check --from`` / ``fix --from`` judge it in a subprocess, whatever the machine running the test has.

Real: Lmod itself, when this machine has it (``apt-get install lmod``): modulefiles loaded by
Lmod in a real shell, then ``envdoctor check`` in the environment Lmod left. Skipped without Lmod.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from envdoctor import engine
from envdoctor.render.jsonfmt import render_json
from envdoctor.render.redact import Redactor
from tests.fixtures import nvhpc
from tests.fixtures.fake_bin import path_with, write_fake, write_tree

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LMOD_INIT = "/usr/share/lmod/lmod/init/bash"


def envdoctor(args, tmp_path, env=None):
    base = {k: v for k, v in os.environ.items() if k not in ("CUDA_HOME", "CUDA_PATH", "CPATH", "MODULEPATH",
                                                               "LOADEDMODULES", "_LMFILES_", "TORCH_CUDA_ARCH_LIST")}
    base.update(env or {})
    base.update(HOME=str(tmp_path / "home"), PYTHONPATH=REPO, NO_COLOR="1",
                ENVDOCTOR_CACHE_DIR=str(tmp_path / "cache"))
    os.makedirs(base["HOME"], exist_ok=True)
    return subprocess.run([sys.executable, "-m", "envdoctor", *args], env=base, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=600)


def test_sealed_hpc_sdk_with_its_module_loaded(tmp_path):
    root = str(tmp_path / "machine")
    nvhpc.build(root)
    release = nvhpc.release(root)
    modulepath = nvhpc.write_modulefiles(root, os.path.join(root, "modulefiles"))
    # PATH as `module load nvhpc/25.9` leaves it: compilers/bin in front of cuda/bin.
    env = {"PATH": path_with(f"{release}/comm_libs/mpi/bin:{release}/compilers/bin:{release}/cuda/bin"),
           "MODULEPATH": modulepath, "LOADEDMODULES": "nvhpc/25.9", "_LMFILES_": f"{modulepath}/nvhpc/25.9",
           "NVHPC_ROOT": release, "HOME": str(tmp_path)}
    report = engine.run_check(env=env, root=root, paths=(root,))
    assert report.facts.value("torch")["cpp_ext_cuda_home"] == f"{release}/compilers"  # torch's own guess
    saved = tmp_path / "report.json"
    saved.write_text(render_json(report, Redactor(enabled=False)), encoding="utf-8")

    check = envdoctor(["check", "--from", str(saved), "--only", "ED2*"], tmp_path)
    assert check.returncode == 1, check.stderr
    lines = check.stdout.splitlines()
    assert "  ✗ CUDA_HOME set, or torch's guess usable  [ED203]" in lines
    assert "ED203 error  CUDA_HOME set, or torch's guess usable" in lines
    assert ("the compilers directory of the NVIDIA HPC SDK 25.9, not a CUDA toolkit. It has no "
            "include/cuda_runtime.h (sources that include it stop) and no libcudart.so") in check.stdout
    math = f"{release}/math_libs/13.0/targets/x86_64-linux/include"
    assert f"        export CUDA_HOME={release}/cuda/13.0" in lines
    assert f"        export CPATH={math}" in lines
    assert "ED209" not in check.stdout and "module load" not in check.stdout

    fix = envdoctor(["fix", "-n", "--from", str(saved), "--format", "json", "--no-smoke"], tmp_path)
    assert fix.returncode in (0, 1), fix.stderr
    settings = json.loads(fix.stdout)["plan"]["settings"]
    assert settings["vars"]["CUDA_HOME"] == f"{release}/cuda/13.0" and settings["vars"]["CPATH"] == math
    assert settings["path_prepend"] == [f"{release}/cuda/13.0/bin"]


def _lmod_env(tmp_path, commands):
    """The environment a real bash shell has after Lmod ran ``commands``."""
    script = f"source {LMOD_INIT}\n{commands}\nenv -0"
    result = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True, text=True,
                            timeout=120, env={"PATH": os.environ["PATH"], "HOME": str(tmp_path),
                                              "MODULEPATH": str(tmp_path / "mf"), "LMOD_ALLOW_ROOT_USE": "yes"})
    assert result.returncode == 0, result.stderr
    return dict(item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isfile(LMOD_INIT), reason="needs Lmod (apt-get install lmod)")
def test_real_lmod_loaded_module_and_a_stale_one(tmp_path):
    # A toolkit of this test's own (the machine's toolkits may be anything), offered as a Lua
    # module; a second modulefile names a toolkit that is gone.
    toolkit = tmp_path / "sw" / "cuda-13.0"
    write_tree(str(toolkit), {"include/cuda_runtime.h": "", "lib64/libcudart.so.13.0.96": "",
                              "lib64/libcudart.so": "->libcudart.so.13.0.96"})
    write_fake(str(toolkit / "bin"), "nvcc", {"--version": "Cuda compilation tools, release 13.0, V13.0.88\n",
                                              "--list-gpu-arch": "compute_90\n"})
    write_tree(str(tmp_path / "mf"), {
        "cuda/13.0.lua": f'local root = "{toolkit}"\nsetenv("CUDA_HOME", root)\n'
                         f'prepend_path("PATH", pathJoin(root, "bin"))\n',
        "cuda/11.8.lua": 'local root = "/nonexistent/cuda-11.8"\nsetenv("CUDA_HOME", root)\n'
                         'prepend_path("PATH", pathJoin(root, "bin"))\n'})
    env = _lmod_env(tmp_path, "module load cuda/13.0")
    assert env["LOADEDMODULES"] == "cuda/13.0" and env["_LMFILES_"] == str(tmp_path / "mf/cuda/13.0.lua")
    assert env["CUDA_HOME"] == str(toolkit) and env["PATH"].startswith(f"{toolkit}/bin:")

    check = envdoctor(["check", "--format", "json", "--only", "ED2*"], tmp_path, env=env)
    data = json.loads(check.stdout)
    facts = {f["key"]: f["value"] for f in data["facts"]}
    mine = next(t for t in facts["toolkits"] if t["real_root"] == str(toolkit))
    assert mine["module"]["name"] == "cuda/13.0" and mine["module"]["loaded"]
    stale = [f for f in data["findings"] if f["code"] == "ED209"]
    assert [f["severity"] for f in stale] == ["info"] and "/nonexistent/cuda-11.8" in stale[0]["message"]

    swapped = _lmod_env(tmp_path, "module load cuda/13.0\nmodule swap cuda/13.0 cuda/11.8")
    assert swapped["LOADEDMODULES"] == "cuda/11.8"  # Lmod loads it without a word
    check = envdoctor(["check", "--format", "json", "--only", "ED209"], tmp_path, env=swapped)
    assert check.returncode == 1
    (error,) = [f for f in json.loads(check.stdout)["findings"] if f["severity"] == "error"]
    assert error["code"] == "ED209" and error["message"].startswith("The loaded module cuda/11.8")
