"""A deterministic generator of long, noisy build logs with real error lines buried in them.

~200 lines of what a failed ``pip install`` / ``sh make.sh`` of a CUDA extension
prints: ninja progress with nvcc/c++ command lines, compiler warnings with
their source excerpts and carets, the ``Tensor::type() is deprecated``
warning, CMake probes (``-- Could NOT find``), pip chatter, NCCL INFO lines,
Python UserWarnings; then the real error lines of a corpus case, then the
consequences a build prints after them (``FAILED:``, ``ninja: build stopped``,
``Error compiling objects for extension``, a traceback). Same seed, same log.
"""
from __future__ import annotations

import random
from typing import List

_FILES = ("ms_deform_attn_cuda.cu", "ms_deform_attn_cpu.cpp", "vision.cpp", "roi_align_kernel.cu", "nms.cu",
          "deform_conv_cuda.cu", "box_iou_rotated.cu", "sigmoid_focal_loss.cu")
_ROOT = "/home/user/project/models/ops"
_INC = ("-I/home/user/project/models/ops/src -I/opt/conda/lib/python3.10/site-packages/torch/include "
        "-I/opt/conda/lib/python3.10/site-packages/torch/include/torch/csrc/api/include "
        "-I/opt/conda/lib/python3.10/site-packages/torch/include/TH -I/usr/local/cuda/include "
        "-I/opt/conda/include/python3.10")


def _nvcc(i: int, n: int, name: str) -> str:
    return (f"[{i}/{n}] /usr/local/cuda/bin/nvcc --generate-dependencies-with-compile --dependency-output "
            f"{_ROOT}/build/temp.linux-x86_64-cpython-310/src/cuda/{name}.o.d {_INC} -c {_ROOT}/src/cuda/{name} "
            f"-o {_ROOT}/build/temp.linux-x86_64-cpython-310/src/cuda/{name}.o -D__CUDA_NO_HALF_OPERATORS__ "
            "-D__CUDA_NO_HALF_CONVERSIONS__ --expt-relaxed-constexpr --compiler-options ''\"'\"'-fPIC'\"'\"'' "
            "-DCUDA_HAS_FP16=1 -gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_86,code=sm_86 "
            "-std=c++17")


def _cxx(i: int, n: int, name: str) -> str:
    return (f"[{i}/{n}] c++ -MMD -MF {_ROOT}/build/temp.linux-x86_64-cpython-310/src/{name}.o.d -pthread -B "
            f"/opt/conda/compiler_compat -fno-strict-overflow -DNDEBUG -O2 -Wall -fPIC {_INC} -c {_ROOT}/src/{name} "
            f"-o {_ROOT}/build/temp.linux-x86_64-cpython-310/src/{name}.o -DTORCH_API_INCLUDE_EXTENSION_H "
            "-std=c++17")


def _warning_block(rng: random.Random, name: str) -> List[str]:
    line = rng.randint(20, 300)
    kind = rng.choice(("deprecated", "sign", "unused", "cuda"))
    if kind == "deprecated":
        return [f"{_ROOT}/src/cuda/{name}: In lambda function:",
                f"{_ROOT}/src/cuda/{name}:{line}:5: warning: 'at::DeprecatedTypeProperties& at::Tensor::type() "
                "const' is deprecated: Tensor.type() is deprecated. Instead use Tensor.options(), which in many "
                "cases (e.g. in a constructor) is a drop-in replacement. [-Wdeprecated-declarations]",
                f"  {line} |     AT_DISPATCH_FLOATING_TYPES(value.type(), \"ms_deform_attn_forward_cuda\", ([&] {{",
                "      |                                ~~~~~~~~~~^~",
                "/opt/conda/lib/python3.10/site-packages/torch/include/ATen/core/TensorBody.h:225:1: note: "
                "declared here"]
    if kind == "sign":
        return [f"{_ROOT}/src/{name}:{line}:23: warning: comparison of integer expressions of different signedness: "
                "'int' and 'size_t' [-Wsign-compare]",
                f"  {line} |   for (int i = 0; i < sizes.size(); ++i) {{",
                "      |                   ~~^~~~~~~~~~~~~~"]
    if kind == "unused":
        return [f"{_ROOT}/src/{name}:{line}:10: warning: unused variable 'error' [-Wunused-variable]",
                f"  {line} |     auto error = cudaGetLastError();",
                "      |          ^~~~~"]
    return [f"{_ROOT}/src/cuda/{name}({line}): warning #177-D: variable \"batch_n\" was declared but never referenced",
            "",
            "Remark: The warnings can be suppressed with \"-diag-suppress <warning-number>\""]


