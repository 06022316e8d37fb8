"""Rules about detectron2 (and the Mask2Former stack on top of it) (ED7xx)."""
from __future__ import annotations

import posixpath
import shlex
from typing import Any, List, Mapping

from envdoctor import knowledge as kb
from envdoctor.model import Fix, Severity
from envdoctor.rules._helpers import (cc_text, env_vars, ev, fmt_mm, gpu_capabilities, matching_toolkits, mm,
                                      python_mm, release_mm, set_env_fix, toolkits, torch_info)
from envdoctor.rules import _build_model as model
from envdoctor.rules.base import rule
from envdoctor.rules.builds import shell_path

_GIT_URL = "git+https://github.com/facebookresearch/detectron2.git"


def _is_checkout(path: str) -> bool:
    """A source checkout (pip install -e / setup.py develop) rather than an installed wheel."""
    return bool(path) and "site-packages" not in path and "dist-packages" not in path


def _rebuild_fixes(detectron2: Mapping[str, Any]) -> List[Fix]:
    """detectron2 has had no prebuilt wheels since v0.6: it is always rebuilt from source."""
    package = str(detectron2.get("path") or "").rstrip("/")
    fixes = []
    if _is_checkout(package):
        repo = posixpath.dirname(package)
        fixes.append(Fix(summary=f"Rebuild detectron2 in {repo} (old objects removed first, as its INSTALL.md says)",
                         commands=(f"cd {shell_path(repo)} && rm -rf build/ **/*.so && "
                                   f"python -m pip install --no-build-isolation -e .",),
                         action="rebuild_extension", params={"path": repo}, safe=True))
    argv = ["pip", "install", "--no-build-isolation", "--force-reinstall", "--no-deps", _GIT_URL]
    fixes.append(Fix(summary="Reinstall detectron2 from source against the current torch",
                     commands=("python -m " + " ".join(shlex.quote(a) for a in argv),),
                     action="pip_install", params={"argv": argv}, safe=False))
    return fixes


@rule("ED701", area="detectron2", title="detectron2 imports", needs=("detectron2",), fixable=True, reads=("torch",))
def detectron2_does_not_import(ctx):
    """detectron2 is installed but ``detectron2._C`` (its compiled ops) does not import.

    detectron2 compiles its C++/CUDA ops at install time against the torch and
    CUDA of that moment. After torch changes, importing it fails with
    "undefined symbol" or "libcudart.so.XX: cannot open shared object file";
    a build without CUDA gives "Not compiled with GPU support".

    Fix: rebuild detectron2 from source against the current torch (old
    ``build/`` and ``*.so`` removed first).
    """
    detectron2 = ctx.value("detectron2") or {}
    if not detectron2.get("version"):
        return ctx.not_applicable("detectron2 is not installed")
    if detectron2.get("imports") is not False:
        return None
    error = (str(detectron2.get("import_error") or "unknown error").strip().splitlines() or ["unknown error"])[-1]
    return ctx.finding(
        Severity.ERROR,
        f"detectron2 {detectron2.get('version')} ({detectron2.get('path')}) fails to import: {error!r}. Expected its "
        f"compiled ops to load with torch {torch_info(ctx.facts).get('version')}.",
        evidence=(ev("detectron2.version", detectron2.get("version")), ev("detectron2.import_error", error)),
        fixes=_rebuild_fixes(detectron2))


@rule("ED702", area="detectron2", title="detectron2 was built for this torch and CUDA",
      needs=("detectron2", "torch"), fixable=True)
