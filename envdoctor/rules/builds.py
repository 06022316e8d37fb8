"""Rules about torch extension build dirs, compiled extensions and their sources (ED6xx)."""
from __future__ import annotations

import posixpath
import shlex
from typing import Any, Dict, List, Mapping, Optional

from envdoctor.model import Fix, Severity
from envdoctor.rules._helpers import ev, fmt_mm, mm, python_mm, release_mm, torch_info
from envdoctor.rules.base import rule


def _builds(ctx, kind: str) -> List[Mapping[str, Any]]:
    return [b for b in ctx.value("builds") or [] if isinstance(b, dict) and b.get("kind") == kind]


def _differences(ctx, built: Mapping[str, Any]) -> List[str]:
    """What a build was made for that the current environment is not (torch, CUDA, Python)."""
    torch = torch_info(ctx.facts)
    diffs = []
    now_torch, then_torch = release_mm(torch.get("version")), release_mm(built.get("torch"))
    if now_torch and then_torch and now_torch != then_torch:
        diffs.append(f"torch {built.get('torch')} (now {torch.get('version')})")
    then_cuda = mm(built.get("cuda"))
    now_cuda = mm(torch.get("cuda"))
    if then_cuda and torch.get("version") and then_cuda != now_cuda:
        diffs.append(f"CUDA {fmt_mm(then_cuda)} (torch now uses {fmt_mm(now_cuda) if now_cuda else 'no CUDA'})")
    then_abi, now_abi = built.get("cxx11_abi"), torch.get("cxx11_abi")
    if isinstance(then_abi, bool) and isinstance(now_abi, bool) and then_abi != now_abi:
        diffs.append(f"the C++ ABI _GLIBCXX_USE_CXX11_ABI={int(then_abi)} (torch now uses {int(now_abi)})")
    now_py, then_py = python_mm(ctx.facts), release_mm(built.get("python"))
    if now_py and then_py and now_py != then_py:
        diffs.append(f"Python {fmt_mm(then_py)} (now {fmt_mm(now_py)})")
    return diffs


def shell_path(path: str, home: Optional[str] = None) -> str:
    """A path for a pasteable command. A home-relative one (``~/...``, as a report read back with
    ``--from`` has it, or under ``home``) becomes ``"$HOME"/...``: a quoted ``'~/...'`` never expands."""
    if home and (path == home or path.startswith(home.rstrip("/") + "/")):
        path = "~" + path[len(home.rstrip("/")):]
    if path == "~" or path.startswith("~/"):
        rest = path[2:]
        return '"$HOME"' + (f"/{shlex.quote(rest)}" if rest else "")
    return shlex.quote(path)


def _project_dir(path: str) -> str:
    """The directory holding setup.py for a build/ dir or an in-place .so. A copy setuptools left in
    ``build/lib.*/`` belongs to the project above ``build/``, not to the folder it sits in."""
    parts = path.rstrip("/").split("/")
    for index in range(len(parts) - 1, 0, -1):
        if parts[index] == "build" and index + 1 < len(parts) and parts[index + 1].startswith("lib."):
            return "/".join(parts[:index]) or "/"
    return posixpath.dirname(path.rstrip("/"))


def _in_build_lib(path: str) -> Optional[str]:
    """The ``build/`` dir when ``path`` is a copy setuptools left in ``build/lib.*/``, else None."""
    parts = path.rstrip("/").split("/")
    for index in range(len(parts) - 1, 0, -1):
        if parts[index] == "build" and index + 1 < len(parts) and parts[index + 1].startswith("lib."):
            return "/".join(parts[:index + 1])
    return None


def _rebuild_fix(build: Mapping[str, Any]) -> Fix:
    if build.get("owner") == "envdoctor":
        return Fix(summary="Rebuild envdoctor's MSDeformAttn op for this environment",
                   commands=("python -m envdoctor build",), action="rebuild_op", params={}, safe=True,
                   follow_up=True)
    project = _project_dir(str(build.get("path")))
    return Fix(summary=f"Rebuild the extension in {project} for this environment",
               commands=(f"cd {shell_path(project)} && FORCE_CUDA=1 python setup.py build_ext --inplace",),
               action="rebuild_extension", params={"path": project}, safe=True, follow_up=True)


def _quarantine_fix(paths: List[str]) -> Fix:
    # By hand: rename in place; `envdoctor fix` moves them to ~/.cache/envdoctor/quarantine/ with a manifest.
    commands = tuple(f"mv -- {shell_path(p)} {shell_path(p.rstrip('/') + '.stale')}" for p in paths)
    return Fix(summary="Move the stale build outputs aside (restorable), so they are not reused",
               commands=commands,
               action="quarantine", params={"paths": list(paths)}, safe=True)


