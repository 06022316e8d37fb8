"""Signatures of build failures: toolkit and compiler, CUDA_HOME and nvcc, linking, memory."""
from __future__ import annotations

from envdoctor.explain import fixtext as fx
from envdoctor.explain.catalog import CHECK, MISCONFIGURED, MULTIPLE, _TOKEN
from envdoctor.explain.signature import SYMPTOM, Signature, phrase

BUILD = (
    Signature(
        "toolkit-torch-mismatch", "toolkit_torch_mismatch",
        (phrase("mismatches the version", r"detected CUDA version \(([\d.]+)\) mismatches the version that was "
                r"used to compile\s+PyTorch \(([\d.]+)\)"),),
        "The CUDA toolkit the build found (nvcc {g0}) has another major version than the CUDA torch was built "
        "with ({g1}); torch.utils.cpp_extension refuses to mix them.", fx.toolkit_fix,
        alternatives=(MULTIPLE,),
        must_fire=("RuntimeError:\nThe detected CUDA version (12.1) mismatches the version that was used to compile\n"
                   "      PyTorch (11.8). Please make sure to use the same CUDA versions.",),
        must_not_fire=("CUDA version 12.1 matches the version used to compile PyTorch (12.1)",)),
    Signature(
        "nvcc-unsupported-arch", "arch_unsupported_by_nvcc",
        (phrase("unsupported gpu architecture", r"Unsupported gpu architecture\s*'?(compute_\d+\w?|sm_\d+\w?)"),
         phrase("is not defined for option 'gpu-", r"Value '(sm_\d+\w?|compute_\d+\w?)' is not defined for "
                r"option 'gpu-(?:name|architecture)'"),
         phrase("unknown cuda arch", r"Unknown CUDA arch \(([\d.]+\+?\w*)\) or GPU not supported")),
        fx.arch_diagnosis, fx.arch_fix, alternatives=(MULTIPLE,),
        must_fire=("nvcc fatal   : Unsupported gpu architecture 'compute_86'",
                   "nvcc fatal : Unsupported gpu architecture ‘compute_86‘",
                   "nvcc fatal   : Value 'sm_90' is not defined for option 'gpu-name'",
                   "ValueError: Unknown CUDA arch (8.9) or GPU not supported"),
        must_not_fire=("-gencode arch=compute_86,code=sm_86", "Supported gpu architectures: compute_86")),
    Signature(
        "gcc-too-new", "gcc_unsupported_by_nvcc",
        (phrase("unsupported gnu version", r"unsupported (GNU) version!?(?:[^\n]{0,20}?later than (\d+))?"),
         phrase("unsupported clang version", r"unsupported (clang) version!?(?:[^\n]{0,20}?later than (\d+))?"),
         phrase("microsoft visual studio", r"unsupported (Microsoft Visual Studio) version!()")),
        fx.gcc_diagnosis, fx.gcc_fix, alternatives=(MULTIPLE,),
        must_fire=("/usr/local/cuda-9.0/include/crt/host_config.h:119:2: error: #error -- unsupported GNU version! "
                   "gcc versions later than 6 are not supported!",
                   "error: #error --Unsupported GNU version later than 6 are not supported!"),
        must_not_fire=("gcc version 9.4.0 (Ubuntu 9.4.0-1ubuntu1~20.04)",)),
    Signature(
        "thc-removed", "deprecated_torch_api_in_ext",
        (phrase("thc", r"(THC/THC\w*\.h|THC\.h)\W{0,3}\s*(?::|：)\s*(?:No such file|没有那个文件|cannot open|"
                r"无法打开)|(?:cannot open|无法打开)[^\n]{0,40}?(THC/THC\w*\.h)|fatal error:\s*(THC/THC\w*\.h)"),
         phrase("thc", r"'(THC\w+|THCudaCheck|THCState\w*)' (?:was not declared|undeclared)|(THC\w+)[^\n]{0,20}"
                r"(?:identifier not found|is undefined)")),
        "The extension source uses THC ({g0}{g1}{g2}{g3}{g4}), which torch 1.11 removed.",
        "Port the sources to ATen: drop the THC includes (use ATen/cuda/CUDAContext.h), THCudaCheck -> "
        "C10_CUDA_CHECK / AT_CUDA_CHECK, THCCeilDiv -> at::ceil_div (`envdoctor fix` rewrites these), then rebuild.",
        must_fire=("src/rod_align_cuda.cpp:1:21: fatal error: THC/THC.h: No such file or directory",
                   "fatal error: THC/THC.h: 没有那个文件或目录",
                   "nms.cu(5): fatal error C1083: 无法打开包括文件: “THC/THC.h”: No such file or directory",
                   "error: 'THCudaCheck' was not declared in this scope"),
        must_not_fire=("#include <THC/THC.h>", "-I/usr/lib/python3/site-packages/torch/include/THC")),
    Signature(
        "at-check-removed", "deprecated_torch_api_in_ext",
        (phrase("at_check", r"'?AT_CHECK'?\s*(?:was not declared|undeclared|:\s*identifier not found|is undefined|"
                r"未声明)|C3861[^\n]{0,40}AT_CHECK|AT_CHECK[^\n]{0,40}C3861"),),
        "The extension source uses AT_CHECK, which torch 1.5 removed.",
        "Replace AT_CHECK( with TORCH_CHECK( (`envdoctor fix` does it), then rebuild.",
        must_fire=("error: 'AT_CHECK' was not declared in this scope",
                   "How to solve the error ‘AT_CHECK’ was not declared?"),
        must_not_fire=("TORCH_CHECK(x.is_cuda(), \"x must be CUDA\")",)),
    Signature(
        "type-dispatch-removed", "deprecated_torch_api_in_ext",
        (phrase("deprecatedtypeproperties", r"(?:no suitable conversion function from|cannot convert)\s*\"?'?const "
                r"at::DeprecatedTypeProperties|DeprecatedTypeProperties\W{0,3}\s*to\s*\W?c10::ScalarType"),),
        "The extension dispatches on `x.type()` (DeprecatedTypeProperties), which newer torch no longer converts "
        "to a ScalarType.",
        "Replace `x.type()` with `x.scalar_type()` in the AT_DISPATCH_* calls (`envdoctor fix` does it), then "
        "rebuild.",
        must_fire=("error: no suitable conversion function from \"const at::DeprecatedTypeProperties\" to "
                   "\"c10::ScalarType\" exists",
                   "error: cannot convert ‘const at::DeprecatedTypeProperties’ to ‘c10::ScalarType’"),
        must_not_fire=("warning: 'at::DeprecatedTypeProperties& at::Tensor::type() const' is deprecated "
                       "[-Wdeprecated-declarations]",)),
    Signature(
        "cuda-home-list", "cuda_home_misconfigured",
        (phrase("cuda_home=", r"CUDA_HOME\s*=\s*['\"]?((?::[^'\"\s]*)|(?:[^'\"\s:]{2,}:[^'\"\s]*))"),
         phrase("/bin/nvcc", _TOKEN + r"['\"]?((?::|/usr/local/cuda[\w.-]*:)[^\s'\"]*?/bin/nvcc|"
                r"[^\s'\"]*'/bin/nvcc|[^\s'\"]*/bin/bin/nvcc)"),
         phrase("/bin/nvcc", r"'((?:/[\w.-]+)+:[^\s']*/bin/nvcc)'")),
        "CUDA_HOME is malformed ({g0}{g1}{g2}): a leading ':', a PATH-like list, quotes, or a path ending in bin/, "
        "so the nvcc path built from it does not exist.",
        "Set CUDA_HOME to exactly one toolkit root, without quotes or colons, and do not append $CUDA_HOME or "
        "$PATH to it: `export CUDA_HOME=/usr/local/cuda` (check ~/.bashrc). " + CHECK,
        explains=("link_cudart_not_found", "nvcc_missing", "cuda_home_unset"),
        must_fire=("No CUDA runtime is found, using CUDA_HOME=':/usr/local/cuda-9.0:/usr/local/cuda-8.0'",
                   "unable to execute ':/usr/local/cuda-8.0/bin/nvcc': No such file or directory",
                   "error: [Errno 2] No such file or directory: '/usr/local/cuda-11.8:/bin/nvcc'",
                   "unable to execute \"'/usr/local/cuda'/bin/nvcc\": No such file or directory"),
        must_not_fire=("export CUDA_HOME=/usr/local/cuda", "CUDA_HOME=C:\\Program Files\\NVIDIA GPU Computing "
                       "Toolkit\\CUDA\\v11.8")),
    Signature(
        "cuda-home-unset", "cuda_home_unset",
        (phrase("cuda_home environment variable is not set", r"CUDA_HOME environment variable is not set()"),
         phrase("cuda_home is none", r"CUDA_HOME is None()"),
         phrase("cuda_home", r"CUDA_HOME\W{1,3}None\b()")),
        "No CUDA toolkit was found for the build: CUDA_HOME is unset and no nvcc is on PATH (conda's cudatoolkit "
        "has no compiler; macOS has no CUDA).",
        "Install a CUDA toolkit matching torch.version.cuda (with nvcc) and `export CUDA_HOME=/usr/local/cuda-X.Y`; "
        "on Windows set CUDA_PATH/CUDA_HOME and open a new console. " + CHECK,
        must_fire=("OSError: CUDA_HOME environment variable is not set. Please set it to your CUDA install root.",
                   "CUDA_HOME is None"),
        must_not_fire=("export CUDA_HOME=/usr/local/cuda",)),
    Signature(
        "nvcc-missing", "nvcc_missing",
        (phrase("/nvcc", _TOKEN + r"([^\s'\"]*?/bin/nvcc)'?\"?\W{0,3}\s*:?\s*(?:No such file or directory|"
                r"not found|未找到命令|没有那个文件)"),
         phrase("/nvcc", r"(?:No such file or directory|unable to execute)\W{0,5}([^\s'\"]*?/bin/nvcc)"),
         phrase("nvcc: ", r"nvcc: (?:command )?not found|nvcc: 未找到命令()"),
         phrase("nvcc not found", r"nvcc not found()"),
         phrase("nvcc was not found", r"nvcc was not found()"),
         phrase("find nvcc", r"(?:could not|failed to) find nvcc()"),
         phrase("'nvcc'", r"No such file or directory: 'nvcc'|'nvcc' is not recognized()"),
         phrase("no cuda toolkit found", r"No CUDA toolkit found()")),
        "There is no nvcc where the build looked ({g0}): only a CUDA runtime is installed there (conda's "
        "cudatoolkit and runtime images ship no compiler), or the path names no toolkit.",
        "Install a CUDA toolkit with nvcc of the same major version as torch.version.cuda (conda: `conda install -c "
        "nvidia cuda-nvcc=X.Y`; docker: a *-devel image) and point CUDA_HOME at it. " + CHECK,
        alternatives=(MISCONFIGURED,),
        must_fire=("/home/u/miniconda3/pkgs/cudatoolkit-11.0.221-h6bb024c_0/bin/nvcc: not found",
                   "FileNotFoundError: [Errno 2] No such file or directory: '/usr/local/cuda/bin/nvcc'",
                   "/bin/sh: 1: nvcc: not found", "cuda available but nvcc not found. Please add nvcc to $PATH",
                   "Could not find nvcc, please set CUDAToolkit_ROOT."),
        must_not_fire=("-- Check for working CUDA compiler: /usr/local/cuda/bin/nvcc -- works",)),
    Signature(
        "project-needs-newer-cuda", "multiple_cuda_toolkits",
        (phrase("cuda", r"(?:only supported on|requires?|needs?) CUDA (\d+\.\d+)\+? (?:and|or) (?:above|newer|later)"
                r"[^\n]{0,120}?nvcc()"),
         phrase("nvcc", r"nvcc[^\n]{0,40}version[^\n]{0,20}(?:is )?(?:too old|older than|< ?)[^\n]{0,20}?(\d+\.\d+)()")),
        "The project's setup checks the nvcc it finds and needs CUDA {g0} or newer: the nvcc first on PATH (or "
        "under CUDA_HOME) is an older toolkit than the one you installed, or no newer toolkit is installed.",
        "Run `which -a nvcc` and `nvcc -V`; put the CUDA >= {g0} toolkit first: `export "
        "PATH=/usr/local/cuda-X.Y/bin:$PATH CUDA_HOME=/usr/local/cuda-X.Y` (or install one). " + CHECK,
        confidence=0.55,
        must_fire=("RuntimeError: FlashAttention is only supported on CUDA 11.7 and above.  Note: make sure nvcc has a "
                   "supported version by running nvcc -V.",),
        must_not_fire=("Requires CUDA 11.7 and above for best performance",)),
    Signature(
        "link-cudart", "link_cudart_not_found",
        (phrase("cannot find -l", r"cannot find -l(cudart\w*|cuda|cublas\w*|cudadevrt|nvrtc|curand|cufft|cusparse|"
                r"cusolver|nvToolsExt|cudnn)\b"),
         phrase("lnk1181", r"LNK1181[^\n]*?'?(cudart|cuda|cublas)\w*\.lib")),
        "The linker found no lib{g0} where the build looked: the toolkit's lib64 is not on the linker path (CUDA_HOME "
        "points at something that is not a toolkit, or a conda linker searches only the env).",
        "Point CUDA_HOME at the real toolkit (`export CUDA_HOME=/usr/local/cuda`) or add its lib64 to LIBRARY_PATH "
        "(`export LIBRARY_PATH=$CUDA_HOME/lib64:$LIBRARY_PATH`); for libcuda (the driver) use the stubs dir "
        "($CUDA_HOME/lib64/stubs). " + CHECK,
        strength=SYMPTOM,
        must_fire=("/usr/bin/ld: cannot find -lcudart", "ld: cannot find -lcudart: No such file or directory",
                   "/usr/bin/ld: cannot find -lcuda"),
        must_not_fire=("/usr/bin/ld: cannot find -lgtest", "-lcudart -lcublas")),
    Signature(
        "compiler-killed", "build_oom",
        (phrase("killed signal terminated program", r"Killed signal terminated program (\w+)"),
         phrase("died due to signal 9", r"'?(cicc|ptxas|cudafe\+\+|cc1plus|nvcc)'? died due to signal 9"),
         phrase("signal 9", r"terminated with signal 9|signal 9 \[Killed\]"),
         phrase("已杀死", r"已杀死\s*signal terminated program (\w+)|已杀死()"),
         phrase("killed", r"^\s*Killed\s*$|fatal error: Killed\b|: Killed$"),
         phrase("virtual memory exhausted", r"virtual memory exhausted|out of memory allocating \d+ bytes")),
        "A compiler process was killed by the kernel's out-of-memory killer: too many parallel compile jobs for "
        "this machine's RAM.",
        "Build with fewer parallel jobs: `export MAX_JOBS=2` (torch extensions, ninja) or `make -j2`, or add swap; "
        "each nvcc job can take 2-4 GB.",
        must_fire=("c++: fatal error: Killed signal terminated program cc1plus",
                   "gcc: 致命错误：已杀死 signal terminated program cc1", "Killed",
                   "nvcc error   : 'cicc' died due to signal 9 (Kill signal)"),
        must_not_fire=("Killed by user request at step 3", "pkill python; echo killed")),
)