def detectron2_built_for_other_stack(ctx):
    """detectron2's compiled ops were built against another CUDA or torch than the current one.

    ``detectron2._C`` records the CUDA it was compiled with. A different CUDA
    major than torch's, or a different torch release, leads to "undefined
    symbol" errors, "CUDA error: no kernel image is available" in ROIAlign, or
    crashes; a different CUDA minor usually works but is worth knowing.

    Fix: rebuild detectron2 from source against the current torch.
    """
    detectron2, torch = ctx.value("detectron2") or {}, torch_info(ctx.facts)
    if not detectron2.get("version"):
        return ctx.not_applicable("detectron2 is not installed")
    if detectron2.get("imports") is False:
        return None  # ED701 reports a detectron2 that does not import
    problems, severity = [], Severity.WARNING
    built_cuda, torch_cuda = mm(detectron2.get("cuda")), mm(torch.get("cuda"))
    if built_cuda and torch_cuda and built_cuda != torch_cuda:
        problems.append(f"its ops were built with CUDA {fmt_mm(built_cuda)}, torch uses CUDA {fmt_mm(torch_cuda)}")
        if built_cuda[0] != torch_cuda[0]:
            severity = Severity.ERROR
    elif built_cuda and torch.get("version") and not torch_cuda:
        problems.append(f"its ops were built with CUDA {fmt_mm(built_cuda)}, torch is a CPU-only build")
    built_torch, now_torch = release_mm(detectron2.get("torch_built")), release_mm(torch.get("version"))
    if built_torch and now_torch and built_torch != now_torch:
        problems.append(f"it was built against torch {detectron2.get('torch_built')}, torch is now "
                        f"{torch.get('version')}")
        severity = Severity.ERROR
    if not problems:
        return None
    return ctx.finding(
        severity, f"detectron2 {detectron2.get('version')}: {'; '.join(problems)}. Expected it built for the current "
                  f"torch and its CUDA.",
        evidence=(ev("detectron2.cuda", detectron2.get("cuda")), ev("detectron2.torch_built",
                                                                    detectron2.get("torch_built")),
                  ev("torch.cuda", torch.get("cuda")), ev("torch.version", torch.get("version"))),
        fixes=_rebuild_fixes(detectron2))


def _uses_mask2former(ctx) -> bool:
    """Mask2Former's MSDeformAttn op was found: a build of it, or its sources."""
    builds = [b for b in ctx.value("builds") or [] if isinstance(b, dict)]
    sources = [s for s in ctx.value("ext_sources") or [] if isinstance(s, dict)]
    return any(b.get("owner") == "mask2former" for b in builds) or \
        any("ms_deform_attn" in str(s.get("file")) for s in sources)


@rule("ED703", area="detectron2", title="torch and Python meet detectron2/Mask2Former's minimums",
      needs=("torch",), reads=("builds", "detectron2", "env.python", "ext_sources"))
def stack_minimums(ctx):
    """torch or Python is older than what detectron2 or Mask2Former require.

    detectron2's ``setup.py`` asserts torch >= 1.8 and Python >= 3.7; Mask2Former
    needs torch >= 1.9 (its INSTALL.md). Older versions fail at install time
    or with missing operators later. No upper bound is stated: both build from
    source against the installed torch.

    Fix: upgrade torch (and the matching torchvision) in this environment.
    """
    detectron2 = ctx.value("detectron2") or {}
    wanted = []
    if detectron2.get("version"):
        wanted.append("detectron2")
    if _uses_mask2former(ctx):
        wanted.append("mask2former")
    if not wanted:
        return ctx.not_applicable("neither detectron2 nor Mask2Former's op was found")
    requirements = kb.detectron2_requirements() or {}
    torch_version = torch_info(ctx.facts).get("version")
    torch_now, python_now = release_mm(torch_version), python_mm(ctx.facts)
    problems = []
    for name in wanted:
        needs = requirements.get(name) or {}
        torch_min = release_mm(needs.get("torch_min"))
        if torch_min and torch_now and torch_now < torch_min:
            problems.append(f"{name} needs torch >= {needs['torch_min']}, this is torch {torch_version}")
        python_min = release_mm(str(needs.get("python") or "").lstrip(">="))
        if python_min and python_now and python_now < python_min:
            problems.append(f"{name} needs Python {needs['python']}, this is Python {fmt_mm(python_now)}")
    if not problems:
        return None
    return ctx.finding(Severity.ERROR, "; ".join(problems) + ".",
                       evidence=(ev("torch.version", torch_version), ev("env.python.version", fmt_mm(python_now))),
                       fixes=[Fix(summary="Upgrade torch and torchvision as a matching pair (see ED304 for the "
                                          "exact command of a build your driver runs)", action=None, safe=False)])


