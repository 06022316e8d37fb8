"""Rebuild torch extensions with the repaired environment, then prove they import.

Two targets:

* envdoctor's own MSDeformAttn op, through ``python -m envdoctor build``;
* a user's extension directory with a ``setup.py`` (Mask2Former's
  ``mask2former/modeling/pixel_decoder/ops``, Deformable DETR's ``models/ops``):
  old outputs quarantined, ``setup.py build_ext --inplace`` (it does not touch
  site-packages, unlike ``make.sh``'s ``build install``), then an import in a
  fresh interpreter.

On a machine where no GPU is visible torch's builder cannot pick the
architectures itself and Deformable-DETR-style ``setup.py`` files refuse to
build without ``torch.cuda.is_available()``; :func:`build_env` sets
``TORCH_CUDA_ARCH_LIST`` and ``FORCE_CUDA=1`` for exactly that case.
"""
from __future__ import annotations

import glob
import json
import os
import sys
from typing import Any, Dict, List, Mapping, Optional

from envdoctor.fix.fsops import FixError
from envdoctor.fix.journal import Journal
from envdoctor.fix.quarantine import quarantine, why_not_build_output

BUILD_TIMEOUT = 3600.0
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
    """Parallel compile jobs that fit in memory: each nvcc/cc1plus job can take ~2 GiB."""
    try:
        import psutil

        by_memory = int(psutil.virtual_memory().available // (2 * 1024 ** 3))
    except (ImportError, OSError):
        by_memory = 1
    return str(max(1, min(os.cpu_count() or 1, by_memory)))


def build_env(env: Mapping[str, str], runner, gpu_visible: Optional[bool] = None) -> Dict[str, str]:
    """``env`` plus what an extension build needs here; values already set are kept."""
    result = dict(env)
    if _has_nvcc(result.get("CUDA_HOME")) and not gpu_visible:
        if not result.get("TORCH_CUDA_ARCH_LIST"):
            archs = default_arch_list(runner, result)
            if archs:
                result["TORCH_CUDA_ARCH_LIST"] = archs
        result.setdefault("FORCE_CUDA", "1")
    result.setdefault("MAX_JOBS", default_max_jobs(result))
    return result


def build_outputs(path: str) -> List[str]:
    """What a previous build left in an extension dir: build/ and compiled *.so at its top."""
    found = []
    build = os.path.join(path, "build")
    if os.path.lexists(build) and why_not_build_output(build) is None:
        found.append(build)
    for so in sorted(glob.glob(os.path.join(path, "*.so"))):
        if why_not_build_output(so) is None:
            found.append(so)
    return found


def _module_names(path: str) -> List[str]:
    names = []
    for so in sorted(glob.glob(os.path.join(path, "*.so"))):
        name = os.path.basename(so).split(".")[0]
        if name and name not in names:
            names.append(name)
    return names


def import_test(path: str, modules: List[str], env: Mapping[str, str], runner) -> Dict[str, Any]:
    """Import each built module in a fresh interpreter (torch first: the .so links its libraries)."""
    code = ("import importlib, sys\nsys.path.insert(0, sys.argv[1])\nimport torch\n"
            "for name in sys.argv[2:]:\n    print(importlib.import_module(name).__file__)\n")
    result = runner.run([sys.executable, "-c", code, path, *modules], timeout=IMPORT_TIMEOUT, env=dict(env),
                        cwd=path)
    return {"ok": result.ok, "modules": modules, "output": result.output[-2000:],
            "error": None if result.ok else result.describe_failure()}


def rebuild_extension(path: str, env: Mapping[str, str], runner, journal: Journal) -> Dict[str, Any]:
    """Quarantine old outputs, build in place, import-test. Raises FixError on failure."""
    if not os.path.isfile(os.path.join(path, "setup.py")):
        raise FixError(f"{path} has no setup.py")
    moved = []
    for index, output in enumerate(build_outputs(path)):
        dest = quarantine(output, journal.quarantine_dir, len(journal.entries) + index)
        journal.record({"kind": "quarantine", "src": output, "dest": dest})
        moved.append(output)
    result = runner.run([sys.executable, "setup.py", "build_ext", "--inplace"], timeout=BUILD_TIMEOUT,
                        env=dict(env), cwd=path)
    info: Dict[str, Any] = {"quarantined": moved, "seconds": round(result.duration, 1),
                            "log_tail": result.output[-4000:]}
    if not result.ok:
        raise FixError(f"the build in {path} failed ({result.describe_failure()}); "
                       f"old outputs are in {journal.quarantine_dir}; last lines:\n{_tail(result.output)}")
    modules = _module_names(path)
    if not modules:
        raise FixError(f"the build in {path} succeeded but left no *.so next to setup.py")
    info["import"] = import_test(path, modules, env, runner)
    if not info["import"]["ok"]:
        raise FixError(f"built {', '.join(modules)} but importing it failed: {info['import']['error']}")
    return info


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


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
