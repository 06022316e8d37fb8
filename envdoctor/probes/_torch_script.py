"""Collect torch facts inside the diagnosed Python, printed as marked JSON lines.

Run as ``python _torch_script.py [--quick]`` by ``envdoctor.probes.torch_probe``.
This file must run on any Python the user may diagnose (3.6+), without
envdoctor installed: standard library only, no newer syntax.

Each section is printed (and flushed) as soon as it is known, one line
``@@envdoctor-torch {json}``, so that a crash or a hang later on (a CUDA
initialisation that never returns) still leaves the earlier facts to the parent.
Every item sits in its own try/except: one failing call never loses the rest.
"""
import gc
import json
import os
import re
import sys
import traceback

MARK = "@@envdoctor-torch "
CUDA_LIB_NAMES = ("libcudart", "libcublas", "libcudnn", "libnccl", "libcuda.", "libnvrtc", "libnvJitLink")


def emit(section, data):
    sys.stdout.write(MARK + json.dumps({"section": section, "data": data}, default=str) + "\n")
    sys.stdout.flush()


def error_text(exc):
    return "{}: {}".format(type(exc).__name__, exc)


def attempt(data, key, fn, errors):
    """data[key] = fn(), or None with the error recorded: one item never loses the rest."""
    try:
        data[key] = fn()
    except Exception as exc:  # noqa: BLE001 - every failure is a fact
        data[key] = None
        errors[key] = error_text(exc)


def find_spec_origin(name, find_spec=None):
    import importlib.util

    try:
        spec = (find_spec or importlib.util.find_spec)(name)
    except Exception:
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return list(spec.submodule_search_locations)[0]
    return os.path.dirname(spec.origin) if spec.origin else None


def read_version_py(package_dir):
    """Parse a package's version.py without importing it (torch/version.py, torchvision/version.py)."""
    path = os.path.join(package_dir, "version.py")
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    values = {}
    for name in ("__version__", "cuda", "hip", "git_version"):
        match = re.search(r"^" + re.escape(name) + r"\s*(?::[^=]*)?=\s*(?:'([^']*)'|\"([^\"]*)\"|None)",
                          text, re.M)
        if match:
            values[name] = match.group(1) if match.group(1) is not None else match.group(2)
    return values


def install_kind(package_dir):
    """pip (a dist-info beside it), conda (conda-meta records it), source (a checkout), or None."""
    parent = os.path.dirname(package_dir)
    conda_meta = os.path.join(sys.prefix, "conda-meta")
    if os.path.isdir(conda_meta):
        for name in os.listdir(conda_meta):
            if re.match(r"^(pytorch|torch)-\d", name) and name.endswith(".json"):
                path = os.path.join(conda_meta, name)
                try:
                    with open(path, encoding="utf-8") as fh:
                        record = json.load(fh)
                except Exception:
                    return "conda"
                # pip-installed torch inside a conda env is recorded with channel "pypi".
                return "pip" if "pypi" in str(record.get("channel", "")) else "conda"
    for name in os.listdir(parent):
        if re.match(r"^torch-[^-]+\.(dist-info|egg-info)$", name):
            return "pip"
    if os.path.isdir(os.path.join(parent, ".git")) or os.path.exists(os.path.join(parent, "setup.py")):
        return "source"
    return None


def find_cuda_home(env):
    """(CUDA_HOME, which guess produced it), replicating torch.utils.cpp_extension._find_cuda_home."""
    import shutil

    home = env.get("CUDA_HOME") or env.get("CUDA_PATH")
    if home is not None:
        return home or None, "CUDA_HOME" if env.get("CUDA_HOME") else "CUDA_PATH"
    # In the child env is os.environ; the parent answering in-process passes the child's env.
    nvcc = shutil.which("nvcc") if env is os.environ else shutil.which("nvcc", path=env.get("PATH", os.defpath))
    if nvcc is not None:
        return os.path.dirname(os.path.dirname(nvcc)), "which nvcc"
    if os.path.exists("/usr/local/cuda"):
        return "/usr/local/cuda", "/usr/local/cuda"
    return None, None


def cpp_ext_cuda_home_source(env):
    return find_cuda_home(env)[1]


