"""The typed shape of every fact: the contract between probes and rules.

Each fact key has a type (``str``, ``bool``, ``int``, ``float``, ``list``, ``dict``, ``mapping``) and,
for records, the fields a record may carry (``dict``: the value's own fields; ``list`` with
``item``: the fields of each element). A field not listed here is a schema error: a probe that
grows a field must say so here and in docs/facts.md, and a rule cannot come to depend on a field
nobody declared. Fields may be null (not available inside a record) and may be absent in reports
saved by older versions. ``mapping`` is a dict with free keys (variable names, header names).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, List, Optional, Sequence


@dataclass(frozen=True)
class Shape:
    type: str
    fields: FrozenSet[str] = frozenset()  # dict: its fields; list: the fields of each dict item
    item: Optional[str] = None  # list: "dict" or "str"


def _record(*fields: str) -> Shape:
    return Shape("dict", frozenset(fields))


def _records(*fields: str) -> Shape:
    return Shape("list", frozenset(fields), item="dict")


_STRINGS = Shape("list", item="str")

SCHEMA: Dict[str, Shape] = {
    "host.platform": Shape("str"),
    "host.in_container": Shape("bool"),
    "driver.present": Shape("bool"),
    "driver.smi": _record("status", "message", "path"),
    "driver.version": Shape("str"),
    "driver.cuda_max": Shape("str"),
    "driver.kernel_module_version": Shape("str"),
    "driver.libs": _record("nvml_path", "libcuda_path", "nvml_init", "nvml_driver_version", "nvml_cuda_version",
                           "nvml_devices", "cu_init", "libcuda_cuda_version", "libcuda_cuda_version_raw",
                           "libcuda_devices", "user_space_version", "load_errors", "child_error", "requested"),
    "driver.state": _record("state", "summary", "user_space_version", "kernel_module_version",
                            "kernel_module_loaded", "cuda_max", "libcuda", "nvml", "cu_init", "nvml_init", "smi",
                            "wsl", "container", "device_nodes", "nvidia_visible_devices", "child_error"),
    "gpus": _records("index", "name", "uuid", "pci_bus_id", "memory_total_mib", "memory_used_mib", "compute_cap",
                     "compute_cap_source", "processes"),
    "toolkits": _records("root", "real_root", "version", "version_source", "found_via", "kind", "has_nvcc",
                         "has_runtime_header", "has_cudart", "aliases", "lib_dir", "cudart", "include_dir",
                         "missing_headers", "nvcc_real", "default_host", "lib_include_dir", "module", "nvhpc"),
    "modules": _record("modulepath", "loaded", "offered"),
    "nvcc.path": Shape("str"),
    "nvcc.real_path": Shape("str"),
    "nvcc.toolkit": Shape("str"),
    "nvcc.version": Shape("str"),
    "nvcc.all": _STRINGS,
    "nvcc.archs": _STRINGS,
    "cuda.linker_cudart": _record("path", "real_path", "version", "dir"),
    "cuda.system_headers": Shape("mapping"),
    "torch.status": _record("status", "message"),
    "torch": _record("version", "cuda", "hip", "file", "cuda_available", "cuda_error", "device_count", "devices",
                     "arch_list", "cudnn", "cudnn_raw", "nccl", "cxx11_abi", "loaded_cuda_libs",
                     "cpp_ext_cuda_home", "cpp_ext_cuda_home_source", "install"),
    "torchvision": _record("version", "cuda", "import_error"),
    "compiler.gcc": _record("path", "version"),
    "compiler.gxx": _record("path", "version"),
    "compiler.clang": _record("path", "version"),
    "compiler.host": _record("path", "name", "version", "via"),
    "compiler.all": _records("name", "path", "version"),
    "compiler.named": _records("var", "value", "name", "path", "version"),
    "env.vars": Shape("mapping"),
    "env.path": _STRINGS,
    "env.ld_library_path": _STRINGS,
    "env.python": _record("executable", "version", "prefix", "conda_prefix", "conda_env", "venv"),
    "env.ninja": _record("path", "version"),
    "env.resources": _record("cpu_count", "ram_total_mib", "ram_available_mib", "swap_total_mib", "disk_free_mib"),
    "builds": _records("path", "kind", "name", "owner", "built_with", "imports", "import_error", "import_note",
                       "installed", "built_at", "defines"),
    "ext_sources": _records("file", "line", "api", "text", "replacement"),
    "ext_projects": _records("root", "kind", "modules", "install", "make_sh", "project", "uses", "outputs", "file",
                             "line", "reason"),
    "detectron2": _record("version", "path", "cuda", "compiler", "torch_built", "imports", "import_error",
                          "c_files", "c_needs_cuda", "build_dir", "c_path", "c_device", "c_has_cuda",
                          "c_cuda_version"),
}

# Facts no probe module of every check produces: a project's declared requirements
# (envdoctor/require.py, "require.<key>" as written in [tool.envdoctor.require]) and what the imports
# probe (envdoctor/probes/imports.py, run only for them) observes. "scalar": a str, bool or number.
REQUIREMENT_SCHEMA: Dict[str, Shape] = {
    **{f"require.{key}": Shape("str") for key in ("driver", "torch", "torch_cuda", "gcc", "compute_capability",
                                                 "nccl")},
    "require.nvcc": Shape("scalar"),  # a spec, or true for "an nvcc is on PATH"
    "require.gpus": Shape("int"),
    "require.gpu_memory_gb": Shape("float"),
    "require.imports": _STRINGS,
    "require.cuda_kernels": _STRINGS,
    "import_check": Shape("mapping"),  # module -> {status, message, file}
    "device_code": Shape("mapping"),  # module -> {file, binaries: [{path, archs, error}], error}
}

_PYTHON_TYPES = {"str": (str,), "bool": (bool,), "int": (int,), "float": (int, float), "list": (list,),
                 "dict": (dict,), "mapping": (dict,), "scalar": (str, bool, int, float)}


def problems(key: str, value: Any) -> List[str]:
    """What is wrong with an available fact's value; [] when it fits its shape.

    ``probe.<name>.seconds`` timing facts are floats; any other key must be declared."""
    if key.startswith("probe.") and key.endswith(".seconds"):
        return [] if isinstance(value, (int, float)) else [f"{key}: expected seconds, got {type(value).__name__}"]
    shape = SCHEMA.get(key) or REQUIREMENT_SCHEMA.get(key)
    if shape is None:
        return [f"{key}: not a declared fact (envdoctor/facts_schema.py)"]
    if value is None:  # "not available" inside the value: allowed for every fact
        return []
    if not isinstance(value, _PYTHON_TYPES[shape.type]) or (shape.type == "int" and isinstance(value, bool)):
        return [f"{key}: expected {shape.type}, got {type(value).__name__}"]
    found: List[str] = []
    if shape.type == "dict":
        found += _unknown(key, value, shape.fields)
    if shape.type == "list":
        for index, item in enumerate(value):
            if shape.item == "str" and not isinstance(item, str):
                found.append(f"{key}[{index}]: expected str, got {type(item).__name__}")
            elif shape.item == "dict":
                if not isinstance(item, dict):
                    found.append(f"{key}[{index}]: expected a record, got {type(item).__name__}")
                else:
                    found += _unknown(f"{key}[{index}]", item, shape.fields)
    return found


def _unknown(where: str, record: Dict[str, Any], fields: FrozenSet[str]) -> List[str]:
    return [f"{where}.{name}: not a declared field" for name in sorted(set(record) - fields)]


def check_all(facts: Sequence[Any]) -> List[str]:
    """Schema problems of every available fact in ``facts`` (Fact objects)."""
    found: List[str] = []
    for fact in facts:
        if fact.error is None:
            found += problems(fact.key, fact.value)
    return found
