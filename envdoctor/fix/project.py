"""The facts of the machine as a fix plan would leave it.

A plan is judged by running the same rules on the facts it would produce: the
variables it sets or unsets, the directories it puts first on PATH (which
change the nvcc torch finds, hence the CUDA_HOME it guesses), and the torch
build a pip step installs. Nothing here touches the system: the projection is
computed from the facts alone, so a plan for a saved report is judged the same
way as a plan for this machine.
"""
from __future__ import annotations

import posixpath
from typing import Any, Dict, List, Optional, Tuple

from envdoctor import knowledge as kb
from envdoctor.fix.settings import EnvSettings, apply_to_env
from envdoctor.model import Fact, FactSet
from envdoctor.rules._build_model import LIB_HEADERS
from envdoctor.rules._helpers import cuda_home_guess, find_toolkit, norm_path, toolkits

SOURCE = "as the fix plan would leave it"
# Compiler variables whose resolution follows the planned values.
_COMPILER_VARS = ("CC", "CXX", "NVCC_CCBIN")


def _nvcc_on_path(facts: FactSet, prepended: List[str]) -> Optional[Dict[str, Any]]:
    """The toolkit whose bin/ a prepended directory is, if it has an nvcc."""
    for directory in prepended:
        toolkit = find_toolkit(directory, toolkits(facts))
        if toolkit and toolkit.get("has_nvcc") and norm_path(directory).endswith("/bin"):
            return {"path": posixpath.join(norm_path(directory), "nvcc"), "toolkit": toolkit}
    return None


def _named_compilers(facts: FactSet, variables: Dict[str, str]) -> List[Dict[str, Any]]:
    known = facts.value("compiler.named") or []
    named = []
    for var in _COMPILER_VARS:
        value = variables.get(var)
        if not value:
            continue
        previous = next((n for n in known if n.get("var") == var and n.get("value") == value), None)
        if previous is not None:
            named.append(previous)
            continue
        match = next((c for c in facts.value("compiler.all") or [] if value in (c.get("name"), c.get("path"))), None)
        named.append({"var": var, "value": value, "name": value, "path": (match or {}).get("path"),
                      "version": (match or {}).get("version")})
    named += [n for n in known if n.get("var") not in _COMPILER_VARS]
    return named


def _torch_after_install(torch: Dict[str, Any], build: Tuple[str, str]) -> Dict[str, Any]:
    release, cuda = build
    tag = "cu" + cuda.replace(".", "")
    projected = dict(torch, version=f"{release}+{tag}", cuda=cuda)
    projected["arch_list"] = list(kb.torch_arch_list(release, cuda) or [])
    return projected


def _torchvision_after_install(facts: FactSet, argv: List[str], cuda: str) -> Optional[Dict[str, Any]]:
    """The torchvision a pip command pins next to torch (``'torchvision==0.22.*'``), if any."""
    for arg in argv:
        name, _, spec = arg.strip("'\"").partition("==")
        if name == "torchvision" and spec:
            version = spec.replace(".*", ".0")
            return {"version": f"{version}+cu{cuda.replace('.', '')}", "cuda": cuda, "import_error": None}
    return None


def project(facts: FactSet, settings: EnvSettings, torch_build: Optional[Tuple[str, str]] = None,
            pip_argv: Optional[List[str]] = None) -> FactSet:
    """``facts`` as they would be after ``settings`` are in effect and ``torch_build``
    (release, CUDA) is installed."""
    projected = FactSet(list(facts))
    old_vars = dict(facts.value("env.vars") or {})
    variables = {k: v for k, v in apply_to_env(settings, old_vars).items()
                 if k in old_vars or k in settings.vars}
    projected.add(Fact("env.vars", variables, source=SOURCE))
    if settings.path_prepend:
        projected.add(Fact("env.path", list(settings.path_prepend) + list(facts.value("env.path") or []),
                           source=SOURCE))
        nvcc = _nvcc_on_path(facts, settings.path_prepend)
        if nvcc:
            toolkit = nvcc["toolkit"]
            projected.add(Fact("nvcc.path", nvcc["path"], source=SOURCE))
            projected.add(Fact("nvcc.real_path", toolkit.get("nvcc_real") or nvcc["path"], source=SOURCE))
            projected.add(Fact("nvcc.toolkit", toolkit.get("real_root"), source=SOURCE))
            projected.add(Fact("nvcc.version", toolkit.get("version"), source=SOURCE))
    if settings.ld_library_path_prepend or settings.dropped_entries:
        env = apply_to_env(settings, {"LD_LIBRARY_PATH": ":".join(facts.value("env.ld_library_path") or [])})
        projected.add(Fact("env.ld_library_path", [e for e in env.get("LD_LIBRARY_PATH", "").split(":") if e],
                           source=SOURCE))
    projected.add(Fact("compiler.named", _named_compilers(facts, variables), source=SOURCE))
    torch = dict(facts.value("torch") or {})
    if torch_build:
        torch = _torch_after_install(torch, torch_build)
        vision = _torchvision_after_install(facts, list(pip_argv or []), torch_build[1])
        if vision:
            projected.add(Fact("torchvision", vision, source=SOURCE))
    if torch:
        home, how = cuda_home_guess(variables, projected.value("nvcc.path"), toolkits(facts))
        torch["cpp_ext_cuda_home"], torch["cpp_ext_cuda_home_source"] = home, how
        projected.add(Fact("torch", torch, source=SOURCE))
    cpath = settings.vars.get("CPATH")
    if cpath:
        headers = dict(facts.value("cuda.system_headers") or {})
        provider = next((t for t in toolkits(facts) if norm_path(t.get("include_dir")) == norm_path(cpath)), None)
        # The HPC SDK's math_libs include dir holds every header its toolkit lacks.
        math = next((t for t in toolkits(facts) if norm_path(t.get("lib_include_dir")) == norm_path(cpath)), None)
        for header in LIB_HEADERS:
            if (provider is not None and header not in (provider.get("missing_headers") or [])) or math is not None:
                headers[header] = cpath
        projected.add(Fact("cuda.system_headers", headers, source=SOURCE))
    return projected
