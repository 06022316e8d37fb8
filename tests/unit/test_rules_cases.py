"""Every rule fires on the facts that mean trouble and stays silent on near misses.

Facts start from a healthy CUDA machine (``healthy()``: no rule says anything)
and each case changes only what it is about. ``"torch:cuda": "11.8"`` changes
one field of a dict fact; ``MISSING`` makes a fact "not available".
"""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envdoctor.engine import diagnose
from envdoctor.model import Fact, FactSet, Severity
from envdoctor.rules import all_rules

class _Missing:
    """Marks a fact as "not available" (survives deep copies, unlike a bare object())."""


MISSING = _Missing()
SITE = "/home/u/venv/lib/python3.11/site-packages"
CUDA13 = {"root": "/usr/local/cuda-13.0", "real_root": "/usr/local/cuda-13.0", "aliases": ["/usr/local/cuda"],
          "found_via": ["CUDA_HOME", "nvcc on PATH", "/usr/local/cuda*"], "kind": "system", "has_nvcc": True,
          "has_runtime_header": True, "has_cudart": True, "version": "13.0.88", "version_source": "version.json",
          "lib_dir": "/usr/local/cuda-13.0/lib64", "include_dir": "/usr/local/cuda-13.0/include",
          "cudart": {"path": "/usr/local/cuda-13.0/lib64/libcudart.so",
                     "real_path": "/usr/local/cuda-13.0/lib64/libcudart.so.13.0.96", "version": "13.0.96"},
          "missing_headers": [], "nvcc_real": "/usr/local/cuda-13.0/bin/nvcc", "default_host": None}
CUDA12 = {"root": "/usr/local/cuda-12.8", "real_root": "/usr/local/cuda-12.8", "aliases": [],
          "found_via": ["/usr/local/cuda*"], "kind": "system", "has_nvcc": True,
          "has_runtime_header": True, "has_cudart": True, "version": "12.8.93", "version_source": "version.json",
          "lib_dir": "/usr/local/cuda-12.8/lib64", "include_dir": "/usr/local/cuda-12.8/include",
          "cudart": {"path": "/usr/local/cuda-12.8/lib64/libcudart.so",
                     "real_path": "/usr/local/cuda-12.8/lib64/libcudart.so.12.8.90", "version": "12.8.90"},
          "missing_headers": [], "nvcc_real": "/usr/local/cuda-12.8/bin/nvcc", "default_host": None}
# Debian's nvidia-cuda-toolkit 11.8 (recorded from the real package): nvcc wraps its own gcc-11.
DISTRO118 = {"root": "/usr", "real_root": "/usr", "aliases": ["/usr/lib/nvidia-cuda-toolkit"],
             "found_via": ["nvcc on PATH"], "kind": "distribution", "has_nvcc": True, "has_runtime_header": True,
             "has_cudart": True, "version": "11.8.89", "version_source": "nvcc --version", "lib_dir": "/usr/lib64",
             "cudart": None, "include_dir": "/usr/include", "missing_headers": [],
             "nvcc_real": "/usr/lib/nvidia-cuda-toolkit/bin/nvcc",
             "default_host": {"command": "gcc-11", "path": "/usr/bin/gcc-11",
                              "via": "/usr/lib/nvidia-cuda-toolkit/bin/gcc (the toolkit's compiler wrapper)"}}
DISTRO_CUDART = {"path": "/usr/lib/x86_64-linux-gnu/libcudart.so",
                 "real_path": "/usr/lib/x86_64-linux-gnu/libcudart.so.11.8.89", "version": "11.8.89",
                 "dir": "/usr/lib/x86_64-linux-gnu"}
PIP13 = {"root": f"{SITE}/nvidia/cu13", "real_root": f"{SITE}/nvidia/cu13", "aliases": [],
         "found_via": ["pip nvidia wheels"], "kind": "pip", "has_nvcc": False, "has_runtime_header": True,
         "has_cudart": True, "version": "13.0.96", "version_source": "dist-info", "lib_dir": f"{SITE}/nvidia/cu13/lib",
         "cudart": None, "include_dir": f"{SITE}/nvidia/cu13/include", "missing_headers": [], "nvcc_real": None,
         "default_host": None}
NO_LIB_HEADERS = ["cublas_v2.h", "cublasLt.h", "cusparse.h", "cusolverDn.h", "curand.h", "cufft.h"]
RTX3090 = {"index": 0, "name": "NVIDIA GeForce RTX 3090", "uuid": "GPU-11111111-2222-3333-4444-555555555555",
           "pci_bus_id": "00000000:01:00.0", "memory_total_mib": 24576, "memory_used_mib": 0,
           "compute_cap": "8.6", "compute_cap_source": "nvidia-smi", "processes": []}
GTX1080 = {"index": 1, "name": "NVIDIA GeForce GTX 1080", "uuid": "GPU-66666666-7777-8888-9999-000000000000",
           "pci_bus_id": "00000000:02:00.0", "memory_total_mib": 8192, "memory_used_mib": 0,
           "compute_cap": "6.1", "compute_cap_source": "nvidia-smi", "processes": []}
OPS = "/home/u/Mask2Former/mask2former/modeling/pixel_decoder/ops"
FRESH = {"torch": "2.14.1", "cuda_home": "/usr/local/cuda-13.0", "nvcc": "/usr/local/cuda-13.0/bin/nvcc",
         "cuda": "13.0", "python": "3.11", "archs": ["sm_86"], "cxx11_abi": True}


DRIVER_OK = {"state": "ok", "user_space_version": "580.65.06", "kernel_module_version": "580.65.06",
             "kernel_module_loaded": True, "cuda_max": "13.0",
             "libcuda": "/usr/lib/x86_64-linux-gnu/libcuda.so.580.65.06",
             "nvml": "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.580.65.06", "cu_init": "CUDA_SUCCESS (0)",
             "nvml_init": "NVML_SUCCESS", "smi": "ok", "wsl": False, "container": None,
             "device_nodes": ["/dev/nvidia0", "/dev/nvidiactl"], "nvidia_visible_devices": None, "child_error": None,
             "summary": "driver 580.65.06 answers"}
USER_SPACE_535 = dict(DRIVER_OK, state="user_space_only", user_space_version="535.309.01", kernel_module_version=None,
                      kernel_module_loaded=False, cuda_max="12.2",
                      libcuda="/usr/lib/x86_64-linux-gnu/nvidia/current/libcuda.so.535.309.01",
                      cu_init="CUDA_ERROR_NO_DEVICE (100)", nvml_init="NVML_ERROR_DRIVER_NOT_LOADED",
                      smi="not_found", container="docker", device_nodes=[])
