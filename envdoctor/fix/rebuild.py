"""Rebuild torch extensions with the repaired environment, then prove them.

Two targets:

* envdoctor's own MSDeformAttn op, through ``python -m envdoctor build``;
* a user's extension directory with a ``setup.py`` (Mask2Former's
  ``mask2former/modeling/pixel_decoder/ops``, Deformable DETR's ``models/ops``,
  a detectron2 checkout): old outputs quarantined (restorable), ``setup.py
  build_ext --inplace`` with its full log kept, installed the way the project
  expects (in place, or a ``.pth`` putting the directory first on the
  environment's import path: never a zipped egg), then proven: imported in a
  fresh interpreter started where the project runs, the functions its wrapper
  calls present, CUDA device code for the target architectures in the ELF.

On a machine where no GPU is visible torch's builder cannot pick the
architectures itself and Deformable-DETR-style ``setup.py`` files refuse to
build without ``torch.cuda.is_available()``; :func:`build_env` sets
``TORCH_CUDA_ARCH_LIST`` and ``FORCE_CUDA=1`` for exactly that case, and
``CPATH`` for library headers the toolkit lacks but torch's wheels ship.
"""
from __future__ import annotations

import glob
import json
import os
import re
import site
import sys
import sysconfig
import time
from typing import Any, Dict, List, Mapping, Optional

from envdoctor.fix.fsops import FixError, edit_file, read_optional
from envdoctor.fix.journal import Journal
from envdoctor.fix.quarantine import quarantine, why_not_build_output
from envdoctor import buildlog
from envdoctor.probes import _ext_device
from envdoctor.probes.toolkits import LIB_HEADERS
from envdoctor.probes._ext_projects import built_outputs

BUILD_TIMEOUT = 3600.0
BUILD_VARS = ("CUDA_HOME", "FORCE_CUDA", "TORCH_CUDA_ARCH_LIST", "MAX_JOBS", "CPATH", "CC", "CXX")
IMPORT_TIMEOUT = 120.0
# Asks torch which architectures it was built for; a build for those runs wherever torch does.
# With a visible GPU it prints nothing: torch's builder then targets that GPU itself.
_ARCH_PROBE = ("import torch\n"
               "gpu = torch.cuda.is_available()\n"
               "archs = [] if gpu else [a[3:] for a in torch.cuda.get_arch_list() if a.startswith('sm_') and a[3:].isdigit()]\n"
               "print(' '.join(f'{a[:-1]}.{a[-1]}' for a in archs))\n")


def _has_nvcc(cuda_home: Optional[str]) -> bool:
    return bool(cuda_home) and os.access(os.path.join(cuda_home, "bin", "nvcc"), os.X_OK)


def default_arch_list(runner, env: Mapping[str, str]) -> Optional[str]:
    """The architectures torch itself was built for (newest with +PTX); None if a GPU is visible or unknown."""
    result = runner.run([sys.executable, "-c", _ARCH_PROBE], timeout=IMPORT_TIMEOUT, env=dict(env))
    archs = result.stdout.split() if result.ok else []
    if not archs:
        return None
    archs[-1] += "+PTX"
    return ";".join(archs)


