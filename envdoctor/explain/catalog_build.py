"""Signatures of build failures: toolkit and compiler, CUDA_HOME and nvcc, linking, memory."""
from __future__ import annotations

from envdoctor.explain import fixtext as fx
from envdoctor.explain.catalog import CHECK, MISCONFIGURED, MULTIPLE, _TOKEN
from envdoctor.explain.signature import SYMPTOM, Alternative, Signature, phrase

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
        (phrase("th", r"(THC?(?:UNN)?/THC?\w*\.(?:h|cuh|hpp)|THC\.h)\W{0,3}\s*(?::|：)\s*(?:No such file|没有那个文件|"
                r"cannot open|无法打开)|(?:cannot open|无法打开)[^\n]{0,40}?(THC?/THC?\w*\.(?:h|cuh|hpp))"
                r"|fatal error:\s*(THC?/THC?\w*\.(?:h|cuh|hpp))"),
         phrase("thc", r"'(THC\w+|THCudaCheck|THCState\w*)' (?:was not declared|undeclared)|(THC\w+)[^\n]{0,20}"
                r"(?:identifier not found|is undefined)"),
         phrase("was not declared", r"'(THArgCheck|THError|TH\w*Tensor\w*|AT_ASSERTM?)' was not declared"),
         phrase("is undefined", r"identifier \"(THArgCheck|THError|AT_ASSERTM?)\" is undefined")),
        "The extension source uses THC/TH or an old ATen macro ({g0}{g1}{g2}{g3}{g4}{g5}{g6}), which torch removed "
        "(THC in 1.11; AT_ASSERTM and TH's checks before it).",
        "Port the sources to ATen: drop the THC includes (use ATen/cuda/CUDAContext.h), THCudaCheck -> "
        "C10_CUDA_CHECK / AT_CUDA_CHECK, THCCeilDiv -> at::ceil_div (`envdoctor fix` rewrites these), then rebuild.",
        must_fire=("src/rod_align_cuda.cpp:1:21: fatal error: THC/THC.h: No such file or directory",
                   # the whole TH/THC header family went: TH/TH.h, THC/*.cuh
                   "src/cpu/nms_cpu.cpp:2:10: fatal error: TH/TH.h: No such file or directory",
                   "kernels/roi_pool.cu:4:10: fatal error: THC/THCAtomics.cuh: No such file or directory",
                   "fatal error: THC/THC.h: 没有那个文件或目录",
                   "nms.cu(5): fatal error C1083: 无法打开包括文件: “THC/THC.h”: No such file or directory",
                   "error: 'THCudaCheck' was not declared in this scope",
                   "error: 'AT_ASSERTM' was not declared in this scope",
                   "error: identifier \"THArgCheck\" is undefined"),
        must_not_fire=("#include <THC/THC.h>", "-I/usr/lib/python3/site-packages/torch/include/THC",
                       "fatal error: MATH/MATH.h: No such file or directory")),
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
         phrase("nvcc binary", r"nvcc binary could not be (?:found|located)()"),
         phrase("'nvcc'", r"No such file or directory: 'nvcc'|'nvcc' is not recognized()"),
         phrase("executable file not found", r"exec: \W{0,2}nvcc\W{0,2}: executable file not found()"),
         phrase("no cuda toolkit found", r"No CUDA toolkit found()")),
        "There is no nvcc where the build looked ({g0}): only a CUDA runtime is installed there (conda's "
        "cudatoolkit and runtime images ship no compiler), or the path names no toolkit.",
        "Install a CUDA toolkit with nvcc of the same major version as torch.version.cuda (conda: `conda install -c "
        "nvidia cuda-nvcc=X.Y`; docker: a *-devel image) and point CUDA_HOME at it. " + CHECK,
        alternatives=(MISCONFIGURED,),
        must_fire=("/home/u/miniconda3/pkgs/cudatoolkit-11.0.221-h6bb024c_0/bin/nvcc: not found",
                   "FileNotFoundError: [Errno 2] No such file or directory: '/usr/local/cuda/bin/nvcc'",
                   "/bin/sh: 1: nvcc: not found", "cuda available but nvcc not found. Please add nvcc to $PATH",
                   "Could not find nvcc, please set CUDAToolkit_ROOT.",
                   "OSError: The nvcc binary could not be found in $PATH"),
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
         phrase("virtual memory exhausted", r"virtual memory exhausted()"),
         phrase("out of memory allocating", r"out of memory allocating \d+ bytes()"),
         phrase("internal compiler error: killed", r"internal compiler error: Killed \(program (\w+)\)"),
         # MSVC: the compiler or the linker ran out of memory
         phrase("c1060", r"C1060:? compiler is out of heap space()"),
         phrase("lnk1102", r"LNK1102:? out of memory()")),
        "A compiler process was killed by the kernel's out-of-memory killer: too many parallel compile jobs for "
        "this machine's RAM.",
        "Build with fewer parallel jobs: `export MAX_JOBS=2` (torch extensions, ninja) or `make -j2`, or add swap; "
        "each nvcc job can take 2-4 GB.",
        must_fire=("c++: fatal error: Killed signal terminated program cc1plus",
                   "gcc: 致命错误：已杀死 signal terminated program cc1", "Killed",
                   "nvcc error   : 'cicc' died due to signal 9 (Kill signal)",
                   "cc1plus: out of memory allocating 65536 bytes after a total of 1403961344 bytes",
                   "g++: internal compiler error: Killed (program cc1plus)"),
        must_not_fire=("Killed by user request at step 3", "pkill python; echo killed")),
    Signature(
        "gcc-bounds", "gcc_unsupported_by_nvcc",
        (phrase("maximum required version by cuda", r"current installed version of ([\w+.-]+) \(([\d.]+)\) is "
                r"greater than the maximum required version by CUDA (\d+(?:\.\d+)*)"),
         phrase("minimum required version by cuda", r"current installed version of ([\w+.-]+) \(([\d.]+)\) is less "
                r"than the minimum required version by CUDA (\d+(?:\.\d+)*)"),
         phrase("of the host compiler", r"The version \('?(?=[\d.]+'?\) of the host compiler \('?([^')\n]+))([\d.]+)'?\) of the "
                r"host compiler \('?[^')\n]+'?\) is not supported()")),
        "torch's extension builder (or nvcc) refuses the host compiler {g0} {g1}: it is outside the range CUDA {g2} "
        "supports.", fx.gcc_bounds_fix, confidence=0.85, alternatives=(MULTIPLE,),
        must_fire=("RuntimeError: The current installed version of g++ (13.2.0) is greater than the maximum required "
                   "version by CUDA 11.8. Please make sure to use an adequate version of g++ (>=6.0.0, <12.0).",
                   "nvcc fatal   : The version ('19.40') of the host compiler ('Microsoft Visual C++') is not "
                   "supported"),
        must_not_fire=("There are no g++ version bounds defined for CUDA version 12.4",)),
    Signature(
        "std-function-packs", "gcc_unsupported_by_nvcc",
        (phrase("parameter packs not expanded", r"(?:std_function\.h|bits/\w+\.h)[^\n]{0,80}parameter packs not "
                r"expanded with '\.\.\.'()"),
         phrase("_float", r"identifier \"(_Float(?:16|32|64|128)x?)\" is undefined"),
         phrase("__builtin_", r"identifier \"(__builtin_\w+)\" is undefined")),
        "nvcc cannot parse this host compiler's (or C library's) headers: the gcc/glibc is newer than this CUDA "
        "release was made for (a known clash of CUDA 11.x with gcc 11's std::function and newer glibc).",
        "Use a gcc this CUDA supports (`export CC=gcc-10 CXX=g++-10 NVCC_CCBIN=gcc-10` for CUDA 11.0-11.5), or a "
        "newer CUDA toolkit (11.6+ with gcc 11). " + CHECK, confidence=0.75, alternatives=(MULTIPLE,),
        must_fire=("/usr/include/c++/11/bits/std_function.h:435:145: error: parameter packs not expanded with '...':",
                   "/usr/include/x86_64-linux-gnu/bits/floatn.h(74): error: identifier \"_Float128\" is undefined"),
        must_not_fire=("error: identifier \"THCudaCheck\" is undefined",)),
    Signature(
        "nvcc-std-unknown", "toolkit_torch_mismatch",
        (phrase("for option 'std'", r"Value '(c\+\+\d+)' is not defined for option 'std'()"),),
        "The nvcc that ran is too old for this torch: torch asks for {g0}, which that CUDA release does not know "
        "(an old or distribution toolkit is first on PATH or in CUDA_HOME).", fx.distro_or_toolkit_fix,
        confidence=0.75, alternatives=(MULTIPLE,),
        must_fire=("nvcc fatal   : Value 'c++17' is not defined for option 'std'",
                   "nvcc fatal : Value 'c++20' is not defined for option 'std'"),
        must_not_fire=("-std=c++17 --expt-relaxed-constexpr",)),
    Signature(
        "apex-cuda-mismatch", "toolkit_torch_mismatch",
        (phrase("does not match the version used to compile pytorch", r"compiled with a version of Cuda that does not "
                r"match the version used to compile\s+Pytorch binaries()"),),
        "The CUDA toolkit building the extension (nvcc) has another version than the one torch was built with; the "
        "project's setup refuses to mix them.", fx.distro_or_toolkit_fix, confidence=0.85,
        alternatives=(MULTIPLE,),
        must_fire=("RuntimeError: Cuda extensions are being compiled with a version of Cuda that does not match the "
                   "version used to compile Pytorch binaries.  Pytorch binaries were compiled with Cuda 11.3.",),
        must_not_fire=("Compiling cuda extensions with",)),
    Signature(
        "cuda-home-missing-dir", "cuda_home_unset",
        (phrase("cuda_home does not exist", r"CUDA_HOME (?:path )?does not exist()"),),
        "No CUDA toolkit was found to compile the CUDA ops: CUDA_HOME is unset (or names nothing) and no nvcc is "
        "on PATH.",
        "Install a CUDA toolkit with nvcc matching torch.version.cuda and `export CUDA_HOME=/usr/local/cuda-X.Y`. "
        + CHECK, confidence=0.75, alternatives=(MISCONFIGURED,),
        must_fire=("deepspeed.ops.op_builder.builder.MissingCUDAException: CUDA_HOME does not exist, unable to compile "
                   "CUDA op(s)",),
        must_not_fire=("CUDA_HOME=/usr/local/cuda",)),
    Signature(
        "cxx17-required", "deprecated_torch_api_in_ext",
        (phrase("c++17 or later", r"C\+\+17 or later compatible compiler is required to use (?:PyTorch|ATen|c10)()"),),
        "The extension's build flags predate the torch installed: it forces an older C++ standard (`-std=c++14` in "
        "its setup.py or CMake) while torch 2.1+ needs C++17.",
        "Remove `-std=c++14` (or c++11) from the extension's extra_compile_args / CMAKE_CXX_STANDARD (torch adds "
        "-std=c++17 itself), then rebuild; an old gcc without C++17 needs a newer one.", confidence=0.7,
        alternatives=(Alternative("gcc_unsupported_by_nvcc", 0.3, "The host compiler is too old for C++17.",
                                  "Use gcc >= 9 (`export CC=gcc-9 CXX=g++-9`)."),),
        must_fire=("/torch/include/c10/util/C++17.h:27:2: error: #error You need C++17 to compile PyTorch\n#error C++17 "
                   "or later compatible compiler is required to use PyTorch.",),
        must_not_fire=("-std=c++17",)),
    Signature(
        "cuda-headers-missing", "cuda_home_misconfigured",
        (phrase("fatal error", r"fatal error:\s*((?:cuda_runtime(?:_api)?|cuda|cuda_fp16|cuda_bf16|device_launch_parameters"
                r"|thrust/\w+|cub/\w+)\.(?:h|hpp|cuh))\W{0,3}\s*:?\s*No such file"),
         phrase("c1083", r"C1083[^\n]{0,60}?((?:cuda_runtime|cuda)\.h)")),
        "The compiler does not find the CUDA headers ({g0}): the build compiles CUDA code without the toolkit's "
        "include directory (CUDA_HOME unset or pointing at something without include/, or no toolkit installed).",
        "Point CUDA_HOME at a toolkit with headers (`ls $CUDA_HOME/include/cuda_runtime.h`): `export "
        "CUDA_HOME=/usr/local/cuda-X.Y`; with conda install `cuda-toolkit` (or `cuda-cudart-dev`), not only "
        "`cuda-nvcc`. " + CHECK, confidence=0.55,
        alternatives=(Alternative("nvcc_missing", 0.3, "No CUDA toolkit (compiler and headers) is installed at all.",
                                  "Install a CUDA toolkit matching torch.version.cuda and set CUDA_HOME."),),
        must_fire=("/x/src/vision.cpp:3:10: fatal error: cuda_runtime_api.h: No such file or directory",
                   "fatal error: thrust/device_vector.h: No such file or directory"),
        must_not_fire=("#include <cuda_runtime.h>",)),
    Signature(
        "math-headers-missing", "multiple_cuda_toolkits",
        (phrase("fatal error", r"fatal error:\s*((?:cusparse|cublas_v2|cublas|cublasLt|cusolverDn|cusolver_common|curand"
                r"|curand_kernel|cufft|nvToolsExt|cudnn)\.h)\W{0,3}\s*:?\s*No such file"),),
        "The build finds the CUDA compiler but not {g0}: the toolkit it uses lacks that library's development files "
        "(a conda `cuda-nvcc` alone, a minimal or distribution toolkit), or another toolkit than the complete one "
        "is picked.",
        "Build with a complete toolkit (`export CUDA_HOME=/usr/local/cuda-X.Y` with that header in its include/), "
        "install the library's dev package (conda `libcusparse-dev`, `libcublas-dev`...), or put the headers torch's "
        "wheels ship on CPATH (`site-packages/nvidia/*/include`). " + CHECK, confidence=0.55,
        alternatives=(MISCONFIGURED,),
        must_fire=("/torch/include/ATen/cuda/CUDAContext.h:6:10: fatal error: cusparse.h: No such file or directory",),
        must_not_fire=("#include <cusparse.h>",)),
    Signature(
        "host-compiler-missing", "other",
        (phrase("cc1plus", r"error trying to exec '(cc1plus)': execvp: No such file or directory"),
         phrase("unable to execute", r"unable to execute '((?:x86_64-linux-gnu-)?(?:gcc|g\+\+|c\+\+|cc))': No such file"),
         phrase("failed: no such file or directory", r"command '((?:x86_64-linux-gnu-)?(?:gcc|g\+\+|c\+\+|cc))' failed: "
                r"No such file or directory"),
         phrase("microsoft visual c++ 14.0", r"(Microsoft Visual C\+\+) 14\.0(?: or greater)? is required"),
         phrase("cannot find compiler 'cl.exe'", r"Cannot find compiler '(cl\.exe)' in PATH")),
        "The host C/C++ compiler ({g0}) is not installed (or not on PATH): nothing can compile the extension's C++ "
        "parts, and nvcc needs it too.",
        "Install the compiler: `sudo apt install build-essential` (or conda `gxx_linux-64`); on Windows the "
        "\"Desktop development with C++\" workload of the Visual Studio Build Tools, and build from the x64 Native "
        "Tools prompt.", confidence=0.75,
        alternatives=(Alternative("gcc_unsupported_by_nvcc", 0.25, "The compiler the build names is not the one "
                                  "installed.", "Name an installed compiler (CC/CXX) that nvcc supports."),),
        must_fire=("g++: error trying to exec 'cc1plus': execvp: No such file or directory",
                   "error: command 'x86_64-linux-gnu-gcc' failed: No such file or directory",
                   "error: Microsoft Visual C++ 14.0 or greater is required. Get it with \"Microsoft C++ Build Tools\"",
                   "nvcc fatal   : Cannot find compiler 'cl.exe' in PATH"),
        must_not_fire=("Using compiler x86_64-linux-gnu-gcc",)),
    Signature(
        "undefined-cuda-reference", "link_cudart_not_found",
        (phrase("undefined reference to", r"undefined reference to [`'](cuda[A-Z]\w+|__cuda\w+|cu[A-Z]\w+)'"),),
        "The link step does not link the CUDA runtime or driver library ({g0} is missing): -lcudart/-lcuda is not "
        "on the link line, or a different toolkit's library is picked.",
        "Link the CUDA libraries: build through torch's CUDAExtension (it adds -lcudart), or add `-lcudart` (and "
        "`-lcuda` for driver API calls) with `-L$CUDA_HOME/lib64`. " + CHECK, confidence=0.5, strength=SYMPTOM,
        must_fire=("ops.cpp:(.text+0x1c): undefined reference to `cudaLaunchKernel'",),
        must_not_fire=("undefined reference to `main'",)),
    Signature(
        "jax-driver-cuda", "driver_too_old",
        (phrase("which is older than the ptxas", r"driver's CUDA version is ([\d.]+) which is older than the ptxas "
                r"CUDA version \(?([\d.]+)"),),
        "The driver supports CUDA {g0} only, older than the CUDA {g1} the program's compiler uses.",
        "Update the NVIDIA driver to one that supports CUDA {g1}, or install the program's build for CUDA {g0}. "
        + CHECK, confidence=0.85,
        must_fire=("The NVIDIA driver's CUDA version is 11.4 which is older than the ptxas CUDA version (11.8.89).",),
        must_not_fire=("ptxas CUDA version 11.8",)),
)
