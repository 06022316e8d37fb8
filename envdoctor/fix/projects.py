"""The user's own extensions in the plan: port, rebuild, install and prove each one that needs it.

The builds probe finds the extension source trees (``ext_projects`` fact:
setup.py with ``CUDAExtension``/``CppExtension``, make.sh wrappers, JIT
``load()`` calls); detectron2 installed from a source checkout is added here
from the ``detectron2`` fact. For each tree that needs it (old APIs in its
sources, no built module, a module without CUDA device code next to a CUDA
torch, or a finding naming it) the plan gets the porting steps for its
sources (each a diff, each confirmed) and one rebuild step that carries what
the proof needs: the module names, how the project imports them, where it
runs from and the functions its wrappers call.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from envdoctor.fix import sources
from envdoctor.fix.fsops import read_optional, sha256
from envdoctor.fix.plan import Options, Step
from envdoctor.model import Report
from envdoctor.probes import _ext_device, _ext_projects
from envdoctor.rules.builds import shell_path

PatchSteps = Callable[[Sequence[str], Tuple[str, ...]], List[Step]]


def _is_checkout(path: str) -> bool:
    return bool(path) and "site-packages" not in path and "dist-packages" not in path


def detectron2_root(report: Report) -> Optional[str]:
    """The source checkout detectron2 is installed from (``pip install -e``), if any."""
    d2 = report.facts.value("detectron2") or {}
    package = str(d2.get("path") or "").rstrip("/") if isinstance(d2, dict) else ""
    if not _is_checkout(package):
        return None
    root = os.path.dirname(package)
    return root if os.path.isfile(os.path.join(root, "setup.py")) else None


def extension_projects(report: Report) -> List[Dict[str, Any]]:
    """Every extension source tree the report knows, detectron2's checkout included."""
    found = [p for p in report.facts.value("ext_projects", []) or [] if isinstance(p, dict)]
    root = detectron2_root(report)
    if root and os.path.realpath(root) not in {os.path.realpath(str(p.get("root"))) for p in found}:
        found.extend(_ext_projects.describe([], extra_roots=[(root, "detectron2 is installed from this checkout")]))
    return found


def describe_path(path: str, report: Report) -> Dict[str, Any]:
    """The project record for an explicit ``--rebuild PATH`` (from the report when it has one)."""
    real = os.path.realpath(path)
    for project in extension_projects(report):
        if os.path.realpath(str(project.get("root"))) == real and project.get("kind") == "setup":
            return project
    for project in _ext_projects.describe([path]):
        if os.path.realpath(str(project.get("root"))) == real and project.get("kind") == "setup":
            return project
    return {"root": path, "kind": "setup", "modules": [], "install": "inplace", "project": path, "uses": {},
            "outputs": {}}


def spec_of(project: Mapping[str, Any]) -> Dict[str, Any]:
    """What the rebuild executor needs: modules, install mode, where the project runs, calls, fallbacks."""
    uses = project.get("uses") or {}
    install = project.get("install") or "inplace"
    run_from = str(project.get("project") or project.get("root")) if install == "environment" else \
        str(project.get("root"))
    return {"modules": list(project.get("modules") or []), "install": install, "run_from": run_from,
            "calls": {m: list((u or {}).get("calls") or []) for m, u in uses.items()},
            "fallbacks": {m: list((u or {}).get("fallbacks") or []) for m, u in uses.items()},
            "make_sh": project.get("make_sh")}


def _display_path(path: str, env: Mapping[str, str]) -> str:
    """A path for a pasteable command: ``"$HOME"/...`` under the home directory (never a quoted ``~``)."""
    return shell_path(path, env.get("HOME") or None)


def rebuild_step(project: Mapping[str, Any], codes: Tuple[str, ...], env: Mapping[str, str],
                 reason: str = "") -> Step:
    root = os.path.abspath(str(project.get("root")))
    spec = spec_of(project)
    how = {"environment": "install it into the environment", "inplace": "build it in place"}.get(spec["install"],
                                                                                                  "build it")
    names = ", ".join(spec["modules"]) or "the extension"
    description = f"clean, rebuild, {how} and prove {names} in {root}" + (f" ({reason})" if reason else "")
    command = f"cd {_display_path(root, env)} && FORCE_CUDA=1 python setup.py build_ext --inplace"
    step = Step("rebuild_extension", description, {"path": root, "spec": spec}, codes=codes, commands=(command,))
    if not os.path.isfile(os.path.join(root, "setup.py")):
        step.blocked = f"{root} has no setup.py; envdoctor rebuilds setuptools-based torch extensions only"
    return step