def cudnn_from_files(package_dir):
    """cuDNN version from the nvidia-cudnn wheel (dist-info name or header), without loading it."""
    site = os.path.dirname(package_dir)
    for name in sorted(os.listdir(site)):
        match = re.match(r"^nvidia_cudnn_cu\d+-([\d.]+)\.dist-info$", name)
        if match:
            return match.group(1)
    header = os.path.join(site, "nvidia", "cudnn", "include", "cudnn_version.h")
    if os.path.exists(header):
        with open(header, encoding="utf-8") as fh:
            text = fh.read()
        parts = [re.search(r"#define CUDNN_" + k + r"\s+(\d+)", text) for k in ("MAJOR", "MINOR", "PATCHLEVEL")]
        if all(parts):
            return ".".join(p.group(1) for p in parts)
    return None


def quick(env=None, find_spec=None):
    """Torch facts from installed files only: no import of torch (fast).

    Returns the (section, data) pairs; run as a script they are printed. The
    parent calls this in-process (with the child's env and import path) when the
    diagnosed Python is its own, to save an interpreter start.
    """
    env = os.environ if env is None else env
    torch_dir = find_spec_origin("torch", find_spec)
    if torch_dir is None:
        return [("status", {"status": "missing", "message": "No module named 'torch'"})]
    data, errors = {"file": os.path.join(torch_dir, "__init__.py")}, {}
    attempt(data, "version_py", lambda: read_version_py(torch_dir), errors)
    attempt(data, "install", lambda: install_kind(torch_dir), errors)
    attempt(data, "cudnn_files", lambda: cudnn_from_files(torch_dir), errors)
    attempt(data, "c_files", lambda: sorted(n for n in os.listdir(torch_dir) if n.startswith("_C")), errors)
    attempt(data, "cpp_ext_cuda_home", lambda: find_cuda_home(env)[0], errors)
    attempt(data, "cpp_ext_cuda_home_source", lambda: cpp_ext_cuda_home_source(env), errors)
    data["errors"] = errors
    sections = [("quick", data)]
    tv_dir = find_spec_origin("torchvision", find_spec)
    tv = {"installed": tv_dir is not None}
    if tv_dir:
        attempt(tv, "version_py", lambda: read_version_py(tv_dir), {})
    sections.append(("torchvision", tv))
    sections.append(("status", {"status": "ok", "message": "read from installed files (quick mode)"}))
    return sections


def import_torch():
    try:
        import torch  # noqa: F401
    except ModuleNotFoundError as exc:
        if getattr(exc, "name", None) == "torch":
            emit("status", {"status": "missing", "message": str(exc)})
            return None
        emit("status", {"status": "import_error", "message": error_text(exc), "traceback": traceback.format_exc()})
        return None
    except BaseException as exc:  # noqa: BLE001 - SystemExit from a broken build is an import error too
        emit("status", {"status": "import_error", "message": error_text(exc), "traceback": traceback.format_exc()})
        return None
    return sys.modules["torch"]


def basics(torch):
    data, errors = {}, {}
    attempt(data, "version", lambda: str(torch.__version__), errors)
    attempt(data, "cuda", lambda: torch.version.cuda, errors)
    attempt(data, "hip", lambda: getattr(torch.version, "hip", None), errors)
    attempt(data, "file", lambda: torch.__file__, errors)
    attempt(data, "cxx11_abi", lambda: bool(torch._C._GLIBCXX_USE_CXX11_ABI), errors)
    attempt(data, "install", lambda: install_kind(os.path.dirname(torch.__file__)), errors)
    attempt(data, "arch_list", lambda: arch_list(torch), errors)
    attempt(data, "cpp_ext_cuda_home_source", lambda: cpp_ext_cuda_home_source(os.environ), errors)
    attempt(data, "cpp_ext_cuda_home", lambda: cpp_ext_cuda_home(), errors)
    data["errors"] = errors
    return data


def cpp_ext_cuda_home():
    """The CUDA_HOME torch.utils.cpp_extension will use.

    Importing cpp_extension costs about 5% of importing torch (it pulls in
    setuptools), so its module-level guess is replicated instead (same order,
    same tests; checked against the real module in envdoctor's tests). When the
    module is already loaded, its own value is used.
    """
    module = sys.modules.get("torch.utils.cpp_extension")
    if module is not None:
        return module.CUDA_HOME
    return find_cuda_home(os.environ)[0]


def arch_list(torch):
    # Older torch returns [] from get_arch_list() when no GPU is usable; the flags are there anyway.
    flags = getattr(torch._C, "_cuda_getArchFlags", None)
    if flags is not None:
        value = flags()
        return value.split() if value else []
    return list(torch.cuda.get_arch_list())