NO_DRIVER = {"driver.present": False, "driver.version": MISSING, "driver.cuda_max": MISSING,
             "driver.kernel_module_version": MISSING, "gpus": MISSING,
             "driver.smi": {"status": "not_found", "message": "nvidia-smi is not on PATH", "path": None}}
TOO_OLD = ("The NVIDIA driver on your system is too old (found version 12020). Please update your GPU driver by "
           "downloading and installing a new version from the URL: http://www.nvidia.com/Download/index.aspx")


def healthy() -> Dict[str, Any]:
    """A machine where everything is right: torch 2.14.1+cu130, driver 580, RTX 3090, CUDA 13.0."""
    return {
        "driver.present": True,
        "driver.smi": {"status": "ok", "message": "", "path": "/usr/bin/nvidia-smi"},
        "driver.version": "580.65.06",
        "driver.cuda_max": "13.0",
        "driver.kernel_module_version": "580.65.06",
        "driver.state": dict(DRIVER_OK),
        "gpus": [dict(RTX3090)],
        "toolkits": [dict(CUDA13)],
        "nvcc.path": "/usr/local/cuda/bin/nvcc",
        "nvcc.real_path": "/usr/local/cuda-13.0/bin/nvcc",
        "nvcc.toolkit": "/usr/local/cuda-13.0",
        "nvcc.version": "13.0.88",
        "torch.status": {"status": "ok", "message": "torch 2.14.1+cu130 imported"},
        "torch": {"version": "2.14.1+cu130", "cuda": "13.0", "hip": None, "file": f"{SITE}/torch/__init__.py",
                  "cuda_available": True, "cuda_error": None, "device_count": 1,
                  "devices": [{"index": 0, "name": "NVIDIA GeForce RTX 3090", "capability": "8.6", "uuid": None}],
                  "arch_list": ["sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"], "cudnn": "9.24.0",
                  "cudnn_raw": 92400, "nccl": "2.30.7", "cxx11_abi": True,
                  "loaded_cuda_libs": [f"{SITE}/nvidia/cu13/lib/libcudart.so.13",
                                       f"{SITE}/nvidia/cudnn/lib/libcudnn.so.9"],
                  "cpp_ext_cuda_home": "/usr/local/cuda", "cpp_ext_cuda_home_source": "CUDA_HOME", "install": "pip"},
        "torchvision": {"version": "0.29.1+cu130", "cuda": "13.0", "import_error": None},
        "compiler.gcc": {"path": "/usr/bin/gcc", "version": "12.2.0"},
        "compiler.host": {"path": "/usr/bin/gcc", "name": "gcc", "version": "12.2.0", "via": "default"},
        "compiler.all": [{"name": "gcc", "path": "/usr/bin/gcc", "version": "12.2.0"},
                         {"name": "g++", "path": "/usr/bin/g++", "version": "12.2.0"}],
        "compiler.named": [],
        "cuda.linker_cudart": None,
        "cuda.system_headers": {"cuda_runtime.h": None, "cublas_v2.h": None, "cublasLt.h": None, "cusparse.h": None,
                                "cusolverDn.h": None, "curand.h": None, "cufft.h": None},
        "modules": {"modulepath": [], "loaded": [], "offered": []},
        "env.vars": {"CUDA_HOME": "/usr/local/cuda"},
        "env.path": ["/usr/local/cuda/bin", "/usr/bin"],
        "env.ld_library_path": [],
        "env.python": {"executable": "/home/u/venv/bin/python", "version": "3.11.7", "prefix": "/home/u/venv",
                       "conda_prefix": None, "conda_env": None, "venv": "/home/u/venv"},
        "env.ninja": {"path": "/home/u/venv/bin/ninja", "version": "1.13.2"},
        "env.resources": {"cpu_count": 8, "ram_total_mib": 65536, "ram_available_mib": 60000,
                          "swap_total_mib": 0, "disk_free_mib": 100000},
        "builds": [{"path": f"{OPS}/build", "kind": "build_dir", "name": "MultiScaleDeformableAttention",
                    "owner": "mask2former", "built_with": dict(FRESH), "imports": None, "import_error": None},
                   {"path": f"{OPS}/MultiScaleDeformableAttention.cpython-311-x86_64-linux-gnu.so",
                    "kind": "extension", "name": "MultiScaleDeformableAttention", "owner": "mask2former",
                    "built_with": dict(FRESH), "imports": True, "import_error": None}],
        "ext_sources": [],
        "ext_projects": [dict(PROJECT)],
        "detectron2": {"version": "0.6", "path": f"{SITE}/detectron2", "cuda": "13.0", "compiler": "GCC 12.2",
                       "torch_built": "2.14.1", "imports": True, "import_error": None,
                       "c_path": f"{SITE}/detectron2/_C.cpython-311-x86_64-linux-gnu.so", "c_has_cuda": True,
                       "c_device": {"sm": [86], "ptx": [], "error": None}},
    }


# Lmod modules as recorded (tests/fixtures/modules): cuda/13.0 names /usr/local/cuda-13.0,
# cuda/11.8 a /opt/cuda/11.8 that is gone.
STALE_LUA = "/opt/modulefiles/lua/cuda/11.8.lua"
MODULES = {"modulepath": ["/opt/modulefiles/lua"], "loaded": [], "offered": []}
STALE_OFFER = {"name": "cuda/11.8", "file": STALE_LUA, "syntax": "lua", "root": "/opt/cuda/11.8",
               "root_exists": False, "sets": ["CUDA_HOME"], "path_bins": ["/opt/cuda/11.8/bin"], "loaded": False,
               "builds_use": "/opt/cuda/11.8"}
GOOD_OFFER = dict(STALE_OFFER, name="cuda/13.0", file="/opt/modulefiles/lua/cuda/13.0.lua", root="/usr/local/cuda-13.0",
                  root_exists=True, path_bins=["/usr/local/cuda-13.0/bin"], builds_use="/usr/local/cuda-13.0")
MODULE130 = {"name": "cuda/13.0", "file": "/opt/modulefiles/lua/cuda/13.0.lua", "loaded": False, "replaces": None,
             "builds_use": "/usr/local/cuda-13.0"}
CU13_WHEEL = {"root": f"{SITE}/nvidia/cu13", "real_root": f"{SITE}/nvidia/cu13", "kind": "pip", "has_nvcc": False,
              "has_runtime_header": True, "has_cudart": True, "version": "13.0.96", "found_via": ["pip nvidia wheels"]}
PROJECT = {"root": OPS, "kind": "setup", "modules": ["MultiScaleDeformableAttention"], "install": "environment",
           "make_sh": f"{OPS}/make.sh", "project": "/home/u/Mask2Former",
           "uses": {"MultiScaleDeformableAttention": {"wrappers": [f"{OPS}/functions/ms_deform_attn_func.py"],
                                                      "calls": ["ms_deform_attn_forward"], "fallbacks": []}},
           "outputs": {"MultiScaleDeformableAttention": []}}
