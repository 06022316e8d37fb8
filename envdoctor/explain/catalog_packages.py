"""Signatures of the software stack around torch: prebuilt packages (xFormers, torchvision, bitsandbytes),
version pins pip reports, NumPy's ABI break, and torch builds without CUDA seen from other packages."""
from __future__ import annotations

from envdoctor.explain import fixtext as fx
from envdoctor.explain.catalog import CHECK, PREBUILT
from envdoctor.explain.signature import SYMPTOM, TALK, Alternative, Signature, phrase

DRIVER = Alternative(
    "driver_not_loaded", 0.3,
    "torch is a CUDA build, but it sees no working driver or GPU here.",
    "Check `nvidia-smi`; reboot or reinstall the driver, or start the container with `--gpus all`.")
VERSIONS = Alternative(
    "package_version_incompatible", 0.3,
    "The two packages are versions that do not go together.",
    "Install the versions the package's compatibility table pairs (pip shows what it needs with `pip check`).")


def _xformers_fix(ctx) -> str:
    built, have = ctx.group(0), ctx.group(2)
    return (f"Install the xFormers build made for your torch ({have}): `pip install -U xformers --index-url "
            "https://download.pytorch.org/whl/cuXXX` with the same cuXXX as torch, or install the torch it was built "
            f"for ({built}). " + CHECK)


