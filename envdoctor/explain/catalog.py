"""The known problems, as data (see :mod:`envdoctor.explain.signature`): the alternatives several
signatures share, and the table itself, assembled from :mod:`.catalog_build` (compiling and linking)
and :mod:`.catalog_runtime` (drivers, loading, running).

Categories are the corpus taxonomy (docs/explain.md). Phrasings come from real
logs: GCC's typographic quotes are normalised before matching, so 'x' covers
‘x’; Chinese variants are real compiler/Python output in zh_CN locales.
"""
from __future__ import annotations

from envdoctor.explain import fixtext as fx
from envdoctor.explain.signature import Alternative

CHECK = fx.CHECK

CONTAINER = Alternative(
    "container_gpu_not_exposed", 0.3,
    "This runs in a container started without GPU access, so the host driver is not visible inside it.",
    "Start the container with the NVIDIA container toolkit: `docker run --gpus all ...` (or `--runtime=nvidia`), "
    "and check `nvidia-smi` inside it.")
PREBUILT = Alternative(
    "prebuilt_wheel_mismatch", 0.3,
    "A prebuilt package (mmcv, a wheel, a .so) was built for another CUDA or torch than this machine has.",
    "Install that package's build for your torch and CUDA (the matching wheel index or tag), or build it here. "
    + CHECK)
MULTIPLE = Alternative(
    "multiple_cuda_toolkits", 0.2,
    "Several CUDA toolkits are installed and the build picked another one than intended (PATH, the "
    "/usr/local/cuda link, a distribution /usr/bin/nvcc).",
    "`which -a nvcc` lists them; put the intended one first: `export PATH=/usr/local/cuda-X.Y/bin:$PATH "
    "CUDA_HOME=/usr/local/cuda-X.Y`.")
MISCONFIGURED = Alternative(
    "cuda_home_misconfigured", 0.35,
    "CUDA_HOME (or a path in the build script) names a directory without a toolkit.",
    "Set CUDA_HOME to the installed toolkit's root (the directory whose bin/ holds nvcc): "
    "`export CUDA_HOME=/usr/local/cuda-X.Y`. " + CHECK)
ARCH_TORCH = Alternative(
    "torch_arch_unsupported", 0.25,
    "Torch itself has no kernels for this GPU (an old torch build on a new GPU).",
    "Compare `python -c \"import torch; print(torch.cuda.get_arch_list(), torch.cuda.get_device_capability())\"`; "
    "install a newer CUDA build of torch if the GPU's sm_XY is missing.")
GPU_SELECTION = Alternative(
    "gpu_selection", 0.25,
    "CUDA_VISIBLE_DEVICES (or the code) selects GPUs that do not exist, so CUDA sees none.",
    "Compare `echo $CUDA_VISIBLE_DEVICES` with `nvidia-smi -L`; unset it or use existing indices.")

# A regex starting with this tries only at the start of a token (paths are long: lazy scans from every
# position of a window would cost its length squared).
_TOKEN = r"(?<![^\s'\"(\[=])"
# A mangled name in torch's own namespaces (c10::, at::, torch::, caffe2::, THP*), right after _ZN/_ZNK/_ZTIN.
_TORCH_SYMBOL = r"_Z(?:T[ISV])?N?[KVr]*(?:3c10|2at|5torch|6caffe2|3thp|4thpp|5c10d)"

from envdoctor.explain.catalog_build import BUILD  # noqa: E402 (they use the alternatives above)
from envdoctor.explain.catalog_runtime import RUNTIME  # noqa: E402
from envdoctor.explain.catalog_packages import PACKAGES  # noqa: E402

SIGNATURES = BUILD + RUNTIME + PACKAGES