def default_max_jobs(env: Mapping[str, str]) -> str:
    """Parallel compile jobs that fit in memory, by the RAM budget `check` (ED504) and `build` use."""
    from envdoctor.rules._build_model import MIB_PER_JOB

    try:
        import psutil

        by_memory = int(psutil.virtual_memory().available // (MIB_PER_JOB["cuda"] * 1024 ** 2))
    except (ImportError, OSError):
        by_memory = 1
    return str(max(1, min(os.cpu_count() or 1, by_memory)))


# The CUDA math-library headers a minimal toolkit may lack while torch's nvidia wheels ship them: the same
# list check's facts and ED208 use.
LIBRARY_HEADERS = LIB_HEADERS


def _toolkit_has(cuda_home: str, header: str) -> bool:
    return any(os.path.isfile(os.path.join(cuda_home, sub, header))
               for sub in ("include", os.path.join("targets", "x86_64-linux", "include"),
                           os.path.join("targets", "sbsa-linux", "include")))


def wheel_include_dirs() -> List[str]:
    """The include dirs of the nvidia wheels next to this interpreter's torch (nvidia/cu13/include, ...)."""
    found = []
    try:
        import importlib.util

        spec = importlib.util.find_spec("nvidia")
    except (ImportError, ValueError):
        spec = None
    for base in list(getattr(spec, "submodule_search_locations", None) or []):
        for name in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            include = os.path.join(base, name, "include")
            if os.path.isdir(include):
                found.append(include)
    return found


def missing_header_dirs(cuda_home: Optional[str], candidates: Optional[List[str]] = None) -> Dict[str, str]:
    """{header: dir} for library headers the toolkit lacks and a torch wheel dir provides."""
    if not cuda_home or not os.path.isdir(cuda_home):
        return {}
    dirs = wheel_include_dirs() if candidates is None else candidates
    found = {}
    for header in LIBRARY_HEADERS:
        if _toolkit_has(cuda_home, header):
            continue
        for include in dirs:
            if os.path.isfile(os.path.join(include, header)):
                found[header] = include
                break
    return found


def build_env(env: Mapping[str, str], runner, gpu_visible: Optional[bool] = None,
              header_dirs: Optional[List[str]] = None) -> Dict[str, str]:
    """``env`` plus what an extension build needs here; values already set are kept.

    CPATH gets the torch wheel dirs holding headers the toolkit lacks: the
    compiler searches CPATH after every ``-I``, so the toolkit's own headers
    still win wherever it has them.
    """
    result = dict(env)
    if _has_nvcc(result.get("CUDA_HOME")) and not gpu_visible:
        if not result.get("TORCH_CUDA_ARCH_LIST"):
            archs = default_arch_list(runner, result)
            if archs:
                result["TORCH_CUDA_ARCH_LIST"] = archs
        result.setdefault("FORCE_CUDA", "1")
    if _has_nvcc(result.get("CUDA_HOME")):
        extra = []
        for include in missing_header_dirs(result.get("CUDA_HOME"), header_dirs).values():
            if include not in extra:
                extra.append(include)
        present = [p for p in result.get("CPATH", "").split(os.pathsep) if p]
        extra = [p for p in extra if p not in present]
        if extra:
            result["CPATH"] = os.pathsep.join(present + extra)
    result.setdefault("MAX_JOBS", default_max_jobs(result))
    return result


def build_outputs(path: str, modules: Optional[List[str]] = None) -> List[str]:
    """What a previous build left in an extension dir: build/, compiled *.so at its top, and each
    module's in-place library (``detectron2/_C.cpython-311-*.so`` inside the package)."""
    found = []
    build = os.path.join(path, "build")
    if os.path.lexists(build) and why_not_build_output(build) is None:
        found.append(build)
    candidates = sorted(glob.glob(os.path.join(path, "*.so")))
    for module in modules or []:
        candidates += built_outputs(path, module)
    for so in candidates:
        if so not in found and why_not_build_output(so) is None:
            found.append(so)
    return found


def _new_libraries(path: str, since: float) -> List[str]:
    """Libraries an in-place build wrote anywhere in the tree (not under build/)."""
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d not in ("build", ".git", "__pycache__") and
                   not os.path.islink(os.path.join(root, d))]
        for name in files:
            full = os.path.join(root, name)
            if name.endswith(".so") and os.path.getmtime(full) >= since - 1:
                found.append(full)
    return sorted(found)


def module_of(root: str, library: str) -> str:
    """``root/detectron2/_C.cpython-311-x86_64-linux-gnu.so`` -> ``detectron2._C``."""
    rel = os.path.relpath(library, root)
    parts = rel.split(os.sep)
    parts[-1] = parts[-1].split(".")[0]
    return ".".join(parts)


_PROVE = r"""
import importlib, json, os, sys
out = {}
try:
    import torch
except Exception as exc:
    print(json.dumps({"torch": "%s: %s" % (type(exc).__name__, exc)}))
    sys.exit(0)
wanted = json.loads(sys.argv[1])
for name, calls in wanted.items():
    try:
        mod = importlib.import_module(name)
    except BaseException as exc:
        out[name] = {"error": "%s: %s" % (type(exc).__name__, exc)}
        continue
    out[name] = {"file": getattr(mod, "__file__", None),
                 "missing": [c for c in calls if not hasattr(mod, c)],
                 "functions": sorted(n for n in dir(mod) if not n.startswith("_"))[:200]}
out["__gpu__"] = bool(torch.cuda.is_available())
print(json.dumps(out))
"""


def prove(modules: Dict[str, List[str]], run_from: str, env: Mapping[str, str], runner) -> Dict[str, Any]:
    """Import each module in a fresh interpreter started where the project runs, as it would
    (``python -c``: that directory first on sys.path), and list the called functions it lacks."""
    code = _PROVE
    result = runner.run([sys.executable, "-c", code, json.dumps(modules)], timeout=IMPORT_TIMEOUT, env=dict(env),
                        cwd=run_from)
    try:
        data = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"the import test gave no answer ({result.describe_failure()})"}
    return data


