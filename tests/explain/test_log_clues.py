"""Readings that come from the log's own facts rather than one message: each fires in one test and stays silent
in its twin."""
from __future__ import annotations

import pytest

from envdoctor.explain import explain, from_text
from envdoctor.explain.roles import CONSEQUENCE, classify

LIBCUDART = "ImportError: libcudart.so.11.0: cannot open shared object file: No such file or directory"


def _top(text):
    found = explain(text)
    return (found[0].category, found[0].signature) if found else None


def test_a_compiled_package_asking_for_a_missing_cudart_was_built_for_another_cuda():
    log = ("  File \"/x/site-packages/flash_attn/flash_attn_interface.py\", line 10, in <module>\n"
           "    import flash_attn_2_cuda as flash_attn_cuda\n" + LIBCUDART)
    found = explain(log)
    assert [e.category for e in found[:2]] == ["prebuilt_wheel_mismatch", "missing_runtime_lib"]
    assert _top(LIBCUDART)[0] == "missing_runtime_lib"  # nothing says who asks: a runtime is missing


def test_a_cudnn_soname_is_not_compared_with_cuda_versions():
    # cuDNN 8 on CUDA 12 is normal: the soname's 8 is cuDNN's own version, not CUDA's.
    log = "CUDA 12.3 installed\nImportError: libcudnn.so.8: cannot open shared object file: No such file or directory"
    assert _top(log)[0] == "missing_runtime_lib"
    cudart = "CUDA 12.3 installed\nImportError: libcudart.so.11.0: cannot open shared object file"
    assert _top(cudart)[0] == "prebuilt_wheel_mismatch"


def test_an_nvcc_release_of_another_major_than_the_logs_torch_is_a_toolkit_mismatch():
    log = " torch.__version__  = 1.8.1\nCuda compilation tools, release 9.0, V9.0.176\nTraceback (most recent call last):"
    assert _top(log) == ("toolkit_torch_mismatch", "talk")
    same = " torch.__version__  = 1.8.1\nCuda compilation tools, release 11.1, V11.1.105\nTraceback (most recent call last):"
    assert _top(same) is None


def test_a_mangled_nvcc_command_line_is_a_malformed_cuda_home():
    log = "    [3/9] usr/local/cuda-10.2usr/local/cuda-10.2/usr/local/cuda-10.2/bin/nvcc -I/x -c a.cu -o a.o\n"
    assert _top(log) == ("cuda_home_misconfigured", "talk")
    assert _top("    [3/9] /usr/local/cuda-10.2/bin/nvcc -I/x -c a.cu -o a.o\n") is None


def test_no_cuda_runtime_inside_docker_build_means_an_extension_built_without_cuda():
    line = "No CUDA runtime is found, using CUDA_HOME='/usr/local/cuda'"
    image = "Step 52/53 : RUN cd ops && python setup.py build develop\n ---> Running in e2e733b95db4\n" + line
    assert _top(image) == ("ext_built_without_cuda", "cuda-unavailable-load")
    assert _top(line) == ("torch_cpu_only", "cuda-unavailable-load")


@pytest.mark.parametrize("prefixed", [
    "#15 354.2     aarch64-linux-gnu-gcc: fatal error: Killed signal terminated program cc1plus",
    "2024-05-01T10:00:00.1234567Z c++: fatal error: Killed signal terminated program cc1plus",
])
def test_log_collector_prefixes_are_removed(prefixed):
    log = from_text(prefixed + "\ncompilation terminated.")
    assert "Killed signal" in log.lines[0] and not log.lines[0].startswith(("#15", "2024"))
    assert _top(prefixed)[0] == "build_oom"


def test_lines_that_only_look_like_a_prefix_are_kept():
    text = "#1 is the first step\n2024-05-01 10:00:00 Z not a timestamp prefix"
    assert from_text(text).lines == text.split("\n")


@pytest.mark.parametrize("line", [
    "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:",
    "ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: 1) local_rank: 0 (pid: 4242)",
])
def test_distributed_wrappers_are_consequences(line):
    assert classify(line) == CONSEQUENCE