FALLBACK = {"file": f"{OPS}/modules/ms_deform_attn.py", "line": 119, "except": "bare except:",
            "guards": "MSDeformAttnFunction"}
D2_CHECKOUT = {"version": "0.6", "path": "/home/u/detectron2/detectron2", "cuda": None, "compiler": "GCC 12.2",
               "torch_built": "2.14.1", "imports": True, "import_error": None,
               "c_path": "/home/u/detectron2/detectron2/_C.cpython-311-x86_64-linux-gnu.so",
               "c_device": {"sm": [90], "ptx": [], "error": None}}


def make_facts(changes: Optional[Dict[str, Any]] = None, base: Optional[Dict[str, Any]] = None) -> FactSet:
    """Facts of ``base`` (default: healthy()) with ``changes`` applied."""
    values = copy.deepcopy(base if base is not None else healthy())
    for key, value in (changes or {}).items():
        if ":" in key:
            fact, field = key.split(":", 1)
            values[fact] = dict(values[fact])
            values[fact][field] = value
        else:
            values[key] = value
    facts = FactSet()
    for key, value in values.items():
        if isinstance(value, _Missing):
            facts.add(Fact.unavailable(key, "not available in this test", source="test"))
        else:
            facts.add(Fact(key=key, value=value, source="test"))
    return facts


def findings_of(code: str, changes: Optional[Dict[str, Any]] = None, base=None):
    report = diagnose(make_facts(changes, base), only=[code])
    crashed = [r for r in report.results if r.status == "crashed"]
    assert not crashed, crashed
    return report.findings