@rule("ED601", area="builds", title="Build dirs match this torch, CUDA and Python", needs=("builds",),
      fixable=True, reads=("env.python", "torch"))
def stale_build_dirs(ctx):
    """A torch extension ``build/`` directory was made for another torch, CUDA or Python.

    setuptools and ninja reuse object files whose sources did not change: a
    ``build/`` left from an older environment is linked into the new extension,
    which then fails to import ("undefined symbol") or crashes. The dir's
    ``build.ninja`` records the nvcc, CUDA home, torch include paths and Python
    it was made with.

    Fix: move the build dir aside (envdoctor quarantines it, restorable) and
    rebuild.
    """
    if not _builds(ctx, "build_dir"):
        return ctx.not_applicable("no torch extension build dirs under the scanned paths")
    findings = []
    for build in _builds(ctx, "build_dir"):
        built = build.get("built_with") or {}
        diffs = _differences(ctx, built)
        if not diffs:
            continue
        path = str(build.get("path"))
        findings.append(ctx.finding(
            Severity.WARNING,
            f"{path} ({build.get('name') or build.get('owner')}) was built for {', '.join(diffs)}. The next build "
            f"reuses its objects; expected a build dir made with this environment.",
            evidence=(ev("builds[].path", path), ev("builds[].built_with", built)),
            fixes=[_quarantine_fix([path]), _rebuild_fix(build)]))
    return findings


@rule("ED602", area="builds", title="Compiled extensions import", needs=("builds",), fixable=True,
      reads=("env.python", "torch"))
def extension_does_not_import(ctx):
    """A compiled extension (``.so``) no longer imports in this environment.

    Extensions are bound to the exact torch, CUDA and C++ ABI they were built
    against. After upgrading torch, an old ``MultiScaleDeformableAttention*.so``
    or ``detectron2/_C*.so`` fails with "undefined symbol: _ZN3c10..." or
    "libcudart.so.11.0: cannot open shared object file".

    Fix: quarantine the ``.so`` (and its build dir) and rebuild it.
    """
    if not _builds(ctx, "extension"):
        return ctx.not_applicable("no compiled extensions under the scanned paths")
    findings = []
    for ext in _builds(ctx, "extension"):
        if ext.get("imports") is not False:
            continue
        path = str(ext.get("path"))
        error = (str(ext.get("import_error") or "unknown error").strip().splitlines() or ["unknown error"])[-1]
        diffs = _differences(ctx, ext.get("built_with") or {})
        why = f" It was built for {', '.join(diffs)}." if diffs else ""
        leftover = _in_build_lib(path)
        if leftover:  # setuptools' staging copy: nothing imports it from there; its build/ is stale
            findings.append(ctx.finding(
                Severity.WARNING, f"{path} is a leftover copy in {leftover} that fails to import: {error!r}.{why} "
                                  f"Nothing imports it from there, but the next build reuses {leftover}. Expected "
                                  f"a build dir made with this environment.",
                evidence=(ev("builds[].path", path), ev("builds[].import_error", error)),
                fixes=[_quarantine_fix([leftover]), _rebuild_fix(ext)]))
            continue
        findings.append(ctx.finding(
            Severity.ERROR, f"{path} fails to import: {error!r}.{why} Expected it to import with torch "
                            f"{torch_info(ctx.facts).get('version')}.",
            evidence=(ev("builds[].path", path), ev("builds[].import_error", error)),
            fixes=[_quarantine_fix([path]), _rebuild_fix(ext)]))
    return findings


@rule("ED603", area="builds", title="Compiled extensions match torch's CUDA", needs=("builds", "torch"),
      fixable=True, reads=("env.python",))
def extension_built_for_other_cuda(ctx):
    """A compiled extension imports, but was built for another CUDA or torch than the current one.

    An extension built with CUDA 10.2 next to a cu118 torch may import (when
    its runtime is still around) and then fail at the first kernel launch, or
    silently use a second CUDA runtime. One that does not import is ED602.

    Fix: quarantine it and rebuild with the toolkit that matches torch.
    """
    if not _builds(ctx, "extension"):
        return ctx.not_applicable("no compiled extensions under the scanned paths")
    findings = []
    for ext in _builds(ctx, "extension"):
        if ext.get("imports") is False:
            continue  # ED602 reports it
        diffs = [d for d in _differences(ctx, ext.get("built_with") or {}) if not d.startswith("Python")]
        if not diffs:
            continue
        path = str(ext.get("path"))
        findings.append(ctx.finding(
            Severity.WARNING, f"{path} was built for {', '.join(diffs)}. Expected an extension built for the "
                              f"current torch and its CUDA.",
            evidence=(ev("builds[].path", path), ev("builds[].built_with", ext.get("built_with"))),
            fixes=[_quarantine_fix([path]), _rebuild_fix(ext)]))
    return findings