@rule("ED704", area="detectron2", title="Mask2Former's op can be built without a visible GPU",
      needs=("torch", "env.vars"), reads=model.FACTS + ("builds", "gpus") + ("ext_sources",), fixable=True)
def mask2former_needs_force_cuda(ctx):
    """Mask2Former's MSDeformAttn ``setup.py`` refuses to build its CUDA op when no GPU is
    visible, unless ``FORCE_CUDA=1`` is set.

    On a build machine, a CI runner or a container without GPU access,
    ``torch.cuda.is_available()`` is False and the Deformable-DETR-style
    ``setup.py`` raises "No CUDA runtime is found. Please set FORCE_CUDA=1". With
    no GPU to detect, ``TORCH_CUDA_ARCH_LIST`` must name the target GPUs too.

    Fix: ``export FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="8.6"`` (your GPUs'
    capabilities) before building.
    """
    torch = torch_info(ctx.facts)
    if not _uses_mask2former(ctx):
        return ctx.not_applicable("Mask2Former's op was not found under the scanned paths")
    if not torch.get("cuda") or torch.get("cuda_available") is not False:
        return None
    variables = env_vars(ctx.facts)
    missing = {}
    if variables.get("FORCE_CUDA") != "1":
        missing["FORCE_CUDA"] = "1"
    if not variables.get("TORCH_CUDA_ARCH_LIST"):
        caps = sorted({cc for _, cc in gpu_capabilities(ctx.facts)})
        archs = ";".join(cc_text(cc) for cc in caps) or model.default_arch_list(ctx.facts)
        if archs:
            missing["TORCH_CUDA_ARCH_LIST"] = archs
    if not missing:
        return None
    return ctx.finding(
        Severity.WARNING,
        f"torch sees no GPU here, and {', '.join(sorted(missing))} {'is' if len(missing) == 1 else 'are'} not set: "
        f"Mask2Former's ops/setup.py stops with \"No CUDA runtime is found\" (or builds for no GPU). Expected "
        f"{' and '.join(f'{k}={v}' for k, v in missing.items())} for a build without a visible GPU.",
        evidence=(ev("torch.cuda_available", False), ev("env.FORCE_CUDA", variables.get("FORCE_CUDA")),
                  ev("env.TORCH_CUDA_ARCH_LIST", variables.get("TORCH_CUDA_ARCH_LIST"))),
        fixes=[set_env_fix("Build the CUDA op without a visible GPU "
                           "(set TORCH_CUDA_ARCH_LIST to the GPUs the op will run on)", missing)])


def _cpath(value: str) -> str:
    directory, _, tail = value.partition("${")
    return shell_path(directory) + ('"${' + tail + '"' if tail else "")


@rule("ED705", area="detectron2", title="detectron2's _C has CUDA kernels next to a CUDA torch",
      needs=("detectron2", "torch"), reads=model.FACTS + ("gpus",), fixable=True)