_PREAMBLE = [
    "Processing /home/user/project/models/ops",
    "  Preparing metadata (setup.py) ... done",
    "Building wheels for collected packages: MultiScaleDeformableAttention",
    "  Building wheel for MultiScaleDeformableAttention (setup.py) ... error",
    "running build_ext",
    "/opt/conda/lib/python3.10/site-packages/torch/utils/cpp_extension.py:418: UserWarning: The detected CUDA "
    "version (12.1) has a minor version mismatch with the version that was used to compile PyTorch (12.4). Most "
    "likely this shouldn't be a problem.",
    "  warnings.warn(CUDA_MISMATCH_WARN.format(cuda_str_version, torch.version.cuda))",
    "-- Looking for pthread.h - found",
    "-- Could NOT find CUDNN (missing: CUDNN_LIBRARY_PATH CUDNN_INCLUDE_PATH)",
    "-- Could NOT find NCCL (missing: NCCL_INCLUDE_DIR)",
    "/opt/conda/lib/python3.10/site-packages/setuptools/_distutils/cmd.py:66: SetuptoolsDeprecationWarning: "
    "setup.py install is deprecated.",
    "building 'MultiScaleDeformableAttention' extension",
    "creating /home/user/project/models/ops/build/temp.linux-x86_64-cpython-310/src/cuda",
    "Emitting ninja build file /home/user/project/models/ops/build/temp.linux-x86_64-cpython-310/build.ninja...",
    "Compiling objects...",
    "Allowing ninja to set a default number of workers... (overridable by setting the environment variable "
    "MAX_JOBS=N)",
    "node1:2201:2201 [0] NCCL INFO NET/Plugin: Plugin load returned 2 : libnccl-net.so: cannot open shared "
    "object file: No such file or directory : when loading libnccl-net.so",
    "node1:2201:2201 [0] NCCL INFO Bootstrap : Using eth0:10.0.0.2<0>",
]

_AFTER = [
    "ninja: build stopped: subcommand failed.",
    "Traceback (most recent call last):",
    "  File \"/opt/conda/lib/python3.10/site-packages/torch/utils/cpp_extension.py\", line 2100, in "
    "_run_ninja_build",
    "    subprocess.run(",
    "  File \"/opt/conda/lib/python3.10/subprocess.py\", line 526, in run",
    "    raise CalledProcessError(retcode, process.args,",
    "subprocess.CalledProcessError: Command '['ninja', '-v']' returned non-zero exit status 1.",
    "",
    "The above exception was the direct cause of the following exception:",
    "",
    "RuntimeError: Error compiling objects for extension",
    "  error: subprocess-exited-with-error",
    "ERROR: Failed building wheel for MultiScaleDeformableAttention",
]


def bury(error_text: str, seed: int, noise_lines: int = 200) -> str:
    """``error_text`` inside ~``noise_lines`` lines of build noise, after most of it; deterministic per seed."""
    rng = random.Random(seed)
    lines: List[str] = list(_PREAMBLE)
    total = rng.randint(40, 80)
    step = 1
    while len(lines) < noise_lines * 0.8:
        name = rng.choice(_FILES)
        lines.append(_nvcc(step, total, name) if name.endswith(".cu") else _cxx(step, total, name))
        step += 1
        if rng.random() < 0.6:
            lines += _warning_block(rng, name)
        if rng.random() < 0.1:
            lines.append(f"  {rng.randint(10, 99)}%|{'#' * rng.randint(1, 20)}\r 100%|{'#' * 20}| done")
    lines.append(f"FAILED: {_ROOT}/build/temp.linux-x86_64-cpython-310/src/cuda/{rng.choice(_FILES)}.o")
    lines += error_text.splitlines()
    tail = list(_AFTER)
    while len(lines) + len(tail) < noise_lines:
        name = rng.choice(_FILES)
        tail.insert(0, _cxx(step, total, name))
        step += 1
    return "\n".join(lines + tail) + "\n"