# (code, severity, changes, words the message must contain)
FIRES: List[tuple] = [
    ("ED101", Severity.ERROR, {"driver.version": "470.82.01", "driver.cuda_max": "11.4"}, ["470.82.01", "13.0"]),
    ("ED101", Severity.ERROR, {"driver.version": "535.104.05", "driver.cuda_max": "12.2"}, ["580"]),
    ("ED102", Severity.WARNING, {"driver.version": "535.104.05", "driver.cuda_max": "12.2",
                                 "torch:cuda": "12.8", "torch:version": "2.14.1+cu128"}, ["13.0.88", "535.104.05"]),
    ("ED102", Severity.WARNING, {"driver.version": "470.82.01", "driver.cuda_max": "11.4", "torch:cuda": "11.8",
                                 "torch:version": "2.7.1+cu118"}, ["runs CUDA <= 11.8",
                                                                   "11.x through minor-version compatibility"]),
    ("ED105", Severity.WARNING, dict(NO_DRIVER, **{"driver.state": USER_SPACE_535, "torch:cuda_available": False,
                                                   "torch:cuda_error": TOO_OLD}),
     ["User-space driver 535.309.01 installed", "CUDA 12.2", "kernel module not loaded",
      "CUDA_ERROR_NO_DEVICE (100)", "found version 12020", "needs driver >= 580"]),
    ("ED106", Severity.INFO, {"driver.state": dict(DRIVER_OK, state="wsl", wsl=True, kernel_module_version=None,
                                                   libcuda="/usr/lib/wsl/lib/libcuda.so.1")}, ["WSL2", "normal"]),
    ("ED106", Severity.WARNING, {"driver.state": dict(DRIVER_OK, state="wsl", wsl=True)},
     ["shadows the Windows driver"]),
    ("ED107", Severity.WARNING, dict(NO_DRIVER, **{"driver.state": dict(
        DRIVER_OK, state="container_no_gpu", container="docker", nvidia_visible_devices="void", device_nodes=[],
        libcuda=None, nvml=None)}), ["docker container has no GPU", "NVIDIA_VISIBLE_DEVICES='void'",
                                     "run on the CPU"]),
    ("ED108", Severity.ERROR, dict(NO_DRIVER, **{"driver.state": dict(
        DRIVER_OK, state="no_user_space", libcuda=None, nvml=None, smi="not_found", kernel_module_version=None,
        kernel_module_loaded=False)}),
     ["device nodes (/dev/nvidia0, /dev/nvidiactl) present", "no libcuda.so.1 or nvidia-smi"]),
    ("ED109", Severity.ERROR, {"driver.smi": {"status": "not_found", "message": "nvidia-smi is not on PATH"},
                               "driver.version": MISSING, "driver.state": dict(
        DRIVER_OK, state="library_mismatch", kernel_module_version="570.133.07", user_space_version="575.57.08",
        nvml_init="NVML_ERROR_LIB_RM_VERSION_MISMATCH", smi="not_found")},
     ["570.133.07", "575.57.08", "NVML_ERROR_LIB_RM_VERSION_MISMATCH"]),
    ("ED109", Severity.ERROR, {"driver.smi": {"status": "not_found", "message": "nvidia-smi is not on PATH"},
                               "driver.state": dict(DRIVER_OK, state="init_failed", cu_init="CUDA_ERROR_UNKNOWN (999)",
                                                    nvml_init=None, smi="not_found")},
     ["does not answer", "CUDA_ERROR_UNKNOWN (999)"]),
    ("ED103", Severity.ERROR, {"driver.smi": {"status": "library_mismatch", "message":
                                              "Failed to initialize NVML: Driver/library version mismatch"}},
     ["mismatch", "Failed to initialize NVML"]),
    ("ED103", Severity.ERROR, {"driver.kernel_module_version": "575.57.08"}, ["575.57.08", "580.65.06"]),
    ("ED103", Severity.ERROR, {"driver.smi": {"status": "not_loaded", "message": "NVIDIA-SMI has failed"}},
     ["not_loaded"]),
    ("ED103", Severity.WARNING, {"driver.smi": {"status": "timeout", "message": "timed out after 10s"}},
     ["timeout"]),
    ("ED104", Severity.INFO, {"driver.cuda_max": "13.2"}, ["13.2", "not an installed toolkit", "13.0"]),
    ("ED110", Severity.ERROR, {"gpus": [dict(GTX1080, index=0)]}, ["6.1", "sm_61", "no kernel image"]),
    ("ED110", Severity.ERROR, {"gpus": [dict(RTX3090, name="NVIDIA GB10", compute_cap="12.1")],
                               "torch:arch_list": ["sm_80", "sm_90"]}, ["sm_121"]),
    ("ED111", Severity.ERROR, {"gpus": [dict(GTX1080, index=0)]}, ["sm_61", "13.0.88", "Unsupported gpu"]),
    ("ED201", Severity.ERROR, {"toolkits": [], "nvcc.path": MISSING, "nvcc.toolkit": MISSING,
                               "nvcc.version": MISSING, "env.vars": {}, "torch:cpp_ext_cuda_home": None,
                               "torch:cpp_ext_cuda_home_source": None}, ["no nvcc", "13.0"]),
    ("ED202", Severity.ERROR, {"toolkits": [dict(CUDA12, aliases=["/usr/local/cuda"])],
                               "nvcc.toolkit": "/usr/local/cuda-12.8", "nvcc.version": "12.8.93",
                               "env.vars": {"CUDA_HOME": "/usr/local/cuda-12.8"},
                               "torch:cpp_ext_cuda_home": "/usr/local/cuda-12.8"}, ["major 13", "12.8"]),
    ("ED202", Severity.WARNING, {"torch:cuda": "13.2", "torch:version": "2.14.1+cu132"}, ["13.0.88", "minor"]),
    ("ED203", Severity.ERROR, {"env.vars": {}, "nvcc.path": "/usr/local/bin/nvcc",
                               "torch:cpp_ext_cuda_home": "/usr/local",
                               "torch:cpp_ext_cuda_home_source": "which nvcc"},
     ["CUDA_HOME=/usr/local ", "/usr/local/cuda-13.0", "cannot find -lcudart", "which nvcc"]),
    ("ED203", Severity.ERROR, {"env.vars": {}, "torch:cpp_ext_cuda_home": None,
                               "torch:cpp_ext_cuda_home_source": None}, ["None", "/usr/local/cuda-13.0"]),
    ("ED204", Severity.ERROR, {"toolkits": [dict(CUDA12, aliases=["/usr/local/cuda"]),
                                            dict(CUDA13, aliases=[], found_via=["/usr/local/cuda*"])],
                               "nvcc.toolkit": "/usr/local/cuda-12.8", "nvcc.version": "12.8.93",
                               "env.vars": {}, "torch:cpp_ext_cuda_home_source": "which nvcc"},
     ["/usr/local/cuda-12.8", "/usr/local/cuda-13.0"]),
    ("ED205", Severity.ERROR, {"env.vars": {"CUDA_HOME": ":/usr/local/cuda"}}, ["starts with ':'"]),
    ("ED205", Severity.ERROR, {"env.vars": {"CUDA_HOME": "/usr/local/cuda:/usr/local/cuda-12.8"}}, ["PATH-like"]),
    ("ED205", Severity.ERROR, {"env.vars": {"CUDA_HOME": '"/usr/local/cuda"'}}, ["quote"]),
    ("ED205", Severity.ERROR, {"env.vars": {"CUDA_HOME": "/usr/local/cuda/bin"}}, ["bin directory"]),
    ("ED205", Severity.ERROR, {"env.vars": {"CUDA_HOME": "/opt/cuda-does-not-exist"}}, ["no CUDA toolkit"]),
    ("ED205", Severity.ERROR, {"env.vars": {"CUDA_HOME": "/home/u/miniconda3/envs/x", "CONDA_PREFIX":
                                            "/home/u/miniconda3/envs/x"}}, ["conda environment prefix"]),
    ("ED205", Severity.ERROR, {"env.vars": {"CUDA_PATH": "/usr/local/cuda:"}}, ["CUDA_PATH=", "ends with ':'"]),
    ("ED204", Severity.WARNING, {"toolkits": [dict(CUDA13), dict(CUDA12, root="/usr/local/cuda-13.2",
                                                                   real_root="/usr/local/cuda-13.2",
                                                                   version="13.2.51")],
                                 "torch:cuda": "13.2", "torch:version": "2.14.1+cu132"},
     ["13.0.88", "/usr/local/cuda-13.2"]),
    ("ED206", Severity.WARNING, {"toolkits": [dict(CUDA13), dict(CUDA12)], "env.vars": {"CUDA_HOME":
                                                                                         "/usr/local/cuda-12.8"},
                                 "torch:cpp_ext_cuda_home": "/usr/local/cuda-12.8"}, ["12.8", "13.0"]),
    ("ED300", Severity.ERROR, {"torch.status": {"status": "crashed", "message": "Segmentation fault"},
                               "torch": MISSING}, ["crashes", "Segmentation fault"]),
    ("ED300", Severity.ERROR, {"torch.status": {"status": "import_error", "message":
                                                "ImportError: /x/libtorch_cuda.so: undefined symbol: cudnnFoo"},
                               "env.ld_library_path": ["/usr/local/cuda/lib64"], "torch": MISSING},
     ["undefined symbol", "/usr/local/cuda/lib64"]),
    ("ED300", Severity.ERROR, {"torch.status": {"status": "timeout", "message": "torch.cuda.init() timed out"}},
     ["imports, but initialising CUDA does not finish"]),
    ("ED300", Severity.INFO, {"torch.status": {"status": "missing", "message": "No module named 'torch'"},
                              "torch": MISSING}, ["not installed"]),
    ("ED301", Severity.ERROR, {"torch:cuda": None, "torch:version": "2.14.1+cpu", "torch:cuda_available": False},
     ["CPU-only", "RTX 3090"]),
    ("ED302", Severity.ERROR, {"torch:cuda_available": False, "torch:cuda_error":
                               "CUDA unknown error - this may be due to an incorrectly set up environment"},
     ["CUDA unknown error"]),
    ("ED302", Severity.ERROR, {"torch:cuda_available": False, "env.vars": {"CUDA_HOME": "/usr/local/cuda",
                                                                           "CUDA_VISIBLE_DEVICES": ""}},
     ["hides every GPU"]),
    ("ED303", Severity.INFO, {"driver.present": False, "gpus": MISSING, "torch:cuda_available": False},
     ["no NVIDIA driver", "CPU"]),
    ("ED304", Severity.ERROR, {"torchvision": {"version": "0.28.0+cu130", "cuda": "13.0", "import_error": None}},
     ["0.28.0", "0.29"]),
    ("ED304", Severity.ERROR, {"torchvision": {"version": "0.29.1+cpu", "cuda": None, "import_error": None}},
     ["CPU only"]),
    ("ED304", Severity.ERROR, {"torchvision": {"version": "0.29.1", "cuda": None, "import_error":
                                               "RuntimeError: operator torchvision::nms does not exist"}},
     ["torchvision::nms"]),
    ("ED401", Severity.ERROR, {"compiler.gcc": {"path": "/usr/bin/gcc", "version": "16.1.0"},
                               "compiler.all": [{"name": "gcc-15", "path": "/usr/bin/gcc-15", "version": "15.2.0"},
                                                {"name": "g++-15", "path": "/usr/bin/g++-15", "version": "15.2.0"}]},
     ["gcc <= 15", "16.1.0", "gcc on PATH"]),
    ("ED401", Severity.ERROR, {"env.vars": {"CUDA_HOME": "/usr/local/cuda", "CC": "gcc-5"},
                               "compiler.named": [{"var": "CC", "value": "gcc-5", "name": "gcc-5",
                                                   "path": "/usr/bin/gcc-5", "version": "5.4.0"}]}, [">= 6", "CC"]),
    # Debian's nvcc 11.8 forced onto gcc 12 through CC: its own wrapper would have used gcc-11.
    ("ED401", Severity.ERROR, {"toolkits": [dict(DISTRO118), dict(CUDA13)], "env.vars": {"CC": "gcc"},
                               "nvcc.path": "/usr/bin/nvcc", "torch:cpp_ext_cuda_home": "/usr",
                               "torch:cpp_ext_cuda_home_source": "which nvcc", "torch:cuda": "11.8",
                               "torch:version": "2.7.1+cu118"}, ["gcc <= 11", "12.2.0"]),
    ("ED402", Severity.ERROR, {"env.vars": {"CUDA_HOME": "/usr/local/cuda", "CC": "gcc-10", "CXX": "g++-10"},
                               "compiler.named": [{"var": "CC", "value": "gcc-10", "name": "gcc-10", "path": None,
                                                   "version": None},
                                                  {"var": "CXX", "value": "g++-10", "name": "g++-10", "path": None,
                                                   "version": None}]}, ["gcc-10", "g++-10", "not installed"]),
    ("ED207", Severity.ERROR, {"env.vars": {}, "nvcc.path": "/usr/local/bin/nvcc",
                               "torch:cpp_ext_cuda_home": "/usr/local", "torch:cpp_ext_cuda_home_source": "which nvcc",
                               "cuda.linker_cudart": dict(DISTRO_CUDART)},
     ["13.0.88", "libcudart.so", "11.8.89", "CUDA 11 runtime"]),
    ("ED208", Severity.ERROR, {"toolkits": [dict(CUDA13, missing_headers=NO_LIB_HEADERS), dict(DISTRO118),
                                            dict(PIP13)],
                               "cuda.system_headers": {h: "/usr/include" for h in NO_LIB_HEADERS}},
     ["cublas_v2.h", "/usr/include", "11.8.89"]),
    ("ED208", Severity.WARNING, {"toolkits": [dict(CUDA13, missing_headers=NO_LIB_HEADERS)]},
     ["cusparse.h", "No such file"]),
    ("ED209", Severity.ERROR, {"modules": dict(MODULES, loaded=[{"name": "cuda/11.8", "file": STALE_LUA}],
                                               offered=[dict(STALE_OFFER, loaded=True), dict(GOOD_OFFER)]),
                               "toolkits": [dict(CUDA13, module=dict(MODULE130, replaces="cuda/11.8"))]},
     ["loaded module cuda/11.8", "/opt/cuda/11.8, which does not exist", "cuda/13.0 offers /usr/local/cuda-13.0"]),
    ("ED209", Severity.INFO, {"modules": dict(MODULES, offered=[dict(STALE_OFFER), dict(GOOD_OFFER, loaded=True)])},
     ["modulefile cuda/11.8", "`module load cuda/11.8` would put a missing directory first on PATH"]),
    ("ED508", Severity.ERROR, {"torch:cuda_available": False, "driver.present": False, "gpus": MISSING},
     ["IndexError", "7.5;8.0;8.6;9.0;10.0;12.0+PTX"]),
    ("ED508", Severity.WARNING, {"torch:cuda_available": False, "builds": [], "detectron2": None,
                                 "env.vars": {"CUDA_HOME": "/usr/local/cuda", "TORCH_CUDA_ARCH_LIST": "native"}},
     ["'native'"]),
    ("ED501", Severity.ERROR, {"env.vars": {"CUDA_HOME": "/usr/local/cuda", "TORCH_CUDA_ARCH_LIST": "6.1;8.6"}},
     ["6.1", "cannot compile"]),
    ("ED501", Severity.ERROR, {"env.vars": {"CUDA_HOME": "/usr/local/cuda", "TORCH_CUDA_ARCH_LIST": "8.0,8.6"}},
     ["cannot be parsed"]),
    ("ED502", Severity.WARNING, {"env.vars": {"CUDA_HOME": "/usr/local/cuda", "TORCH_CUDA_ARCH_LIST": "7.5"}},
     ["8.6", "no kernel image"]),
    ("ED503", Severity.WARNING, {"env.ninja": MISSING}, ["ninja"]),
    ("ED504", Severity.WARNING, {"env.resources": {"cpu_count": 32, "ram_available_mib": 16000}}, ["34", "16000"]),
    ("ED504", Severity.WARNING, {"env.vars": {"CUDA_HOME": "/usr/local/cuda", "MAX_JOBS": "16"},
                                 "env.resources": {"cpu_count": 8, "ram_available_mib": 8000}}, ["MAX_JOBS", "3"]),
    ("ED505", Severity.ERROR, {"env.vars": {"CUDA_HOME": "/usr/local/cuda", "CUDA_VISIBLE_DEVICES": "1"}},
     ["index 1 does not exist"]),
    ("ED505", Severity.WARNING, {"gpus": [dict(RTX3090), dict(RTX3090, index=1, uuid="GPU-2")],
                                 "env.vars": {"CUDA_VISIBLE_DEVICES": "0,gpu1"}}, ["'gpu1'", "CUDA will use 0"]),
    ("ED505", Severity.ERROR, {"env.vars": {"CUDA_VISIBLE_DEVICES": "GPU-deadbeef"}}, ["matches no GPU UUID"]),
    ("ED505", Severity.WARNING, {"env.vars": {"CUDA_VISIBLE_DEVICES": "-1"}}, ["hides every GPU"]),
    ("ED506", Severity.WARNING, {"gpus": [dict(GTX1080, index=0), dict(RTX3090, index=1)],
                                 "torch:devices": [{"index": 0, "name": "NVIDIA GeForce RTX 3090"},
                                                   {"index": 1, "name": "NVIDIA GeForce GTX 1080"}]},
     ["cuda:0 is NVIDIA GeForce RTX 3090", "PCI_BUS_ID"]),
    ("ED507", Severity.WARNING, {"env.ld_library_path": ["/usr/local/cuda-12.8/lib64"],
                                 "torch:loaded_cuda_libs": ["/usr/local/cuda-12.8/lib64/libcudnn.so.9"]},
     ["libcudnn.so.9", "LD_LIBRARY_PATH"]),
    ("ED507", Severity.INFO, {"env.ld_library_path": ["/usr/local/cuda/lib64"], "torch:loaded_cuda_libs": []},
     ["may be loaded instead"]),
    ("ED601", Severity.WARNING, {"builds": [{"path": f"{OPS}/build", "kind": "build_dir", "owner": "mask2former",
                                             "name": "MultiScaleDeformableAttention",
                                             "built_with": dict(FRESH, torch="2.5.1", cuda="12.4", python="3.10")}]},
     ["torch 2.5.1", "CUDA 12.4", "Python 3.10"]),
    ("ED601", Severity.WARNING, {"builds": [{"path": f"{OPS}/build", "kind": "build_dir", "owner": "envdoctor",
                                             "built_with": dict(FRESH, cxx11_abi=False)}]},
     ["_GLIBCXX_USE_CXX11_ABI=0"]),
    ("ED602", Severity.ERROR, {"builds": [{"path": f"{OPS}/ext.so", "kind": "extension", "owner": "other",
                                           "built_with": dict(FRESH, torch="2.5.1"), "imports": False,
                                           "import_error": "ImportError: ext.so: undefined symbol: _ZN3c105Error"}]},
     ["undefined symbol", "torch 2.5.1"]),
    ("ED602", Severity.WARNING, {"builds": [{"path": f"{OPS}/build/lib.linux-x86_64-cpython-38/ext.so",
                                             "kind": "extension", "owner": "other", "imports": False,
                                             "built_with": dict(FRESH, python="3.8"),
                                             "import_error": "ImportError: wrong Python"}]},
     ["leftover copy in /home/u/Mask2Former/mask2former/modeling/pixel_decoder/ops/build", "Python 3.8"]),
    ("ED603", Severity.WARNING, {"builds": [{"path": f"{OPS}/ext.so", "kind": "extension", "owner": "other",
                                             "built_with": dict(FRESH, cuda="12.8"), "imports": True}]},
     ["CUDA 12.8"]),
    ("ED604", Severity.ERROR, {"ext_sources": [{"file": f"{OPS}/src/cuda/ms_deform_attn_cuda.cu", "line": 3,
                                                "api": "THC/THC.h", "text": "#include <THC/THC.h>",
                                                "replacement": ""}]}, ["THC/THC.h", "no longer compile"]),
    ("ED604", Severity.WARNING, {"ext_sources": [{"file": f"{OPS}/src/cuda/ms_deform_attn_cuda.cu", "line": 64,
                                                  "api": "x.type() in AT_DISPATCH", "text": "value.type()",
                                                  "replacement": "value.scalar_type()"}]}, ["deprecated"]),
    ("ED605", Severity.WARNING, {"builds": []}, ["MultiScaleDeformableAttention from", "is not built here",
                                                 "make.sh installs it into the environment"]),
    ("ED606", Severity.WARNING, {"ext_projects": [dict(PROJECT, uses={"MultiScaleDeformableAttention": {
        "calls": [], "fallbacks": [FALLBACK]}})]}, ["ms_deform_attn.py:119 (bare except:)", "in silence"]),
    ("ED607", Severity.ERROR, {"builds": [{"path": f"{OPS}/MultiScaleDeformableAttention.cpython-311-x86_64-linux-gnu.so",
                                           "kind": "extension", "name": "MultiScaleDeformableAttention",
                                           "owner": "mask2former", "built_with": dict(FRESH), "imports": True,
                                           "defines": ["ms_deform_attn_backward"]}]},
     ["lacks ms_deform_attn_forward", "wrapper calls"]),
    ("ED701", Severity.ERROR, {"detectron2:imports": False, "detectron2:import_error":
                               "ImportError: detectron2/_C.so: undefined symbol: _ZN2at5emptyE"}, ["undefined"]),
    ("ED702", Severity.ERROR, {"detectron2:cuda": "12.4", "detectron2:torch_built": "2.5.1"},
     ["CUDA 12.4", "2.5.1"]),
    ("ED702", Severity.WARNING, {"detectron2:cuda": "13.2", "detectron2:torch_built": None}, ["13.2"]),
    ("ED703", Severity.ERROR, {"torch:version": "1.7.1+cu110", "torch:cuda": "11.0"},
     ["mask2former needs torch >= 1.9", "detectron2 needs torch >= 1.8"]),
    ("ED703", Severity.ERROR, {"env.python:version": "3.6.9", "builds": []}, ["detectron2 needs Python >=3.7"]),
    ("ED704", Severity.WARNING, {"torch:cuda_available": False, "driver.present": False, "gpus": MISSING},
     ["FORCE_CUDA=1", "TORCH_CUDA_ARCH_LIST=7.5;8.0;8.6;9.0;10.0;12.0+PTX", "No CUDA runtime is found"]),
    ("ED705", Severity.ERROR, {"detectron2": dict(D2_CHECKOUT, c_has_cuda=False, c_cuda_version="not available"),
                               "toolkits": [dict(CUDA13), dict(CU13_WHEEL)]},
     ["CPU-only _C", "not compiled with GPU support", "'not available'", "CUDA 13.0"]),
    ("ED705", Severity.ERROR, {"detectron2:c_has_cuda": False}, ["CPU-only _C"]),
    ("ED704", Severity.WARNING, {"torch:cuda_available": False, "torch:cuda_error": "CUDA unknown error"},
     ["TORCH_CUDA_ARCH_LIST=8.6"]),
]

