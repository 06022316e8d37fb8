"""Second tier: when no signature matches, weigh the log's words for each category.

Signatures know exact messages; a log phrased in a way none of them knows
(another tool's wording, a project's own guard, a paraphrase in an issue)
still names the things involved: a library (libcudart, libnccl, cuDNN), a tool
(nvcc, gcc, ld, docker), a condition ("undefined symbol", "no kernel image",
"driver ... too old"), an architecture (sm_XX/compute_XX), several CUDA
versions. Each :class:`Feature` is such a clue: a cheap lower-case literal, a
regular expression, and how much it supports each category. A category's
score is the sum of its distinct features, each weighed by the role of the
line it is on (an error line counts fully, a warning or note a third).

This tier answers only when nothing else did, only when the log shows a
failure (an error or consequence line; a paste of at most ``SHORT`` lines is
taken as the message itself, since many libraries print errors without an
error word), and only when the best category has at
least one strong clue (or two clues and a higher total) and a clear total. Its answers are always low confidence
(at most 0.44) and say which clues they rest on; a close runner-up is offered
as the alternative. Like the signatures, every feature carries must-fire and
must-not-fire examples, all tested.

Cost: only lines near an error or consequence line are examined (``NEAR``
lines either side, noise skipped, at most ``MAX_LINES`` of them: the first and
last), each only its head (``HEAD`` characters) and each distinct line once,
with a literal test per clue before its regular expression.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from envdoctor.explain import roles as R
from envdoctor.explain.reading import Log

CHECK = "`envdoctor check` shows this machine's toolkit, driver, GPU and torch."
MAX_LINES = 2000  # lines examined at most
NEAR = 3  # lines around an error or consequence line that are examined
HEAD = 600  # characters of a line examined
SHORT = 5  # a pasted message this short is weighed even without an error word on any line
THRESHOLD = 0.9  # total a category needs
STRONG = 0.8  # at least one clue this strong
MAX_SCORE = 0.44  # always "low"
ROLE_WEIGHT = {R.ERROR: 1.0, R.CONSEQUENCE: 1.0, R.TEXT: 0.7, R.WARNING: 0.35, R.NOTE: 0.35}


@dataclass(frozen=True)
class Feature:
    name: str  # what the clue is, in words (quoted in the diagnosis)
    anchor: str  # lower-case literal every match contains
    regex: "re.Pattern[str]"
    weights: Tuple[Tuple[str, float], ...]
    must_fire: Tuple[str, ...] = ()
    must_not_fire: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.anchor != self.anchor.lower():
            raise ValueError(f"anchor must be lower case: {self.anchor!r}")

    def matches(self, text: str) -> bool:
        return self.anchor in text.lower() and bool(self.regex.search(text))


def feature(name: str, anchor: str, pattern: str, weights: Dict[str, float],
            fire: Sequence[str] = (), not_fire: Sequence[str] = ()) -> Feature:
    return Feature(name, anchor, re.compile(pattern, re.I), tuple(weights.items()), tuple(fire), tuple(not_fire))


_RUNTIME_LIBS = r"(?:cudart|cublas\w*|cudnn\w*|cufft\w*|curand|cusparse\w*|cusolver\w*|nvrtc\w*|nvjitlink|nccl|nvtoolsext|cupti)"

FEATURES: Tuple[Feature, ...] = (
    # --- the driver ---
    feature("the driver said to be too old", "driver",
            r"driver\b[^\n]{0,80}?\b(?:too old|insufficient|older than|outdated|not new enough|does not support cuda)"
            r"|(?:update|upgrade|newer)\s+(?:your\s+|the\s+)?(?:nvidia\s+|gpu\s+)?driver",
            {"driver_too_old": 1.3},
            ("the installed NVIDIA driver is older than this CUDA runtime needs",
             "please upgrade your NVIDIA driver to 525 or later"),
            ("nvidia driver 550.54 loaded", "driver version: 535.104")),
    feature("a driver version number torch found", "found version", r"found version \d{4,5}\b",
            {"driver_too_old": 0.6}, ("(found version 11040)",), ("found version 1.2.3 of numpy",)),
    feature("the driver not loaded or not reachable", "driver",
            r"(?:communicate|connect|talk|load|find|reach|open)\w*\s+(?:with\s+|to\s+)?(?:the\s+)?nvidia\s+(?:kernel\s+)?"
            r"(?:driver|module)|(?:nvidia\s+)?(?:kernel\s+)?driver\b[^\n]{0,40}?\b(?:not (?:loaded|running|"
            r"installed|found|present|available)|is missing|failed to load)|no nvidia driver",
            {"driver_not_loaded": 1.3, "container_gpu_not_exposed": 0.3},
            ("unable to communicate with the NVIDIA kernel driver", "the NVIDIA driver is not loaded",
             "error: no NVIDIA driver on this system"),
            ("driver version: 535.104.05", "using the nvidia driver 550")),
    feature("the kernel module", "nvidia",
            r"\bmodprobe\b[^\n]{0,60}nvidia|\bnvrm\b|nvidia[^\n]{0,30}\bdkms\b|\bdkms\b[^\n]{0,30}nvidia"
            r"|nvidia\.ko\b|nvidia kernel module",
            {"driver_not_loaded": 1.0},
            ("modprobe: ERROR: could not insert 'nvidia': Key was rejected by service",
             "Error! Bad return status for module build on kernel: 6.8.0 (nvidia-dkms)"),
            ("nvidia-smi -L",)),
    feature("NVML", "nvml", r"\bnvml\b", {"driver_library_mismatch": 0.6, "container_gpu_not_exposed": 0.3,
                                          "driver_not_loaded": 0.2},
            ("NVML library version: 570.124",), ("nvmlx",)),
    feature("a version mismatch", "mismatch", r"version mismatch|mismatch(?:ed)? (?:in )?version",
            {"driver_library_mismatch": 0.6, "toolkit_torch_mismatch": 0.4, "cudnn_mismatch": 0.3},
            ("kernel/user-space version mismatch",), ("no mismatch found",)),
    feature("libcuda (the driver's library)", "libcuda", r"\blibcuda\.so\b|\bnvcuda\.dll\b",
            {"driver_not_loaded": 0.9, "container_gpu_not_exposed": 0.4},
            ("OSError: libcuda.so: cannot open shared object file",), ("libcudart.so.12",)),
    feature("no GPU visible", "gpu",
            r"no (?:cuda[- ])?(?:capable )?(?:gpus?|devices?) (?:(?:are|is|were|was) )?(?:available|found|detected)"
            r"|(?:found|detected|see[sn]?) no (?:cuda )?gpus?|gpu (?:is )?not (?:available|detected|found)",
            {"driver_not_loaded": 0.7, "gpu_selection": 0.5, "container_gpu_not_exposed": 0.4},
            ("RuntimeError: No GPUs found on this machine", "error: GPU not detected"),
            ("1 GPU available", "GPU available: True")),
    # --- containers ---
    feature("docker", "docker", r"\bdocker\b(?!-)", {"container_gpu_not_exposed": 0.6},
            ("docker run --rm image",), ("docker-pycreds==0.4.0",)),
    feature("the container runtime", "container",
            r"nvidia-container|container[- ]toolkit|container runtime|\bnvidia-docker|--runtime[= ]nvidia",
            {"container_gpu_not_exposed": 1.0},
            ("nvidia-container-runtime: not found", "failed to configure the container runtime"),
            ("container started",)),
    feature("GPU capabilities requested from a container engine", "gpu",
            r"capabilit(?:y|ies)[^\n]{0,20}\bgpu\b|\[\[gpu\]\]|--gpus\b|--device[= ]nvidia\.com/gpu|nvidia\.com/gpu",
            {"container_gpu_not_exposed": 1.1},
            ("Error: no device driver found for capabilities [gpu]", "podman run --device nvidia.com/gpu=all img"),
            ("gpu capability 8.6",)),
    feature("the container daemon", "daemon", r"error response from daemon|\boci runtime\b",
            {"container_gpu_not_exposed": 0.6},
            ("docker: Error response from daemon: unknown flag",), ("the daemon started",)),
    # --- GPU architectures ---
    feature("an sm_XX/compute_XX architecture", "_", r"\b(?:sm|compute)_\d{2,3}[a-z]?\b",
            {"arch_unsupported_by_nvcc": 0.4, "no_kernel_image_for_gpu": 0.3, "torch_arch_unsupported": 0.3},
            ("-gencode arch=compute_86,code=sm_86",), ("compute_capability",)),
    feature("an unsupported GPU architecture for the compiler", "arch",
            r"(?:unsupported|unknown|invalid|not supported)[^\n]{0,30}(?:gpu[- ])?arch|\barch\w*[^\n]{0,30}"
            r"(?:not supported|unsupported|unknown|invalid)|\bgpu-name\b",
            {"arch_unsupported_by_nvcc": 1.2},
            ("nvcc error: invalid GPU architecture 'sm_120'", "error: arch sm_89 is not supported by this nvcc"),
            ("detected gpu architecture: 8.6",)),
    feature("no kernel for this GPU", "kernel", r"no (?:suitable )?kernel image|kernel image[^\n]{0,30}not available"
            r"|no kernel (?:is )?(?:available|found) for|invalid device function",
            {"no_kernel_image_for_gpu": 1.2, "torch_arch_unsupported": 0.3},
            ("CUDA error: no kernel image available for this device",), ("kernel image loaded",)),
    feature("a GPU too new or old for the torch build", "pytorch",
            r"(?:not compatible|incompatible|unsupported) with (?:the |this )?(?:current |installed )?pytorch"
            r"|pytorch (?:no longer|does not) supports?",
            {"torch_arch_unsupported": 1.2},
            ("GPU is not compatible with this PyTorch build",), ("compatible with pytorch 2.1",)),
    feature("a CUDA capability number", "capabilit", r"cuda capabilit(?:y|ies)|compute capabilit(?:y|ies)",
            {"torch_arch_unsupported": 0.5, "no_kernel_image_for_gpu": 0.3, "arch_unsupported_by_nvcc": 0.2},
            ("GPU0 with CUDA capability 3.5",), ("capability",)),
    # --- compilers and the build ---
    feature("a host compiler version nvcc refuses", "version",
            r"unsupported (?:gnu|gcc|clang|microsoft visual studio|msvc|host compiler) version|gcc versions? later than"
            r"|allow-unsupported-compiler|host compiler[^\n]{0,60}?(?:not supported|unsupported)",
            {"gcc_unsupported_by_nvcc": 1.4},
            ("error: unsupported host compiler version",
             "nvcc fatal : The version ('130000') of the host compiler ('clang') is not supported"),
            ("gcc version 11.4.0",)),
    feature("nvcc's host_config.h", "host_config", r"host_config\.h", {"gcc_unsupported_by_nvcc": 0.9},
            ("crt/host_config.h(151): fatal error",), ("host_config_old",)),
    feature("a compiler or linker killed", "kill",
            r"\bkilled\b|signal 9\b|\bsigkill\b|已杀死|out of memory[^\n]{0,20}(?:cc1|compil|ptxas|cicc|ld)",
            {"build_oom": 1.1},
            ("g++: internal compiler error: Killed (program cc1plus)",), ("skill", "killed_at = 0")),
    feature("memory exhausted while building", "memory",
            r"virtual memory exhausted|cannot allocate memory|memory exhausted|std::bad_alloc|\boom[- ]?kill",
            {"build_oom": 1.0},
            ("cc1plus: out of memory allocating 65536 bytes; virtual memory exhausted",),
            ("CUDA out of memory. Tried to allocate 20.00 MiB",)),
    feature("the compiler processes", "c", r"\b(?:cc1plus|cc1|cicc|ptxas)\b", {"build_oom": 0.4},
            ("program cc1plus",), ("cc1plusx",)),
    # --- nvcc and CUDA_HOME ---
    feature("nvcc not found", "nvcc",
            r"nvcc\W{0,3}[^\n]{0,60}?(?:not found|could not be (?:found|located)|not recognized|no such file|"
            r"command not found|is not installed|not installed|missing|未找到|找不到)"
            r"|(?:cannot|could not|couldn't|unable to|failed to) (?:find|locate|execute|run)[^\n]{0,30}\bnvcc\b",
            {"nvcc_missing": 1.4, "cuda_home_misconfigured": 0.2},
            ("error: nvcc is not installed", "Unable to locate the CUDA compiler (nvcc)"),
            ("nvcc: NVIDIA (R) Cuda compiler driver",)),
    feature("nvcc", "nvcc", r"\bnvcc\b", {"nvcc_missing": 0.3, "arch_unsupported_by_nvcc": 0.2,
                                          "toolkit_torch_mismatch": 0.1},
            ("/usr/local/cuda/bin/nvcc -c x.cu",), ("nvccx",)),
    feature("CUDA_HOME/CUDA_PATH", "cuda", r"\bcuda_?home\b|\bcuda_path\b|\bcuda_root\b|\bcudahome\b",
            {"cuda_home_unset": 0.5, "cuda_home_misconfigured": 0.5},
            ("echo $CUDA_HOME",), ("cudahomework",)),
    feature("CUDA_HOME not set", "cuda",
            r"(?:cuda_?home|cuda_path|cuda_root|cudahome|cuda toolkit (?:path|root))[^\n]{0,40}?(?:not set|is none|"
            r"\bnone\b|undefined|is empty|not defined|unset|not found)|(?:set|define)\s+(?:the\s+)?(?:cuda_?home|cuda_path)",
            {"cuda_home_unset": 1.2},
            ("Error: CUDA_PATH is not defined", "please set CUDA_HOME to your toolkit"),
            ("CUDA_HOME=/usr/local/cuda",)),
    feature("a malformed CUDA path", "cuda",
            r"(?:^|[\s'\"=(]|-[IL]):/usr/(?:local/)?cuda|/bin/bin/nvcc|cuda_?home\s*=\s*['\"]?[^\s'\"]*:[/$]",
            {"cuda_home_misconfigured": 1.3},
            ("-I:/usr/local/cuda/include",), ("PATH=/usr/bin:/usr/local/cuda/bin",)),
    # --- linking and loading ---
    feature("a library the linker cannot find", "find",
            r"cannot find -l\w+|unable to find library -l\w+|library not found for -l\w+|lnk1181|lnk1104",
            {"link_cudart_not_found": 1.2},
            ("ld.lld: error: unable to find library -lcudart",), ("find -L .",)),
    feature("the linker failed", "ld", r"\bcollect2\b|\bld returned\b|\bld(?:\.lld|\.gold)?: error",
            {"link_cudart_not_found": 0.4, "stale_build_abi": 0.1},
            ("collect2: error: ld returned 1 exit status",), ("old returned",)),
    feature("a CUDA runtime library", "lib",
            r"\blib" + _RUNTIME_LIBS + r"\w*\.so(?:\.\d+)*",
            {"missing_runtime_lib": 0.7, "prebuilt_wheel_mismatch": 0.3, "link_cudart_not_found": 0.2},
            ("libcublasLt.so.11",), ("libcuda.so.1", "libfoo.so")),
    feature("a CUDA runtime DLL", ".dll", r"\b" + _RUNTIME_LIBS + r"\w*?64_\d+\w*\.dll",
            {"missing_runtime_lib": 0.7, "prebuilt_wheel_mismatch": 0.3},
            ("cudnn64_8.dll", "cublas64_11.dll"), ("nvcuda.dll", "python3.dll")),
    feature("a shared library that cannot be loaded", "l",
            r"cannot open shared object|could not load (?:dynamic )?librar|error while loading shared librar"
            r"|dll load failed|could not find module|library not loaded|\bdlopen\b|\bdlerror\b|unable to load",
            {"missing_runtime_lib": 1.0, "driver_not_loaded": 0.1},
            ("Could not load library libcudnn_cnn_infer.so.8. Error: libnvrtc.so: cannot open shared object file",
             "ImportError: DLL load failed while importing _C"),
            ("loading library done",)),
    feature("libstdc++/glibc symbol versions", "glib",
            r"\bglibcxx_\d|\bglibc_2\.\d+|\bcxxabi_\d", {"libstdcxx_mismatch": 1.3},
            ("version `GLIBCXX_3.4.32' not found",), ("glibcxx",)),
    feature("libstdc++", "libstdc++", r"libstdc\+\+", {"libstdcxx_mismatch": 0.6},
            ("/lib64/libstdc++.so.6",), ("libstdc",)),
    feature("an undefined symbol", "undefined", r"undefined symbol|undefined reference",
            {"stale_build_abi": 0.8, "ext_built_without_cuda": 0.2, "link_cudart_not_found": 0.2},
            ("ImportError: x.so: undefined symbol: foo",), ("undefined behaviour",)),
    feature("a mangled torch symbol", "_z", r"\b_Z\w*?(?:3c10|2at|5torch|6caffe2|3thp|5c10d)",
            {"stale_build_abi": 1.0},
            ("_ZN3c104cuda9SetDeviceEi",), ("_Zfoo",)),
    feature("the C++ ABI flag", "abi", r"cxx11_abi|\bcxx11\b|\babi\b", {"stale_build_abi": 0.4,
                                                                      "libstdcxx_mismatch": 0.2},
            ("-D_GLIBCXX_USE_CXX11_ABI=0",), ("stabilize",)),
    # --- extensions ---
    feature("a compiled submodule that is not there", "no module named",
            r"no module named\s*['\"]?[\w.]*?(?:\b_C|_ext|_cuda|_ops|_backend|_kernels?|_cpp|_lib)\b",
            {"ext_not_built": 1.2},
            ("ModuleNotFoundError: No module named 'pointnet2._ext'",), ("No module named 'numpy'",)),
    feature("a missing module named like a compiled op (CamelCase)", "no module named",
            r"no module named\s*['\"]?(?-i:(?:[\w]+\.)*[A-Z][a-z0-9]+(?:[A-Z][A-Za-z0-9]*)+)\b",
            {"ext_not_built": 0.9},
            ("ModuleNotFoundError: No module named 'DeformConvCuda'",), ("No module named 'Pillow'", "No module named 'yaml'")),
    feature("a private name left undefined by a failed import", "is not defined",
            r"name '_\w+' is not defined", {"ext_not_built": 0.9},
            ("NameError: name '_ext' is not defined",), ("NameError: name 'foo' is not defined",)),
    feature("a module that is not there", "no module named", r"no module named", {"ext_not_built": 0.6},
            ("No module named 'deform_conv_cuda'",), ("module named foo",)),
    feature("an import of a compiled name failing", "import", r"cannot import name|importerror|dll load failed",
            {"ext_not_built": 0.3, "stale_build_abi": 0.2, "missing_runtime_lib": 0.2},
            ("ImportError: cannot import name 'x'",), ("import os",)),
    feature("an op that must be compiled first", "compil",
            r"please (?:compile|build)|(?:not|wasn't|was not|isn't|is not|has not been|hasn't been) (?:been )?"
            r"(?:built|compiled)(?! with)|(?:compile|build) (?:the )?(?:cuda )?(?:ops?|extensions?|kernels?) first",
            {"ext_not_built": 1.1},
            ("Error: the CUDA ops have not been compiled; run setup.py build_ext",), ("compiled with gcc",)),
    feature("built without CUDA", "compil",
            r"(?:compiled|built|installed) without (?:gpu|cuda)|not (?:compiled|built) with (?:gpu|cuda)"
            r"|without cuda support|\bcpu[- ]only (?:build|version|op)",
            {"ext_built_without_cuda": 1.0, "torch_cpu_only": 0.6},
            ("error: roi_align was compiled without CUDA support",), ("compiled with CUDA 12.1",)),
    feature("torch itself without CUDA", "torch",
            r"torch\S* (?:is |was )?(?:not (?:compiled|built) with cuda|cpu[- ]only)|\btorch==?[\d.]+\+cpu\b"
            r"|\btorch\b[^\n]{0,40}\bcpu[- ]only\b|cuda available:\s*false|is_available\(\)\s*(?:returns?|is|==|:)?\s*false",
            {"torch_cpu_only": 1.2},
            ("torch==2.1.0+cpu", "torch.cuda.is_available() returns False"), ("torch==2.1.0+cu121",)),
    feature("removed TH/THC headers or macros", "th",
            r"\bTHC?(?:UNN)?/\w+\.(?:h|cuh|hpp)\b|\bTHC(?:State|udaCheck|_\w+|\w*Tensor)\w*",
            {"deprecated_torch_api_in_ext": 1.2},
            ("THC/THCAtomics.cuh: No such file", "'THCState_getCurrentStream' was not declared"),
            ("#include <ATen/ATen.h>", "THCx")),
    feature("torch's removed AT_CHECK macro", "at_check", r"\bAT_CHECK\b", {"deprecated_torch_api_in_ext": 1.2},
            ('error: identifier "AT_CHECK" is undefined',), ("TORCH_CHECK(x)", "AT_CHECKS")),
    feature("torch's deprecated tensor type API", "deprecatedtypeproperties", r"DeprecatedTypeProperties",
            {"deprecated_torch_api_in_ext": 1.2},
            ("cannot convert 'const at::DeprecatedTypeProperties' to 'c10::ScalarType'",), ("TypeProperties",)),
    feature("an API the compiler no longer knows", "declar",
            r"was not declared|not declared in this scope|undeclared identifier|is not a member of|has no member named",
            {"deprecated_torch_api_in_ext": 0.5},
            ("error: 'x' was not declared in this scope",), ("declared here",)),
    # --- versions ---
    feature("the toolkit and torch's CUDA compared", "cuda",
            r"(?:detected|installed|system|local|found|your)[^\n]{0,20}cuda[^\n]{0,60}?(?:mismatch|differ|does not "
            r"match|doesn't match|incompatible)|(?:used to compile|compiled) (?:with )?pytorch|torch\.version\.cuda",
            {"toolkit_torch_mismatch": 1.1},
            ("Your installed CUDA 12.4 does not match the CUDA 11.8 torch was built with",),
            ("cuda 12.4 installed",)),
    feature("cuDNN", "cudnn", r"\bcudnn\b", {"cudnn_mismatch": 0.6, "missing_runtime_lib": 0.2},
            ("cuDNN 8.9",), ("cudnnx",)),
    feature("a cuDNN version conflict", "cudnn",
            r"cudnn[^\n]{0,80}?(?:version|incompatib|mismatch|compiled against|compiled with|linked against|expected)",
            {"cudnn_mismatch": 1.0},
            ("Loaded runtime CuDNN library: 8.0.5 but source was compiled with: 8.1.0",), ("cudnn enabled",)),
    feature("compiled against one version, running another", "against",
            r"compiled (?:against|with)[^\n]{0,60}?(?:but|while)[^\n]{0,40}?(?:linked|found|runtime|loaded)",
            {"cudnn_mismatch": 0.6, "toolkit_torch_mismatch": 0.3},
            ("compiled against 8.1 but found runtime 8.0",), ("compiled against numpy",)),
    feature("a GPU index that does not exist", "device",
            r"invalid device (?:ordinal|id|index)|device ordinal|cudaerrorinvaliddevice|invalid cuda device"
            r"|device index[^\n]{0,30}out of range",
            {"gpu_selection": 1.3},
            ("ValueError: invalid CUDA device id 3",), ("device 0",)),
    feature("CUDA_VISIBLE_DEVICES", "cuda_visible_devices", r"cuda_visible_devices",
            {"gpu_selection": 0.6}, ("CUDA_VISIBLE_DEVICES=1",), ("VISIBLE_DEVICES",)),
    feature("NCCL", "nccl", r"\bnccl\w*", {"nccl": 1.0}, ("ncclInternalError",), ("nccx",)),
    feature("shared memory", "sh", r"/dev/shm|\bshm_open|shared memory|posix_fallocate|--ipc[= ]host|shm-size",
            {"nccl": 0.6}, ("no space left on /dev/shm",), ("shmoo",)),
    feature("distributed training", "r", r"init_process_group|process ?group|all_?reduce|\bgloo\b|rendezvous"
            r"|torch\.distributed",
            {"nccl": 0.4}, ("torch.distributed.DistBackendError",), ("reduce",)),
    feature("two CUDA toolkits", "cuda",
            r"found unsuitable version|(?:multiple|several|two|another|different) (?:cuda )?(?:toolkits|cuda "
            r"(?:installations|versions|toolkits))|which -a nvcc|nvidia-cuda-toolkit",
            {"multiple_cuda_toolkits": 1.1},
            ("I have two CUDA toolkits installed",), ("one cuda toolkit",)),
    feature("a package's version requirement", "",
            r"is used but incompatible|incompatible[^\n]{0,40}\b(?:version|install)|version conflict"
            r"|conflicting dependencies|resolutionimpossible|requires? [\w.-]+\s*(?:[<>=!~]=?|>)\s*\d"
            r"|please (?:install|upgrade|downgrade) [\w.-]+\s*(?:[<>=!~]=?|>)\s*\d",
            {"package_version_incompatible": 1.1},
            ("mmdet 3.0.0 requires mmcv<2.1.0,>=2.0.0rc4",), ("package installed",)),
    feature("an OpenMMLab package", "mm", r"\bmm(?:cv|det|seg|engine|det3d|pose)\b",
            {"package_version_incompatible": 0.4, "prebuilt_wheel_mismatch": 0.3, "ext_not_built": 0.2},
            ("mmcv-full",), ("mmx",)),
    feature("a prebuilt binary for some CUDA", "",
            r"\+cu\d{2,3}\b|\bcu\d{3}\b|\bwheel\b|\.whl\b|prebuilt|pre-built",
            {"prebuilt_wheel_mismatch": 0.6},
            ("torch-2.1.0+cu118-cp310-linux_x86_64.whl",), ("cupcake",)),
    feature("the nvidia-smi CUDA version", "cuda version", r"cuda version:?\s*\d+\.\d",
            {"smi_cuda_version_confusion": 0.5}, ("| NVIDIA-SMI 535.104   Driver Version: 535.104   CUDA Version: 12.2 |",),
            ("cuda version unknown",)),
    feature("ninja's build file or TORCH_CUDA_ARCH_LIST", "",
            r"build\.ninja|\bninja\b[^\n]{0,30}(?:not found|missing|required)|arch_list\[",
            {"other": 0.9}, ("ninja is required to load C++ extensions",), ("ninja: build stopped",)),
)

@dataclass
class Verdict:
    category: str
    score: float  # the raw weighed sum
    strong: bool
    lines: List[int]  # line indexes, first clue first
    clues: List[str]


def _picked(roles: Sequence[str]) -> List[int]:
    """Non-noise lines within ``NEAR`` lines of an error or consequence, the first and last of them (all lines of
    a short paste)."""
    if len(roles) <= SHORT:
        return [i for i, role in enumerate(roles) if role != R.NOISE]
    near = set()
    for index, role in enumerate(roles):
        if role in (R.ERROR, R.CONSEQUENCE):
            near.update(range(max(0, index - NEAR), min(len(roles), index + NEAR + 1)))
    picked = sorted(i for i in near if roles[i] != R.NOISE)
    if len(picked) > MAX_LINES:
        picked = picked[:MAX_LINES // 5] + picked[-(MAX_LINES - MAX_LINES // 5):]
    return picked


def weigh(lines: Sequence[str], roles: Sequence[str]) -> List[Verdict]:
    """Every category with its weighed clues, best first (the raw material of :func:`classify`)."""
    best: Dict[str, Tuple[float, int]] = {}  # feature name -> (role weight, first line)
    by_name = {f.name: f for f in FEATURES}
    done = set()  # (head, weight) already examined: build logs repeat lines
    # A short paste with no error line is the message itself: its plain lines count fully.
    plain = 1.0 if len(roles) <= SHORT and not any(r in (R.ERROR, R.CONSEQUENCE) for r in roles) else 0.7
    for index in _picked(roles):
        head = lines[index][:HEAD]
        weight = plain if roles[index] == R.TEXT else ROLE_WEIGHT.get(roles[index], 0.7)
        if (head, weight) in done:
            continue
        done.add((head, weight))
        low = head.lower()
        for feat in FEATURES:
            if feat.anchor not in low:
                continue
            known = best.get(feat.name)
            if known is not None and known[0] >= weight:
                continue
            if feat.regex.search(head):
                best[feat.name] = (weight, index if known is None else min(known[1], index))
    totals: Dict[str, Verdict] = {}
    for name, (weight, index) in sorted(best.items(), key=lambda kv: kv[1][1]):
        for category, value in by_name[name].weights:
            verdict = totals.setdefault(category, Verdict(category, 0.0, False, [], []))
            verdict.score += value * weight
            verdict.strong = verdict.strong or value * weight >= STRONG
            if index not in verdict.lines:
                verdict.lines.append(index)
            verdict.clues.append(name)
    return sorted(totals.values(), key=lambda v: (-v.score, v.lines[0]))


def classify(log: Log, roles: Sequence[str]) -> list:
    """Low-confidence explanations from the log's clues; empty unless the log shows a failure and one
    category clearly leads."""
    from envdoctor.explain.analysis import Explanation, label  # noqa: E402 (one Explanation type)

    failed = any(role in (R.ERROR, R.CONSEQUENCE) for role in roles)
    if not failed and len(log.lines) > SHORT:
        return []
    verdicts = weigh(log.lines, roles)
    if not verdicts:
        return []
    top = verdicts[0]
    if top.score < THRESHOLD or not (top.strong or (top.score >= 1.2 and len(set(top.clues)) >= 2)):
        return []
    runner = verdicts[1] if len(verdicts) > 1 else None
    close = runner is not None and runner.strong and runner.score >= 0.75 * top.score
    result = []
    for verdict, alternative_to in ((top, None), (runner, top.category) if close else (None, None)):
        if verdict is None:
            continue
        score = min(MAX_SCORE, 0.2 + 0.08 * verdict.score) - (0.05 if close else 0.0)
        if alternative_to:
            score = min(score, result[0].score - 0.01)
        score = round(max(score, 0.15), 2)
        meaning, fix = CATEGORY_TEXT.get(verdict.category, GENERIC)
        clues = ", ".join(dict.fromkeys(verdict.clues))
        index = verdict.lines[0]
        evidence = tuple((log.number(i), log.lines[i].strip()[:500]) for i in verdict.lines[:5])
        diagnosis = (f"No known message matched; the log's wording points here ({clues}). {meaning}")
        result.append(Explanation(verdict.category, log.number(index), log.lines[index].strip()[:500], diagnosis,
                                  fix, label(score), score, evidence, "evidence", alternative_to))
    return result


GENERIC = ("A known environment problem may be involved.", CHECK)
CATEGORY_TEXT: Dict[str, Tuple[str, str]] = {
    "arch_unsupported_by_nvcc": (
        "The nvcc in use cannot generate code for the GPU architecture the build asks for (too new or dropped).",
        "Use a CUDA toolkit that supports that architecture, or set TORCH_CUDA_ARCH_LIST to archs this nvcc knows "
        "(`nvcc --list-gpu-arch`). " + CHECK),
    "build_oom": (
        "A compiler or linker process was killed, almost always for lack of memory during a parallel build.",
        "Build with fewer parallel jobs (`MAX_JOBS=2`, `make -j2`) or add memory/swap."),
    "container_gpu_not_exposed": (
        "The container engine could not give the container the GPU (NVIDIA container toolkit missing or not "
        "configured, or the container started without GPU access).",
        "Install and configure the NVIDIA container toolkit (`nvidia-ctk runtime configure`), restart the engine, "
        "start the container with `--gpus all`; check `nvidia-smi` inside it."),
    "cuda_home_misconfigured": (
        "CUDA_HOME (or a path derived from it) is malformed or names a directory without a toolkit.",
        "Set CUDA_HOME to the toolkit root whose bin/ holds nvcc: `export CUDA_HOME=/usr/local/cuda-X.Y`. " + CHECK),
    "cuda_home_unset": (
        "The build found no CUDA toolkit: CUDA_HOME/CUDA_PATH is not set and no nvcc is on PATH.",
        "Install a CUDA toolkit matching torch.version.cuda and `export CUDA_HOME=/usr/local/cuda-X.Y`. " + CHECK),
    "cudnn_mismatch": (
        "A cuDNN of another version than the framework was built with is loaded (often an old one on "
        "LD_LIBRARY_PATH).",
        "Remove the other cuDNN from LD_LIBRARY_PATH so the bundled one loads, or install the expected version."),
    "deprecated_torch_api_in_ext": (
        "The extension uses TH/THC headers or macros that newer torch removed.",
        "Port the sources to ATen (ATen/cuda/CUDAContext.h, TORCH_CHECK, C10_CUDA_CHECK) or use an older torch; "
        "`envdoctor fix` rewrites the common cases."),
    "driver_library_mismatch": (
        "The NVIDIA user-space libraries and the loaded kernel module are different versions (typically after a "
        "driver update without reboot).",
        "Reboot (or reload the nvidia kernel modules); keep one driver version installed."),
    "driver_not_loaded": (
        "No working NVIDIA driver is reachable: the kernel module is not loaded or not built for this kernel.",
        "Check `nvidia-smi`; reinstall the driver (with DKMS) for the running kernel and reboot. " + CHECK),
    "driver_too_old": (
        "The NVIDIA driver is older than the CUDA runtime in use requires.",
        "Update the driver, or install a build of the framework for an older CUDA the driver supports. " + CHECK),
    "ext_built_without_cuda": (
        "The extension was compiled without CUDA (no toolkit or GPU visible at build time), so it has no GPU code.",
        "Rebuild it with CUDA visible: `FORCE_CUDA=1 CUDA_HOME=/usr/local/cuda-X.Y TORCH_CUDA_ARCH_LIST=...`."),
    "ext_not_built": (
        "A compiled extension of the project has not been built (or not installed where Python imports it).",
        "Build the project's CUDA ops (its make.sh / `pip install -e .` / `python setup.py build_ext --inplace`) "
        "in the directory the traceback shows."),
    "gcc_unsupported_by_nvcc": (
        "The host compiler is newer (or older) than this nvcc accepts.",
        "Use a gcc the toolkit supports (`-ccbin`/CUDAHOSTCXX, e.g. gcc-11) or a newer CUDA toolkit."),
    "gpu_selection": (
        "The code or CUDA_VISIBLE_DEVICES selects a GPU index that does not exist.",
        "Compare the index with `nvidia-smi -L`; use an existing index or unset CUDA_VISIBLE_DEVICES."),
    "libstdcxx_mismatch": (
        "An older libstdc++/glibc is loaded than the module was built against (usually a conda env's vs the "
        "system's).",
        "Update libstdcxx-ng in the environment (conda-forge) or make the newer libstdc++ load first."),
    "link_cudart_not_found": (
        "The linker cannot find a CUDA library (libcudart, libcuda, ...) in its search path.",
        "Add the toolkit's lib64 (and lib64/stubs for -lcuda) to the library path (LIBRARY_PATH / -L). " + CHECK),
    "missing_runtime_lib": (
        "A CUDA library needed at run time cannot be found by the loader.",
        "Install the CUDA runtime/library of the version named, or add its directory to LD_LIBRARY_PATH. " + CHECK),
    "multiple_cuda_toolkits": (
        "Several CUDA toolkits are installed and the build used another one than intended.",
        "`which -a nvcc` lists them; put the intended one first in PATH and CUDA_HOME."),
    "nccl": (
        "NCCL (multi-GPU communication) failed: commonly shared memory (/dev/shm) in a container, or the network "
        "interface.",
        "Run with NCCL_DEBUG=INFO to see the failing call; in containers use `--ipc=host` or a larger `--shm-size`."),
    "no_kernel_image_for_gpu": (
        "The binary has no GPU code for this GPU's architecture.",
        "Rebuild for this GPU (TORCH_CUDA_ARCH_LIST with its sm_XY) or install a build that includes it."),
    "nvcc_missing": (
        "No CUDA compiler (nvcc) was found where the build looked.",
        "Install a CUDA toolkit with nvcc matching torch's CUDA and put its bin/ on PATH / CUDA_HOME. " + CHECK),
    "other": (
        "A build-tool problem rather than the CUDA environment (ninja, the arch list).",
        "`pip install ninja`; set TORCH_CUDA_ARCH_LIST when no GPU is visible at build time."),
    "package_version_incompatible": (
        "Installed package versions do not satisfy another package's requirements.",
        "Install the versions the error asks for (or pin the packages to releases that agree)."),
    "prebuilt_wheel_mismatch": (
        "A prebuilt binary package was made for another CUDA or torch than this machine has.",
        "Install the build for your torch and CUDA (matching wheel index/tag), or build it here. " + CHECK),
    "smi_cuda_version_confusion": (
        "nvidia-smi's CUDA version is the newest the driver supports, not the installed toolkit.",
        "Nothing to fix; use `nvcc --version` for the toolkit and torch.version.cuda for torch. " + CHECK),
    "stale_build_abi": (
        "A compiled module does not match the library it is loaded with (built against another torch version or "
        "ABI).",
        "Rebuild the module against the installed torch (clean the build directory first), or install the torch "
        "version it was built for."),
    "toolkit_torch_mismatch": (
        "The CUDA toolkit used for building differs from the CUDA torch was built with.",
        "Point CUDA_HOME at a toolkit of torch.version.cuda's major version, or install torch for the local CUDA."),
    "torch_arch_unsupported": (
        "The installed torch has no kernels for this GPU's architecture.",
        "Install a torch build whose CUDA supports this GPU (newer GPUs need newer CUDA builds). " + CHECK),
    "torch_cpu_only": (
        "The installed torch is a CPU-only build.",
        "Install a CUDA build of torch from the index for your driver's CUDA. " + CHECK),
}