def cuda_state(torch):
    import warnings

    data, errors = {}, {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        attempt(data, "cuda_available", lambda: bool(torch.cuda.is_available()), errors)
    messages = [str(w.message).strip() for w in caught]
    if not data.get("cuda_available") and torch.version.cuda:
        try:
            torch.cuda.init()
        except Exception as exc:  # the reason CUDA is unusable, in torch's words
            messages.append(error_text(exc))
    data["cuda_error"] = "\n".join(m for m in messages if m) or errors.get("cuda_available")
    attempt(data, "device_count", lambda: int(torch.cuda.device_count()) if data.get("cuda_available") else 0,
            errors)
    attempt(data, "devices", lambda: devices(torch, data.get("device_count") or 0), errors)
    attempt(data, "cudnn_raw", lambda: torch.backends.cudnn.version(), errors)
    attempt(data, "nccl", lambda: nccl_version(torch), errors)
    data["errors"] = errors
    return data


def devices(torch, count):
    result = []
    for index in range(count):
        item = {"index": index, "name": None, "capability": None, "uuid": None}
        try:
            props = torch.cuda.get_device_properties(index)
            item["name"] = props.name
            item["capability"] = "{}.{}".format(props.major, props.minor)
            uuid = getattr(props, "uuid", None)
            item["uuid"] = str(uuid) if uuid is not None else None
        except Exception as exc:
            item["error"] = error_text(exc)
        result.append(item)
    return result


def nccl_version(torch):
    if not torch.version.cuda:
        return None
    import torch.cuda.nccl as nccl

    version = nccl.version()
    if isinstance(version, tuple):
        return ".".join(str(p) for p in version)
    # torch < 1.9 returned one int: 2708 -> 2.7.8, 21003 -> 2.10.3
    version = int(version)
    if version >= 10000:
        return "{}.{}.{}".format(version // 10000, (version // 100) % 100, version % 100)
    return "{}.{}.{}".format(version // 1000, (version // 100) % 10, version % 100)


def torchvision_state(torch):
    """torchvision's version and CUDA build, as torchvision.extension checks it.

    Importing torchvision costs about as much as a third of importing torch, so
    its compiled ops are loaded directly (exactly what torchvision does to read
    its CUDA version) and its version is read from version.py.
    """
    tv_dir = find_spec_origin("torchvision")
    if tv_dir is None:
        return {"installed": False}
    data, errors = {"installed": True}, {}
    attempt(data, "version_py", lambda: read_version_py(tv_dir), errors)
    lib = None
    for name in sorted(os.listdir(tv_dir)):
        if name.startswith("_C") and (name.endswith(".so") or name.endswith(".pyd")):
            lib = os.path.join(tv_dir, name)
    if lib is None:
        data["import_error"] = "torchvision has no compiled _C library in " + tv_dir
        return data
    try:
        torch.ops.load_library(lib)
        data["cuda_raw"] = int(torch.ops.torchvision._cuda_version())
    except Exception as exc:
        data["import_error"] = error_text(exc)
    data["errors"] = errors
    return data


def loaded_cuda_libs():
    paths = []
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            parts = line.split(None, 5)
            if len(parts) < 6:
                continue
            path = parts[5].strip()
            if os.path.basename(path).startswith(CUDA_LIB_NAMES) and path not in paths:
                paths.append(path)
    return paths


def full():
    # This short-lived process only imports torch and reports. Importing torch creates
    # millions of objects, and the cyclic garbage collector's passes over them are about
    # a sixth of the import's CPU time (measured: 2.0 s -> 1.7 s on the development
    # machine); nothing here needs cycles collected before the process exits.
    gc.disable()
    torch = import_torch()
    if torch is None:
        return
    emit("basics", basics(torch))
    emit("torchvision", torchvision_state(torch))
    emit("cuda", cuda_state(torch))
    libs, errors = {}, {}
    attempt(libs, "loaded_cuda_libs", loaded_cuda_libs, errors)
    libs["errors"] = errors
    emit("libs", libs)
    emit("status", {"status": "ok", "message": "torch {} imported".format(torch.__version__)})


if __name__ == "__main__":
    if "--quick" in sys.argv[1:]:
        for section, data in quick():
            emit(section, data)
    else:
        full()
