"""CUDA toolkits offered as environment modules (Lmod, Environment Modules).

On HPC clusters CUDA comes as modules: ``module avail`` lists ``cuda/12.4``,
``cuda/13.0``; loading one prepends ``<root>/bin`` to PATH and often sets
CUDA_HOME. This reads what the diagnosed environment says: the directories on
``MODULEPATH``, the loaded modules (``LOADEDMODULES`` and ``_LMFILES_``, which Lmod
and Environment Modules both keep), and the modulefiles themselves, parsed as
text (``envdoctor.parsers.modulefile``), never executed. A modulefile whose toolkit
root does not exist is kept: loading it puts a missing directory first on PATH.
"""
from __future__ import annotations

import os
import re
from typing import Dict, List, Optional

from envdoctor.parsers import modulefile
from envdoctor.probes.base import ProbeContext, read_text

# Variables a CUDA modulefile sets to the toolkit root (Cray's cudatoolkit: CUDATOOLKIT_HOME).
ROOT_VARS = ("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT", "CUDA_DIR", "CUDATOOLKIT_HOME", "CUDA_INSTALL_PATH")
# Module names read: clusters keep thousands of modulefiles on network filesystems, and
# reading them all would cost every check; CUDA ones are named for it.
_CUDA_NAME = re.compile(r"cuda|nvhpc|nvidia|hpc[-_]?sdk", re.IGNORECASE)
MAX_DEPTH = 4  # Core/cuda/13.0.lua under a hierarchy's root
MAX_FILES = 400


def _split(value: Optional[str]) -> List[str]:
    return [part for part in (value or "").split(os.pathsep) if part]


def _module_files(directory: str) -> List[str]:
    """Candidate modulefiles under one MODULEPATH directory, in name order."""
    found: List[str] = []
    base_depth = directory.rstrip("/").count("/")
    for current, dirs, files in os.walk(directory):
        depth = current.rstrip("/").count("/") - base_depth
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < MAX_DEPTH else []
        for name in sorted(files):
            path = os.path.join(current, name)
            if name.startswith(".") or not _CUDA_NAME.search(os.path.relpath(path, directory)):
                continue
            found.append(path)
            if len(found) >= MAX_FILES:
                return found
    return found


def _root_of(parsed: Dict[str, object]) -> Optional[str]:
    """The toolkit root a modulefile names: a CUDA_HOME-like variable, else the
    parent of the first PATH entry that is a ``bin`` directory."""
    setenv = parsed["setenv"]
    assert isinstance(setenv, dict)
    for var in ROOT_VARS:
        if setenv.get(var, "").startswith("/"):
            return setenv[var].rstrip("/") or "/"
    prepend = parsed["prepend"]
    assert isinstance(prepend, dict)
    for entry in prepend.get("PATH", []):
        if entry.startswith("/") and entry.rstrip("/").endswith("/bin"):
            return os.path.dirname(entry.rstrip("/"))
    return None


def describe(path: str, name: str, loaded: bool) -> Optional[dict]:
    """One modulefile's CUDA offer, or None when it is not a modulefile or names no root."""
    text = read_text(path)
    if text is None:
        return None
    syntax = modulefile.syntax_of(path, text)
    if syntax is None:
        return None
    parsed = modulefile.parse(text, syntax)
    root = _root_of(parsed)
    if root is None:
        return None
    setenv = parsed["setenv"]
    assert isinstance(setenv, dict)
    sets = sorted(v for v in ROOT_VARS if v in setenv)
    bin_dirs = [p for p in parsed["prepend"].get("PATH", []) if p.rstrip("/").endswith("/bin")]  # type: ignore
    return {"name": name, "file": path, "syntax": syntax, "root": root, "root_exists": os.path.isdir(root),
            "sets": sets, "path_bins": bin_dirs, "loaded": loaded, "builds_use": _builds_use(setenv, bin_dirs)}


def _builds_use(setenv: Dict[str, str], bin_dirs: List[str]) -> Optional[str]:
    """The CUDA_HOME torch's builder takes once the module is loaded: CUDA_HOME, CUDA_PATH, else
    the toolkit of the nvcc first on the new PATH (each prepend goes to the front, so the last
    one listed wins). The HPC SDK's nvhpc module puts compilers/bin last: ``.../compilers``."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if setenv.get(var):
            return setenv[var]
    for entry in reversed(bin_dirs):
        if os.path.isfile(os.path.join(entry, "nvcc")):
            return os.path.dirname(entry.rstrip("/"))
    return None


def _name(path: str, directory: str) -> str:
    relative = os.path.relpath(path, directory)
    return relative[:-4] if relative.endswith(".lua") else relative


def scan(ctx: ProbeContext) -> dict:
    """``{"modulepath", "loaded": [{name, file}], "offered": [...]}`` for the diagnosed environment."""
    modulepath = _split(ctx.env.get("MODULEPATH"))
    names, files = _split(ctx.env.get("LOADEDMODULES")), _split(ctx.env.get("_LMFILES_"))
    loaded = [{"name": n, "file": files[i] if i < len(files) and len(files) == len(names) else None}
              for i, n in enumerate(names)]
    loaded_files = {entry["file"] for entry in loaded if entry["file"]}
    offered: List[dict] = []
    seen = set()
    for directory in modulepath:
        if not os.path.isabs(directory) or not os.path.isdir(directory):
            continue
        for path in _module_files(directory):
            if path in seen:
                continue
            seen.add(path)
            entry = describe(path, _name(path, directory), loaded=path in loaded_files)
            if entry:
                offered.append(entry)
    for entry in loaded:  # a loaded module outside MODULEPATH (``module use`` since undone)
        file = entry["file"]
        if file and file not in seen and os.path.isfile(file):
            found = describe(file, entry["name"], loaded=True)
            if found:
                offered.append(found)
    return {"modulepath": modulepath, "loaded": loaded, "offered": offered}


def module_of(names: List[str], modules: dict) -> Optional[dict]:
    """The module offering the toolkit known by ``names`` (a loaded one first), the loaded CUDA
    module a ``module swap`` would replace, and what builds use once it is loaded."""
    wanted = {os.path.realpath(n) for n in names}
    offers = [o for o in modules.get("offered") or [] if o.get("root_exists") and os.path.realpath(o["root"]) in wanted]
    if not offers:
        return None
    offer = sorted(offers, key=lambda o: not o.get("loaded"))[0]
    replaces = next((o["name"] for o in modules.get("offered") or []
                     if o.get("loaded") and o["name"] != offer["name"]), None)
    return {"name": offer["name"], "file": offer["file"], "loaded": bool(offer.get("loaded")), "replaces": replaces,
            "builds_use": offer.get("builds_use")}
