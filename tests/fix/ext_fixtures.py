"""Writes small torch-extension source trees shaped like the ones users bring.

``write_old_msda_ops``: the classic Deformable-DETR / Mask2Former ``ops`` layout
(``setup.py`` + ``src/{cpu,cuda}``) written for torch 1.x: ``value.type()`` in
the dispatch macro, ``.data<T>()``, ``AT_CHECK`` and a setup.py that refuses to
build without a visible GPU unless ``FORCE_CUDA=1``. The kernel is tiny (a
scaled copy) so that nvcc compiles it quickly; the layout and the deprecated
calls are what matter.
"""
from __future__ import annotations

import os

MODULE = "MultiScaleDeformableAttention"

SETUP_PY = '''\
import glob
import os

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, CppExtension, CUDAExtension

requirements = ["torch", "torchvision"]


def get_extensions():
    this_dir = os.path.dirname(os.path.abspath(__file__))
    extensions_dir = os.path.join(this_dir, "src")
    main_file = glob.glob(os.path.join(extensions_dir, "*.cpp"))
    source_cpu = glob.glob(os.path.join(extensions_dir, "cpu", "*.cpp"))
    source_cuda = glob.glob(os.path.join(extensions_dir, "cuda", "*.cu"))
    sources = main_file + source_cpu
    extension = CppExtension
    extra_compile_args = {"cxx": []}
    define_macros = []
    if (torch.cuda.is_available() and CUDA_HOME is not None) or os.environ.get("FORCE_CUDA") == "1":
        extension = CUDAExtension
        sources += source_cuda
        define_macros += [("WITH_CUDA", None)]
        extra_compile_args["nvcc"] = []
    else:
        raise NotImplementedError("Cuda is not availabel")
    sources = [os.path.join(extensions_dir, s) for s in sources]
    return [extension("MultiScaleDeformableAttention", sources, include_dirs=[extensions_dir],
                      define_macros=define_macros, extra_compile_args=extra_compile_args)]


setup(
    name="MultiScaleDeformableAttention",
    version="1.0",
    packages=find_packages(exclude=("configs", "tests")),
    ext_modules=get_extensions(),
    cmdclass={"build_ext": torch.utils.cpp_extension.BuildExtension},
)
'''

VISION_CPP = '''\
#include "ms_deform_attn.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("ms_deform_attn_forward", &ms_deform_attn_forward, "ms_deform_attn_forward");
}
'''

HEADER = '''\
#pragma once
#include <torch/extension.h>
#include "cpu/ms_deform_attn_cpu.h"
#ifdef WITH_CUDA
#include "cuda/ms_deform_attn_cuda.h"
#endif

at::Tensor ms_deform_attn_forward(const at::Tensor &value, double scale) {
  if (value.type().is_cuda()) {
#ifdef WITH_CUDA
    return ms_deform_attn_cuda_forward(value, scale);
#else
    AT_ERROR("Not compiled with GPU support");
#endif
  }
  return ms_deform_attn_cpu_forward(value, scale);
}
'''

CPU_H = '''\
#pragma once
#include <ATen/ATen.h>
at::Tensor ms_deform_attn_cpu_forward(const at::Tensor &value, double scale);
'''

CPU_CPP = '''\
#include <ATen/ATen.h>
#include "cpu/ms_deform_attn_cpu.h"

at::Tensor ms_deform_attn_cpu_forward(const at::Tensor &value, double scale) {
  AT_CHECK(value.is_contiguous(), "value tensor has to be contiguous");
  auto output = at::empty_like(value);
  AT_DISPATCH_FLOATING_TYPES(value.type(), "ms_deform_attn_cpu_forward", ([&] {
    const scalar_t *src = value.data<scalar_t>();
    scalar_t *dst = output.data<scalar_t>();
    for (int64_t i = 0; i < value.numel(); ++i) dst[i] = src[i] * static_cast<scalar_t>(scale);
  }));
  return output;
}
'''

CUDA_H = '''\
#pragma once
#include <ATen/ATen.h>
at::Tensor ms_deform_attn_cuda_forward(const at::Tensor &value, double scale);
'''

CUDA_CU = '''\
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda.h>
#include <cuda_runtime.h>
#include "cuda/ms_deform_attn_cuda.h"

template <typename scalar_t>
__global__ void scale_kernel(const scalar_t *src, scalar_t *dst, int64_t n, scalar_t scale) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) dst[i] = src[i] * scale;
}

at::Tensor ms_deform_attn_cuda_forward(const at::Tensor &value, double scale) {
  AT_ASSERTM(value.type().is_cuda(), "value must be a CUDA tensor");
  auto output = at::empty_like(value);
  const int64_t n = value.numel();
  AT_DISPATCH_FLOATING_TYPES(value.type(), "ms_deform_attn_forward_cuda", ([&] {
    scale_kernel<scalar_t><<<(n + 255) / 256, 256, 0, c10::cuda::getCurrentCUDAStream()>>>(
        value.data<scalar_t>(), output.data<scalar_t>(), n, static_cast<scalar_t>(scale));
  }));
  return output;
}
'''


