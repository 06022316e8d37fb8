"""Every CUDA toolkit that can be found, not just the first.

Sources, in this order: ``CUDA_HOME``, ``CUDA_PATH``, every ``nvcc`` on ``PATH``
(symlinks and wrapper scripts resolved to the real toolkit: ``/usr/local/bin/nvcc``
that execs ``/usr/local/cuda-13.0/bin/nvcc`` names ``/usr/local/cuda-13.0``),
``/usr/local/cuda*``, ``/opt/cuda*``, the NVIDIA HPC SDK's ``cuda/<X.Y>`` toolkits
(``envdoctor.probes.nvhpc``), the modulefiles on ``MODULEPATH`` (``envdoctor.probes.modules``:
read, never loaded), the active conda env and pip ``nvidia-*`` wheels of the diagnosed Python.
Entries are deduplicated by real path, so ``/usr/local/cuda`` -> ``/usr/local/cuda-13.0`` is one
toolkit found two ways.
Malformed ``CUDA_HOME``/``CUDA_PATH`` values are recorded raw; rules classify them.
"""
from __future__ import annotations

import glob
import json
import os
import platform
import re
import site
from typing import Dict, List, Optional, Tuple

from envdoctor.model import Fact
from envdoctor.parsers import nvcc as nvcc_parser
from envdoctor.parsers import versions
from envdoctor.probes import modules as modules_probe
from envdoctor.probes import nvhpc
from envdoctor.probes._inproc import same_executable
from envdoctor.probes.base import Probe, ProbeContext, read_text as _read

KEYS = ("toolkits", "modules", "nvcc.path", "nvcc.real_path", "nvcc.toolkit", "nvcc.version", "nvcc.all", "nvcc.archs",
        "cuda.linker_cudart", "cuda.system_headers")
NVCC_TIMEOUT = 10.0
# Headers of the CUDA math libraries an extension build sees: the four torch's own CUDA headers include
# (ATen/cuda/CUDAContext.h, so an extension that includes it needs them all), then cuRAND and cuFFT, which
# extensions include directly. The one list: check's facts and rules, fix's plan and its rebuilds use it.
LIB_HEADERS = ("cublas_v2.h", "cublasLt.h", "cusparse.h", "cusolverDn.h", "curand.h", "cufft.h")
_MULTIARCH = f"{platform.machine() or 'x86_64'}-linux-gnu"
# Where GNU ld looks for -lcudart after the -L dirs (Debian/Ubuntu and Fedora defaults).
LINKER_DIRS = (f"/usr/local/lib/{_MULTIARCH}", f"/lib/{_MULTIARCH}", f"/usr/lib/{_MULTIARCH}", "/usr/local/lib64",
               "/lib64", "/usr/lib64", "/usr/local/lib", "/lib", "/usr/lib")
# Where the host compiler looks for #include <...> after the -I dirs.
INCLUDE_DIRS = ("/usr/local/include", f"/usr/include/{_MULTIARCH}", "/usr/include")


# ---- what a directory holds -------------------------------------------------

def _first(patterns: List[str]) -> Optional[str]:
    for pattern in patterns:
        hits = sorted(glob.glob(pattern))
        if hits:
            return hits[0]
    return None


def nvcc_in(root: str) -> Optional[str]:
    path = os.path.join(root, "bin", "nvcc")
    return path if os.path.isfile(path) else None


def has_runtime_header(root: str) -> bool:
    return _first([os.path.join(root, "include", "cuda_runtime.h"),
                   os.path.join(root, "targets", "*", "include", "cuda_runtime.h")]) is not None


def has_cudart(root: str) -> bool:
    # lib/*-linux-gnu: a distro toolkit (apt's nvidia-cuda-toolkit has nvcc in /usr/bin).
    subdirs = ("lib64", "lib", os.path.join("targets", "*", "lib"), os.path.join("lib", "*-linux-gnu"))
    return _first([os.path.join(root, sub, "libcudart.so*") for sub in subdirs]) is not None


def torch_lib_dir(root: str) -> str:
    """The -L directory torch's builder passes for ``CUDA_HOME=root``: lib64, else lib."""
    lib64 = os.path.join(root, "lib64")
    if not os.path.exists(lib64) and os.path.exists(os.path.join(root, "lib")):
        return os.path.join(root, "lib")
    return lib64