def target_archs(env: Mapping[str, str]) -> List[str]:
    """The compute capabilities of TORCH_CUDA_ARCH_LIST that name one ("8.6", "9.0"), in order."""
    archs = []
    for item in re.split(r"[;,\s]+", env.get("TORCH_CUDA_ARCH_LIST", "")):
        item = item.replace("+PTX", "").strip()
        if re.fullmatch(r"\d+\.\d+[af]?", item):
            archs.append(re.sub(r"[af]$", "", item))
    return archs


def device_report(library: str, archs: List[str]) -> Dict[str, Any]:
    code = _ext_device.device_code(library)
    missing = [a for a in archs if not _ext_device.covers(code, a)]
    return {"sm": code["sm"], "ptx": code["ptx"], "error": code["error"], "missing_archs": missing,
            "has_device_code": bool(code["sm"] or code["ptx"])}


def site_dir() -> str:
    """Where this interpreter's environment takes .pth files (its site-packages, else the user site)."""
    purelib = sysconfig.get_paths()["purelib"]
    if os.access(purelib, os.W_OK):
        return purelib
    return site.getusersitepackages()


def _save_log(journal: Journal, name: str, text: str) -> str:
    directory = os.path.join(journal.path, "logs")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{name}.log")
    with open(path, "w", encoding="utf-8", errors="replace") as fh:
        fh.write(text)
    return path


def _install_pth(root: str, modules: List[str], journal: Journal) -> Optional[str]:
    """Put ``root`` first on the environment's import path with a .pth file (what ``setup.py develop``
    does, without an egg): the project imports the module from anywhere, rebuilds update it, and an
    older install (an egg from ``sh make.sh``) can no longer shadow it."""
    directory = site_dir()
    name = re.sub(r"[^A-Za-z0-9_]", "_", modules[0] if modules else "ext")
    pth = os.path.join(directory, f"envdoctor-{name}.pth")
    # A .pth line starting with "import" is executed at startup; plain lines are only appended.
    content = (f"import sys; sys.path.insert(0, {root!r})  # envdoctor fix: {name} built in place here\n").encode()
    if read_optional(pth) == content:
        return pth
    os.makedirs(directory, exist_ok=True)
    record = edit_file(pth, lambda current: content, journal.backup_dir)
    journal.record(dict(record, kind="edit"))
    return pth