def _write(root: str, rel: str, text: str) -> None:
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


def write_old_msda_ops(root: str) -> str:
    """The old-torch ops layout under ``root``; returns ``root``."""
    _write(root, "setup.py", SETUP_PY)
    _write(root, "src/vision.cpp", VISION_CPP)
    _write(root, "src/ms_deform_attn.h", HEADER)
    _write(root, "src/cpu/ms_deform_attn_cpu.h", CPU_H)
    _write(root, "src/cpu/ms_deform_attn_cpu.cpp", CPU_CPP)
    _write(root, "src/cuda/ms_deform_attn_cuda.h", CUDA_H)
    _write(root, "src/cuda/ms_deform_attn_cuda.cu", CUDA_CU)
    return root


def write_current_msda_ops(root: str) -> str:
    """The same layout with sources already ported to current torch (what Mask2Former users get after porting)."""
    from envdoctor.fix.sources import patch_text

    write_old_msda_ops(root)
    for rel in ("src/ms_deform_attn.h", "src/cpu/ms_deform_attn_cpu.cpp", "src/cuda/ms_deform_attn_cuda.cu"):
        path = os.path.join(root, rel)
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        _write(root, rel, patch_text(text))
    return root


def write_stale_build(root: str) -> str:
    """A ``build/`` left behind by a build in another environment (ninja traces, objects, a fake .so)."""
    build = os.path.join(root, "build")
    _write(build, "temp.linux-x86_64-cpython-38/build.ninja", "ninja_required_version = 1.3\ncxx = /usr/bin/g++-9\n")
    _write(build, "temp.linux-x86_64-cpython-38/.ninja_log", "# ninja log v5\n")
    with open(os.path.join(build, "temp.linux-x86_64-cpython-38", "vision.o"), "wb") as fh:
        fh.write(b"\x7fELF\x02\x01\x01" + b"\0" * 57)
    os.makedirs(os.path.join(build, "lib.linux-x86_64-cpython-38"), exist_ok=True)
    return build


MAKE_SH = '''\
#!/usr/bin/env bash
# builds and installs the op into the environment, the way the project's INSTALL.md says
python setup.py build install
'''

FUNCTIONS_PY = '''\
import torch
from torch.autograd import Function

try:
    import MultiScaleDeformableAttention as MSDA
except ModuleNotFoundError as e:
    raise ModuleNotFoundError("compile the op: cd ops && sh make.sh")


class ScaleFunction(Function):
    @staticmethod
    def forward(ctx, value, scale):
        return MSDA.ms_deform_attn_forward(value, scale)


def scale_reference(value, scale):
    return value * scale
'''

MODULES_PY = '''\
from ..functions.scale_func import ScaleFunction, scale_reference


class Scale:
    def __init__(self, scale):
        self.scale = scale

    def __call__(self, value):
        try:
            return ScaleFunction.apply(value, self.scale)
        except:
            # CPU
            return scale_reference(value, self.scale)
'''


def write_project(root: str, name: str = "proj") -> tuple:
    """A project with the old ops under ``name/ops``: make.sh (build install), a wrapper that imports
    the module and calls it, and a module whose bare ``except:`` falls back in silence.
    Returns (project root, ops dir)."""
    ops = os.path.join(root, name, "ops")
    write_old_msda_ops(ops)
    _write(ops, "make.sh", MAKE_SH)
    _write(ops, "functions/__init__.py", "from .scale_func import ScaleFunction\n")
    _write(ops, "functions/scale_func.py", FUNCTIONS_PY)
    _write(ops, "modules/__init__.py", "from .scale import Scale\n")
    _write(ops, "modules/scale.py", MODULES_PY)
    _write(root, f"{name}/__init__.py", "")
    _write(root, "train.py", f"from {name}.ops.modules import Scale\nprint(Scale(2.0))\n")
    return root, ops


def write_egg(site_packages: str) -> str:
    """What ``sh make.sh`` with an old setuptools leaves: an egg whose module is a loader stub without
    the op's functions, put on sys.path by easy-install.pth. Returns the egg dir."""
    egg = os.path.join(site_packages, f"{MODULE}-1.0-py3.11-linux-x86_64.egg")
    _write(egg, f"{MODULE}.py", "def __bootstrap__():\n    pass\n__bootstrap__()\n")
    _write(egg, "EGG-INFO/PKG-INFO", f"Metadata-Version: 2.1\nName: {MODULE}\nVersion: 1.0\n")
    with open(os.path.join(site_packages, "easy-install.pth"), "a", encoding="utf-8") as fh:
        fh.write(egg + "\n")
    return egg