def _by_file(uses: List[Mapping[str, Any]]) -> Dict[str, List[Mapping[str, Any]]]:
    grouped: Dict[str, List[Mapping[str, Any]]] = {}
    for use in uses:
        grouped.setdefault(str(use.get("file")), []).append(use)
    return grouped


# THC was removed from torch in 1.11: sources including it no longer compile.
_THC_REMOVED_IN = (1, 11)


def _removed(api: str, torch_version: Optional[str]) -> bool:
    version = release_mm(torch_version)
    return bool(version) and version >= _THC_REMOVED_IN and ("THC" in api or "AT_CHECK" in api)


@rule("ED604", area="builds", title="Extension sources use current torch C++ APIs", needs=("ext_sources",),
      fixable=True, reads=("torch",))
def deprecated_torch_apis(ctx):
    """Extension sources use torch C++ APIs that were deprecated or removed.

    Deformable-DETR-era ops (Mask2Former's MSDeformAttn) use ``x.type()`` in
    ``AT_DISPATCH_*``, ``.data<T>()``, ``AT_CHECK`` and ``THC/THC.h``. THC was
    removed in torch 1.11 ("THC/THC.h: No such file or directory") and
    ``AT_CHECK`` before that; the others warn on every build and are on their
    way out.

    Fix: envdoctor rewrites them (``.scalar_type()``, ``.data_ptr<T>()``,
    ``TORCH_CHECK``, ATen CUDA headers) showing a diff first and keeping a
    backup.
    """
    uses = [u for u in ctx.value("ext_sources") or [] if isinstance(u, dict)]
    if not uses:
        return None
    torch_version = torch_info(ctx.facts).get("version")
    fatal = [u for u in uses if _removed(str(u.get("api")), torch_version)]
    grouped = _by_file(uses)
    lines = [f"{posixpath.basename(f)}:{u.get('line')} {u.get('api')}" for f, items in grouped.items()
             for u in items[:3]]
    more = len(uses) - len(lines)
    tail = f" and {more} more" if more > 0 else ""
    severity = Severity.ERROR if fatal else Severity.WARNING
    consequence = (f"{len(fatal)} of them no longer compile with torch {torch_version}" if fatal
                   else "they are deprecated")
    return ctx.finding(
        severity,
        f"{len(uses)} use(s) of old torch C++ APIs in {len(grouped)} file(s) ({'; '.join(lines)}{tail}): "
        f"{consequence}. Expected current APIs (scalar_type(), data_ptr<T>(), TORCH_CHECK, ATen CUDA headers).",
        evidence=tuple(ev("ext_sources[]", f"{u.get('file')}:{u.get('line')} {u.get('api')}") for u in uses[:10]),
        fixes=[Fix(summary="Rewrite the deprecated APIs (diff shown first, backups kept)",
                   commands=("envdoctor fix --only ED604",), action="patch_sources",
                   params={"files": sorted(grouped)}, safe=True)])


def _projects(ctx) -> List[Mapping[str, Any]]:
    return [p for p in ctx.value("ext_projects") or [] if isinstance(p, dict) and p.get("kind") == "setup"]


@rule("ED605", area="builds", title="The project's own extensions are built", needs=("ext_projects", "builds"),
      fixable=True)
def project_extension_not_built(ctx):
    """The project has a torch extension (``setup.py`` with ``CUDAExtension``) whose module is not built.

    Mask2Former, Deformable-DETR and many research repositories ship their
    CUDA ops as sources to build (``cd .../ops && sh make.sh``). Until that
    step succeeds, importing the model fails, or, where the wrapper catches
    the failure, a slow pure-PyTorch path runs instead.

    Fix: ``envdoctor fix`` ports the sources when needed, builds the module with
    the repaired environment, installs it the way the project expects and
    proves it (import, the functions its wrapper calls, CUDA device code).
    """
    projects = _projects(ctx)
    if not projects:
        return ctx.not_applicable("no torch extension sources under the scanned paths")
    built = {str(b.get("name")) for b in ctx.value("builds") or [] if isinstance(b, dict)
             and b.get("kind") == "extension" and b.get("imports") is not False}
    findings = []
    for project in projects:
        outputs = project.get("outputs") or {}
        missing = [m for m in project.get("modules") or []
                   if not outputs.get(m) and str(m).rsplit(".", 1)[-1] not in built]
        if not missing:
            continue
        root = str(project.get("root"))
        how = (f"its {posixpath.basename(str(project['make_sh']))} " if project.get("make_sh") else "") + \
            ("installs it into the environment" if project.get("install") == "environment" else "builds it in place")
        findings.append(ctx.finding(
            Severity.WARNING,
            f"{', '.join(missing)} from {root} is not built here ({how}). Expected the project's compiled op to be "
            f"built for this torch before the model runs.",
            evidence=(ev("ext_projects[].root", root), ev("ext_projects[].modules", missing)),
            fixes=[Fix(summary=f"Port, build, install and prove {', '.join(missing)}",
                       commands=(f"envdoctor fix --rebuild {shell_path(root)}",), action="rebuild_extension",
                       params={"path": root}, safe=True)]))
    return findings