def library_version(path: str) -> Optional[str]:
    """"11.8.89" for libcudart.so -> libcudart.so.11.0 -> libcudart.so.11.8.89; "13" for libcudart.so.13."""
    match = re.search(r"\.so\.(\d+(?:\.\d+)*)$", os.path.realpath(path))
    return match.group(1) if match else None


def cudart_in(directory: str) -> Optional[dict]:
    """The ``libcudart.so`` that ``-lcudart`` finds in ``directory`` (the unversioned dev link)."""
    path = os.path.join(directory, "libcudart.so")
    if not os.path.exists(path):
        return None
    return {"path": path, "real_path": os.path.realpath(path), "version": library_version(path)}


def include_dir(root: str) -> Optional[str]:
    """The directory holding the toolkit's cuda_runtime.h."""
    found = _first([os.path.join(root, "include", "cuda_runtime.h"),
                    os.path.join(root, "targets", "*", "include", "cuda_runtime.h")])
    return os.path.dirname(found) if found else None


_WRAPPER_CHOICE = re.compile(r"if\s+(g\+\+-[\w.]+|clang\+\+-[\w.]+)\s+--version[^\n]*\n\s*prog=([\w.+-]+)")


def nvcc_default_host(ctx: ProbeContext, real_nvcc: str) -> Optional[dict]:
    """The host compiler this nvcc runs when nobody names one (no -ccbin, CC or NVCC_CCBIN).

    nvcc puts the directories of its ``nvcc.profile`` ``PATH += ...`` line before
    PATH. Distribution packages put a ``gcc`` wrapper there (Debian's
    nvidia-cuda-toolkit: the first of g++-11, g++-10, ... that is installed).
    None: nvcc runs ``gcc`` from PATH.
    """
    bin_dir = os.path.dirname(real_nvcc)
    profile = _read(os.path.join(bin_dir, "nvcc.profile")) or ""
    for line in profile.splitlines():
        match = re.match(r"\s*PATH\s*\+=\s*(\S+)", line)
        if not match:
            continue
        for entry in match.group(1).replace("$(_HERE_)", bin_dir).split(":"):
            gcc = os.path.join(entry, "gcc") if entry else ""
            if not entry or not os.path.isfile(gcc):
                continue
            if not _is_script(gcc):
                return {"command": gcc, "path": os.path.realpath(gcc), "via": f"{gcc} (nvcc.profile PATH)"}
            text = _read(gcc) or ""
            for probe_name, prog in _WRAPPER_CHOICE.findall(text):
                if ctx.which(probe_name) and ctx.which(prog):
                    return {"command": prog, "path": ctx.which(prog),
                            "via": f"{gcc} (the toolkit's compiler wrapper)"}
            return {"command": None, "path": None, "via": f"{gcc} (the toolkit's compiler wrapper)",
                    "error": "the wrapper finds none of the compilers it accepts"}
    return None


def linker_cudart(ctx: ProbeContext) -> Optional[dict]:
    """The libcudart.so ``-lcudart`` finds when no -L directory has one (LIBRARY_PATH, then ld's defaults)."""
    dirs = [d for d in ctx.env.get("LIBRARY_PATH", "").split(os.pathsep) if d] + [ctx.path(d) for d in LINKER_DIRS]
    for directory in dirs:
        found = cudart_in(directory)
        if found:
            return dict(found, dir=directory)
    return None


def system_headers(ctx: ProbeContext) -> Dict[str, Optional[str]]:
    """Where the compiler finds each CUDA header when the toolkit's include dir lacks it
    (CPATH and CPLUS_INCLUDE_PATH first, then the system include dirs)."""
    dirs = [d for var in ("CPATH", "CPLUS_INCLUDE_PATH") for d in ctx.env.get(var, "").split(os.pathsep) if d]
    dirs += [ctx.path(d) for d in INCLUDE_DIRS]
    found: Dict[str, Optional[str]] = {}
    for header in ("cuda_runtime.h",) + LIB_HEADERS:
        found[header] = next((d for d in dirs if os.path.isfile(os.path.join(d, header))), None)
    return found