# (code, changes): near misses where the rule must stay silent.
SILENT: List[tuple] = [
    ("ED101", {"driver.version": "580.65.06"}),
    ("ED101", {"driver.version": "525.60.13", "driver.cuda_max": "12.0", "torch:cuda": "11.1",
               "torch:version": "1.9.0+cu111"}),  # a 12.0 driver runs a cu111 build
    ("ED101", {"driver.version": "525.60.13", "torch:cuda": "12.6", "torch:version": "2.14.1+cu126"}),  # minor compat
    ("ED102", {"driver.version": "580.65.06"}),
    ("ED103", {"driver.smi": {"status": "not_found", "message": "nvidia-smi is not on PATH"},
               "driver.kernel_module_version": MISSING}),
    ("ED104", {"driver.cuda_max": "13.0"}),
    ("ED105", {}),
    ("ED105", dict(NO_DRIVER, **{"driver.state": dict(USER_SPACE_535, state="container_no_gpu")})),
    ("ED106", {"driver.state": dict(DRIVER_OK, wsl=True, state="init_failed")}),
    ("ED107", {}),
    ("ED107", {"driver.state": dict(DRIVER_OK, container="docker")}),  # a container with its GPU
    ("ED108", {}),
    ("ED109", {}),
    # nvidia-smi saw the mismatch: ED103 reports it, not ED109 again
    ("ED109", {"driver.smi": {"status": "library_mismatch", "message": "Failed to initialize NVML: Driver/library "
                              "version mismatch"}, "driver.state": dict(DRIVER_OK, state="library_mismatch")}),

    ("ED110", {"gpus": [dict(RTX3090, name="NVIDIA GeForce RTX 4090", compute_cap="8.9")]}),  # sm_86 SASS runs on 8.9
    ("ED110", {"gpus": [dict(RTX3090, compute_cap="12.1")], "torch:arch_list": ["sm_80", "compute_90"]}),  # PTX JIT
    ("ED111", {"gpus": [dict(GTX1080)], "env.vars": {"CUDA_HOME": "/usr/local/cuda", "TORCH_CUDA_ARCH_LIST": "8.6"}}),
    ("ED201", {"toolkits": [dict(CUDA13)]}),
    ("ED201", {"torch:cuda": None, "toolkits": [], "nvcc.path": MISSING}),
    ("ED202", {}),
    ("ED203", {}),  # CUDA_HOME=/usr/local/cuda, a link to the matching toolkit: the textbook setup
    ("ED203", {"env.vars": {}, "torch:cpp_ext_cuda_home": "/usr/local/cuda",
               "torch:cpp_ext_cuda_home_source": "which nvcc"}),  # unset, but the guess is the right toolkit
    ("ED204", {"toolkits": [dict(CUDA13), dict(CUDA12)]}),  # several toolkits, builds use the right one
    ("ED205", {"env.vars": {"CUDA_HOME": "/usr/local/cuda/"}}),
    ("ED205", {"env.vars": {"CUDA_HOME": "/usr/local/cuda-13.0"}}),
    ("ED205", {"env.vars": {"CUDA_HOME": ""}}),
    ("ED205", {"env.vars": {"CUDA_HOME": "/usr/local/cuda", "CUDA_PATH": ":junk"}}),  # torch ignores CUDA_PATH then
    ("ED206", {"env.vars": {"CUDA_HOME": "/usr/local/cuda-13.0"}}),  # same toolkit as /usr/local/cuda/bin/nvcc
    ("ED300", {}),
    ("ED301", {"torch:cuda": None, "driver.present": False, "gpus": []}),
    ("ED302", {"torch:cuda_available": False, "driver.present": False}),
    ("ED302", {}),
    ("ED303", {}),
    ("ED304", {"torchvision": {"version": "0.29.0", "cuda": 13000, "import_error": None}}),
    ("ED401", {"compiler.gcc": {"path": "/usr/bin/gcc", "version": "15.1.0"}}),
    ("ED401", {"compiler.gcc": {"path": "/usr/bin/gcc", "version": "9.4.0"},
               "toolkits": [dict(CUDA13, version="11.1.105", aliases=["/usr/local/cuda"])],
               "torch:cuda": "11.1", "torch:version": "1.9.0+cu111"}),
    # Debian's nvcc 11.8 first on PATH with gcc 12 installed: it runs its own gcc-11 (no pin needed).
    ("ED401", {"toolkits": [dict(DISTRO118), dict(CUDA13)], "env.vars": {}, "nvcc.path": "/usr/bin/nvcc",
               "torch:cpp_ext_cuda_home": "/usr", "torch:cpp_ext_cuda_home_source": "which nvcc",
               "compiler.all": [{"name": "gcc-11", "path": "/usr/bin/gcc-11", "version": "11.3.0"}]}),
    ("ED402", {"env.vars": {"CUDA_HOME": "/usr/local/cuda", "CC": "gcc"},
               "compiler.named": [{"var": "CC", "value": "gcc", "name": "gcc", "path": "/usr/bin/gcc",
                                   "version": "12.2.0"}]}),
    ("ED207", {}),
    ("ED207", {"cuda.linker_cudart": dict(DISTRO_CUDART)}),  # CUDA_HOME has its own libcudart: that one is taken
    ("ED208", {}),
    ("ED208", {"toolkits": [dict(CUDA13, missing_headers=NO_LIB_HEADERS), dict(PIP13)],
               "env.vars": {"CUDA_HOME": "/usr/local/cuda", "CPATH": f"{SITE}/nvidia/cu13/include"},
               "cuda.system_headers": {h: f"{SITE}/nvidia/cu13/include" for h in NO_LIB_HEADERS}}),
    ("ED209", {}),
    ("ED209", {"modules": dict(MODULES, offered=[dict(GOOD_OFFER, loaded=True)])}),  # every module's toolkit exists
    ("ED508", {}),
    ("ED508", {"torch:cuda_available": False,
               "env.vars": {"CUDA_HOME": "/usr/local/cuda", "TORCH_CUDA_ARCH_LIST": "8.6"}}),
    ("ED501", {"env.vars": {"CUDA_HOME": "/usr/local/cuda", "TORCH_CUDA_ARCH_LIST": "7.5 8.0;8.6+PTX"}}),
    ("ED501", {"env.vars": {"CUDA_HOME": "/usr/local/cuda", "TORCH_CUDA_ARCH_LIST": "Ampere"}}),
    ("ED502", {"env.vars": {"CUDA_HOME": "/usr/local/cuda", "TORCH_CUDA_ARCH_LIST": "8.0"}}),  # 8.0 SASS runs on 8.6
    ("ED502", {"env.vars": {"CUDA_HOME": "/usr/local/cuda", "TORCH_CUDA_ARCH_LIST": "7.5+PTX"}}),
    ("ED503", {}),
    ("ED504", {"env.resources": {"cpu_count": 2, "ram_available_mib": 22000}}),
    ("ED505", {"env.vars": {"CUDA_VISIBLE_DEVICES": "0"}}),
    ("ED505", {"env.vars": {"CUDA_VISIBLE_DEVICES": "GPU-11111111"}}),
    ("ED505", {"env.vars": {"CUDA_VISIBLE_DEVICES": ""}, "gpus": MISSING}),
    ("ED506", {"gpus": [dict(RTX3090), dict(RTX3090, index=1, uuid="GPU-2")]}),  # same model twice
    ("ED506", {"gpus": [dict(GTX1080, index=0), dict(RTX3090, index=1)],
               "env.vars": {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}}),
    ("ED507", {"env.ld_library_path": ["/usr/local/cuda-12.8/lib64"]}),  # set, but torch loaded its own libraries
    ("ED507", {"env.ld_library_path": ["/opt/intel/mkl/lib"], "torch:loaded_cuda_libs": []}),
    ("ED601", {}),
    ("ED601", {"builds": [{"path": f"{OPS}/build", "kind": "build_dir", "owner": "mask2former",
                           "built_with": dict(FRESH, torch="2.14.0")}]}),  # patch release: same ABI line
    ("ED602", {}),
    ("ED603", {}),
    ("ED604", {}),
    ("ED605", {}),  # the module is built (found among the builds)
    ("ED605", {"ext_projects": [dict(PROJECT, outputs={"MultiScaleDeformableAttention": [f"{OPS}/M.so"]})],
               "builds": []}),
    ("ED606", {}),
    ("ED607", {}),
    ("ED607", {"builds": [{"path": f"{OPS}/MultiScaleDeformableAttention.cpython-311-x86_64-linux-gnu.so",
                           "kind": "extension", "name": "MultiScaleDeformableAttention", "owner": "mask2former",
                           "built_with": dict(FRESH), "imports": True,
                           "defines": ["ms_deform_attn_backward", "ms_deform_attn_forward"]}]}),
    ("ED701", {}),
    ("ED701", {"detectron2": MISSING}),
    ("ED702", {}),
    ("ED703", {}),
    ("ED703", {"torch:version": "1.7.1+cu110", "detectron2": MISSING, "builds": []}),  # neither is used here
    ("ED704", {}),
    ("ED705", {}),
    ("ED705", {"detectron2": dict(D2_CHECKOUT, c_has_cuda=True)}),
    ("ED705", {"detectron2": dict(D2_CHECKOUT, c_has_cuda=False), "torch:cuda": None,
               "torch:version": "2.14.1+cpu"}),  # a CPU-only torch: a CPU-only _C is what fits
    ("ED704", {"torch:cuda_available": False, "env.vars": {"CUDA_HOME": "/usr/local/cuda", "FORCE_CUDA": "1",
                                                          "TORCH_CUDA_ARCH_LIST": "8.6"}}),
]