@rule("ED606", area="builds", title="Wrappers do not hide a failing compiled op", needs=("ext_projects",))
def silent_fallback(ctx):
    """The project's Python code catches every failure of its compiled op and runs something else.

    Mask2Former's ``MSDeformAttn.forward`` calls the compiled op inside
    ``try: ... except:`` and runs the pure-PyTorch reference on any error: a
    module that was never built, one without the functions it calls, a
    CPU-only build on a GPU, even a CUDA out-of-memory. Training then runs,
    slower and with more memory, and nothing says why.

    Fix: prove the op (``envdoctor fix`` imports it, checks the functions the
    wrapper calls and its CUDA device code), and narrow the handler or make it
    warn.
    """
    projects = _projects(ctx)
    if not projects:
        return ctx.not_applicable("no torch extension sources under the scanned paths")
    findings, seen = [], set()
    for project in projects:
        for module, uses in (project.get("uses") or {}).items():
            for fallback in (uses or {}).get("fallbacks") or []:
                key = (fallback.get("file"), fallback.get("line"))
                if key in seen:
                    continue
                seen.add(key)
                where = f"{fallback.get('file')}:{fallback.get('line')}"
                findings.append(ctx.finding(
                    Severity.WARNING,
                    f"{where} ({fallback.get('except')}) catches every failure around {fallback.get('guards')} and "
                    f"runs another implementation in silence: a missing or broken {module} goes unnoticed. "
                    f"Expected the compiled op proven to work, or a handler that says it fell back.",
                    evidence=(ev("ext_projects[].uses.fallbacks", where),),
                    fixes=[Fix(summary=f"Make the handler at {where} catch only what it expects, or warn "
                                       f"(warnings.warn) before falling back; `envdoctor fix` proves {module} itself",
                               commands=(f'"${{EDITOR:-vi}}" +{fallback.get("line")} '
                                         f'{shell_path(str(fallback.get("file")))}',), action=None, safe=True)]))
    return findings


@rule("ED607", area="builds", title="Compiled modules have the functions their wrappers call",
      needs=("ext_projects", "builds"), fixable=True)
def module_lacks_called_functions(ctx):
    """A compiled module imports, but lacks functions the project's Python wrapper calls on it.

    A module built from other sources than the wrapper expects (an older
    fork, a half-finished port, a stub left by an egg install) imports fine
    and then fails at the first call with ``AttributeError: module
    'MultiScaleDeformableAttention' has no attribute 'ms_deform_attn_forward'``
    or, behind a catch-all ``except:``, silently runs the fallback.

    Fix: rebuild it from the project's own sources (``envdoctor fix`` proves
    the functions are there).
    """
    projects = _projects(ctx)
    if not projects:
        return ctx.not_applicable("no torch extension sources under the scanned paths")
    modules: Dict[str, List[str]] = {}
    roots: Dict[str, str] = {}
    for project in projects:
        for module, uses in (project.get("uses") or {}).items():
            calls = list((uses or {}).get("calls") or [])
            if calls:
                modules[str(module).rsplit(".", 1)[-1]] = calls
                roots[str(module).rsplit(".", 1)[-1]] = str(project.get("root"))
    findings = []
    for ext in _builds(ctx, "extension"):
        name, defines = str(ext.get("name")), ext.get("defines")
        if name not in modules or not isinstance(defines, list) or ext.get("imports") is not True:
            continue
        missing = [c for c in modules[name] if c not in defines]
        if not missing:
            continue
        path = str(ext.get("path"))
        findings.append(ctx.finding(
            Severity.ERROR,
            f"{path} imports but lacks {', '.join(missing)}, which the project's wrapper calls on {name}. Expected "
            f"a module built from the project's own sources in {roots[name]}.",
            evidence=(ev("builds[].path", path), ev("builds[].defines", defines[:20])),
            fixes=[Fix(summary=f"Rebuild {name} from {roots[name]} and prove it",
                       commands=(f"envdoctor fix --rebuild {shell_path(roots[name])}",), action="rebuild_extension",
                       params={"path": roots[name]}, safe=True)]))
    return findings
