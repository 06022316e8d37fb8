"""Toolkit discovery, arch lists, job count, and reading failed build logs (no compiling here)."""
from __future__ import annotations

import json
import os
import stat

import pytest

from envdoctor.ops import buildlog, toolkit
from envdoctor.runner import FakeRunner

CORPUS = "/work/shared/corpus/public.jsonl"


@pytest.mark.parametrize("given,expected", [
    (["8.0;9.0"], ["8.0", "9.0"]),
    (["9.0", "8.0", "8.0"], ["8.0", "9.0"]),
    (["sm_86 compute_89"], ["8.6", "8.9"]),
    (["100,120"], ["10.0", "12.0"]),
    (["9.0+PTX"], ["9.0+PTX"]),
])
def test_parse_arch_list(given, expected):
    assert toolkit.parse_arch_list(given) == expected


@pytest.mark.parametrize("bad", ["foo", "8.x", "8"])
def test_parse_arch_list_rejects_garbage(bad):
    with pytest.raises(ValueError, match="invalid CUDA arch"):
        toolkit.parse_arch_list([bad])


def test_nvcc_supported_archs_from_recorded_output():
    listing = "compute_75\ncompute_80\ncompute_86\ncompute_90\ncompute_100\ncompute_110\ncompute_120\n"
    runner = FakeRunner({"nvcc": listing})
    archs = toolkit.nvcc_supported_archs("nvcc", runner)
    assert archs == ["7.5", "8.0", "8.6", "9.0", "10.0", "11.0", "12.0"]
    assert toolkit.unsupported_archs(["7.0", "8.0", "9.0+PTX"], archs) == ["7.0"]


def test_nvcc_version_parse():
    out = "nvcc: NVIDIA (R) Cuda compiler driver\nCuda compilation tools, release 13.0, V13.0.88\n"
    assert toolkit.nvcc_version("nvcc", FakeRunner({"nvcc": out})) == "13.0"
    assert toolkit.nvcc_version("nvcc", FakeRunner({})) is None


def _fake_toolkit(root, name):
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "include").mkdir()
    (home / "lib64").mkdir()
    (home / "include" / "cuda_runtime.h").write_text("")
    (home / "lib64" / "libcudart.so.13").write_text("")
    nvcc = home / "bin" / "nvcc"
    nvcc.write_text("#!/bin/sh\necho real\n")
    nvcc.chmod(nvcc.stat().st_mode | stat.S_IEXEC)
    return home


def test_wrapper_on_path_makes_torch_guess_the_wrong_home(tmp_path):
    real = _fake_toolkit(tmp_path, "cuda-13.0")
    wrapper_dir = tmp_path / "local" / "bin"
    wrapper_dir.mkdir(parents=True)
    wrapper = wrapper_dir / "nvcc"
    wrapper.write_text(f'#!/bin/sh\nexec {real}/bin/nvcc "$@"\n')
    wrapper.chmod(0o755)
    env = {"PATH": str(wrapper_dir)}
    home, how = toolkit.torch_cuda_home_guess(env)
    assert home == str(tmp_path / "local") and "nvcc on PATH" in how
    assert toolkit.resolve_nvcc(str(wrapper)) == os.path.realpath(real / "bin" / "nvcc")
    assert toolkit.real_toolkit(env) == os.path.realpath(real)
    assert not toolkit.has_cudart(home) and toolkit.has_cudart(str(real))


def test_cuda_home_env_wins(tmp_path):
    assert toolkit.torch_cuda_home_guess({"CUDA_HOME": "/opt/x", "PATH": ""}) == ("/opt/x", "$CUDA_HOME")
    assert toolkit.torch_cuda_home_guess({"CUDA_PATH": "/opt/y", "PATH": ""})[0] == "/opt/y"


def test_choose_jobs():
    gib = 1024 ** 3
    assert toolkit.choose_jobs({"MAX_JOBS": "3"}, "cuda") == 3
    assert toolkit.choose_jobs({}, "cuda", cores=8, available=4 * gib) == 2  # RAM-bound: 1.5 GiB per nvcc job
    assert toolkit.choose_jobs({}, "cpu", cores=2, available=64 * gib) == 2  # core-bound
    assert toolkit.choose_jobs({}, "cuda", cores=8, available=gib // 2) == 1  # never zero


def _corpus(category):
    with open(CORPUS, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if json.loads(line)["category"] == category]


@pytest.mark.parametrize("category,needle", [
    ("gcc_unsupported_by_nvcc", "too new"),
    ("arch_unsupported_by_nvcc", "nvcc --list-gpu-arch"),
    ("build_oom", "MAX_JOBS="),
])
def test_real_failure_logs_get_first_error_and_explanation(category, needle):
    cases = _corpus(category)
    assert cases, f"no {category} case in the corpus"
    for case in cases:
        summary = buildlog.summarize_failure(case["error_text"], "/tmp/build.log")
        assert "first error:" in summary, case["id"]
        assert needle in summary, case["id"]


def test_first_error_skips_ninja_and_python_noise():
    log = "\n".join([
        "[1/3] c++ -c /src/ms_deform_attn.cpp -o ms_deform_attn.o",
        "[2/3] c++ -c /src/cpu/ms_deform_attn_cpu.cpp -o ms_deform_attn_cpu.o",
        "FAILED: envdoctor_msda_cuda.so",
        "c++ ms_deform_attn.o -shared -L/usr/local/lib64 -lcudart -o envdoctor_msda_cuda.so",
        "/usr/bin/ld: cannot find -lcudart: No such file or directory",
        "collect2: error: ld returned 1 exit status",
        "ninja: build stopped: subcommand failed.",
        "Traceback (most recent call last):",
        "RuntimeError: Error building extension 'envdoctor_msda_cuda'",
    ] + ["noise line"] * 300)
    error = buildlog.first_error(log)
    assert error.splitlines()[0] == "/usr/bin/ld: cannot find -lcudart: No such file or directory"
    summary = buildlog.summarize_failure(log, "/x/build.log")
    assert len(summary.splitlines()) < 12
    assert "CUDA_HOME" in summary and "/x/build.log" in summary