def _case_id(case) -> str:
    return f"{case[0]}-{'-'.join(sorted(case[2] if len(case) > 2 else case[1]))[:60]}"


@pytest.mark.parametrize("code, severity, changes, words", FIRES, ids=[_case_id(c) for c in FIRES])
def test_rule_fires(code, severity, changes, words):
    findings = findings_of(code, changes)
    assert [f.code for f in findings] == [code], [f.message for f in findings]
    finding = findings[0]
    assert finding.severity == severity, finding.message
    for word in words:
        assert word in finding.message, f"{word!r} not in: {finding.message}"
    if severity in (Severity.ERROR, Severity.WARNING):
        assert finding.fixes, "every problem comes with its fix"
    assert finding.evidence


@pytest.mark.parametrize("code, changes", SILENT, ids=[_case_id((c[0], None, c[1])) for c in SILENT])
def test_rule_silent(code, changes):
    findings = findings_of(code, changes)
    assert findings == [], [f.message for f in findings]


def test_healthy_machine_has_no_findings_and_runs_every_rule():
    report = diagnose(make_facts())
    assert report.findings == [], [f"{f.code}: {f.message}" for f in report.findings]
    statuses = {r.rule: r.status for r in report.results if r.rule not in DECLARED_REQUIREMENTS}
    assert set(statuses) == {r.code for r in all_rules()} - DECLARED_REQUIREMENTS
    assert set(statuses.values()) <= {"passed", "skipped"}, statuses
    # Only what this machine does not have is skipped as not applicable.
    skipped = {r.rule: r.detail for r in report.results if r.status == "skipped"
               and r.rule not in DECLARED_REQUIREMENTS}
    assert set(skipped) == {"ED106", "ED107", "ED501", "ED502", "ED505", "ED506", "ED507", "ED508"}, skipped
    assert all(d.startswith("not applicable: ") for d in skipped.values())