def rebuild_extension(path: str, env: Mapping[str, str], runner, journal: Journal,
                      spec: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Quarantine old outputs, build in place, install the way the project expects, prove it.

    ``spec`` (from the ext_projects fact) names the modules, how the project
    imports them (``install``: "inplace" or "environment"), where it runs from
    and the functions its wrappers call. Raises FixError with the first real
    compiler error, what it means and the saved log on failure.
    """
    spec = dict(spec or {})
    if not os.path.isfile(os.path.join(path, "setup.py")):
        raise FixError(f"{path} has no setup.py")
    modules = list(spec.get("modules") or [])
    moved = []
    for index, output in enumerate(build_outputs(path, modules)):
        dest = quarantine(output, journal.quarantine_dir, len(journal.entries) + index)
        journal.record({"kind": "quarantine", "src": output, "dest": dest})
        moved.append(output)
    started = time.time()
    result = runner.run([sys.executable, "setup.py", "build_ext", "--inplace"], timeout=BUILD_TIMEOUT,
                        env=dict(env), cwd=path)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", (modules[0] if modules else os.path.basename(path.rstrip(os.sep))))
    log_path = _save_log(journal, name, result.output)
    info: Dict[str, Any] = {"quarantined": moved, "seconds": round(result.duration, 1), "log": log_path,
                            "env": {k: env[k] for k in BUILD_VARS if env.get(k)}}
    if not result.ok:
        raise FixError(f"the build in {path} failed ({result.describe_failure()}); old outputs are in "
                       f"{journal.quarantine_dir}\n{buildlog.summarize_failure(result.output, log_path)}")
    libraries = [lib for m in modules for lib in built_outputs(path, m)] or _new_libraries(path, started)
    libraries = [lib for lib in libraries if os.path.getmtime(lib) >= started - 1]
    if not libraries:
        raise FixError(f"the build in {path} succeeded but wrote no compiled module "
                       f"({', '.join(modules) or 'no *Extension(...) name found in setup.py'}); full log: {log_path}")
    journal.record({"kind": "built", "paths": libraries, "aside_dir": os.path.join(journal.path, "rebuilt")})
    info["libraries"] = libraries
    modules = modules or [module_of(path, lib) for lib in libraries]
    install = spec.get("install") or "inplace"
    if install == "environment":
        info["pth"] = _install_pth(path, modules, journal)
    calls = {m: list((spec.get("calls") or {}).get(m) or []) for m in modules}
    run_from = spec.get("run_from") or path
    proof = prove(calls, run_from, env, runner)
    info["import"] = {"ok": False, "modules": modules, "run_from": run_from, "proof": proof}
    problems = _proof_problems(proof, modules, path, install)
    archs = target_archs(env)
    info["device"] = {}
    for lib in libraries:
        report = device_report(lib, archs)
        info["device"][lib] = report
        if env.get("FORCE_CUDA") == "1" and not report["has_device_code"]:
            problems.append(f"{os.path.basename(lib)} carries no CUDA device code although the build had "
                            f"FORCE_CUDA=1 and CUDA_HOME={env.get('CUDA_HOME')}: its setup.py built a CPU-only "
                            f"module (full log: {log_path})")
        elif report["missing_archs"] and report["has_device_code"]:
            problems.append(f"{os.path.basename(lib)} has no device code for compute capability "
                            f"{', '.join(report['missing_archs'])} (it has "
                            f"{', '.join(f'sm_{a}' for a in report['sm']) or 'no cubin'})")
    info["archs"] = archs
    info["gpu_visible"] = proof.get("__gpu__")
    if problems:
        raise FixError(f"built {', '.join(modules)}, but: " + "; ".join(problems))
    info["import"]["ok"] = True
    info["runs"] = implementation_statement(modules, proof, info, spec)
    return info


def _proof_problems(proof: Dict[str, Any], modules: List[str], root: str, install: str) -> List[str]:
    if "error" in proof or "torch" in proof:
        return [proof.get("error") or f"torch does not import: {proof.get('torch')}"]
    problems = []
    real_root = os.path.realpath(root)
    for module in modules:
        got = proof.get(module) or {}
        if got.get("error"):
            problems.append(f"`import {module}` fails in a fresh interpreter: {got['error']}")
            continue
        where = os.path.realpath(str(got.get("file") or ""))
        if not where.startswith(real_root + os.sep):
            problems.append(f"`import {module}` finds {got.get('file')} first, not the library just built in "
                            f"{root} (an older install, e.g. an egg from `sh make.sh`; remove it with "
                            f"`python -m pip uninstall {module.split('.')[0]}`)")
        if got.get("missing"):
            problems.append(f"{module} ({got.get('file')}) lacks {', '.join(got['missing'])}, which its Python "
                            f"wrapper calls")
    return problems


def implementation_statement(modules: List[str], proof: Dict[str, Any], info: Dict[str, Any],
                             spec: Mapping[str, Any]) -> List[str]:
    """Which implementation the project will really run, in a sentence per module."""
    lines = []
    for module in modules:
        got = proof.get(module) or {}
        device = next((d for lib, d in info.get("device", {}).items()
                       if os.path.realpath(lib) == os.path.realpath(str(got.get("file") or ""))), None)
        kernels = ", ".join(f"sm_{a}" for a in (device or {}).get("sm", [])) or "none"
        calls = (spec.get("calls") or {}).get(module) or []
        where = "on a GPU" if info.get("gpu_visible") else "on a GPU (none is visible here)"
        lines.append(f"{module}: the compiled module runs {where} ({got.get('file')}; CUDA kernels: {kernels}"
                     + (f"; the wrapper's calls {', '.join(calls)} all exist" if calls else "") + ")")
        for fallback in (spec.get("fallbacks") or {}).get(module) or []:
            lines.append(f"{module}: {fallback['file']}:{fallback['line']} ({fallback['except']}) catches every "
                         f"failure around {fallback.get('guards')} and goes on without it, in silence (whenever "
                         f"the op fails, also on CPU tensors)")
    return lines


def rebuild_op(env: Mapping[str, str], runner, extra_args: Optional[List[str]] = None) -> Dict[str, Any]:
    """Build envdoctor's op via ``python -m envdoctor build --format json``; returns its JSON (+ ok)."""
    argv = [sys.executable, "-m", "envdoctor", "build", "--format", "json", *(extra_args or [])]
    result = runner.run(argv, timeout=BUILD_TIMEOUT, env=dict(env))
    try:
        data = json.loads(result.stdout)
        if isinstance(data, dict) and isinstance(data.get("build"), dict):
            data = data["build"]  # {"schema_version": .., "build": {...}}
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except ValueError:
        return {"ok": False, "error": f"envdoctor build gave no JSON report ({result.describe_failure()})",
                "unavailable": result.returncode == 2 or "No module named" in result.stderr}
    data.setdefault("ok", result.ok)
    return data