def _dist_info_version(directory: str, prefixes: Tuple[str, ...]) -> Optional[str]:
    """Version of the first ``<prefix>*-<version>.dist-info`` found for each prefix, in order."""
    names = os.listdir(directory) if os.path.isdir(directory) else []
    for prefix in prefixes:
        for name in sorted(names):
            parsed = versions.parse_dist_info_name(name)
            if parsed and re.fullmatch(prefix + r"(_cu\d+)?", parsed[0]):
                return parsed[1]
    return None


def _conda_meta_version(root: str) -> Optional[str]:
    meta = os.path.join(root, "conda-meta")
    names = os.listdir(meta) if os.path.isdir(meta) else []
    for package in ("cuda-nvcc", "cuda-cudart", "cudatoolkit"):
        for name in sorted(names):
            parsed = versions.parse_conda_meta_name(name)
            if parsed and parsed[0] == package:
                return parsed[1]
    return None


def file_version(root: str) -> Tuple[Optional[str], Optional[str]]:
    """(version, version_source) from the toolkit's files, without running anything."""
    parsed = versions.parse_cuda_version_json(_read(os.path.join(root, "version.json")) or "")
    if parsed and (parsed["nvcc"] or parsed["cuda"]):
        return parsed["nvcc"] or parsed["cuda"], "version.json"
    txt = versions.parse_cuda_version_txt(_read(os.path.join(root, "version.txt")) or "")
    if txt:
        return txt, "version.txt"
    # Toolkits assembled from wheels keep their dist-info (this machine's
    # /usr/local/cuda-13.0/dist-info); pip roots keep it in site-packages. The
    # nvcc wheel's version when this root has nvcc, else the runtime's.
    order = ("nvidia_cuda_nvcc", "nvidia_cuda_runtime")
    if os.path.basename(root) == "cuda_runtime" or nvcc_in(root) is None:
        order = ("nvidia_cuda_runtime", "nvidia_cuda_nvcc")
    for directory in (os.path.join(root, "dist-info"), os.path.dirname(os.path.dirname(root))):
        found = _dist_info_version(directory, order)
        if found:
            return found, "dist-info"
    found = _conda_meta_version(root)
    if found:
        return found, "conda-meta"
    # A package directory in conda's cache (.../pkgs/cudatoolkit-11.1.74-h6bb024c_0),
    # which CUDA_HOME is sometimes pointed at: the version is in its name.
    package = versions.parse_conda_meta_name(os.path.basename(root) + ".json")
    if package and package[0] in ("cudatoolkit", "cuda-nvcc", "cuda-toolkit") and _is_conda_package(root):
        return package[1], "conda-meta"
    return None, None


def _is_conda_package(root: str) -> bool:
    return os.path.isfile(os.path.join(root, "info", "index.json"))


def resolve_nvcc(path: str) -> Tuple[str, List[str]]:
    """The real nvcc behind symlinks and ``exec``-wrapper scripts, and the chain walked."""
    chain = [path]
    current = path
    for _ in range(8):  # wrappers of wrappers, but never loop forever
        real = os.path.realpath(current)
        if real != chain[-1]:
            chain.append(real)
        text = _read(real, 65536) if _is_script(real) else None
        target = nvcc_parser.parse_wrapper_target(text) if text else None
        if not target or os.path.realpath(target) == real:
            return real, chain
        chain.append(target)
        current = target
    return os.path.realpath(current), chain