# ED8xx check a project's declared requirements; their cases are in tests/ci/test_require_rules.py.
DECLARED_REQUIREMENTS = {r.code for r in all_rules() if r.area == "require"}


def test_every_rule_has_a_firing_and_a_silent_case():
    codes = {r.code for r in all_rules()} - DECLARED_REQUIREMENTS
    assert codes == {c[0] for c in FIRES}
    assert codes == {c[0] for c in SILENT}


def test_fixable_flag_matches_the_fixes_rules_give():
    """``fixable`` promises `envdoctor fix` can apply something; the cases must show it."""
    actions: Dict[str, set] = {}
    for code, _, changes, _ in FIRES:
        for finding in findings_of(code, changes):
            actions.setdefault(code, set()).update(f.action for f in finding.fixes if f.action)
    known = {"set_env", "quarantine", "rebuild_op", "rebuild_extension", "patch_sources", "pip_install"}
    for rule in all_rules():
        used = actions.get(rule.code, set())
        assert used <= known, (rule.code, used)
        assert bool(used) == rule.fixable, (rule.code, used, rule.fixable)


def test_build_blocking_rules_are_the_ones_that_break_builds():
    blocking = {r.code for r in all_rules() if r.blocks_build}
    assert {"ED111", "ED201", "ED202", "ED203", "ED204", "ED205", "ED207", "ED208", "ED401", "ED402", "ED501",
            "ED508"} == blocking


