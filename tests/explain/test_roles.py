"""Line roles and the first-error pointer: never a warning's source line, a CMake probe or an INFO line."""
from __future__ import annotations

import pytest

from envdoctor.explain import first_error
from envdoctor.explain.roles import CONSEQUENCE, ERROR, NOISE, NOTE, TEXT, WARNING, classify, classify_all


@pytest.mark.parametrize("line,role", [
    ("[12/50] /usr/local/cuda/bin/nvcc -I/x -c a.cu -o a.o", NOISE),
    ("-- Could NOT find CUDNN (missing: CUDNN_LIBRARY_PATH)", NOISE),
    ("node1:1:1 [0] NCCL INFO NET/Plugin: Plugin load returned 2 : libnccl-net.so: cannot open shared object file",
     NOISE),
    ("5135fc87695d:1:1 [0] misc/ibvwrap.cc:63 NCCL WARN Failed to open libibverbs.so[.1]", NOISE),
    ("a.cu(12): warning #177-D: variable \"x\" was declared but never referenced", WARNING),
    ("x.cpp:9:5: warning: 'at::Tensor::type() const' is deprecated [-Wdeprecated-declarations]", WARNING),
    ("UserWarning: RTX 3090 with CUDA capability sm_86 is not compatible with the current PyTorch installation.",
     WARNING),
    ("src/a.cpp:3:10: fatal error: THC/THC.h: No such file or directory", ERROR),
    ("cc1plus: warning: command line option '-Wstrict-prototypes' is valid for C/ObjC but not for C++ gcc: fatal "
     "error: Killed signal terminated program cc1plus", ERROR),
    ("OSError: CUDA_HOME environment variable is not set.", ERROR),
    ("{standard input}:24109: 错误：expected symbol name", ERROR),
    ("RuntimeError: Error compiling objects for extension", CONSEQUENCE),
    ("error: command '/usr/bin/nvcc' failed with exit status 1", CONSEQUENCE),
    ("collect2: error: ld returned 1 exit status", CONSEQUENCE),
    ("  File \"setup.py\", line 3, in <module>", CONSEQUENCE),
    ("In file included from /usr/include/cuda_runtime.h:83,", NOTE),
    ("cv2                    Not found", TEXT),
])
def test_roles(line, role):
    assert classify(line) == role


def test_a_warnings_source_excerpt_is_a_note_not_an_error():
    lines = [
        "x.cu:64:3: warning: 'DeprecatedTypeProperties' is deprecated",
        "   64 |   AT_DISPATCH_FLOATING_TYPES(value.type(), \"fail\", ([&] { error(\"x\"); }));",
        "      |   ^~~~~~~~~~~~~~~~~~~~~~~~~~",
        "x.cu:70:1: error: expected ';' before '}' token",
    ]
    assert classify_all(lines) == [WARNING, NOTE, NOTE, ERROR]
    assert first_error("\n".join(lines))[0] == 4


def test_first_error_skips_cmake_probes_info_and_warning_lines():
    log = "\n".join([
        "-- Could NOT find NCCL (missing: NCCL_INCLUDE_DIR)",
        "node1:9:9 [0] NCCL INFO NET/IB : No device found.",
        "a.cpp:3:1: warning: unused variable 'error' [-Wunused-variable]",
        "    auto error = cudaGetLastError();",
        "/usr/bin/ld: cannot find -lcudart",
        "collect2: error: ld returned 1 exit status",
    ])
    assert first_error(log)[:2] == (5, "/usr/bin/ld: cannot find -lcudart")


def test_first_error_is_set_for_short_snippets_without_an_error_word():
    assert first_error("No module named 'MultiScaleDeformableAttention'.")[0] == 1
    assert first_error("the GPU ran fine yesterday") is None


def test_first_error_falls_back_to_the_consequence_when_nothing_else():
    assert first_error("compiling\nRuntimeError: Error compiling objects for extension\n")[0] == 2