def _is_script(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"#!"
    except OSError:
        return False


def toolkit_of(real_nvcc: str) -> Optional[str]:
    bin_dir = os.path.dirname(real_nvcc)
    return os.path.dirname(bin_dir) if os.path.basename(bin_dir) == "bin" else None


def looks_like_conda_cuda(prefix: str) -> bool:
    """A conda env holding any CUDA: nvcc, cudart, or a cudatoolkit record (which ships no nvcc)."""
    return (nvcc_in(prefix) is not None or has_cudart(prefix)
            or _conda_meta_version(prefix) is not None)


def site_dirs(ctx: ProbeContext) -> List[str]:
    """site-packages directories of the diagnosed Python."""
    if same_executable(ctx.python):  # not a venv's python symlinked to this one: its site differs
        if ctx.root not in ("", "/"):
            return []  # a test tree: this interpreter's real wheels are not part of it
        dirs = list(site.getsitepackages())
        user = site.getusersitepackages()
        return dirs + ([user] if isinstance(user, str) else [])
    script = "import json,site;print(json.dumps(site.getsitepackages()+[site.getusersitepackages()]))"
    result = ctx.runner.run([ctx.python, "-I", "-c", script], timeout=ctx.timeout)
    try:
        dirs = json.loads(result.stdout.strip().splitlines()[-1]) if result.ok else []
    except (ValueError, IndexError):
        return []
    return [d for d in dirs if isinstance(d, str)]


def pip_cuda_roots(ctx: ProbeContext) -> List[str]:
    """CUDA roots inside pip wheels: ``nvidia/cu13`` (CUDA 13 wheels),
    ``nvidia/cuda_runtime`` and ``nvidia/cuda_nvcc`` (CUDA 11/12 wheels)."""
    roots: List[str] = []
    for directory in site_dirs(ctx):
        base = os.path.join(directory, "nvidia")
        candidates = sorted(glob.glob(os.path.join(base, "cu[0-9]*")))
        candidates += [os.path.join(base, "cuda_runtime"), os.path.join(base, "cuda_nvcc")]
        roots += [c for c in candidates if os.path.isdir(c)]
    return roots


# ---- the probe -------------------------------------------------------------

class _Toolkits:
    """Collects candidate roots in discovery order, merged by real path."""

    def __init__(self) -> None:
        self.entries: Dict[str, dict] = {}
        self.absorbed: Dict[str, str] = {}  # real path of an inner directory -> real root of its toolkit

    def absorb(self, root: str, into: str) -> None:
        """``root`` is the inside of the toolkit at ``into`` (a distribution's nvcc directory): one entry."""
        inner = self.entries.pop(os.path.realpath(root), None)
        outer = self.entries.get(os.path.realpath(into))
        self.absorbed[os.path.realpath(root)] = os.path.realpath(into)
        if outer is not None and inner is not None:
            outer["found_via"] += [v for v in inner["found_via"] if v not in outer["found_via"]]
        if outer is not None and root not in outer["aliases"]:
            outer["aliases"].append(root)

    def add(self, root: str, via: str, kind: str = "system") -> None:
        if not root or not os.path.isdir(root):
            return
        real = os.path.realpath(root)
        if real in self.absorbed:
            root = real = self.absorbed[real]
        entry = self.entries.get(real)
        if entry is None:
            self.entries[real] = {"root": root.rstrip("/") or "/", "real_root": real, "found_via": [via],
                                  "kind": kind, "aliases": []}
            return
        if via not in entry["found_via"]:
            entry["found_via"].append(via)
        # Other names of the same toolkit (/usr/local/cuda for /usr/local/cuda-13.0).
        alias = root.rstrip("/") or "/"
        if alias != entry["root"] and alias not in entry["aliases"]:
            entry["aliases"].append(alias)


def env_roots(value: Optional[str]) -> List[str]:
    """The directories a CUDA_HOME-like value names, taken as given: quotes and
    whitespace stripped, PATH-like lists (``:/usr/local/cuda``) split."""
    if not value:
        return []
    roots = []
    for part in value.split(os.pathsep):
        part = part.strip().strip("'\"").strip()
        if part and os.path.isabs(part):
            roots.append(part)
    return roots


class _NvccRunner:
    """Runs ``nvcc --version`` at most once per real nvcc binary."""

    def __init__(self, ctx: ProbeContext) -> None:
        self.ctx = ctx
        self.cache: Dict[str, Tuple[Optional[str], str, Optional[str]]] = {}

    def version(self, real_nvcc: str) -> Tuple[Optional[str], str, Optional[str]]:
        """(version, raw output, error)."""
        if real_nvcc not in self.cache:
            result = self.ctx.runner.run([real_nvcc, "--version"], timeout=min(self.ctx.timeout, NVCC_TIMEOUT))
            version = nvcc_parser.parse_version(result.stdout) if result.ok else None
            error = None if version else (result.describe_failure() if not result.ok
                                          else "could not read a version from nvcc --version")
            self.cache[real_nvcc] = (version, result.output, error)
        return self.cache[real_nvcc]


def _describe(entry: dict, conda_prefix: Optional[str], nvccs: _NvccRunner, modules: dict) -> dict:
    root = entry["real_root"]
    sdk = nvhpc.describe(entry["root"]) or nvhpc.describe(root)
    entry["nvhpc"] = sdk
    if sdk:
        sdk["compilers_lib"] = torch_lib_dir(sdk["compilers"])
        entry["kind"] = "nvhpc"
    elif conda_prefix and os.path.realpath(conda_prefix) == root:
        entry["kind"] = "conda"
    elif os.path.isdir(os.path.join(root, "conda-meta")) or _is_conda_package(root):
        entry["kind"] = "conda"
    elif re.search(r"/(site|dist)-packages/nvidia/", root + "/"):
        entry["kind"] = "pip"  # e.g. CUDA_HOME pointed into a wheel
    nvcc_bin = nvcc_in(root)
    entry["has_nvcc"] = nvcc_bin is not None
    entry["has_runtime_header"] = has_runtime_header(root)
    entry["has_cudart"] = has_cudart(root)
    lib_dir = torch_lib_dir(root)
    entry["lib_dir"] = lib_dir
    entry["cudart"] = cudart_in(lib_dir)
    includes = include_dir(root)
    entry["include_dir"] = includes
    entry["missing_headers"] = [h for h in LIB_HEADERS if not includes or not os.path.isfile(os.path.join(includes, h))]
    # The HPC SDK keeps cuBLAS & co. beside its toolkits (math_libs/<X.Y>): a build sees
    # them only when CPATH names that directory.
    math = nvhpc.math_include(sdk["release"], os.path.basename(root)) if sdk and entry["missing_headers"] else None
    entry["lib_include_dir"] = math if math and all(os.path.isfile(os.path.join(math, h))
                                                    for h in entry["missing_headers"]) else None
    entry["module"] = modules_probe.module_of([entry["root"], entry["real_root"], *entry["aliases"]], modules)
    real_nvcc = resolve_nvcc(nvcc_bin)[0] if nvcc_bin else None
    entry["nvcc_real"] = real_nvcc
    entry["default_host"] = nvcc_default_host(nvccs.ctx, real_nvcc) if real_nvcc else None
    version, source = file_version(root)
    if version is None and nvcc_bin:
        version, _raw, _error = nvccs.version(os.path.realpath(nvcc_bin))
        source = "nvcc --version" if version else None
    entry["version"] = version
    entry["version_source"] = source
    return entry


def _nvcc_facts(ctx: ProbeContext, nvccs: _NvccRunner) -> List[Fact]:
    all_nvcc = ctx.which_all("nvcc")
    facts = [Fact("nvcc.all", all_nvcc, source="PATH")]
    if not all_nvcc:
        why = "no nvcc on PATH"
        return facts + [Fact.unavailable(k, why, source="PATH") for k in
                        ("nvcc.path", "nvcc.real_path", "nvcc.toolkit", "nvcc.version", "nvcc.archs")]
    first = all_nvcc[0]
    real, chain = resolve_nvcc(first)
    facts.append(Fact("nvcc.path", first, source="PATH"))
    facts.append(Fact("nvcc.real_path", real, source="symlinks and wrapper scripts resolved",
                      raw="\n".join(chain)))
    toolkit = toolkit_of(real)
    if toolkit:
        facts.append(Fact("nvcc.toolkit", os.path.realpath(toolkit), source=f"toolkit of {real}"))
    else:
        facts.append(Fact.unavailable("nvcc.toolkit", f"{real} is not in a <toolkit>/bin directory",
                                      source=f"toolkit of {real}"))
    version, raw, error = nvccs.version(real)
    if version:
        facts.append(Fact("nvcc.version", version, source=f"{first} --version", raw=raw))
    else:
        facts.append(Fact.unavailable("nvcc.version", error or "no version", source=f"{first} --version", raw=raw))
    archs = ctx.runner.run([real, "--list-gpu-arch"], timeout=min(ctx.timeout, NVCC_TIMEOUT))
    parsed = nvcc_parser.parse_list_gpu_arch(archs.stdout) if archs.ok else []
    if parsed:
        facts.append(Fact("nvcc.archs", parsed, source=f"{first} --list-gpu-arch", raw=archs.output))
    else:
        # nvcc before 11.0 has no --list-gpu-arch.
        facts.append(Fact.unavailable("nvcc.archs", archs.describe_failure() if not archs.ok
                                      else "nvcc --list-gpu-arch listed nothing", source=f"{first} --list-gpu-arch",
                                      raw=archs.output))
    return facts


def _scan(ctx: ProbeContext, toolkits: _Toolkits, modules: dict) -> List[str]:
    """Fill ``toolkits`` from every source; return lines for the fact's raw text."""
    notes: List[str] = []
    for var in ("CUDA_HOME", "CUDA_PATH"):
        value = ctx.env.get(var)
        if value is not None:
            notes.append(f"{var}={value!r}")
        for root in env_roots(value):
            toolkits.add(root, var)
    for nvcc in ctx.which_all("nvcc"):
        real, chain = resolve_nvcc(nvcc)
        notes.append("nvcc on PATH: " + " -> ".join(chain))
        root = toolkit_of(real)
        if root:
            # Keep the name the user sees (/usr/local/cuda/bin/nvcc -> /usr/local/cuda)
            # when it is the same toolkit, not a wrapper's directory.
            as_found = toolkit_of(nvcc)
            same = as_found and os.path.realpath(as_found) == os.path.realpath(root)
            toolkits.add(as_found if same else root, "nvcc on PATH")
            if as_found and not same and has_runtime_header(as_found) and not nvhpc.release_of(as_found):
                # A distribution layout (Debian's /usr/bin/nvcc wraps /usr/lib/nvidia-cuda-toolkit,
                # headers in /usr/include): /usr is the CUDA_HOME torch guesses, and it works.
                toolkits.add(as_found, "nvcc on PATH", kind="distribution")
                toolkits.absorb(root, into=as_found)
    for pattern, via in (("/usr/local/cuda*", "/usr/local/cuda*"), ("/opt/cuda*", "/opt/cuda*")):
        for root in sorted(glob.glob(ctx.path(pattern))):
            if re.fullmatch(r"cuda(-?\d+(\.\d+)*)?", os.path.basename(root)):
                toolkits.add(root, via)
    offered = [o for o in modules.get("offered") or [] if o.get("root_exists")]
    for offer in offered:
        # A module for something else that merely prepends a bin dir is no toolkit.
        if nvcc_in(offer["root"]) or has_runtime_header(offer["root"]):
            toolkits.add(offer["root"], "module")
    hints = ctx.env.get("PATH", "").split(os.pathsep) + [ctx.env.get(v, "") for v in
                                                          ("NVHPC_ROOT", "CUDA_HOME", "CUDA_PATH")]
    for release in nvhpc.release_dirs(ctx, hints + [o["root"] for o in offered]):
        for root in nvhpc.cuda_roots(release):
            toolkits.add(root, "NVIDIA HPC SDK", kind="nvhpc")
        default = nvhpc.default_cuda(release)
        if default:  # <release>/cuda: the default toolkit under another name
            toolkits.absorb(os.path.join(release, "cuda"), into=default)
    conda = ctx.env.get("CONDA_PREFIX")
    if conda and looks_like_conda_cuda(conda):
        toolkits.add(conda, "conda", kind="conda")
    for root in pip_cuda_roots(ctx):
        toolkits.add(root, "pip nvidia wheels", kind="pip")
    return notes


def probe(ctx: ProbeContext) -> List[Fact]:
    toolkits = _Toolkits()
    nvccs = _NvccRunner(ctx)
    modules = modules_probe.scan(ctx)
    notes = _scan(ctx, toolkits, modules)
    conda = ctx.env.get("CONDA_PREFIX")
    described = [_describe(entry, conda, nvccs, modules) for entry in toolkits.entries.values()]
    facts = [Fact("toolkits", described, source="CUDA_HOME, CUDA_PATH, PATH, /usr/local/cuda*, /opt/cuda*, "
                  "the NVIDIA HPC SDK, modulefiles on MODULEPATH, conda, pip nvidia wheels",
                  raw="\n".join(notes) or None),
             Fact("modules", modules, source="MODULEPATH, LOADEDMODULES, _LMFILES_ and the modulefiles' text")]
    facts += _nvcc_facts(ctx, nvccs)
    facts.append(Fact("cuda.linker_cudart", linker_cudart(ctx), source="LIBRARY_PATH and the linker's default "
                      "directories (" + ", ".join(LINKER_DIRS) + ")"))
    facts.append(Fact("cuda.system_headers", system_headers(ctx), source="CPATH, CPLUS_INCLUDE_PATH and "
                      + ", ".join(INCLUDE_DIRS)))
    return facts


PROBE = Probe(name="toolkits", fn=probe, keys=KEYS)
