"""Signatures of failures at load and run time: drivers, libraries, extensions, NCCL, packages."""
from __future__ import annotations

from envdoctor.explain import fixtext as fx
from envdoctor.explain.catalog import (ARCH_TORCH, CHECK, CONTAINER, GPU_SELECTION, PREBUILT, _TORCH_SYMBOL)
from envdoctor.explain.signature import SYMPTOM, Alternative, Signature, phrase

RUNTIME = (    Signature(
        "cudnn-mismatch", "cudnn_mismatch",
        (phrase("cudnn version", r"cuDNN version (?:incompatibility|mismatch)[^\n]{0,200}"),),
        "A different cuDNN than the one torch was built with is loaded, usually from LD_LIBRARY_PATH or a system "
        "install.",
        "Let torch load its own cuDNN: remove the foreign cuDNN directory from LD_LIBRARY_PATH (`echo "
        "$LD_LIBRARY_PATH`), or install the cuDNN version torch expects. " + CHECK,
        must_fire=("RuntimeError: cuDNN version incompatibility: PyTorch was compiled  against (8, 5, 0) but found "
                   "runtime version (8, 3, 3).",),
        must_not_fire=("cuDNN version: 8.9.2",)),
    Signature(
        "nvml-mismatch", "driver_library_mismatch",
        (phrase("driver/library version mismatch", r"Driver/library version mismatch()"),),
        "The NVIDIA user-space libraries were updated (often by unattended upgrades) while the old kernel module "
        "is still loaded.",
        "Reboot, or unload and reload the nvidia kernel modules (`sudo rmmod nvidia_uvm nvidia_drm nvidia_modeset "
        "nvidia`); pin the driver packages so upgrades do not repeat it.",
        must_fire=("Failed to initialize NVML: Driver/library version mismatch",
                   "Failed to initialize NVML: Driver/Library version mismatch"),
        must_not_fire=("NVML library version: 550.144",)),
    Signature(
        "driver-too-old", "driver_too_old",
        (phrase("driver version is insufficient", r"driver version is insufficient(?: for CUDA runtime version)?()"),
         phrase("cudaerrorinsufficientdriver", r"cudaErrorInsufficientDriver()"),
         phrase("driver on your system is too old", r"The NVIDIA driver on your system is too old()")),
        "The NVIDIA driver is older than the CUDA runtime this program was built with needs.", fx.driver_fix,
        confidence=0.7, alternatives=(CONTAINER,),
        must_fire=("RuntimeError: cuda runtime error (35) : CUDA driver version is insufficient for CUDA runtime "
                   "version at /opt/conda/THCGeneral.cpp:70",
                   "CUDA error: 35 (0x23) cudaErrorInsufficientDriver"),
        must_not_fire=("CUDA Driver Version / Runtime Version          12.2 / 12.1",)),
    Signature(
        "driver-not-loaded", "driver_not_loaded",
        (phrase("communicate with the nvidia driver", r"couldn.?t communicate with the NVIDIA driver()"),
         phrase("module nvidia not found", r"Module nvidia(?:-uvm)? not found()"),
         # NVRM lines come from the kernel log (dmesg, journalctl): anywhere in the line, never an API mismatch
         phrase("nvrm:", r"NVRM:(?![^\n]*API mismatch)[^\n]*?(?:failed|not |unable|error)[^\n]*()"),
         phrase("kernel driver does not appear", r"kernel driver does not appear to be running()"),
         phrase("libcuda.so.1", r"libcuda\.so\.1: cannot open shared object file()|ImportError: libcuda\.so\.1\s*$()")),
        "The NVIDIA kernel driver is not loaded for the running kernel (a kernel update without a reboot or a DKMS "
        "rebuild, or nouveau holding the GPU).",
        "Reboot; if that does not help, reinstall the driver for the running kernel (`sudo dkms autoinstall` or "
        "the distribution's driver package) and check `lsmod | grep nvidia`.",
        confidence=0.75, alternatives=(CONTAINER,),
        must_fire=("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
                   "modprobe: FATAL: Module nvidia not found.",
                   "Jul 01 22:55:07 gpu kernel: NVRM: GPU 0000:01:00.0: RmInitAdapter failed! (0x22:0x56:884)"),
        must_not_fire=("NVIDIA-SMI 535.54.03   Driver Version: 535.54.03",
                       "NVRM: API mismatch: the client has the version 535.129.03, but this kernel module has the "
                       "version 535.104.05.")),
    Signature(
        "no-cuda-device", "driver_not_loaded",
        (phrase("no cuda-capable device is detected", r"no CUDA-capable device is detected()"),
         phrase("cuda_error_no_device", r"CUDA_ERROR_NO_DEVICE()"),
         phrase("cudaerrornodevice", r"cudaErrorNoDevice()"),
         phrase("no devices were found", r"(?m)^\s*No devices were found\s*$()")),
        "CUDA sees no GPU: the kernel driver is not loaded (kernel update without reboot), or no GPU is visible "
        "to this process.",
        "Check `nvidia-smi` and `lsmod | grep nvidia`; reboot or reinstall the driver for the running kernel. If "
        "nvidia-smi works, check CUDA_VISIBLE_DEVICES.",
        confidence=0.6, strength=SYMPTOM, alternatives=(GPU_SELECTION, CONTAINER),
        must_fire=("cudaGetDeviceCount returned 38\n-> no CUDA-capable device is detected",
                   "CUDA error at helper_cuda.h:791 code=100(cudaErrorNoDevice) \"cudaGetDeviceCount(&n)\"",
                   "# nvidia-smi\nNo devices were found"),
        must_not_fire=("Detected 1 CUDA Capable device(s)", "No devices were found matching the filter")),
    Signature(
        "no-gpus-available", "gpu_selection",
        (phrase("no cuda gpus are available", r"No CUDA GPUs are available()"),),
        "torch found a working driver but zero GPUs: CUDA_VISIBLE_DEVICES (often set inside the script or its "
        "launcher, e.g. `os.environ[\"CUDA_VISIBLE_DEVICES\"] = \"1\"`) or a GPU-id option selects GPUs that "
        "do not exist here.",
        "Look for CUDA_VISIBLE_DEVICES / gpu_id / --gpus in the script, its config and launcher; use existing "
        "indices (`nvidia-smi -L` lists them, `0` on a one-GPU machine) or remove the setting.",
        confidence=0.6, strength=SYMPTOM,
        alternatives=(Alternative(
            "driver_not_loaded", 0.3, "No GPU is visible to this process at all (driver not loaded, or a "
            "container without GPU access).", "Check `nvidia-smi`; reboot or reinstall the driver, or start the "
            "container with `--gpus all`."),),
        must_fire=("RuntimeError: No CUDA GPUs are available",),
        must_not_fire=("CUDA GPUs available: 2",)),
    Signature(
        "no-driver-found", "driver_not_loaded",
        (phrase("found no nvidia driver on your system", r"Found no NVIDIA driver on your system()"),),
        "torch finds no NVIDIA driver: none is installed or its kernel module is not loaded (or this container has "
        "no GPU access).",
        "Check `nvidia-smi`: install the driver, reboot after a kernel update, or start the container with "
        "`--gpus all`.", confidence=0.7, alternatives=(CONTAINER,),
        must_fire=("AssertionError: Found no NVIDIA driver on your system. Please check that you have an NVIDIA GPU "
                   "and installed a driver",),
        must_not_fire=("NVIDIA driver 550 found",)),
    Signature(
        "invalid-ordinal", "gpu_selection",
        (phrase("invalid device ordinal", r"invalid device ordinal()"),
         phrase("cudaerrorinvaliddevice", r"cudaErrorInvalidDevice\b()")),
        "The code, its config or CUDA_VISIBLE_DEVICES asks for a GPU index that does not exist here (e.g. cuda:1 "
        "on a one-GPU machine, or more ranks than GPUs).",
        "Use an existing index (`cuda:0`), fix the GPU list in the config, start no more processes than GPUs "
        "(`--nproc_per_node`), or fix CUDA_VISIBLE_DEVICES; `nvidia-smi -L` lists the GPUs.",
        must_fire=("RuntimeError: CUDA error: invalid device ordinal",
                   "RuntimeError: CUDA error (10): invalid device ordinal"),
        must_not_fire=("device ordinal 0 selected",)),
    Signature(
        "torch-arch", "torch_arch_unsupported",
        (phrase("is not compatible with the current pytorch", r"CUDA capability (sm_\d+) is not compatible with the "
                r"current PyTorch installation"),
         phrase("pytorch no longer supports this gpu", r"cuda capability (\d\.\d)\.\s+PyTorch no longer supports "
                r"this GPU"),
         phrase("minimum cuda capability", r"minimum cuda capability (?:that we )?supported by this library is "
                r"(\d\.\d)()")),
        "This torch build has no kernels for the GPU's architecture {g0}.", fx.torch_arch_fix,
        explains=("no_kernel_image_for_gpu",), any_role=True,
        must_fire=("UserWarning: NVIDIA RTX A6000 with CUDA capability sm_86 is not compatible with the current "
                   "PyTorch installation.",
                   "Found GPU0 GeForce GTX 770 which is of cuda capability 3.0.\n    PyTorch no longer supports this "
                   "GPU because it is too old."),
        must_not_fire=("The current PyTorch install supports CUDA capabilities sm_50 sm_60 sm_70 sm_80 sm_86.",)),
    Signature(
        "no-kernel-image", "no_kernel_image_for_gpu",
        (phrase("no kernel image is available", r"no kernel image is available for execution on the device()"),
         phrase("cudaerrornokernelimagefordevice", r"cudaErrorNoKernelImageForDevice()"),
         phrase("invalid device function", r"invalid device function()")),
        "A compiled CUDA library in use (an extension, or torch) has no code for this GPU's architecture.",
        fx.no_kernel_fix, confidence=0.8, strength=SYMPTOM, alternatives=(ARCH_TORCH,),
        must_fire=("RuntimeError: CUDA error: no kernel image is available for execution on the device",),
        must_not_fire=("kernel image size: 12 MB",)),
    Signature(
        "torch-cpu-only", "torch_cpu_only",
        (phrase("torch not compiled with cuda enabled", r"Torch not compiled with CUDA enabled()"),),
        "The installed torch is a CPU-only build.", fx.cpu_only_fix,
        must_fire=("AssertionError: Torch not compiled with CUDA enabled",),
        must_not_fire=("RuntimeError: Not compiled with GPU support",)),
    Signature(
        "ext-without-cuda", "ext_built_without_cuda",
        (phrase("not compiled with gpu support", r"(?:Detectron2 is )?not compiled with GPU support()"),
         phrase("cuda compiler", r"CUDA compiler\s+not available()"),
         phrase("compiled without ", r"(?:compiled|built) without (?:CUDA|GPU) (?:support)?()"),
         phrase("not compiled with cuda", r"(?<!Torch )not compiled with CUDA(?: support)?\b(?! enabled)()"),
         phrase("implementation for device cuda", r"implementation for device cuda(?::\d+)? not found()"),
         phrase("without cuda", r"Compiling ([\w.]+) without CUDA()")),
        "The extension (detectron2's _C or a project's ops) was compiled without CUDA: no nvcc / CUDA_HOME, or no "
        "GPU visible at build time, so its GPU kernels are missing.", fx.without_cuda_fix,
        must_fire=("RuntimeError: Not compiled with GPU support (ROIAlign_forward at /d2/ROIAlign.h:73)",
                   "RuntimeError: Detectron2 is not compiled with GPU support!",
                   "RuntimeError: Not compiled with CUDA support",
                   "RuntimeError: nms_impl: implementation for device cuda:0 not found.",
                   "The installed version of bitsandbytes was compiled without GPU support."),
        must_not_fire=("AssertionError: Torch not compiled with CUDA enabled",)),
    Signature(
        "torch-abi", "stale_build_abi",
        (phrase("undefined symbol", r"undefined symbol:\s*(" + _TORCH_SYMBOL + r"\w*|THP\w+|THNN_\w+|THCuda\w+|THC\w+)"),),
        "The compiled extension was built against a different libtorch than the one imported (a stale build or "
        "egg, torch upgraded afterwards, or a prebuilt package for another torch): it needs {g0}.",
        "Remove the old build (build/, *.so, the installed egg) and rebuild against the current torch, or install "
        "the torch version the prebuilt package was made for.",
        alternatives=(PREBUILT,),
        must_fire=("ImportError: /x/_C.so: undefined symbol: _ZN3c105ErrorC1ENS_14SourceLocationERKSs",
                   "undefined symbol: _zn2at19undefinedtensorimpl10_singletone",
                   "libATen.so.1: undefined symbol: THNN_CudaDoubleSpatialClassNLLCriterion_updateGradInput"),
        must_not_fire=("undefined symbol: ms_deform_attn_cuda_forward", "undefined reference to `main'")),
    Signature(
        "own-cuda-symbol", "ext_built_without_cuda",
        (phrase("undefined symbol", r"undefined symbol:\s*(?!" + _TORCH_SYMBOL + r"|__nvJitLink|cublas|cusparse|cudnn|"
                r"THNN_|THC)(\w*cuda\w*)"),),
        "The library lacks its own CUDA function {g0}: it was built partly, or without CUDA.",
        "Remove the build/ directory and the installed .so, then rebuild with CUDA visible (`FORCE_CUDA=1`, "
        "CUDA_HOME set).", confidence=0.35, strength=SYMPTOM,
        must_fire=("ImportError: /x/MultiScaleDeformableAttention.so: undefined symbol: "
                   "_Z27ms_deform_attn_cuda_forwardRKN2at6TensorE",),
        must_not_fire=("undefined symbol: _ZN3c1015SmallVectorBase6grow_podEPvmm",)),
    Signature(
        "own-symbol", "ext_not_built",
        (phrase("undefined symbol", r"undefined symbol:\s*(?!" + _TORCH_SYMBOL + r"|THP)(?!\w*cuda)(\w+)"),),
        "The library lacks its own function {g0}: an incomplete or interrupted build.",
        "Remove the build/ directory and the installed .so, then build again in this environment.",
        confidence=0.3, strength=SYMPTOM,
        must_fire=("ImportError: /x/_ext.so: undefined symbol: _Z9nms_wrapperv",),
        must_not_fire=("undefined symbol: _ZNK2at6Tensor4itemEv", "undefined symbol: _Z12roi_cuda_fwdv")),
    Signature(
        "ext-module-missing", "ext_not_built",
        (phrase("no module named", r"No module named\s*['\"]?(MultiScaleDeformableAttention|"
                r"[\w.]*?(?:\._C|\._ext|_ext|_cuda|_cpp|_cuda_ext|_C))\b['\"]?"),
         phrase("please compile", r"Please compile (MultiScaleDeformableAttention) CUDA op"),
         phrase("cannot import name", r"cannot import name\s*['\"]?(_C|_ext|\w*_cuda\w*)['\"]?(?:\s+from\s+['\"]?"
                r"([\w.]+))?"),
         phrase("multiscaledeformableattention", r"import (MultiScaleDeformableAttention)[^\n]{0,40}(?:这个报错|"
                r"没有这个模块|报错)"),
         # A package that imports its compiled _C inside try/except and fails at the first call.
         phrase("is not defined", r"NameError: name '(_C|_ext|\w+_cuda\w*|\w+_cpp|\w+_ext)' is not defined"),
         # bitsandbytes ships one library per CUDA version and falls back to its CPU one.
         phrase("required library version not found", r"Required library version not found: (libbitsandbytes_\w+\.so)"),
         phrase("cuda extension not installed", r"CUDA extension not installed()")),
        "The compiled extension {g0} was never built or installed in this environment (or a source checkout "
        "shadows the installed package).",
        lambda ctx: fx.msda_fix(ctx) if "multiscaledeformable" in (ctx.group(0) or ctx.line).lower() else
        ("bitsandbytes has no library for this CUDA version: `pip install -U bitsandbytes` (recent releases ship "
         "one for each CUDA), point BNB_CUDA_VERSION at one it ships, or compile it from source for your CUDA."
         if "bitsandbytes" in (ctx.group(0) or "") else
         "Install the package's compiled ops: for mmcv, `pip install mmcv-full` (or mmcv>=2 built with ops) from "
         "the index matching your torch and CUDA; for detectron2 and other projects, build them in this "
         "environment (`pip install -e .` with CUDA_HOME set), and do not run from a directory that shadows the "
         "installed package." if "mmcv" in (ctx.group(0) or "") else
         "Build the project's compiled extension in this environment (`python setup.py build develop` or "
         "`pip install -e .` in its checkout, with CUDA_HOME set), and do not run from a directory that shadows "
         "the installed package."),
        alternatives=(PREBUILT,),
        must_fire=("ModuleNotFoundError: No module named 'MultiScaleDeformableAttention'",
                   "ModuleNotFoundError: No module named 'mmcv._ext'",
                   "ImportError: cannot import name '_C' from 'detectron2'",
                   "ImportError: cannot import name _C",
                   "NameError: name 'selective_scan_cuda' is not defined. Did you mean: 'SelectiveScanCuda'",
                   "CUDA SETUP: Required library version not found: libbitsandbytes_cuda121_nocublaslt.so. Maybe you "
                   "need to compile it from source?"),
        must_not_fire=("ModuleNotFoundError: No module named 'timm'", "NameError: name 'model' is not defined")),
    Signature(
        "d2-collect-env", "ext_not_built",
        (phrase("detectron2._c", r"detectron2\._C\s+(?:failed to import|not built correctly)()"),),
        "detectron2's compiled _C does not load (its collect_env says so): it was not built, or built for another "
        "torch.",
        "Rebuild detectron2 against the current torch: `pip uninstall -y detectron2`, remove its build/ dir, then "
        "`pip install -e .` in the checkout (with CUDA_HOME set for GPU ops).", confidence=0.6,
        must_fire=("detectron2._C                    not built correctly: No module named 'detectron2._C'",),
        must_not_fire=("detectron2                       0.6 @/d2/detectron2",)),
    Signature(
        "glibcxx", "libstdcxx_mismatch",
        (phrase("glibcxx_", r"((?:GLIBCXX)_[\d.]+)'?\s*not found"),
         phrase("cxxabi_", r"((?:CXXABI)_[\d.]+)'?\s*not found")),
        "The libstdc++ the loader picks is older than the one the binary was built with: {g0} is missing.",
        fx.libstdcxx_fix,
        must_fire=("ImportError: /usr/lib/x86_64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.29' not found "
                   "(required by /opt/conda/envs/py38/lib/python3.8/site-packages/scipy/_ckdtree.so)",),
        must_not_fire=("version `GLIBC_2.34' not found",)),
    Signature(
        "cuda-lib-missing", "missing_runtime_lib",
        (phrase("cannot open shared object file", r"(lib(?:cudart|cudnn\w*|cublas\w*|cufft\w*|curand|cusparse\w*|"
                r"cusolver\w*|nvrtc\w*|nccl|nvJitLink|nvToolsExt|cupti|nvinfer\w*)\.so(?:\.[\d.]+)?): cannot open "
                r"shared object file"),
         phrase(".dll", r"(?:Could not find module|cannot load|找不到指定的模块)[^\n]{0,200}?((?:cudart|cudnn|cublas"
                r"\w*|nvrtc|cufft)\w*\.dll)")),
        "{g0} is not on the loader path: that CUDA library (of that major version) is not installed, or not where "
        "the loader looks.",
        "Install the CUDA runtime of that version (pip `nvidia-*-cu12`/`-cu11` wheels, conda, or the toolkit) or add "
        "its lib directory to LD_LIBRARY_PATH; if a package was built for another CUDA, install its build for "
        "yours. " + CHECK,
        confidence=0.7, alternatives=(PREBUILT,),
        must_fire=("ImportError: libcudart.so.11.0: cannot open shared object file: No such file or directory",),
        must_not_fire=("libnccl-net.so: cannot open shared object file",
                       "OSError: libGL.so.1: cannot open shared object file: No such file or directory")),
    Signature(
        "nccl-shm", "nccl",
        (phrase("shared memory segment", r"(?:Error while )?creat\w+ shared memory segment[^\n]{0,120}"),
         phrase("posix_fallocate", r"posix_fallocate failed[^\n]{0,80}"),
         phrase("shm_open", r"shm_open failed[^\n]{0,80}"),
         phrase("/dev/shm", r"NCCL WARN[^\n]*/dev/shm[^\n]*")),
        "NCCL could not create its shared-memory transport: /dev/shm is too small (docker's default is 64 MB), not "
        "writable, or isolated in a container.",
        "In docker run with `--ipc=host` or `--shm-size=8g`; check `df -h /dev/shm` and its permissions "
        "(`chmod 1777 /dev/shm`); or set `NCCL_SHM_DISABLE=1`. `NCCL_DEBUG=INFO` shows the failing step.",
        explains=("nccl",),
        must_fire=("include/shm.h:28 NCCL WARN Call to posix_fallocate failed: No space left on device",
                   "include/shm.h:48 Error while creating shared memory segment nccl-shm-recv-x (size 9637888)"),
        must_not_fire=("NCCL INFO Channel 00 : 0[1000] -> 1[2000] via P2P/IPC",)),
    Signature(
        "nccl-socket", "nccl",
        (phrase("no socket interface found", r"no socket interface found()"),
         phrase("ncclremoteerror", r"ncclRemoteError()"),
         phrase("remote process exited or there was a network error", r"remote process exited or there was a "
                r"network error()"),
         phrase("socket", r"NCCL WARN[^\n]*(?:socket|connect|Connection refused|Net :)[^\n]*()"),
         phrase("nccl_socket_ifname", r"NCCL_SOCKET_IFNAME[^\n]*(?:not found|no interface|invalid)()")),
        "NCCL could not set up its network transport: no usable network interface, or the peers cannot reach each "
        "other (firewall, wrong interface).",
        "Pick the interface the nodes share: `export NCCL_SOCKET_IFNAME=eth0` (see `ip addr`), check that the "
        "ports are open between nodes, or `NCCL_IB_DISABLE=1` without InfiniBand. `NCCL_DEBUG=INFO` shows the "
        "failing step.",
        must_fire=("NCCL WARN Bootstrap : no socket interface found",
                   "misc/socket.cc:456 NCCL WARN Net : Call to connect returned Connection refused"),
        must_not_fire=("NCCL INFO NET/Socket : Using [0]eth0:172.17.0.3<0>",)),
    Signature(
        "nccl-system", "nccl",
        (phrase("unhandled system error", r"unhandled system error()"),
         phrase("ncclsystemerror", r"ncclSystemError()"),
         phrase("ncclunhandledcudaerror", r"ncclUnhandledCudaError()")),
        "NCCL failed with a system error while setting up communication, most often shared memory (/dev/shm) in a "
        "container, sometimes the network.",
        "In docker run with `--ipc=host` or `--shm-size=8g`; otherwise rerun with `NCCL_DEBUG=INFO` to see "
        "whether shared memory or a socket failed, and try `NCCL_SHM_DISABLE=1` / `NCCL_SOCKET_IFNAME=<iface>`.",
        confidence=0.75, strength=SYMPTOM,
        must_fire=("RuntimeError: NCCL error in: ProcessGroupNCCL.cpp:290, unhandled system error",
                   "NCCL error：unhandled system error"),
        must_not_fire=("NCCL version 2.21.5+cuda12.4",)),
    Signature(
        "mmcv-range", "package_version_incompatible",
        (phrase("is used but incompatible", r"(MMCV|MMEngine|MMDet\w*|mmcv)==([\w.+]+) is used but incompatible"
                r"[^\n]{0,120}"),),
        "The installed {g0} {g1} is outside the version range this OpenMMLab package accepts.",
        "Install a {g0} version inside the range the error names (mmcv-full builds must also match your torch and "
        "CUDA: https://download.openmmlab.com/mmcv/dist/cuXXX/torchX.Y/index.html), or a downstream package "
        "version that accepts {g1}.",
        must_fire=("AssertionError: MMCV==1.7.2 is used but incompatible. Please install mmcv>=1.3.17, <=1.5.0.",),
        must_not_fire=("mmcv 1.7.2 installed",)),
    Signature(
        "cmake-cuda-version", "multiple_cuda_toolkits",
        (phrase("could not find cuda: found unsuitable version", r"Could NOT find CUDA: Found unsuitable version "
                r"\"?([\d.]+)\"?()"),),
        "CMake found a CUDA toolkit of the wrong version ({g0}) first: several toolkits are installed and the "
        "default one (/usr/local/cuda, PATH) is not the intended one.",
        "Point the build at the intended toolkit: `-DCUDA_TOOLKIT_ROOT_DIR=/usr/local/cuda-X.Y` (or CUDAToolkit_ROOT) "
        "and `export PATH=/usr/local/cuda-X.Y/bin:$PATH`; `ls -d /usr/local/cuda*` lists them.",
        must_fire=("  Could NOT find CUDA: Found unsuitable version \"6.0\", but required is at\n  least \"6.5\"",),
        must_not_fire=("-- Could NOT find CUDNN (missing: CUDNN_LIBRARY)",)),
    Signature(
        "container-toolkit", "container_gpu_not_exposed",
        (phrase("nvidia-container-cli", r"nvidia-container-cli: (?:initialization|mount|detection) error()"),
         phrase("could not select device driver", r"could not select device driver (?:\"[\w.-]*\" )?with "
                r"capabilities: \[\[gpu\]\]()"),
         phrase("failed to initialize nvml: unknown error", r"Failed to initialize NVML: Unknown Error()")),
        "The container runtime cannot give this container the GPU: the NVIDIA container toolkit is missing or "
        "broken on the host (or the container lost its device access).",
        "Install and configure the NVIDIA container toolkit on the host (`nvidia-ctk runtime configure --runtime="
        "docker`, restart docker), then start the container with `--gpus all`.",
        confidence=0.75,
        must_fire=("docker: Error response from daemon: could not select device driver \"\" with capabilities: "
                   "[[gpu]].",
                   # the driver's name quoted, or no quotes at all (other docker versions)
                   "Error response from daemon: could not select device driver \"nvidia\" with capabilities: [[gpu]]",
                   "could not select device driver with capabilities: [[gpu]]"),
        must_not_fire=("nvidia-container-toolkit 1.14.3-1 installed",)),
    Signature(
        "no-arch-list", "other",
        (phrase("+ptx", r"arch_list\[-1\] \+= '\+PTX'()"),),
        "torch's extension builder found no GPU to build for (none visible at build time: a build machine or "
        "container without GPU access, or no working driver) and TORCH_CUDA_ARCH_LIST is not set, so its list of "
        "architectures is empty.",
        lambda ctx: ("Name the GPU architectures to build for: " + fx.arch_list_hint(ctx) + " (several: "
                     "\"8.0;8.6;9.0\"), then build again; the build itself needs no GPU."),
        must_fire=("    arch_list[-1] += '+PTX'\n    ~~~~~~~~~^^^^\nIndexError: list index out of range",),
        must_not_fire=("IndexError: list index out of range",)),
    Signature(
        "extra-compile-args-cxx", "other",
        (phrase("extra_postargs['cxx']", r"extra_postargs\['cxx'\]()"),
         phrase("keyerror: 'cxx'", r"KeyError: 'cxx'()")),
        "The setup.py gives extra_compile_args without a 'cxx' entry (only 'nvcc'); torch's ninja builder reads "
        "both.",
        "Add `\"cxx\": []` next to `\"nvcc\": [...]` in extra_compile_args in setup.py, then build again.",
        must_fire=("    post_cflags = extra_postargs['cxx']\nKeyError: 'cxx'",),
        must_not_fire=("extra_compile_args={'cxx': ['-O2'], 'nvcc': ['-O2']}",)),
    Signature(
        "build-ninja", "other",
        (phrase("build.ninja", r"No such file or directory:\s*'?[^'\n]*build\.ninja()"),),
        "setuptools/ninja could not create or read the build directory's build.ninja (the build directory was "
        "not created, an earlier step failed, or the directory is not writable).",
        "Look for the first error above this line; remove the build/ dir and build again (a newer torch creates "
        "the directory itself).",
        must_fire=("error: [Errno 2] No such file or directory: '/x/build/temp.linux-x86_64-3.8/build.ninja'",),
        must_not_fire=("ninja: error: loading 'build.ninja': No such file or directory in /tmp",)),
    Signature(
        "ninja-missing", "other",
        (phrase("ninja", r"No such file or directory: '(ninja)'|Ninja is required to load C\+\+ extensions()"),
         phrase("'which'", r"No such file or directory: '(which)'")),
        "The build tool {g0} that torch's extension builder runs is not installed.",
        "Install it in the same environment or image: `pip install ninja` for ninja (or build with "
        "`use_ninja=False`); the `which` command from the distribution (`yum install which`, `apt install "
        "debianutils`).",
        must_fire=("FileNotFoundError: [Errno 2] No such file or directory: 'ninja': 'ninja'",
                   "RuntimeError: Ninja is required to load C++ extensions",
                   "error: [Errno 2] No such file or directory: 'which': 'which'"),
        must_not_fire=("[3/10] ninja build step",)),
    Signature(
        "driver-component-mismatch", "driver_library_mismatch",
        (phrase("api mismatch", r"API mismatch:[^\n]{0,120}?(?:kernel module|client)[^\n]{0,80}?version "
                r"([\d.]+)[^\n]{0,80}?version ([\d.]+)"),
         phrase("unsupported display driver / cuda driver combination", r"unsupported display driver / cuda driver "
                r"combination()"),
         phrase("system_driver_mismatch", r"(?:cudaErrorSystemDriverMismatch|CUDA_ERROR_SYSTEM_DRIVER_MISMATCH)()"),
         phrase("cudaerrorsystemdrivermismatch", r"cudaErrorSystemDriverMismatch()")),
        "Two parts of the NVIDIA driver have different versions: the loaded kernel module and the user-space "
        "libraries (libcuda, or a CUDA forward-compatibility libcuda on LD_LIBRARY_PATH) come from different "
        "driver releases.",
        "Reboot (or reload the nvidia modules) after a driver update; remove a cuda-compat directory from "
        "LD_LIBRARY_PATH unless this is a data-center GPU that supports it; reinstall one driver version. " + CHECK,
        confidence=0.85,
        must_fire=("NVRM: API mismatch: the client has the version 535.129.03, but this kernel module has the version "
                   "535.104.05.  Please make sure that this kernel module and all NVIDIA driver components have the "
                   "same version.",
                   "RuntimeError: CUDA error: system has unsupported display driver / cuda driver combination",
                   "CUDA initialization: cudaErrorSystemDriverMismatch"),
        must_not_fire=("Driver Version: 535.129.03  CUDA Version: 12.2",)),
    Signature(
        "ptx-too-new", "driver_too_old",
        (phrase("unsupported toolchain", r"provided PTX was compiled with an unsupported toolchain()"),
         phrase("unsupported_ptx_version", r"CUDA_ERROR_UNSUPPORTED_PTX_VERSION()"),
         phrase("cudaerrorunsupportedptxversion", r"cudaErrorUnsupportedPtxVersion()")),
        "The GPU code was compiled (or JIT-generated, e.g. by Triton) with a newer CUDA than this driver can load: "
        "the driver is older than the compiler.", fx.driver_fix, confidence=0.8,
        must_fire=("RuntimeError: CUDA error: the provided PTX was compiled with an unsupported toolchain.",
                   "triton: CUDA_ERROR_UNSUPPORTED_PTX_VERSION"),
        must_not_fire=("ptxas info    : Used 32 registers",)),
    Signature(
        "compat-not-supported", "driver_too_old",
        (phrase("forward compatibility was attempted", r"forward compatibility was attempted on non supported HW()"),
         phrase("compat_not_supported", r"(?:CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE|"
                r"cudaErrorCompatNotSupportedOnDevice)()"),
         phrase("cudaerrorcompatnotsupportedondevice", r"cudaErrorCompatNotSupportedOnDevice()")),
        "The program's CUDA is newer than the driver, and the forward-compatibility libraries that would bridge "
        "that only work on data-center GPUs.", fx.driver_fix, confidence=0.8,
        must_fire=("RuntimeError: Unexpected error from cudaGetDeviceCount(). Error 804: forward compatibility was "
                   "attempted on non supported HW",),
        must_not_fire=("forward compatibility is supported on this GPU",)),
    Signature(
        "container-requirement", "driver_too_old",
        (phrase("unsatisfied condition", r"unsatisfied condition: cuda ?>= ?([\d.]+)"),),
        "The image needs CUDA {g0}, and the host's NVIDIA driver is older than that CUDA needs (the container "
        "toolkit refuses to start it).",
        "Update the host's NVIDIA driver to one that supports CUDA {g0} (`nvidia-smi` on the host shows the maximum), "
        "or use an image built for an older CUDA.", confidence=0.9,
        must_fire=("nvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.2, please update your "
                   "driver to a newer version, or use an earlier cuda container: unknown",),
        must_not_fire=("NVIDIA_REQUIRE_CUDA=cuda>=12.2 brand=tesla,driver>=470",)),
    Signature(
        "container-no-driver", "driver_not_loaded",
        (phrase("load library failed", r"load library failed: (libnvidia-ml\.so\.1|libcuda\.so\.1)"),
         phrase("nvml error: driver not loaded", r"nvml error: (driver not loaded)")),
        "The container toolkit found no NVIDIA driver library ({g0}) on the host: the host has no driver installed "
        "(or, on WSL2/Docker Desktop, the Windows driver is not exposed).",
        "Install the NVIDIA driver on the host (on WSL2: the Windows driver, nothing inside Linux) and check "
        "`nvidia-smi` on the host before starting the container with `--gpus all`.", confidence=0.8,
        alternatives=(CONTAINER,),
        must_fire=("nvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1: cannot open "
                   "shared object file: no such file or directory: unknown.",),
        must_not_fire=("nvidia-container-cli: initialization error: nvml error: driver/library version mismatch",)),
    Signature(
        "container-runtime-missing", "container_gpu_not_exposed",
        (phrase("invalid runtime name", r"unknown or invalid runtime name: nvidia()"),
         phrase("nvidia-container-runtime", r"nvidia-container-runtime(?:-hook)?\W{0,3}:? executable file not found"
                r"()")),
        "Docker does not know the NVIDIA runtime: the NVIDIA container toolkit is not installed or not configured "
        "for this Docker daemon.",
        "Install the NVIDIA container toolkit on the host, run `sudo nvidia-ctk runtime configure --runtime=docker` "
        "and restart Docker; then use `--gpus all`.",
        must_fire=("docker: Error response from daemon: unknown or invalid runtime name: nvidia.",
                   "exec: \"nvidia-container-runtime-hook\": executable file not found in $PATH"),
        must_not_fire=("Runtimes: io.containerd.runc.v2 nvidia runc",)),
    Signature(
        "cuda-init-unknown", "driver_not_loaded",
        (phrase("cuda unknown error", r"CUDA unknown error - this may be due to an incorrectly set up environment()"),
         phrase("cuda driver initialization failed", r"CUDA driver initialization failed()"),
         phrase("system not yet initialized", r"system not yet initialized()")),
        "CUDA could not initialise the driver: most often the nvidia_uvm module is missing or stale (after suspend "
        "or a driver update), or the device nodes are not accessible.",
        "Reboot, or reload the modules (`sudo rmmod nvidia_uvm && sudo modprobe nvidia_uvm`); check that "
        "`nvidia-smi` works and /dev/nvidia-uvm exists; on NVSwitch systems (\"system not yet initialized\", "
        "error 802) start the fabric manager: `sudo systemctl start nvidia-fabricmanager`. " + CHECK,
        confidence=0.6, strength=SYMPTOM,
        alternatives=(CONTAINER,), any_role=True,
        must_fire=("UserWarning: CUDA initialization: CUDA unknown error - this may be due to an incorrectly set up "
                   "environment, e.g. changing env variable CUDA_VISIBLE_DEVICES after program start.",
                   "CUDA driver initialization failed, you might not have a CUDA gpu."),
        must_not_fire=("CUDA initialization: OK",)),
    Signature(
        "cudnn-runtime-version", "cudnn_mismatch",
        (phrase("loaded runtime cudnn library", r"Loaded runtime CuDNN library: (\d+(?:\.\d+)*) but source was "
                r"compiled with: (\d+(?:\.\d+)*)"),),
        "The cuDNN loaded at run time ({g0}) is not the one the program was built with ({g1}).",
        "Install cuDNN {g1} (or a build of the program for cuDNN {g0}) and make sure the loader finds it first "
        "(LD_LIBRARY_PATH, conda's cudnn, pip's nvidia-cudnn). " + CHECK,
        must_fire=("E tensorflow/stream_executor/cuda/cuda_dnn.cc:361] Loaded runtime CuDNN library: 8.0.5 but "
                   "source was compiled with: 8.1.0.",),
        must_not_fire=("Loaded cuDNN version 8100",)),
    Signature(
        "cudnn-no-engine", "cudnn_mismatch",
        (phrase("unable to find an engine", r"unable to find an engine to execute this computation()"),
         phrase("cudnn_status_not_initialized", r"CUDNN_STATUS_NOT_INITIALIZED()")),
        "cuDNN could not run the convolution: the cuDNN that loads does not fit this torch/CUDA (another cuDNN "
        "found first, or parts of it missing), or the GPU ran out of memory while cuDNN initialised.",
        "Let torch use its own cuDNN: remove foreign cuDNN directories from LD_LIBRARY_PATH (or PATH on Windows), "
        "reinstall torch from the index matching your CUDA, and retry with a smaller batch to rule out memory. "
        + CHECK,
        confidence=0.5, strength=SYMPTOM,
        alternatives=(Alternative(
            "missing_runtime_lib", 0.3, "Part of cuDNN (one of its sub-libraries) is missing from the loader path.",
            "Install the complete cuDNN of the version torch expects (pip `nvidia-cudnn-cu12`, conda `cudnn`) or "
            "put its directory on the loader path."),),
        must_fire=("RuntimeError: GET was unable to find an engine to execute this computation",
                   "RuntimeError: cuDNN error: CUDNN_STATUS_NOT_INITIALIZED"),
        must_not_fire=("cudnn.benchmark = True",)),
    Signature(
        "library-not-located", "missing_runtime_lib",
        (phrase("could not locate", r"Could not locate (\w+\.dll)"),
         phrase("could not load library", r"Could not load library (\S+?\.(?:so[\d.]*|dll))"),
         phrase("could not load dynamic library", r"Could not load dynamic library '([^']+)'"),
         phrase("error loading", r"Error loading \"[^\"\n]*?([\w.-]+\.dll)\" or one of its dependencies")),
        "{g0} is not on the loader path: that library (of that version) is not installed, or not where the loader "
        "looks.",
        "Install the library of that version (cuDNN/CUDA runtime from pip `nvidia-*` wheels, conda, or the toolkit; "
        "zlibwapi.dll for cuDNN 8 on Windows) or add its directory to LD_LIBRARY_PATH (PATH on Windows); if a "
        "package was built for another CUDA, install its build for yours. " + CHECK,
        confidence=0.7, alternatives=(PREBUILT,), any_role=True,
        must_fire=("Could not locate cudnn_ops_infer64_8.dll. Please make sure it is in your library path!",
                   "Could not load library libcudnn_cnn_infer.so.8. Error: libcuda.so: cannot open shared object file",
                   "W tensorflow/stream_executor/platform/default/dso_loader.cc:64] Could not load dynamic library "
                   "'libcudart.so.11.0'; dlerror: libcudart.so.11.0: cannot open shared object file",
                   "OSError: [WinError 126] The specified module could not be found. Error loading \"C:\\\\py\\\\lib\\\\"
                   "site-packages\\\\torch\\\\lib\\\\cudnn_adv_infer64_8.dll\" or one of its dependencies."),
        must_not_fire=("Successfully opened dynamic library libcudart.so.11.0",)),
    Signature(
        "nccl-p2p", "nccl",
        (phrase("peer access is not supported", r"peer access is not supported between these two devices()"),
         phrase("cudaerrorpeeraccessunsupported", r"cudaErrorPeerAccessUnsupported()")),
        "GPU peer-to-peer access is not available between these GPUs (PCIe ACS/IOMMU, a virtual machine, or GPUs "
        "on different root complexes), and NCCL's P2P transport fails.",
        "Disable the P2P transport: `export NCCL_P2P_DISABLE=1` (or `NCCL_P2P_LEVEL=NVL`); on bare metal, "
        "disable ACS / IOMMU for the GPUs. `NCCL_DEBUG=INFO` shows the transport chosen.",
        confidence=0.75,
        must_fire=("NCCL WARN Cuda failure 'peer access is not supported between these two devices'",),
        must_not_fire=("NCCL INFO Channel 00 : 0[0] -> 1[1] via P2P/CUMEM",)),
    Signature(
        "nccl-duplicate-gpu", "gpu_selection",
        (phrase("duplicate gpu detected", r"Duplicate GPU detected\W{0,5}rank (\d+) and rank (\d+)"),),
        "Two ranks use the same GPU (rank {g0} and rank {g1}): each process must select its own device (LOCAL_RANK), "
        "or there are more processes than GPUs.",
        "Call `torch.cuda.set_device(int(os.environ[\"LOCAL_RANK\"]))` before init_process_group (or pass "
        "device_id), start no more processes per node than GPUs, and check CUDA_VISIBLE_DEVICES.",
        confidence=0.85,
        alternatives=(Alternative("nccl", 0.3, "NCCL refuses to run two ranks on one GPU.",
                                  "Give each rank its own GPU (LOCAL_RANK)."),),
        must_fire=("NCCL WARN Duplicate GPU detected : rank 1 and rank 0 both on CUDA device 1000",),
        must_not_fire=("NCCL INFO comm 0x1 rank 1 nRanks 2 nNodes 1 localRanks 2 localRank 1",)),
    Signature(
        "dist-rendezvous", "nccl",
        (phrase("client socket has failed to connect", r"client socket has (?:failed to connect|timed out)[^\n]{0,160}"),
         phrase("failed to listen on any local network address", r"failed to listen on any local network address"
                r"[^\n]{0,80}"),
         phrase("distnetworkerror", r"DistNetworkError[^\n]{0,160}")),
        "torch.distributed's rendezvous failed: the ranks could not reach MASTER_ADDR:MASTER_PORT (wrong address, "
        "port in use or blocked, a firewall between nodes, or the master not started).",
        "Set MASTER_ADDR to an address every node can reach and MASTER_PORT to a free port (`ss -ltn` shows ports "
        "in use), open it in the firewall, and start the master rank first; `envdoctor fleet` checks every rank.",
        confidence=0.7,
        must_fire=("torch.distributed.DistNetworkError: The server socket has failed to listen on any local network "
                   "address. The server socket has failed to bind to [::]:29500 (errno: 98 - Address already in use).",
                   "The client socket has failed to connect to [node1]:29500 (errno: 110 - Connection timed out)."),
        must_not_fire=("Using MASTER_ADDR=10.0.0.1 MASTER_PORT=29500",)),
    Signature(
        "nccl-watchdog", "nccl",
        (phrase("watchdog caught collective operation timeout", r"Watchdog caught collective operation timeout()"),
         phrase("ncclinternalerror", r"ncclInternalError()"),
         phrase("ncclinvalidusage", r"ncclInvalidUsage()")),
        "A collective did not finish (or NCCL failed inside): a rank hung or died, or the transport between GPUs "
        "(P2P, shared memory, network) is broken.",
        "Rerun with `NCCL_DEBUG=INFO` (and `TORCH_NCCL_ASYNC_ERROR_HANDLING=1`) to see which rank and transport "
        "fail; try `NCCL_P2P_DISABLE=1`, check /dev/shm in containers, and that every rank runs the same "
        "collectives.", confidence=0.5, strength=SYMPTOM,
        must_fire=("[Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1, OpType=ALLREDUCE) ran "
                   "for 1800000 milliseconds before timing out.",),
        must_not_fire=("timeout=datetime.timedelta(seconds=1800)",)),
    Signature(
        "cuda-stub-driver", "driver_not_loaded",
        (phrase("stub library", r"CUDA driver is a stub library()|CUDA_ERROR_STUB_LIBRARY()|cudaErrorStubLibrary()"),),
        "The libcuda.so that loaded is the toolkit's link-time stub (lib64/stubs), not the driver's.",
        "Remove the toolkit's `lib64/stubs` directory from LD_LIBRARY_PATH (it is only for linking) and check that "
        "the driver's libcuda.so.1 is found (`ldconfig -p | grep libcuda`). " + CHECK, confidence=0.85,
        must_fire=("RuntimeError: Unexpected error from cudaGetDeviceCount(). Error 34: CUDA driver is a stub library",),
        must_not_fire=("-L/usr/local/cuda/lib64/stubs -lcuda",)),
    Signature(
        "device-busy", "gpu_selection",
        (phrase("busy or unavailable", r"CUDA-capable device\(s\) is/are busy or unavailable()"),
         phrase("cudaerrordevicesunavailable", r"cudaErrorDevicesUnavailable()")),
        "The GPU is in exclusive-process compute mode and already used by another process (or reserved by the "
        "scheduler for another job).",
        "Pick a free GPU (`nvidia-smi` shows processes and the compute mode; `CUDA_VISIBLE_DEVICES=<free index>`), "
        "stop the process holding it, or ask the admin to set the default compute mode "
        "(`nvidia-smi -c DEFAULT`).", confidence=0.7,
        must_fire=("RuntimeError: CUDA error: CUDA-capable device(s) is/are busy or unavailable",),
        must_not_fire=("GPU 0 is available",)),
    Signature(
        "no-nccl-built-in", "nccl",
        (phrase("doesn't have nccl built in", r"Distributed package doesn.t have NCCL built in()"),),
        "This torch has no NCCL: Windows and macOS builds (and CPU-only builds) never include it.",
        "Use the gloo backend on Windows/macOS (`init_process_group(\"gloo\")`, or `dist_backend: gloo` in the config); "
        "on Linux install a CUDA build of torch.", confidence=0.85,
        must_fire=("RuntimeError: Distributed package doesn't have NCCL built in",),
        must_not_fire=("torch.distributed.is_nccl_available() -> True",)),
    Signature(
        "cuda-lib-symbol", "missing_runtime_lib",
        (phrase("undefined symbol", r"undefined symbol:\s*(__nvJitLink\w+|cublas\w+|cusparse\w+|cudnn\w+|nccl\w+)"
                r"(?:, version (lib\w+\.so\.\d+))?"),),
        "The {g1} that loads first is another version than the library using it needs ({g0} is missing): a CUDA "
        "library from LD_LIBRARY_PATH or a system toolkit shadows the one pip or conda installed.",
        "Let torch load its own CUDA libraries: remove toolkit lib64 directories from LD_LIBRARY_PATH (`echo "
        "$LD_LIBRARY_PATH`), or install matching nvidia-* wheels. " + CHECK, confidence=0.6,
        alternatives=(PREBUILT, Alternative(
            "multiple_cuda_toolkits", 0.3, "A second CUDA installation's libraries are found before the right ones.",
            "`ldd` on the failing library shows which copy loads; remove the other toolkit from LD_LIBRARY_PATH.")),
        must_fire=("ImportError: /site-packages/torch/lib/../../nvidia/cusparse/lib/libcusparse.so.12: undefined "
                   "symbol: __nvJitLinkAddData_12_1, version libnvJitLink.so.12",),
        must_not_fire=("undefined symbol: _ZN3c105ErrorC1ENS_14SourceLocationERKSs",)),
    Signature(
        "dll-load-failed", "missing_runtime_lib",
        (phrase("dll load failed", r"DLL load failed(?: while importing (\w+))?:\s*(?:The specified module could not "
                r"be found|找不到指定的模块)()"),),
        "Windows could not load a DLL that {g0} needs: a CUDA/cuDNN DLL or the Visual C++ runtime is missing, or "
        "the package was built for another torch/CUDA.",
        "Install the Microsoft Visual C++ Redistributable, make sure the CUDA bin directory of the matching version is "
        "on PATH, or reinstall the package built for your torch and CUDA. " + CHECK, confidence=0.55,
        alternatives=(PREBUILT,),
        must_fire=("ImportError: DLL load failed while importing _C: The specified module could not be found.",),
        must_not_fire=("ImportError: DLL load failed while importing _ssl: %1 is not a valid Win32 application.",)),
    Signature(
        "cudnn-sublib-symbol", "cudnn_mismatch",
        (phrase("could not load library", r"Could not load library (libcudnn\w*\.so[\d.]*)\. Error: [^\n]{0,300}?undefined "
                r"symbol()"),),
        "Parts of two cuDNN installations are mixed: {g0} loads from one cuDNN and lacks symbols of the other "
        "(a system or toolkit cuDNN on LD_LIBRARY_PATH next to the one torch ships).",
        "Let torch load only its own cuDNN: remove the toolkit's lib64 (or the system cuDNN) from LD_LIBRARY_PATH, "
        "or install one complete cuDNN of the version torch expects. " + CHECK, confidence=0.8,
        must_fire=("Could not load library libcudnn_cnn_train.so.8. Error: /usr/local/cuda-12.3/lib64/"
                   "libcudnn_cnn_train.so.8: undefined symbol: _ZN5cudnn3cnn5infer, version libcudnn_cnn_infer.so.8",),
        must_not_fire=("Could not load library libcudnn_cnn_infer.so.8. Error: libcudnn_cnn_infer.so.8: cannot open "
                       "shared object file",)),
    Signature(
        "cudnn-too-old", "cudnn_mismatch",
        (phrase("cudnn v", r"(?:supported|available) only (?:in|with|for) cuDNN v?([\d.]+) and (?:above|later|newer)()"),
         phrase(" or higher is required", r"cuDNN v?([\d.]+)\+? or (?:higher|newer|later) is required()")),
        "The cuDNN that loads is older than {g0}, which this feature needs: an old cuDNN elsewhere on the system is "
        "found before the one the framework ships.",
        "Find which cuDNN loads (`ldd`, LD_LIBRARY_PATH) and remove the old one from the loader path, or install "
        "cuDNN >= {g0}. " + CHECK, confidence=0.7,
        must_fire=("RuntimeError: dropout supported only in cudnn v5.1 and above",),
        must_not_fire=("cuDNN v8.9 loaded",)),
    Signature(
        "torch-lib-not-loaded", "missing_runtime_lib",
        (phrase("cannot open shared object file", r"(lib(?:c10|c10_cuda|torch|torch_cpu|torch_cuda|torch_python)\.so): "
                r"cannot open shared object file"),),
        "A compiled extension needs torch's own library {g0}, which the loader finds only after `import torch` "
        "(torch does not put its lib/ on the loader path): the extension was imported before torch, or for a torch "
        "that is not installed here.",
        "Import torch before the extension (`import torch` first, also in the package's __init__.py); if that does "
        "not help, rebuild the extension against the installed torch. " + CHECK, confidence=0.55,
        alternatives=(Alternative("torch_cpu_only", 0.35, "The installed torch is a CPU-only build, which has no "
                                  "CUDA libraries (libc10_cuda, libtorch_cuda).", "Install a CUDA build of torch."),
                      PREBUILT),
        must_fire=("ImportError: libtorch_cuda.so: cannot open shared object file: No such file or directory",
                   "ImportError: libc10.so: cannot open shared object file: No such file or directory"),
        must_not_fire=("ImportError: libcudart.so.12: cannot open shared object file",)),
    Signature(
        "cmake-distro-nvcc", "multiple_cuda_toolkits",
        (phrase("compiler: /usr/bin/nvcc", r"(?m)^\s*Compiler: (/usr/bin/nvcc)\s*$"),),
        "CMake tested the distribution's CUDA compiler (/usr/bin/nvcc, e.g. Ubuntu's nvidia-cuda-toolkit) instead of "
        "the toolkit you installed, and it failed.",
        "Point CMake at the intended toolkit: `export CUDACXX=/usr/local/cuda-X.Y/bin/nvcc CUDA_HOME=/usr/local/cuda-X.Y "
        "PATH=/usr/local/cuda-X.Y/bin:$PATH` (or `-DCMAKE_CUDA_COMPILER=...`), or remove the distribution package "
        "`nvidia-cuda-toolkit`. " + CHECK, confidence=0.55,
        must_fire=("  Compiling the CUDA compiler identification source file\n  \"CMakeCUDACompilerId.cu\" failed.\n\n"
                   "  Compiler: /usr/bin/nvcc",),
        must_not_fire=("  Compiler: /usr/local/cuda/bin/nvcc",)),
    Signature(
        "lnk-obj-missing", "other",
        (phrase("lnk1181", r"LNK1181:? cannot open input file '([^'\n]*\.obj)'"),),
        "The linker has no object file {g0}: the compile step that should have produced it failed or wrote it "
        "elsewhere (on Windows often a path with spaces, or a build directory from another run).",
        "Look for the first compiler error above; build from a path without spaces, remove the build/ directory "
        "and build again.", confidence=0.5,
        must_fire=("LINK : fatal error LNK1181: cannot open input file '.\\Release\\_ext.obj'",),
        must_not_fire=("LINK : fatal error LNK1181: cannot open input file 'cudart.lib'",)),
    Signature(
        "torch-split-lib", "prebuilt_wheel_mismatch",
        (phrase("cannot open shared object file", r"(libtorch_cuda_(?:cu|cpp)\.so): cannot open shared object file"),),
        "The package was built for a torch that has {g0} (torch 1.8 to 1.12 split its CUDA library in two); the "
        "installed torch is another version or CUDA build.",
        "Install the package's build for the installed torch and CUDA (for PyG's torch-scatter/-sparse: the wheel "
        "index named after `python -c \"import torch; print(torch.__version__)\"`), or build it here. " + CHECK,
        confidence=0.7,
        alternatives=(Alternative("torch_cpu_only", 0.3, "The installed torch is a CPU-only build without CUDA "
                                  "libraries.", "Install a CUDA build of torch."),),
        must_fire=("OSError: libtorch_cuda_cu.so: cannot open shared object file: No such file or directory",),
        must_not_fire=("ImportError: libtorch_cuda.so: cannot open shared object file: No such file or directory",)),
    Signature(
        "libstdcxx-symbol", "libstdcxx_mismatch",
        (phrase("undefined symbol", r"undefined symbol:\s*(_ZN?K?St(?!7__cxx11)\w+)"),),
        "The binary needs a C++ standard-library symbol ({g0}) the libstdc++ it loads lacks: that libstdc++ (often "
        "an old one in the conda env or the system) is older than the compiler that built it.", fx.libstdcxx_fix,
        confidence=0.7,
        must_fire=("detectron2._C not built correctly: /x/_C.so: undefined symbol: "
                   "_ZNSt15__exception_ptr13exception_ptr9_M_addrefEv",),
        must_not_fire=("undefined symbol: _ZNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEE",)),
)