PACKAGES = (
    Signature(
        "xformers-cpu-torch", "torch_cpu_only",
        (phrase("you have", r"xFormers was built for:\s*PyTorch ([\w.+]+) with CUDA (\d+) \(you have ([\w.]+\+cpu)\)"),),
        "xFormers cannot load its CUDA kernels because the installed torch ({g2}) is a CPU-only build.",
        fx.cpu_only_fix, confidence=0.85, any_role=True,
        must_fire=("WARNING[XFORMERS]: xFormers can't load C++/CUDA extensions. xFormers was built for:\n"
                   "    PyTorch 2.1.2+cu121 with CUDA 1201 (you have 2.1.2+cpu)",),
        must_not_fire=("xFormers was built for:\n    PyTorch 2.1.2+cu121 with CUDA 1201 (you have 2.0.1+cu118)",)),
    Signature(
        "xformers-other-torch", "prebuilt_wheel_mismatch",
        (phrase("you have", r"xFormers was built for:\s*PyTorch ([\w.+]+) with CUDA (\d+) \(you have "
                r"((?![\w.]+\+cpu\))[\w.+]+)\)"),),
        "The installed xFormers wheel was built for PyTorch {g0}, but torch {g2} is installed, so its CUDA "
        "kernels do not load.", _xformers_fix, confidence=0.8, any_role=True, alternatives=(VERSIONS,),
        must_fire=("WARNING:xformers:WARNING[XFORMERS]: xFormers can't load C++/CUDA extensions. xFormers was built "
                   "for:\n    PyTorch 2.1.2+cu121 with CUDA 1201 (you have 2.0.1+cu118)",),
        must_not_fire=("xFormers was built for:\n    PyTorch 2.1.2+cu121 with CUDA 1201 (you have 2.1.2+cpu)",)),
    Signature(
        "torchvision-cuda-major", "prebuilt_wheel_mismatch",
        (phrase("were compiled with different cuda", r"PyTorch and (torch\w+) were compiled with different CUDA "
                r"(?:major )?versions[^\n]{0,200}"),),
        "torch and {g0} come from builds for different CUDA versions (they were installed from different indexes).",
        "Install {g0} from the same index as torch (the same cuXXX), with the version paired with your torch: "
        "`pip install --force-reinstall {g0} --index-url https://download.pytorch.org/whl/cuXXX`. " + CHECK,
        confidence=0.85, alternatives=(VERSIONS,),
        must_fire=("RuntimeError: Detected that PyTorch and torchvision were compiled with different CUDA major "
                   "versions. PyTorch has CUDA Version=11.8 and torchvision has CUDA Version=12.1.",),
        must_not_fire=("PyTorch and torchvision were compiled with CUDA 12.1",)),
    Signature(
        "torchvision-ops", "package_version_incompatible",
        (phrase("couldn't load custom c++ ops", r"Couldn't load custom C\+\+ ops()"),
         phrase("torchvision::nms does not exist", r"operator torchvision::nms does not exist()")),
        "torchvision's compiled ops do not load: the installed torchvision is not the version (or the CUDA build) "
        "paired with the installed torch.",
        "Install the torchvision paired with your torch from the same index (e.g. torch 2.1 with torchvision 0.16; "
        "the table is on pytorch.org/get-started/previous-versions). " + CHECK,
        confidence=0.75, alternatives=(PREBUILT,),
        must_fire=("RuntimeError: Couldn't load custom C++ ops. This can happen if your PyTorch and torchvision "
                   "versions are incompatible",
                   "RuntimeError: operator torchvision::nms does not exist"),
        must_not_fire=("torchvision.ops.nms(boxes, scores, 0.5)",)),
    Signature(
        "vision-op-cpu-only", "prebuilt_wheel_mismatch",
        (phrase("with arguments from the 'cuda' backend", r"Could not run '(torchvision|torchaudio)::(\w+)' with "
                r"arguments from the 'CUDA' backend"),),
        "{g0} is a CPU-only build next to a CUDA torch, so {g0}::{g1} has no CUDA kernel.",
        "Install {g0} from the same index as torch (the same cuXXX): `pip install --force-reinstall {g0} "
        "--index-url https://download.pytorch.org/whl/cuXXX`. " + CHECK,
        confidence=0.8, alternatives=(VERSIONS,),
        must_fire=("NotImplementedError: Could not run 'torchvision::nms' with arguments from the 'CUDA' backend.",),
        must_not_fire=("NotImplementedError: Could not run 'aten::empty.memory_format' with arguments from the "
                       "'SparseCUDA' backend",)),
    Signature(
        "own-op-cpu-only", "ext_built_without_cuda",
        (phrase("with arguments from the 'cuda' backend", r"Could not run '(?!torchvision|torchaudio|aten)(\w+)::"
                r"(\w+)' with arguments from the 'CUDA' backend"),),
        "The operator {g0}::{g1} was registered without a CUDA kernel: its library was built without CUDA.",
        lambda ctx: fx.without_cuda_fix(ctx), confidence=0.7, alternatives=(PREBUILT,),
        must_fire=("NotImplementedError: Could not run 'detectron2::nms_rotated' with arguments from the 'CUDA' "
                   "backend.",),
        must_not_fire=("NotImplementedError: Could not run 'torchvision::nms' with arguments from the 'CUDA' "
                       "backend.",)),
    Signature(
        "pip-requires", "package_version_incompatible",
        (phrase("but you have", r"([\w.-]+) [\w.+-]+ requires ([\w.-]+)([<>=!~][^,\n]{0,60}|), but you have ([\w.-]+) "
                r"([\w.+-]+) which is incompatible"),),
        "{g0} needs {g1}{g2}, but {g3} {g4} is installed: pip installed a combination that does not go together.",
        "Install what {g0} asks for (`pip install '{g1}{g2}'`, from the same index as torch when it is torch), or "
        "the {g0} release made for {g3} {g4}; `pip check` lists every conflict.", confidence=0.8,
        must_fire=("xformers 0.0.20 requires torch==2.0.0, but you have torch 2.0.1 which is incompatible.",),
        must_not_fire=("xformers 0.0.20 requires torch==2.0.0",)),
    Signature(
        "numpy-abi", "package_version_incompatible",
        (phrase("compiled using numpy 1.x", r"compiled using NumPy 1\.x cannot be run in\s+NumPy 2()"),
         phrase("_array_api not found", r"_ARRAY_API not found()"),
         phrase("numpy.core.multiarray failed to import", r"numpy\.core\.multiarray failed to import()")),
        "A compiled package was built against NumPy 1.x and NumPy 2 is installed (or the other way round).",
        "`pip install 'numpy<2'` in this environment, or upgrade the package to a release built for NumPy 2.",
        confidence=0.8,
        must_fire=("A module that was compiled using NumPy 1.x cannot be run in\nNumPy 2.0.1 as it may crash.",
                   "ImportError: numpy.core.multiarray failed to import"),
        must_not_fire=("numpy 1.26.4",)),
    Signature(
        "torch-six", "package_version_incompatible",
        (phrase("torch._six", r"(?:cannot import name '\w+' from 'torch\._six'|No module named 'torch\._six')()"),),
        "The package imports torch._six, which torch 2.0 removed: the package is older than the installed torch.",
        "Upgrade the package to a release that supports torch 2 (or patch `from torch._six import inf` to `from "
        "torch import inf`), or install the torch 1.x it was written for.", confidence=0.8,
        must_fire=("ImportError: cannot import name 'container_abcs' from 'torch._six'",
                   "ModuleNotFoundError: No module named 'torch._six'"),
        must_not_fire=("from torch import inf",)),
    Signature(
        "pip-no-version", "package_version_incompatible",
        (phrase("could not find a version that satisfies", r"Could not find a version that satisfies the "
                r"requirement ((?:torch|torchvision|torchaudio|mmcv|xformers|detectron2)[\w=<>.+-]*)"),),
        "pip has no build of {g0} for this Python and platform (wheels exist only for some Python versions, and "
        "+cuXXX builds only on PyTorch's own index).",
        "Use a Python version that {g0} publishes wheels for, or pass the right index (`--index-url "
        "https://download.pytorch.org/whl/cuXXX` for +cuXXX builds). " + CHECK, confidence=0.6,
        must_fire=("ERROR: Could not find a version that satisfies the requirement torch==1.9.0+cu111",),
        must_not_fire=("ERROR: Could not find a version that satisfies the requirement foobar==1.0",)),
    Signature(
        "cuda-unavailable-load", "torch_cpu_only",
        (phrase("torch.cuda.is_available() is false", r"Attempting to deserialize object on a CUDA device but "
                r"torch\.cuda\.is_available\(\) is False()"),
         phrase("cuda unavailable, invalid device", r"CUDA unavailable, invalid device \d+ requested()"),
         phrase("no cuda runtime is found", r"No CUDA runtime is found()")),
        "torch cannot use CUDA here: a CPU-only torch build, or no working driver or GPU.",
        fx.cpu_only_fix, confidence=0.55, strength=SYMPTOM, alternatives=(DRIVER,),
        must_fire=("RuntimeError: Attempting to deserialize object on a CUDA device but torch.cuda.is_available() is "
                   "False. If you are running on a CPU-only machine, please use torch.load with "
                   "map_location=torch.device('cpu')",
                   "AssertionError: CUDA unavailable, invalid device 0 requested",
                   "No CUDA runtime is found, using CUDA_HOME='/usr/local/cuda'"),
        must_not_fire=("torch.load(path, map_location='cpu')",)),
    Signature(
        "invalid-device-option", "gpu_selection",
        (phrase("invalid cuda '--device", r"Invalid CUDA '--device ([\w,]+)' requested()"),),
        "The --device option names GPU {g0}, which does not exist or is hidden here.",
        "Pass an existing device (`--device 0`; `nvidia-smi -L` lists them) and check CUDA_VISIBLE_DEVICES.",
        confidence=0.8, alternatives=(Alternative(
            "torch_cpu_only", 0.3, "torch sees no CUDA at all (a CPU-only build), so every device is invalid.",
            "Check `python -c \"import torch; print(torch.version.cuda, torch.cuda.is_available())\"`."),),
        must_fire=("AssertionError: Invalid CUDA '--device 1' requested, use '--device cpu' or pass valid CUDA "
                   "device(s)",),
        must_not_fire=("--device 0",)),
    Signature(
        "torch-cpu-version", "torch_cpu_only",
        (phrase("+cpu", r"(?:torch|pytorch|PyTorch)\s*(?:version)?\s*[:=]{0,2}\s*'?(\d+\.\d+(?:\.\d+)?\+cpu)\b"),
         # `conda list`: the CPU variant's build string, or the cpuonly / pytorch-mutex=cpu pins that select it
         phrase("_cpu_", r"(?m)^pytorch\s+(\d+\.\d+(?:\.\d+)?)\s+py[\d.]+_cpu_\d+"),
         # conda's solver plan: "pytorch  conda-forge/linux-64::pytorch-1.10.0-cpu_py37hf3cc979_0"
         phrase("-cpu_", r"::pytorch-(\d+\.\d+(?:\.\d+)?)-cpu_"),
         phrase("cpu", r"(?m)^(?:cpuonly\s+\d|pytorch-mutex\s+[\d.]+\s+cpu\b)()")),
        "The installed torch is a CPU-only build ({g0}).", fx.cpu_only_fix,
        confidence=0.45, strength=TALK, any_role=True,
        must_fire=("torch==2.0.1+cpu", "PyTorch version: 2.1.0+cpu",
                   "pytorch                   1.11.0              py3.8_cpu_0    pytorch",
                   "cpuonly                   2.0                           0    pytorch",
                   "  pytorch            conda-forge/linux-64::pytorch-1.10.0-cpu_py37hf3cc979_0"),
        must_not_fire=("torch==2.0.1+cu118", "torch 2.0.1",
                       "pytorch                   1.11.0          py3.8_cuda11.3_cudnn8.2.0_0    pytorch")),
    Signature(
        "compiled-package-missing", "ext_not_built",
        (phrase("no module named", r"No module named\s*['\"]?(detectron2|pytorch3d|diff_gaussian_rasterization|simple_knn"
                r"|tinycudann|nvdiffrast|MinkowskiEngine|pointnet2_ops|flash_attn|mamba_ssm|causal_conv1d|selective_scan"
                r"|DCNv2|dcn_v2|deform_conv\w*|roi_align\w*|knn_cuda|chamfer\w*|emd\w*|groundingdino)['\"]?(?=\W|$)"),),
        "{g0} is a package with compiled CUDA code that was never built or installed in this environment.",
        "Build and install {g0} in this environment from its source (usually `pip install -e .` or `python setup.py "
        "install` in its checkout, with CUDA_HOME set and the same torch), or install its prebuilt wheel for your "
        "torch and CUDA. " + CHECK, confidence=0.6, alternatives=(PREBUILT,),
        must_fire=("ModuleNotFoundError: No module named 'diff_gaussian_rasterization'",
                   "ModuleNotFoundError: No module named 'detectron2'"),
        must_not_fire=("ModuleNotFoundError: No module named 'detectron2_plugins'",)),
    Signature(
        "nccl-no-gpu", "torch_cpu_only",
        (phrase("only supported with gpus", r"ProcessGroupNCCL is only supported with GPUs, no GPUs found()"),),
        "The NCCL backend found no GPU: torch is a CPU-only build, or no GPU is visible to this process.",
        fx.cpu_only_fix, confidence=0.5, strength=SYMPTOM, alternatives=(DRIVER,),
        must_fire=("RuntimeError: ProcessGroupNCCL is only supported with GPUs, no GPUs found!",),
        must_not_fire=("ProcessGroupNCCL initialized",)),
    Signature(
        "torch-cuda-lib-absent", "torch_cpu_only",
        (phrase("lnk1181", r"LNK1181[^\n]{0,60}?'?((?:c10_cuda|torch_cuda\w*)\.lib)"),
         phrase("cannot find -l", r"cannot find -l(c10_cuda|torch_cuda\w*)\b")),
        "The build needs torch's CUDA library {g0}, which only CUDA builds of torch ship: the installed "
        "torch is a CPU-only build.", fx.cpu_only_fix, confidence=0.7,
        alternatives=(Alternative("prebuilt_wheel_mismatch", 0.3, "A compiled package built for a CUDA torch is used "
                                  "with another torch.", "Rebuild or reinstall the package for the installed torch."),),
        must_fire=("LINK : fatal error LNK1181: cannot open input file 'c10_cuda.lib'",
                   "/usr/bin/ld: cannot find -lc10_cuda"),
        must_not_fire=("/usr/bin/ld: cannot find -lcudart", "-lc10 -lc10_cuda -ltorch")),
    Signature(
        "triton-lcuda", "link_cudart_not_found",
        (phrase("'-lcuda'", r"Command '\[[^\]\n]{0,600}?'-lcuda'[^\]\n]{0,600}?triton[^\]\n]{0,200}\]' returned "
                r"non-zero exit status()"),),
        "torch.compile's Triton launcher links with -lcuda and the linker finds no unversioned libcuda.so (a driver "
        "installed without it, or only in a directory the linker does not search).",
        "Make libcuda.so findable for linking: `export LIBRARY_PATH=/usr/lib/x86_64-linux-gnu:$LIBRARY_PATH` (where "
        "`ldconfig -p | grep libcuda` shows it), or create the missing `libcuda.so -> libcuda.so.1` link there; "
        "Triton also reads TRITON_LIBCUDA_PATH. " + CHECK, confidence=0.6,
        must_fire=("CalledProcessError: Command '['/usr/bin/gcc', '/tmp/t/main.c', '-O3', '-lcuda', '-o', "
                   "'/tmp/t/triton_.cpython-310-x86_64-linux-gnu.so']' returned non-zero exit status 1.",),
        must_not_fire=("Command '['/usr/bin/gcc', 'main.c', '-lcuda', '-o', 'a.out']' returned non-zero exit status 1.",)),
)