def detectron2_without_cuda_kernels(ctx):
    """detectron2's compiled ``_C`` carries no CUDA kernels, while torch is a CUDA build.

    detectron2's ``setup.py`` compiles its CUDA ops only when it sees a GPU
    (``torch.cuda.is_available()``) or ``FORCE_CUDA=1``, with a working
    ``CUDA_HOME``. Built on a machine without either (a login node, a
    container build, ``pip install -e`` before the driver was there), ``_C``
    is CPU-only: it imports, ``check`` used to pass, and the first ROIAlign or
    deformable conv on a GPU dies with "Detectron2 is not compiled with GPU
    support!". The library's ``.nv_fatbin`` section (read from the file, no
    GPU needed) and its own ``get_cuda_version()`` ("not available") say so.

    Fix: rebuild it from its checkout with ``FORCE_CUDA=1``, ``CUDA_HOME``
    naming the toolkit that matches torch, ``TORCH_CUDA_ARCH_LIST`` naming the
    GPUs, and ``CPATH`` for library headers the toolkit lacks
    (``envdoctor fix`` does this and keeps the old ``_C`` for ``--undo``).
    """
    detectron2, torch = ctx.value("detectron2") or {}, torch_info(ctx.facts)
    if not detectron2.get("c_path"):
        return ctx.not_applicable("detectron2 (with a compiled _C) is not installed")
    if not torch.get("cuda") or detectron2.get("c_has_cuda") is not False:
        return None
    package = str(detectron2.get("path") or "").rstrip("/")
    toolkit = next(iter(matching_toolkits(mm(torch.get("cuda")), toolkits(ctx.facts))), None)
    cuda_home = str((toolkit or {}).get("real_root") or (toolkit or {}).get("root") or "")
    caps = sorted({cc for _, cc in gpu_capabilities(ctx.facts)})
    # The GPUs here, or (none visible) what torch itself ships: the same list ED704 and fix use.
    archs = ";".join(cc_text(cc) for cc in caps) or model.default_arch_list(ctx.facts)
    variables = {"FORCE_CUDA": "1"}
    if cuda_home:
        variables["CUDA_HOME"] = cuda_home
    if archs:
        variables["TORCH_CUDA_ARCH_LIST"] = archs
    # Library headers (cusparse.h, cublas_v2.h) a minimal toolkit lacks are in torch's own nvidia wheels;
    # CPATH is searched after every -I, so the toolkit's headers still win where it has them.
    wheels = [t for t in toolkits(ctx.facts) if t.get("kind") == "pip" and t.get("has_runtime_header")
              and (mm(t.get("version")) or (None,))[0] == (mm(torch.get("cuda")) or (None,))[0]]
    if wheels and cuda_home:
        variables["CPATH"] = posixpath.join(str(wheels[0].get("root")), "include") + '${CPATH:+:$CPATH}'
    assignments = " ".join(f"{k}={shell_path(v) if k != 'CPATH' else _cpath(v)}" for k, v in variables.items())
    fixes = []
    if _is_checkout(package):
        repo = posixpath.dirname(package)
        fixes.append(Fix(summary=f"Rebuild detectron2's _C with CUDA kernels in {repo} (envdoctor also adds CPATH "
                                 f"for library headers the toolkit lacks, and keeps the old _C for --undo)",
                         commands=(f"cd {shell_path(repo)} && {assignments} python -m pip install "
                                   f"--no-build-isolation -e .",),
                         action="rebuild_extension", params={"path": repo}, safe=True))
    else:
        fixes.append(Fix(summary="Reinstall detectron2 from source with CUDA kernels",
                         commands=(f"{assignments} python -m pip install --no-build-isolation --force-reinstall "
                                   f"--no-deps '{_GIT_URL}'",), action=None, safe=False))
    said = detectron2.get("c_cuda_version")
    return ctx.finding(
        Severity.ERROR,
        f"detectron2 {detectron2.get('version') or ''} has a CPU-only _C ({detectron2.get('c_path')}: no CUDA device "
        f"code{'; its get_cuda_version() says ' + repr(said) if said else ''}) next to torch {torch.get('version')} "
        f"(CUDA {torch.get('cuda')}). On a GPU its ops stop with \"Detectron2 is not compiled with GPU support!\". "
        f"Expected _C built with CUDA kernels for the GPUs it will run on.",
        evidence=(ev("detectron2.c_path", detectron2.get("c_path")),
                  ev("detectron2.c_has_cuda", detectron2.get("c_has_cuda")),
                  ev("detectron2.c_cuda_version", said), ev("torch.cuda", torch.get("cuda"))),
        fixes=fixes)
