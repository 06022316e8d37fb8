"""The build: cache key, no-op rebuilds, and refusing a CUDA build that cannot work."""
from __future__ import annotations

import json
import os

import pytest

from envdoctor.ops import build
from tests.ops.conftest import env_without

NO_CUDA_HOME = env_without("CUDA_HOME", "CUDA_PATH")
REAL_HOME = dict(NO_CUDA_HOME, CUDA_HOME="/usr/local/cuda")
has_nvcc = pytest.mark.skipif(not os.path.exists("/usr/local/cuda/bin/nvcc"), reason="needs the CUDA toolkit")


def test_second_build_in_same_env_is_a_noop(cpu_build, ops_cache_dir):
    again = build.build_extension(cuda=False, cache_dir=ops_cache_dir)
    assert again.ok and again.cached
    assert again.path == cpu_build.path
    assert not cpu_build.cached


def test_marker_records_the_key(cpu_build):
    with open(os.path.join(os.path.dirname(cpu_build.path), build.MARKER), encoding="utf-8") as fh:
        marker = json.load(fh)
    assert marker["key_parts"]["variant"] == "cpu"
    assert set(marker["key_parts"]) >= {"torch", "torch_cuda", "python", "compiler", "sources"}


def test_changed_sources_or_compiler_give_another_dir(cpu_build, ops_cache_dir, monkeypatch):
    plan = build.plan_build(cuda=False, cache_dir=ops_cache_dir)
    assert plan.build_dir == os.path.dirname(cpu_build.path)
    monkeypatch.setattr(build, "sources_hash", lambda root: "edited")
    assert build.plan_build(cuda=False, cache_dir=ops_cache_dir).build_dir != plan.build_dir
    monkeypatch.undo()
    other_cxx = build.plan_build(cuda=False, cache_dir=ops_cache_dir, env=dict(os.environ, CXX="/bin/false"))
    assert other_cxx.build_dir != plan.build_dir
    assert build.cached_library(other_cxx) is None


@has_nvcc
def test_archs_and_cuda_home_are_in_the_key(ops_cache_dir):
    a = build.plan_build(cuda=True, archs=["8.0", "9.0"], cache_dir=ops_cache_dir, env=REAL_HOME)
    b = build.plan_build(cuda=True, archs=["8.0"], cache_dir=ops_cache_dir, env=REAL_HOME)
    c = build.plan_build(cuda=True, archs=["9.0", "8.0"], cache_dir=ops_cache_dir, env=REAL_HOME)
    assert a.build_dir != b.build_dir
    assert a.build_dir == c.build_dir  # order does not matter
    assert a.child_env["TORCH_CUDA_ARCH_LIST"] == "8.0;9.0"
    assert a.key_parts["nvcc"].startswith("13.")
    wrong_home = build.plan_build(cuda=True, archs=["8.0", "9.0"], cache_dir=ops_cache_dir, env=NO_CUDA_HOME)
    assert wrong_home.build_dir != a.build_dir


@has_nvcc
def test_cuda_build_without_cuda_home_is_refused_with_the_fix(tmp_path):
    # This machine's real defect: nvcc is a wrapper in /usr/local/bin, so torch guesses CUDA_HOME=/usr/local.
    result = build.build_extension(cuda=True, archs=["8.0", "9.0"], cache_dir=str(tmp_path), env=NO_CUDA_HOME)
    assert not result.ok and result.refused
    assert "/usr/local" in result.error and "libcudart" in result.error
    assert "export CUDA_HOME=/usr/local/cuda-13.0" in result.error
    # It names what linking would do: fail, or (a distribution CUDA installed) take another runtime.
    assert "cannot find -lcudart" in result.error or "ED207" in result.error
    assert result.log_path is None  # ... without having run the compiler
    assert result.findings[0]["code"] == "ED203"  # check's finding, by code: one doctor
    assert not os.listdir(tmp_path)


@has_nvcc
def test_arch_this_nvcc_cannot_build_is_refused(tmp_path):
    result = build.build_extension(cuda=True, archs=["7.0"], cache_dir=str(tmp_path), env=REAL_HOME)
    assert result.refused and "cannot build 7.0" in result.error and "sm_80" in result.error


def test_cuda_without_gpu_or_arch_list_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(build, "present_gpu_archs", lambda: [])
    env = env_without("TORCH_CUDA_ARCH_LIST")
    result = build.build_extension(cuda=True, cache_dir=str(tmp_path), env=env)
    assert result.refused and "--arch 8.0" in result.error


def test_auto_variant_is_cpu_without_gpu_and_arch_list(monkeypatch):
    monkeypatch.setattr(build, "present_gpu_archs", lambda: [])
    assert build.choose_variant(None, None, env_without("TORCH_CUDA_ARCH_LIST")) == "cpu"
    if os.path.exists("/usr/local/cuda/bin/nvcc"):
        assert build.choose_variant(None, ["8.0"], {"CUDA_HOME": "/usr/local/cuda"}) == "cuda"
    # CUDA_HOME names no toolkit: torch's builder would find no nvcc
    assert build.choose_variant(None, None, {"PATH": "", "CUDA_HOME": "/nonexistent",
                                             "TORCH_CUDA_ARCH_LIST": "8.0"}) == "cpu"


def test_failed_compile_reports_first_error(tmp_path, monkeypatch):
    # A real compile of a broken source: the result carries the first error, not the log.
    src = tmp_path / "csrc"
    (src / "cpu").mkdir(parents=True)
    (src / "ms_deform_attn.cpp").write_text("#include <torch/library.h>\nint broken( { return 0; }\n")
    (src / "cpu" / "ms_deform_attn_cpu.cpp").write_text("int ok() { return 1; }\n")
    monkeypatch.setattr(build, "source_dir", lambda: str(src))
    result = build.build_extension(cuda=False, cache_dir=str(tmp_path / "cache"))
    assert not result.ok and not result.refused
    assert "first error:" in result.error and "ms_deform_attn.cpp:2" in result.error
    assert len(result.error.splitlines()) <= 12
    assert os.path.getsize(result.log_path) > len(result.error)


@has_nvcc
def test_loading_accepts_a_build_with_more_archs_than_needed(tmp_path):
    # Built with --arch 8.0 --arch 9.0, loaded on a machine whose only GPU is sm_80.
    built = build.plan_build(cuda=True, archs=["8.0", "9.0"], cache_dir=str(tmp_path), env=REAL_HOME)
    os.makedirs(built.build_dir)
    with open(built.library, "wb") as fh:
        fh.write(b"binary")
    with open(os.path.join(built.build_dir, build.MARKER), "w", encoding="utf-8") as fh:
        json.dump({"key_parts": built.key_parts}, fh)
    sm80 = build.plan_build(cuda=True, archs=["8.0"], cache_dir=str(tmp_path), env=REAL_HOME)
    assert build.cached_library(sm80) is None  # building: exact key only
    assert build.cached_library(sm80, allow_more_archs=True) == built.library
    sm86 = build.plan_build(cuda=True, archs=["8.6"], cache_dir=str(tmp_path), env=REAL_HOME)
    assert build.cached_library(sm86, allow_more_archs=True) is None