def _torch_has_cuda(report: Report) -> bool:
    torch = report.facts.value("torch") or {}
    return isinstance(torch, dict) and bool(torch.get("cuda"))


def why_rebuild(project: Mapping[str, Any], report: Report) -> Optional[str]:
    """Why this project's extension must be (re)built, or None when it is in order."""
    if project.get("kind") != "setup":
        return None
    root = str(project.get("root"))
    if any(True for _ in _needs_port(root)):
        return "its sources use torch C++ APIs this torch no longer compiles"
    if setup_step(root, report):
        return "its setup.py builds the CUDA op only where torch sees a GPU"
    outputs = project.get("outputs") or {}
    installed = {os.path.basename(str(b.get("path"))).split(".")[0] for b in report.facts.value("builds", []) or []
                 if isinstance(b, dict) and b.get("installed") and b.get("imports") is not False}
    for module in project.get("modules") or []:
        libraries = outputs.get(module) or []
        if not libraries and module.rsplit(".", 1)[-1] not in installed:
            return f"{module} is not built"
        for library in libraries:
            code = _ext_device.device_code(library) if _torch_has_cuda(report) else {"sm": [0]}
            if not (code["sm"] or code.get("ptx")):
                return f"{os.path.basename(library)} has no CUDA kernels"
    return None


def _owner_root(name: str, root: str) -> str:
    """The nearest directory above ``name`` (up to ``root``) with its own setup.py."""
    directory = os.path.dirname(name)
    while directory.startswith(root) and directory != root:
        if os.path.isfile(os.path.join(directory, "setup.py")):
            return directory
        directory = os.path.dirname(directory)
    return root


def _needs_port(root: str):
    """Sources of this extension (not of another one nested in it) that use old torch APIs."""
    root = os.path.abspath(root)
    for name in sources.iter_source_files(root):
        if _owner_root(name, root) != root:
            continue
        try:
            if sources.scan_file(name):
                yield name
        except OSError:
            continue


def _no_gpu(report: Report) -> bool:
    torch = report.facts.value("torch") or {}
    return isinstance(torch, dict) and torch.get("cuda_available") is False


def setup_step(root: str, report: Report) -> List[Step]:
    """Without a visible GPU, a setup.py that builds its CUDA op only when torch sees one gets the
    FORCE_CUDA=1 escape hatch (a diff, confirmed like every patch)."""
    path = os.path.join(root, "setup.py")
    old = read_optional(path) if _no_gpu(report) else None
    if old is None:
        return []
    new = sources.patch_setup_bytes(old)
    if new == old:
        return []
    return [Step("patch", f"let {path} build the CUDA op without a visible GPU when FORCE_CUDA=1",
                 {"path": path, "old_sha": sha256(old), "new": new}, diff=sources.unified_diff(path, old, new))]


def _port_steps(root: str, report: Report, patch_steps: PatchSteps) -> List[Step]:
    return patch_steps(list(_needs_port(root)), ()) + setup_step(root, report)


def plan_steps(report: Report, options: Options, patch_steps: PatchSteps) -> List[Step]:
    """Port + rebuild steps for ``--rebuild PATH`` and, with no selector, every project that needs it."""
    steps: List[Step] = []
    for path in options.rebuild_paths:
        project = describe_path(os.path.abspath(path), report)
        steps.extend(_port_steps(os.path.abspath(path), report, patch_steps))
        steps.append(rebuild_step(project, (), options.env))
    if not options.everything:
        return steps
    for project in extension_projects(report):
        reason = why_rebuild(project, report)
        if reason is None:
            continue
        steps.extend(_port_steps(os.path.abspath(str(project.get("root"))), report, patch_steps))
        steps.append(rebuild_step(project, (), options.env, reason))
    return steps


def finding_rebuild_step(path: str, codes: Tuple[str, ...], report: Report, env: Mapping[str, str]) -> Step:
    """The rebuild a finding asks for (ED601-603, ED701-705), with the project's spec attached."""
    return rebuild_step(describe_path(os.path.abspath(path), report), codes, env)
