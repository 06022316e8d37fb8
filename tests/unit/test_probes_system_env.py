"""Compiler and environment probes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from envdoctor.model import FactSet
from envdoctor.probes import compiler, environment
from envdoctor.probes.base import ProbeContext
from envdoctor.runner import FakeRunner
from tests.fixtures import corpus
from tests.fixtures.fake_bin import path_with, write_fake, write_tree

GCC_11 = "gcc (Ubuntu 11.4.0-1ubuntu1~22.04) 11.4.0\nCopyright (C) 2021 Free Software Foundation, Inc.\n"
GXX_11 = GCC_11.replace("gcc (", "g++ (")
CLANG = "Ubuntu clang version 14.0.0-1ubuntu1.1\nTarget: x86_64-pc-linux-gnu\nThread model: posix\n"


def run(probe, ctx) -> FactSet:
    return FactSet(probe.probe(ctx))


@pytest.fixture
def compilers(tmp_path):
    bin_dir = str(tmp_path / "bin")
    write_fake(bin_dir, "gcc", {"--version": GCC_11})
    write_fake(bin_dir, "g++", {"--version": GXX_11})
    write_fake(bin_dir, "gcc-9", {"--version": "gcc-9 (Ubuntu 9.5.0-1ubuntu1~22.04) 9.5.0\n"})
    write_fake(bin_dir, "clang", {"--version": CLANG})
    return bin_dir


# ---- compiler --------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc on this machine")
def test_this_machines_gcc():
    expected = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True).stdout.strip()
    facts = run(compiler, ProbeContext(env={"PATH": "/usr/bin:/bin"}, paths=()))
    assert facts.value("compiler.gcc") == {"path": "/usr/bin/gcc", "version": expected}
    assert facts.value("compiler.host") == {"path": "/usr/bin/gcc", "name": "gcc", "version": expected,
                                            "via": "default"}


def test_compilers_on_path(compilers):
    facts = run(compiler, ProbeContext(env={"PATH": path_with(compilers)}, root="/nonexistent", paths=()))
    assert facts.value("compiler.gcc") == {"path": os.path.join(compilers, "gcc"), "version": "11.4.0"}
    assert facts.value("compiler.gxx") == {"path": os.path.join(compilers, "g++"), "version": "11.4.0"}
    assert facts.value("compiler.clang") == {"path": os.path.join(compilers, "clang"), "version": "14.0.0"}
    assert facts.value("compiler.host")["via"] == "default"
    assert facts.get("compiler.gcc").raw == GCC_11


@pytest.mark.parametrize("env, path, name, version, via", [
    ({"CC": "clang"}, "clang", "clang", "14.0.0", "CC"),
    ({"CC": "ccache gcc-9"}, "gcc-9", "gcc", "9.5.0", "CC"),
    ({"NVCC_PREPEND_FLAGS": "-ccbin gcc-9 -allow-unsupported-compiler"}, "gcc-9", "gcc", "9.5.0",
     "NVCC_PREPEND_FLAGS"),
    ({"NVCC_PREPEND_FLAGS": "--compiler-bindir=gcc-9"}, "gcc-9", "gcc", "9.5.0", "NVCC_PREPEND_FLAGS"),
    ({"NVCC_CCBIN": "gcc-9"}, "gcc-9", "gcc", "9.5.0", "NVCC_CCBIN"),
    ({"CC": "clang", "NVCC_CCBIN": "gcc-9"}, "clang", "clang", "14.0.0", "CC"),
])
def test_host_compiler_choice(compilers, env, path, name, version, via):
    full_env = {"PATH": path_with(compilers)}
    full_env.update(env)
    facts = run(compiler, ProbeContext(env=full_env, paths=()))
    assert facts.value("compiler.host") == {"path": os.path.join(compilers, path), "name": name,
                                            "version": version, "via": via}


def test_ccbin_as_a_directory_and_absolute_cc(compilers):
    env = {"PATH": "/usr/bin:/bin", "NVCC_CCBIN": compilers}
    assert run(compiler, ProbeContext(env=env, paths=())).value("compiler.host")["path"] == \
        os.path.join(compilers, "gcc")
    env = {"PATH": "/usr/bin:/bin", "CC": os.path.join(compilers, "clang")}
    assert run(compiler, ProbeContext(env=env, paths=())).value("compiler.host")["name"] == "clang"


def test_missing_host_compiler_is_named(compilers):
    facts = run(compiler, ProbeContext(env={"PATH": path_with(compilers), "CC": "gcc-14"}, paths=()))
    assert not facts.has("compiler.host")
    assert facts.get("compiler.host").error == "the host compiler 'gcc-14' (from CC) was not found"


def test_no_compilers(tmp_path):
    facts = run(compiler, ProbeContext(env={"PATH": str(tmp_path)}, paths=()))
    for key in ("compiler.gcc", "compiler.gxx", "compiler.clang", "compiler.host"):
        assert not facts.has(key)
    assert facts.get("compiler.gcc").error == "gcc is not on PATH"


def test_each_compiler_runs_once(compilers):
    runner = FakeRunner({"gcc": GCC_11, "g++": GXX_11})
    facts = run(compiler, ProbeContext(env={"PATH": compilers}, runner=runner, paths=()))
    assert facts.value("compiler.host")["version"] == "11.4.0"
    # gcc-9 too: compiler.all lists every versioned compiler a plan may point CC at; still once each.
    assert sorted(c[0] for c in runner.calls) == sorted(os.path.join(compilers, n)
                                                        for n in ("gcc", "g++", "clang", "gcc-9"))
    assert [c["name"] for c in facts.value("compiler.all")] == ["clang", "g++", "gcc", "gcc-9"]


def test_named_compilers_that_do_not_exist(compilers):
    env = {"PATH": compilers, "CC": "gcc-10", "CXX": os.path.join(compilers, "g++"), "NVCC_CCBIN": "gcc-9"}
    named = {n["var"]: n for n in run(compiler, ProbeContext(env=env, paths=())).value("compiler.named")}
    assert named["CC"]["path"] is None and named["CC"]["name"] == "gcc-10"
    assert named["CXX"]["path"] == os.path.join(compilers, "g++") and named["CXX"]["version"] == "11.4.0"
    assert named["NVCC_CCBIN"]["path"] == os.path.join(compilers, "gcc-9")


def test_recorded_gcc_output():
    runner = FakeRunner({"gcc": corpus.text("gcc-local-12.2.0")})
    ctx = ProbeContext(env={"PATH": "/usr/bin"}, runner=runner, paths=())
    if ctx.which("gcc") is None:
        pytest.skip("no gcc on PATH to stand in for")
    assert run(compiler, ctx).value("compiler.gcc")["version"] == "12.2.0"


# ---- environment -------------------------------------------------------------------

SECRET_ENV = {
    "HF_TOKEN": "hf_supersecrettokenvalue",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "PIP_INDEX_URL": "https://user:hunter2password@pypi.example.com/simple",
}


def test_only_listed_variables_are_recorded(tmp_path):
    env = {"PATH": "/usr/bin::/bin:", "LD_LIBRARY_PATH": "/usr/local/cuda/lib64:/opt/x", "CUDA_HOME": "",
           "CUDA_VISIBLE_DEVICES": "1,0", "MAX_JOBS": "8", "TORCH_CUDA_ARCH_LIST": "8.6+PTX"}
    env.update(SECRET_ENV)
    facts = run(environment, ProbeContext(env=env, root=str(tmp_path), paths=()))
    assert facts.value("env.vars") == {"CUDA_HOME": "", "CUDA_VISIBLE_DEVICES": "1,0", "MAX_JOBS": "8",
                                       "TORCH_CUDA_ARCH_LIST": "8.6+PTX"}
    assert facts.value("env.path") == ["/usr/bin", "", "/bin", ""]
    assert facts.value("env.ld_library_path") == ["/usr/local/cuda/lib64", "/opt/x"]
    dumped = json.dumps(facts.to_list())
    for secret in ("hf_supersecret", "wJalrXUtnFEMI", "hunter2", "HF_TOKEN", "PIP_INDEX_URL"):
        assert secret not in dumped


def test_unset_lists_are_empty(tmp_path):
    facts = run(environment, ProbeContext(env={}, root=str(tmp_path), paths=()))
    assert facts.value("env.path") == [] and facts.value("env.ld_library_path") == []
    assert facts.value("env.vars") == {}
    assert facts.get("env.ninja").error.startswith("ninja is not on PATH")


@pytest.mark.parametrize("files, expected", [
    ({}, False),
    ({".dockerenv": ""}, True),
    ({"run/.containerenv": ""}, True),
    ({"proc/1/cgroup": "0::/system.slice/docker-4f1c.scope\n"}, True),
    ({"proc/1/cgroup": "0::/init.scope\n"}, False),
])
def test_container_detection(tmp_path, files, expected):
    write_tree(str(tmp_path), files)
    facts = run(environment, ProbeContext(env={}, root=str(tmp_path), paths=()))
    assert facts.value("host.in_container") is expected


def test_ninja_version(tmp_path):
    bin_dir = str(tmp_path / "bin")
    write_fake(bin_dir, "ninja", {"--version": "1.11.1.git.kitware.jobserver-1\n"})
    facts = run(environment, ProbeContext(env={"PATH": bin_dir}, root=str(tmp_path), paths=()))
    assert facts.value("env.ninja") == {"path": os.path.join(bin_dir, "ninja"), "version": "1.11.1"}


def test_broken_ninja(tmp_path):
    bin_dir = str(tmp_path / "bin")
    write_fake(bin_dir, "ninja", {"*": ""})  # prints nothing, exit 0
    facts = run(environment, ProbeContext(env={"PATH": bin_dir}, root=str(tmp_path), paths=()))
    assert not facts.has("env.ninja") and "does not run" in facts.get("env.ninja").error


def test_resources(tmp_path):
    value = run(environment, ProbeContext(env={}, paths=())).value("env.resources")
    assert set(value) == {"cpu_count", "ram_total_mib", "ram_available_mib", "swap_total_mib", "disk_free_mib"}
    assert value["cpu_count"] == len(os.sched_getaffinity(0))
    assert 0 < value["ram_available_mib"] <= value["ram_total_mib"]
    assert value["disk_free_mib"] >= 0


def test_cgroup_cpu_limit():
    assert environment.cgroup_cpu_limit("200000 100000\n") == 2
    assert environment.cgroup_cpu_limit("150000 100000") == 2
    assert environment.cgroup_cpu_limit("max 100000") is None
    assert environment.cgroup_cpu_limit("garbage") is None
    assert environment.cgroup_cpu_limit(None) is None


def test_cpu_count_respects_cgroup_quota(tmp_path):
    write_tree(str(tmp_path), {"sys/fs/cgroup/cpu.max": "100000 100000\n"})
    value = run(environment, ProbeContext(env={}, root=str(tmp_path), paths=())).value("env.resources")
    assert value["cpu_count"] == 1


def test_python_facts(tmp_path):
    facts = run(environment, ProbeContext(env={"CONDA_PREFIX": "/opt/conda/envs/x", "CONDA_DEFAULT_ENV": "x"},
                                          root=str(tmp_path), paths=()))
    python = facts.value("env.python")
    assert python["conda_prefix"] == "/opt/conda/envs/x" and python["conda_env"] == "x"
    assert python["version"].count(".") == 2


def test_other_python(tmp_path):
    other = write_fake(str(tmp_path / "venv/bin"), "python",
                       "3.9.18\n/home/u/venv\n/usr\n")
    facts = run(environment, ProbeContext(env={}, root=str(tmp_path), python=other, paths=()))
    assert facts.value("env.python") == {"executable": other, "version": "3.9.18", "prefix": "/home/u/venv",
                                         "conda_prefix": None, "conda_env": None, "venv": "/home/u/venv"}
    broken = write_fake(str(tmp_path / "bin"), "python", {"*": ""})
    fact = run(environment, ProbeContext(env={}, root=str(tmp_path), python=broken, paths=())).get("env.python")
    assert not fact.available and fact.value["executable"] == broken