def _nullable_fields():
    """Every (fact, field) of the healthy machine: inside records, "not available" is null."""
    pairs = []
    for key, value in healthy().items():
        pairs.append((key, None))
        if isinstance(value, dict):
            pairs += [(key, field) for field in value]
        if isinstance(value, list) and value and isinstance(value[0], dict):
            pairs += [(key, f"[]{field}") for field in value[0]]
    return pairs


NULLABLE = _nullable_fields()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sets(st.sampled_from(NULLABLE), max_size=8), st.sets(st.sampled_from(sorted(healthy())), max_size=4))
def test_no_rule_crashes_on_null_fields_or_missing_facts(nulled, dropped):
    values = healthy()
    for key, field in nulled:
        if field is None:
            values[key] = None
        elif field.startswith("[]") and isinstance(values[key], list):
            values[key] = [dict(item, **{field[2:]: None}) for item in values[key]]
        elif isinstance(values[key], dict):
            values[key] = dict(values[key], **{field: None})
    for key in dropped:
        values[key] = MISSING
    report = diagnose(make_facts(base=values))
    crashed = [r for r in report.results if r.status == "crashed"]
    assert not crashed, crashed


def test_compiler_pin_only_names_an_installed_compiler():
    # gcc 16 is too new for nvcc 13.0: with gcc-15 installed the fix pins it, without it the fix is manual.
    gcc14 = [{"name": "gcc-14", "path": "/usr/bin/gcc-14", "version": "14.2.0"},
             {"name": "g++-14", "path": "/usr/bin/g++-14", "version": "14.2.0"}]
    installed = findings_of("ED401", {"compiler.gcc": {"path": "/usr/bin/gcc", "version": "16.1.0"},
                                      "compiler.all": gcc14})[0].fixes[0]
    assert installed.action == "set_env" and installed.params["vars"] == {"CC": "gcc-14", "CXX": "g++-14",
                                                                          "NVCC_CCBIN": "g++-14"}
    absent = findings_of("ED401", {"compiler.gcc": {"path": "/usr/bin/gcc", "version": "16.1.0"}})[0].fixes[0]
    assert absent.action is None and any("install gcc 15" in c for c in absent.commands)
