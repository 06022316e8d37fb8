"""What `envdoctor explain` recognises: the corpus taxonomy as ordered patterns.

Each entry: category (see docs/explain.md), a regular expression searched in
the whole log (multi-line messages allowed), confidence, diagnosis and fix.
``{0}``, ``{1}``… in the texts are the pattern's groups. When two patterns
match the same line, the earlier entry wins.

Patterns must stay linear (no nested quantifiers): logs can be megabytes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional, Tuple


class _Found:
    """The part of ``re.Match`` the explain engine uses."""

    def __init__(self, start: int, groups: Tuple[str, ...]):
        self._start, self._groups = start, groups

    def start(self) -> int:
        return self._start

    def groups(self) -> Tuple[str, ...]:
        return self._groups


class NvccPath:
    """A missing ``…/bin/nvcc``, malformed (quotes, ':' from a PATH-like CUDA_HOME) or not.

    Found from the literal ``/bin/nvcc`` backwards, in linear time: a regex that
    tries every start position of a path is quadratic on long lines of colons.
    """

    _MISSING = ("No such file or directory", "unable to execute", "not found")

    def __init__(self, malformed: bool):
        self.malformed = malformed
        self.pattern = "…/bin/nvcc (malformed)" if malformed else "…/bin/nvcc (missing)"

    def search(self, text: str) -> Optional[_Found]:
        pos = text.find("/bin/nvcc")
        while pos >= 0:
            line_start = text.rfind("\n", 0, pos) + 1
            line_end = text.find("\n", pos)
            line = text[line_start:line_end if line_end >= 0 else len(text)]
            token_start = max(line_start, pos - 400)
            for sep in (" ", "\t", "\"", "["):
                token_start = max(token_start, text.rfind(sep, token_start, pos) + 1)
            path = text[token_start:pos] + "/bin/nvcc"
            if path.startswith("'") and "'" not in path[1:]:
                path = path[1:]  # the quote of a Python repr ('…/bin/nvcc'), not part of the path
            bad = "'" in path or ":" in path
            if any(m in line for m in self._MISSING) and bad == self.malformed:
                return _Found(token_start, (path,))
            pos = text.find("/bin/nvcc", pos + 1)
        return None


@dataclass(frozen=True)
class Pattern:
    category: str
    regex: Any  # a compiled pattern, or anything with .search(text) -> match-like
    diagnosis: str
    fix: str
    confidence: str = "high"


def _p(category: str, regex: str, diagnosis: str, fix: str, confidence: str = "high", flags: int = re.M) -> Pattern:
    return Pattern(category, re.compile(regex, flags), diagnosis, fix, confidence)


CHECK = "Run `envdoctor check` to see which toolkit, compiler and torch this machine has."

PATTERNS: Tuple[Pattern, ...] = (
    _p("toolkit_torch_mismatch",
       r"detected CUDA version \(([\d.]+)\) mismatches the version that was used to compile\s+PyTorch \(([\d.]+)\)",
       "The CUDA toolkit the build found (nvcc {0}) has a different major version than the CUDA torch was built "
       "with ({1}); torch.utils.cpp_extension refuses to mix them.",
       "Either point CUDA_HOME (and PATH) at a CUDA {1} toolkit, e.g. `export CUDA_HOME=/usr/local/cuda-{1}`, or "
       "install a torch built for CUDA {0}. " + CHECK),
    _p("arch_unsupported_by_nvcc", r"Unsupported gpu architecture '?(compute_\d+\w?|sm_\d+\w?)'?",
       "This nvcc is too old (or too new) to compile for {0}.",
       "Build only for archs this nvcc knows (`nvcc --list-gpu-arch`), e.g. `export TORCH_CUDA_ARCH_LIST=\"8.0\"`, "
       "or use a CUDA toolkit that supports {0} (sm_86 needs CUDA >= 11.1, sm_89/sm_90 need >= 11.8).", flags=re.M | re.I),
    _p("gcc_unsupported_by_nvcc",
       r"unsupported (GNU|clang) version(?:! (?:gcc|clang) versions later than (\d+))?",
       "nvcc refuses this {0} host compiler as too new for this CUDA release (it accepts versions up to {1}).",
       "Install a gcc this CUDA supports and select it for the build: `export CC=gcc-N CXX=g++-N` (or "
       "`NVCC_CCBIN=gcc-N`), or upgrade the CUDA toolkit. " + CHECK),
    _p("deprecated_torch_api_in_ext", r"(THC/\w+\.h): No such file or directory",
       "The extension source includes {0}; the THC library was removed from torch 1.11.",
       "Port the sources: `envdoctor fix` rewrites the removed APIs (THC includes -> ATen/cuda, THCudaCheck -> "
       "C10_CUDA_CHECK), then rebuild."),
    _p("deprecated_torch_api_in_ext", r"'AT_CHECK' was not declared|AT_CHECK[^\n]*(?:identifier not found|C3861)",
       "The extension source uses AT_CHECK, removed from torch 1.5.",
       "Replace AT_CHECK( with TORCH_CHECK( (`envdoctor fix` does it), then rebuild."),
    _p("deprecated_torch_api_in_ext",
       r"no suitable conversion function from \"const at::DeprecatedTypeProperties\"|DeprecatedTypeProperties",
       "The extension dispatches on `x.type()` (DeprecatedTypeProperties), which newer torch no longer converts "
       "to a ScalarType.",
       "Replace `value.type()` with `value.scalar_type()` in the AT_DISPATCH_* calls (`envdoctor fix` does it), "
       "then rebuild."),
    Pattern("cuda_home_misconfigured", NvccPath(malformed=True),
            "The nvcc path the build derived from CUDA_HOME is malformed: {0} (quotes, a leading ':' or a "
            "PATH-like list in CUDA_HOME).",
            "Set CUDA_HOME to one toolkit directory, without quotes or colons: `export CUDA_HOME=/usr/local/cuda`. "
            + CHECK),
    _p("cuda_home_unset", r"CUDA_HOME environment variable is not set|CUDA_HOME is None",
       "No CUDA toolkit was found for the build: CUDA_HOME is unset and no nvcc was found (or this platform, "
       "e.g. macOS, has no CUDA).",
       "Install a CUDA toolkit matching torch.version.cuda and `export CUDA_HOME=/usr/local/cuda-X.Y`; on a "
       "machine without CUDA, use the op's CPU/pure-PyTorch fallback. " + CHECK),
    Pattern("nvcc_missing", NvccPath(malformed=False),
            "There is no nvcc where the build looked ({0}): only a CUDA runtime is installed there (conda "
            "cudatoolkit or a runtime image ships no compiler), or CUDA_HOME names the wrong directory.",
            "Install a full CUDA toolkit with nvcc of the same major version as torch.version.cuda (conda: "
            "`conda install -c nvidia cuda-nvcc=X.Y`; docker: a *-devel image) and point CUDA_HOME at it. " + CHECK),
    _p("nvcc_missing", r"nvcc was not found|nvcc: (?:command )?not found",
       "There is no nvcc on this machine's PATH: only a CUDA runtime is installed (conda cudatoolkit or a runtime "
       "image ships no compiler).",
       "Install a full CUDA toolkit with nvcc of the same major version as torch.version.cuda (conda: "
       "`conda install -c nvidia cuda-nvcc=X.Y`; docker: a *-devel image) and point CUDA_HOME at it. " + CHECK),
    _p("link_cudart_not_found", r"cannot find -l(cudart|cuda|cublas|cudadevrt|nvrtc)\b",
       "The linker found no lib{0} where the build looked: the library dir is not under CUDA_HOME/lib64 (CUDA_HOME "
       "points at something that is not a toolkit, e.g. /usr/local from a /usr/local/bin/nvcc wrapper) or a conda "
       "linker searches only the env.",
       "Point CUDA_HOME at the real toolkit (`export CUDA_HOME=/usr/local/cuda`) or add its lib64 to LIBRARY_PATH; "
       "for libcuda (the driver), add the stubs dir: `export LIBRARY_PATH=$CUDA_HOME/lib64/stubs:$LIBRARY_PATH`. "
       + CHECK),
    _p("build_oom",
       r"Killed signal terminated program (\w+)|'(cicc|ptxas|cudafe\+\+|cc1plus)' died due to signal 9|"
       r"terminated with signal 9|signal 9 \[Killed\]|fatal error: Killed|^\s*Killed\s*$",
       "The compiler was killed by the kernel's out-of-memory killer: too many parallel compile jobs for the RAM.",
       "Build with fewer parallel jobs: `MAX_JOBS=2` (torch extensions) / `make -j2`, or add swap. nvcc jobs need "
       "2-4 GB each."),
    _p("cudnn_mismatch", r"cuDNN version (?:incompatibility|mismatch)[^\n]*",
       "A different cuDNN than the one torch was built with is loaded, usually from LD_LIBRARY_PATH.",
       "Remove the system cuDNN directories from LD_LIBRARY_PATH so torch loads its own cuDNN, e.g. "
       "`unset LD_LIBRARY_PATH` in a new shell. " + CHECK),
    _p("driver_library_mismatch", r"Driver/library version mismatch",
       "The NVIDIA user-space libraries were updated but the old kernel module is still loaded.",
       "Reboot (or unload and reload the nvidia kernel modules) so the kernel module matches the libraries."),
    _p("driver_too_old",
       r"CUDA driver version is insufficient for CUDA runtime version|cudaErrorInsufficientDriver|"
       r"The NVIDIA driver on your system is too old",
       "The NVIDIA driver is older than the CUDA runtime this binary was built with needs.",
       "Update the NVIDIA driver, or install a torch built for an older CUDA that this driver supports. "
       "`envdoctor check` shows the driver's maximum CUDA."),
    _p("driver_not_loaded",
       r"couldn.t communicate with the NVIDIA driver|no CUDA-capable device is detected|^[^\n]*NVRM:[^\n]*",
       "The NVIDIA kernel driver is not loaded for the running kernel (a kernel update without a reboot or a DKMS "
       "rebuild, or nouveau holding the GPU).",
       "Reboot; if that does not help, reinstall the driver for the running kernel (`sudo dkms autoinstall` or "
       "the distribution's driver package) and check `lsmod | grep nvidia`."),
    _p("gpu_selection", r"invalid device ordinal",
       "The code or CUDA_VISIBLE_DEVICES asks for a GPU index that does not exist (e.g. cuda:1 on a one-GPU "
       "machine).",
       "Use an existing index (`cuda:0`), or fix CUDA_VISIBLE_DEVICES; `envdoctor check` lists the GPUs."),
    _p("torch_arch_unsupported",
       r"with CUDA capability (sm_\d+) is not compatible with the current PyTorch installation",
       "This torch build has no kernels for the GPU's architecture {0}.",
       "Install a torch build whose arch list includes {0} (a newer CUDA build, e.g. cu118 or later for sm_86+)."),
    _p("no_kernel_image_for_gpu", r"no kernel image is available for execution on the device",
       "A compiled extension (or torch) has no code for this GPU's architecture.",
       "Rebuild the extension for this GPU: `export TORCH_CUDA_ARCH_LIST=\"X.Y\"` (the GPU's capability, from "
       "`envdoctor check`), remove its build/ dir, and build again."),
    _p("torch_cpu_only", r"Torch not compiled with CUDA enabled",
       "The installed torch is a CPU-only build.",
       "Install a CUDA build of torch, e.g. `pip install torch --index-url "
       "https://download.pytorch.org/whl/cu128` (pick the CUDA your driver supports)."),
    _p("ext_built_without_cuda", r"Not compiled with GPU support|CUDA compiler\s+not available",
       "The extension was compiled without CUDA (CUDA was not visible at build time), so its GPU ops are missing.",
       "Rebuild with CUDA visible: `export FORCE_CUDA=1 CUDA_HOME=/usr/local/cuda`, remove the old build/ dir, "
       "and build again."),
    _p("stale_build_abi", r"undefined symbol: (_ZN[KVr]*(?:3c10|2at|5torch|6caffe2)\w*)",
       "The extension was built against a different libtorch than the one imported (a stale build or egg, or "
       "torch upgraded afterwards): it needs {0}.",
       "Remove the old build (build/, *.so, the installed egg) and rebuild against the current torch, or install "
       "a prebuilt package for this torch version."),
    _p("ext_not_built",
       r"No module named '?(MultiScaleDeformableAttention|mmcv\._ext|detectron2\._C)'?|"
       r"Please compile (MultiScaleDeformableAttention) CUDA op|cannot import name '_C' from '(detectron2)'",
       "The compiled extension {0}{1}{2} was never built or installed (or a source checkout shadows the installed "
       "package).",
       "Build it: for Mask2Former `cd mask2former/modeling/pixel_decoder/ops && sh make.sh`; for mmcv install "
       "mmcv-full (or mmcv>=2 with ops); for detectron2 `pip install -e .` in its checkout."),
    _p("ext_not_built", r"detectron2\._C\s+(?:failed to import|not built correctly)",
       "detectron2's compiled _C does not load (detectron2's collect_env says so): it was not built, or was built "
       "for another torch.",
       "Rebuild detectron2 against the current torch: `pip uninstall -y detectron2`, remove its build/ dir, then "
       "`pip install -e .` in the checkout (with CUDA_HOME set for GPU ops).", "medium"),
    _p("libstdcxx_mismatch", r"((?:GLIBCXX|CXXABI)_[\d.]+)'? not found",
       "The libstdc++ loaded at run time (often the conda env's) is older than the one the library was built "
       "with: {0} is missing.",
       "Use a libstdc++ at least as new as the compiler's: `conda install -c conda-forge libstdcxx-ng` in the env, "
       "or build with the env's compiler."),
    _p("missing_runtime_lib",
       r"(lib(?:cudart|cudnn\w*|cublas\w*|cufft|curand|cusparse|cusolver|nvrtc|nccl|nvJitLink|nvToolsExt)"
       r"\.so[.\d]*): cannot open shared object file",
       "{0} is not on the loader path: that CUDA library (of that major version) is not installed, or not "
       "where the loader looks.",
       "Install the CUDA runtime of that version (pip `nvidia-*` wheels, conda, or the toolkit) or, if a package "
       "was built for another CUDA, install its build for this CUDA. " + CHECK),
    _p("nccl", r"NCCL WARN[^\n]*(?:shared memory|posix_fallocate)|posix_fallocate failed|"
               r"NCCL (?:error|Error \d+)[^\n]*unhandled system error|'unhandled system error'",
       "NCCL could not set up its transports, usually shared memory: /dev/shm too small or isolated (docker).",
       "In docker, run with `--ipc=host` or `--shm-size=8g`; or set `NCCL_SHM_DISABLE=1`; `NCCL_DEBUG=INFO` "
       "shows the failing step."),
    _p("package_version_incompatible", r"MMCV==([\w.+]+) is used but incompatible[^\n]*",
       "The installed mmcv {0} is outside the version range this OpenMMLab package accepts.",
       "Install an mmcv(-full) version inside the range the error names, built for your torch and CUDA."),
    _p("other", r"No such file or directory: '?[^'\n]*build\.ninja",
       "setuptools/ninja could not create or read the build directory's build.ninja (an earlier step failed or "
       "the build dir is not writable).",
       "Look for the first error above this line; remove the build/ dir and build again."),
)
