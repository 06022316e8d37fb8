"""Rules about CUDA toolkits, nvcc and CUDA_HOME (ED2xx).

Which toolkit does an extension build use? ``torch.utils.cpp_extension`` takes
``CUDA_HOME``, else ``CUDA_PATH``, else the parent of ``which nvcc``, else
``/usr/local/cuda``; it then runs ``$CUDA_HOME/bin/nvcc`` and links
``$CUDA_HOME/lib64/libcudart``. The torch probe records the value it will use
(``torch.cpp_ext_cuda_home``); these rules judge it against the toolkits found.
"""
from __future__ import annotations

import posixpath
from typing import Any, Mapping, Optional, Tuple

from envdoctor import knowledge as kb
from envdoctor.model import Fix, Severity
from envdoctor.rules._helpers import (build_cuda_home, build_toolkit, complete, conda_prefix, cuda_home_fix,
                                      describe_toolkit, env_vars, ev, export_lines, find_toolkit, find_torch_build,
                                      fmt_mm, matching_toolkits, mm, norm_path, nvcc_install_commands,
                                      pip_install_fix, same_toolkit, set_env_fix, toolkit_at, toolkit_mm, toolkits,
                                      torch_info)
from envdoctor.rules import _build_model as model
from envdoctor.rules.base import rule


def _torch_cuda(ctx) -> Optional[Tuple[int, int]]:
    return mm(torch_info(ctx.facts).get("cuda"))


def _better_toolkit(ctx) -> Optional[Mapping[str, Any]]:
    """The best complete toolkit for torch's CUDA (exact minor first, nvcc on PATH next)."""
    found = matching_toolkits(_torch_cuda(ctx), toolkits(ctx.facts), prefer_root=ctx.value("nvcc.toolkit"))
    return found[0] if found else None


def _nvcc_only_runtime_note(ctx) -> str:
    """Name the toolkits of torch's CUDA major that cannot build (e.g. conda's cudatoolkit: no nvcc)."""
    cuda = _torch_cuda(ctx)
    notes = []
    for toolkit in toolkits(ctx.facts):
        if cuda and (toolkit_mm(toolkit) or (None,))[0] == cuda[0] and not complete(toolkit):
            missing = [name for key, name in (("has_nvcc", "nvcc"), ("has_runtime_header", "cuda_runtime.h"),
                                              ("has_cudart", "libcudart")) if not toolkit.get(key)]
            kind = "conda's cudatoolkit" if toolkit.get("kind") == "conda" else f"the {toolkit.get('kind')} toolkit"
            notes.append(f"{kind} {toolkit.get('version')} at {toolkit.get('root')} has no {', '.join(missing)}")
    return (" (" + "; ".join(notes) + ")") if notes else ""


def _install_matching_nvcc_fix(ctx, cuda: Tuple[int, int]) -> Fix:
    """Install an nvcc of torch's CUDA and point CUDA_HOME at it (manual: envdoctor installs no toolkits)."""
    prefix = conda_prefix(ctx.facts)
    commands = nvcc_install_commands(cuda, prefix)
    if prefix:
        commands += export_lines({"CUDA_HOME": prefix}, [posixpath.join(prefix, "bin")])
    else:
        target = f"$HOME/cuda-{fmt_mm(cuda)}"
        commands += [f'export CUDA_HOME="{target}"', f'export PATH="{target}/bin:$PATH"']
    return Fix(summary=f"Install a CUDA {fmt_mm(cuda)} nvcc (matching this torch) and point CUDA_HOME at it",
               commands=tuple(commands), action=None, safe=False)


def _torch_for_toolkit_fix(ctx, toolkit_cuda: Tuple[int, int]) -> Optional[Fix]:
    """A published torch build for the toolkit's CUDA major that the driver runs."""
    def same_major(release: str, cuda: str) -> bool:
        return (mm(cuda) or (None,))[0] == toolkit_cuda[0] and bool(kb.pip_install_command(release, cuda))

    found = find_torch_build(ctx.facts, same_major, first=torch_info(ctx.facts).get("version"),
                             cuda_key=lambda c: abs((mm(c) or (0, 99))[1] - toolkit_cuda[1]))
    if not found:
        return None
    release, cuda = found
    driver = ctx.value("driver.version")
    driver_note = f", which driver {driver} runs" if driver else ""
    return pip_install_fix(release, cuda, f"Install torch {release} built for CUDA {cuda}{driver_note}, matching "
                                          f"nvcc {fmt_mm(toolkit_cuda)} (newest release for this Python; check your "
                                          f"code works with it)")


@rule("ED201", area="toolkit", title="An nvcc is available for CUDA builds", needs=("torch",), blocks_build=True,
      reads=("builds", "env.python", "env.vars", "nvcc.path", "toolkits"))
def no_nvcc(ctx):
    """torch is a CUDA build, but no CUDA compiler (nvcc) was found anywhere.

    Building a CUDA extension (Mask2Former's MSDeformAttn op, detectron2, ...)
    needs an nvcc with torch's CUDA major version. conda's ``cudatoolkit`` and
    pip's ``nvidia-*`` wheels ship the runtime libraries only, so torch imports
    and runs, but ``setup.py build_ext`` fails with "CUDA_HOME environment
    variable is not set" or "nvcc: not found".

    Fix: install a CUDA toolkit (nvcc) of torch's CUDA version and set
    ``CUDA_HOME`` to it. This is an error when this machine builds extensions
    (build dirs, extension sources or detectron2 were found, or during
    ``envdoctor build``), otherwise a warning.
    """
    cuda = _torch_cuda(ctx)
    if not cuda:
        return ctx.not_applicable("torch is a CPU-only build")
    if ctx.value("nvcc.path") or any(t.get("has_nvcc") for t in toolkits(ctx.facts)):
        return None
    builds_here = "builds" not in ctx.facts or ctx.value("builds") or ctx.value("ext_sources") \
        or ctx.value("detectron2")
    return ctx.finding(
        Severity.ERROR if builds_here else Severity.WARNING,
        f"torch {torch_info(ctx.facts).get('version')} is built for CUDA {fmt_mm(cuda)}, but no nvcc was found "
        f"(not on PATH, not under CUDA_HOME/CUDA_PATH or the usual locations){_nvcc_only_runtime_note(ctx)}. "
        f"CUDA extensions cannot be built; expected a CUDA {cuda[0]}.x toolkit with nvcc.",
        evidence=(ev("torch.cuda", fmt_mm(cuda)), ev("nvcc.path", None), "toolkits"),
        fixes=[_install_matching_nvcc_fix(ctx, cuda)])


@rule("ED202", area="toolkit", title="nvcc matches torch's CUDA", needs=("torch",), blocks_build=True,
      fixable=True, reads=("driver.version", "env.python", "env.vars", "nvcc.toolkit", "toolkits"))
def nvcc_torch_mismatch(ctx):
    """The toolkit extension builds use has a different CUDA version than torch.

    torch refuses to build an extension with an nvcc of another CUDA major
    ("The detected CUDA version (12.0) mismatches the version that was used to
    compile PyTorch (11.1)"); a different minor version only warns. This is an
    error for a major mismatch and a warning for a minor one, reported when no
    better toolkit was found (ED204 covers choosing an installed one).

    Fix, either: install an nvcc of torch's CUDA version and point ``CUDA_HOME``
    at it, or install a torch build for the toolkit's CUDA version that the
    driver runs (exact commands given).
    """
    cuda = _torch_cuda(ctx)
    toolkit = build_toolkit(ctx.facts)
    tk_cuda = toolkit_mm(toolkit)
    if not cuda:
        return ctx.not_applicable("torch is a CPU-only build")
    if not complete(toolkit) or not tk_cuda or tk_cuda == cuda:
        return None
    better = _better_toolkit(ctx)
    if better and (tk_cuda[0] != cuda[0] or toolkit_mm(better) == cuda):
        return None  # ED204: a better toolkit is installed, just not used
    home, source = build_cuda_home(ctx.facts)
    major = tk_cuda[0] != cuda[0]
    torch = torch_info(ctx.facts)
    if major:
        message = (f"No nvcc matches torch's CUDA major {cuda[0]}: extension builds use {toolkit_at(toolkit)} "
                   f"(CUDA_HOME={home}, via {source or 'unknown'}), while torch {torch.get('version')} was built "
                   f"for CUDA {torch.get('cuda')}{_nvcc_only_runtime_note(ctx)}. torch refuses to build with a "
                   f"different CUDA major; expected an nvcc {cuda[0]}.x.")
    else:
        message = (f"Extension builds use {toolkit_at(toolkit)} and torch was "
                   f"built for CUDA {torch.get('cuda')}: same major, different minor. Builds usually work (torch only "
                   f"warns); an exact {fmt_mm(cuda)} toolkit avoids surprises.")
    fixes = [_install_matching_nvcc_fix(ctx, cuda)]
    if major:
        alternative = _torch_for_toolkit_fix(ctx, tk_cuda)
        if alternative:
            fixes.append(alternative)
    return ctx.finding(Severity.ERROR if major else Severity.WARNING, message,
                       evidence=(ev("torch.cuda", torch.get("cuda")), ev("toolkit.version", toolkit.get("version")),
                                 ev("torch.cpp_ext_cuda_home", home)),
                       fixes=fixes)


@rule("ED203", area="toolkit", title="CUDA_HOME set, or torch's guess usable", needs=("torch",), blocks_build=True,
      fixable=True,
      reads=("compiler.gcc", "cuda.linker_cudart", "cuda.system_headers", "env.python", "env.vars", "nvcc.path", "nvcc.real_path", "nvcc.toolkit", "nvcc.version", "toolkits"))
def cuda_home_unset_guess_broken(ctx):
    """``CUDA_HOME`` is unset and the toolkit torch guesses instead is unusable or wrong.

    With ``CUDA_HOME`` and ``CUDA_PATH`` unset, ``torch.utils.cpp_extension``
    takes the parent of the directory of ``which nvcc``. When nvcc on PATH is a
    wrapper script or a symlink in ``/usr/local/bin`` or ``/usr/bin``, that
    guess is ``/usr/local`` or ``/usr``, which has no ``lib64/libcudart.so``:
    every CUDA extension build then fails to link with "cannot find -lcudart".
    When the guess is a complete toolkit of another CUDA major, the build is
    refused instead. The NVIDIA HPC SDK (its ``nvhpc`` module, or its
    ``compilers/bin`` first on PATH) makes the guess ``.../<YY.M>/compilers``:
    its nvcc runs, but there is no ``include/cuda_runtime.h`` nor
    ``lib64/libcudart.so`` there.

    Fix: set ``CUDA_HOME`` to the real toolkit root of torch's CUDA version
    (envdoctor names it), e.g. ``export CUDA_HOME=/usr/local/cuda-13.0``; for
    the HPC SDK its ``cuda/<X.Y>``, with its ``math_libs`` headers on ``CPATH``.
    Where the toolkit comes from a module, the fix also names the
    ``module load`` line that selects it.
    """
    cuda = _torch_cuda(ctx)
    variables = env_vars(ctx.facts)
    if not cuda:
        return ctx.not_applicable("torch is a CPU-only build")
    if variables.get("CUDA_HOME") or variables.get("CUDA_PATH"):
        return None  # set: that is what this check asks for; ED205 judges the value
    home, source = build_cuda_home(ctx.facts)
    guessed = find_toolkit(home, toolkits(ctx.facts))
    usable = guessed and guessed.get("has_cudart") and guessed.get("has_runtime_header") and guessed.get("has_nvcc")
    better = _better_toolkit(ctx)
    nvcc_path, nvcc_real = ctx.value("nvcc.path"), ctx.value("nvcc.real_path")
    how = f"via {source}" if source else "no guess"
    if source == "which nvcc" and nvcc_path:
        how = f"guessed from `which nvcc` = {nvcc_path}"
        if nvcc_real and norm_path(nvcc_real) != norm_path(nvcc_path):
            how += f", a wrapper or link to {nvcc_real}"
    evidence = (ev("env.CUDA_HOME", None), ev("torch.cpp_ext_cuda_home", home),
                ev("torch.cpp_ext_cuda_home_source", source), ev("nvcc.path", nvcc_path))
    real_note = (f" The real toolkit is {describe_toolkit(better)}, which matches torch's CUDA {fmt_mm(cuda)}."
                 if better else f" No complete CUDA {cuda[0]}.x toolkit was found to point it at.")
    fixes = [cuda_home_fix(better)] if better else [_install_matching_nvcc_fix(ctx, cuda)]
    if not usable:
        sdk = _nvhpc_compilers(home, toolkits(ctx.facts))
        if home and sdk:
            lib = sdk.get("compilers_lib") or posixpath.join(home, "lib64")
            message = (f"torch.utils.cpp_extension will use CUDA_HOME={home} ({how}): the compilers directory of "
                       f"the NVIDIA HPC SDK {sdk.get('version')}, not a CUDA toolkit. It has no "
                       f"include/cuda_runtime.h (sources that include it stop) and no libcudart.so (the SDK's "
                       f"toolkits are in {posixpath.join(str(sdk.get('release')), 'cuda')}/<X.Y>): "
                       f"{_link_outcome(ctx, lib)}")
        elif home:
            message = (f"torch.utils.cpp_extension will use CUDA_HOME={home} ({how}), which is not a CUDA toolkit: "
                       f"{_link_outcome(ctx)}")
        else:
            message = "CUDA_HOME is unset and torch.utils.cpp_extension found no toolkit to use (CUDA_HOME is None)."
        return ctx.finding(Severity.ERROR, message + real_note, evidence=evidence, fixes=fixes)
    if toolkit_mm(guessed) and toolkit_mm(guessed)[0] != cuda[0] and not better:
        return ctx.finding(
            Severity.WARNING,
            f"CUDA_HOME is unset, so extension builds use torch's guess {home} ({how}, CUDA {guessed.get('version')}), "
            f"which is not torch's CUDA {fmt_mm(cuda)}.{real_note} Expected CUDA_HOME set to a CUDA {cuda[0]}.x "
            f"toolkit.", evidence=evidence, fixes=fixes)
    return None


@rule("ED204", area="toolkit", title="Builds use the toolkit that matches torch", needs=("torch", "toolkits"),
      blocks_build=True, fixable=True, reads=("nvcc.toolkit",))
def builds_use_wrong_toolkit(ctx):
    """Several CUDA toolkits are installed and extension builds would use one that
    does not match torch's CUDA, while a matching one is installed.

    A typical case: CUDA 11.8 and 12.1 installed, ``/usr/local/cuda`` links to
    12.1, torch is a cu118 build. Builds pick ``/usr/local/cuda`` (through
    ``CUDA_HOME``, ``which nvcc`` or the default) and torch refuses the
    mismatched major, or links against a runtime it was not built with.

    Fix: point ``CUDA_HOME`` (and ``PATH``) at the matching toolkit; envdoctor
    names it.
    """
    cuda = _torch_cuda(ctx)
    toolkit = build_toolkit(ctx.facts)
    tk_cuda = toolkit_mm(toolkit)
    better = _better_toolkit(ctx)
    if not cuda:
        return ctx.not_applicable("torch is a CPU-only build")
    if not complete(toolkit) or not better or not tk_cuda or tk_cuda == cuda:
        return None
    if same_toolkit(toolkit.get("real_root"), better.get("real_root"), toolkits(ctx.facts)):
        return None
    if tk_cuda[0] == cuda[0] and toolkit_mm(better) != cuda:
        return None  # the better one is no closer; ED202 warns about the minor difference
    home, source = build_cuda_home(ctx.facts)
    major = tk_cuda[0] != cuda[0]
    return ctx.finding(
        Severity.ERROR if major else Severity.WARNING,
        f"Extension builds would use {toolkit_at(toolkit)} (CUDA_HOME={home}, via {source or 'unknown'}), "
        f"but torch {torch_info(ctx.facts).get('version')} was built for CUDA {torch_info(ctx.facts).get('cuda')}. "
        f"The matching toolkit {describe_toolkit(better)} is installed; expected builds to use it.",
        evidence=(ev("torch.cuda", fmt_mm(cuda)), ev("torch.cpp_ext_cuda_home", home),
                  ev("toolkits", ", ".join(describe_toolkit(t) for t in toolkits(ctx.facts)))),
        fixes=[cuda_home_fix(better)])


def _nvhpc_compilers(home: Optional[str], found) -> Optional[Mapping[str, Any]]:
    """The HPC SDK release whose compilers directory ``home`` is (its nvcc is a driver, not a toolkit)."""
    for toolkit in found:
        sdk = toolkit.get("nvhpc") or {}
        if home and norm_path(sdk.get("compilers")) == norm_path(home):
            return sdk
    return None


def _link_outcome(ctx, lib: Optional[str] = None) -> str:
    """What linking does when CUDA_HOME is not a toolkit: fails, or takes another runtime.
    ``lib``: the -L directory torch passes, when known (lib64, else lib)."""
    prediction = model.predict(ctx.facts)
    home = prediction.cuda_home if prediction else "it"
    lib = lib or posixpath.join(home, "lib64")
    if prediction is None or prediction.cudart is None:
        return (f"{lib} has no libcudart.so and the linker finds none elsewhere, so every CUDA extension build "
                f"fails to link (`cannot find -lcudart`).")
    cudart = prediction.cudart
    return (f"{lib} has no libcudart.so, so `-lcudart` takes {cudart.get('path')} (CUDA runtime "
            f"{cudart.get('version') or 'unknown'}) from the linker's search path while nvcc "
            f"{prediction.nvcc_version or '(unknown)'} compiles the code (see ED207).")


def _classify_cuda_home(value: str, ctx) -> Optional[str]:
    """What is wrong with a CUDA_HOME/CUDA_PATH value, in words; None when it names a usable toolkit."""
    raw = value
    text = value.strip()
    if text != raw:
        return "has leading or trailing whitespace"
    if text[:1] in "\"'" or text[-1:] in "\"'":
        return "contains quote characters (quotes were written into the value, e.g. by a .env file)"
    if ":" in text:
        parts = [p for p in text.split(":")]
        if text.startswith(":") and len([p for p in parts if p]) == 1:
            return ("starts with ':' (a bad `export CUDA_HOME=$CUDA_HOME:/usr/local/cuda` while CUDA_HOME was "
                    "empty); it is one directory, not a list")
        if text.endswith(":") and len([p for p in parts if p]) == 1:
            return "ends with ':'; it is one directory, not a list"
        return "is a PATH-like list of directories; CUDA_HOME must name exactly one toolkit directory"
    if not text.startswith("/"):
        return "is a relative path; it must be the absolute toolkit directory"
    path = norm_path(text) or text
    if path.endswith("/bin/nvcc") or path.endswith("/bin"):
        return "points at the bin directory or the nvcc binary, not at the toolkit directory (the one holding bin/nvcc)"
    if not ctx.has("toolkits"):
        return None  # without the toolkit search, only the value's shape can be judged
    toolkit = find_toolkit(path, toolkits(ctx.facts))
    prefix = conda_prefix(ctx.facts)
    if toolkit is None:
        if (prefix and norm_path(prefix) == path) or "conda" in path or "mamba" in path:
            return "is a conda environment prefix without bin/nvcc (conda's cudatoolkit ships no compiler)"
        return "points at no CUDA toolkit envdoctor could find (missing directory, or no bin/nvcc)"
    if not toolkit.get("has_nvcc"):
        if toolkit.get("kind") == "conda":
            return "is a conda environment prefix without bin/nvcc (conda's cudatoolkit ships no compiler)"
        return "is a directory with CUDA libraries but no bin/nvcc"
    if not toolkit.get("has_runtime_header") or not toolkit.get("has_cudart"):
        return "is a toolkit without include/cuda_runtime.h or libcudart (an incomplete install)"
    return None


def _repair_target(value: str, ctx) -> Optional[Mapping[str, Any]]:
    """The toolkit a malformed value meant (its cleaned entries), else the best one for torch."""
    found = toolkits(ctx.facts)
    for part in value.strip().strip("\"'").split(":"):
        part = part.strip().strip("\"'")
        for candidate in (part, posixpath.dirname(part.rstrip("/")) if part.rstrip("/").endswith("bin") else None,
                          posixpath.dirname(posixpath.dirname(part)) if part.endswith("/bin/nvcc") else None):
            toolkit = find_toolkit(candidate, found) if candidate else None
            if complete(toolkit) and (not _torch_cuda(ctx) or (toolkit_mm(toolkit) or (0,))[0] == _torch_cuda(ctx)[0]):
                return toolkit
    return _better_toolkit(ctx)


@rule("ED205", area="toolkit", title="CUDA_HOME names one CUDA toolkit", needs=("env.vars",), blocks_build=True,
      fixable=True, reads=("env.python", "nvcc.toolkit", "toolkits", "torch"))
def cuda_home_malformed(ctx):
    """``CUDA_HOME`` (or ``CUDA_PATH``) is set but does not name a usable toolkit root.

    torch uses the value verbatim: ``$CUDA_HOME/bin/nvcc`` must exist. Values
    seen in practice: a leading ``:`` from ``export CUDA_HOME=$CUDA_HOME:...``,
    a PATH-like list, quotes written into the value, the ``bin`` directory
    instead of the root, a directory that does not exist, or a conda prefix
    whose ``cudatoolkit`` has no nvcc. Builds fail with "No such file or
    directory: ':/usr/local/cuda/bin/nvcc'" and similar.

    Fix: set it to the toolkit root itself (envdoctor names the one matching
    torch).
    """
    variables = env_vars(ctx.facts)
    if not variables.get("CUDA_HOME") and not variables.get("CUDA_PATH"):
        return ctx.not_applicable("CUDA_HOME and CUDA_PATH are unset (ED203 checks torch's guess)")
    findings = []
    for name in ("CUDA_HOME", "CUDA_PATH"):
        value = variables.get(name)
        if not value or (name == "CUDA_PATH" and variables.get("CUDA_HOME")):
            continue  # torch reads CUDA_PATH only when CUDA_HOME is unset
        problem = _classify_cuda_home(value, ctx)
        if problem is None:
            continue
        target = _repair_target(value, ctx)
        fixes = [cuda_home_fix(target)] if target else []
        if target and name == "CUDA_PATH":
            fixes = [set_env_fix(f"Set CUDA_HOME={target.get('real_root')} (torch prefers it over CUDA_PATH)",
                                 {"CUDA_HOME": str(target.get("real_root"))},
                                 path_prepend=[posixpath.join(str(target.get("real_root")), "bin")])]
        expected = f"expected a toolkit directory such as {target.get('real_root')}" if target else \
            "expected the directory of a CUDA toolkit (the one holding bin/nvcc)"
        findings.append(ctx.finding(
            Severity.ERROR, f"{name}={value!r} {problem}; {expected}.",
            evidence=(ev(f"env.{name}", repr(value)),), fixes=fixes))
    return findings


@rule("ED206", area="toolkit", title="CUDA_HOME and nvcc on PATH are the same toolkit",
      needs=("env.vars", "nvcc.toolkit"), fixable=True, reads=("nvcc.path", "toolkits", "torch"))
def cuda_home_differs_from_path_nvcc(ctx):
    """``CUDA_HOME`` names a different toolkit than the ``nvcc`` found first on ``PATH``.

    torch's extension builds use ``$CUDA_HOME/bin/nvcc``, while other build
    tools (CMake, Makefiles, ``nvcc --version`` that people check) use the nvcc
    on PATH. Two toolkits in play is how "nvcc says 12.1 but the build used
    11.8" happens. ``/usr/local/cuda`` and ``/usr/local/cuda-13.0`` are the same
    toolkit when one links to the other: that is not flagged.

    Fix: make both name the toolkit that matches torch (put its ``bin`` first
    on PATH, or move ``CUDA_HOME``).
    """
    home = env_vars(ctx.facts).get("CUDA_HOME")
    found = toolkits(ctx.facts)
    home_tk, path_tk = find_toolkit(home, found), find_toolkit(ctx.value("nvcc.toolkit"), found)
    if not home:
        return ctx.not_applicable("CUDA_HOME is unset")
    if home_tk is None or same_toolkit(home, ctx.value("nvcc.toolkit"), found):
        return None
    cuda = _torch_cuda(ctx)
    target = home_tk
    if cuda and path_tk and toolkit_mm(path_tk) == cuda and toolkit_mm(home_tk) != cuda:
        target = path_tk
    same_version = path_tk is not None and toolkit_mm(path_tk) == toolkit_mm(home_tk)
    return ctx.finding(
        Severity.INFO if same_version else Severity.WARNING,
        f"CUDA_HOME={home} is {toolkit_at(home_tk)}, but the nvcc on PATH ({ctx.value('nvcc.path')}) belongs "
        f"to {toolkit_at(path_tk) if path_tk else ctx.value('nvcc.toolkit')}. torch builds use CUDA_HOME, other "
        f"tools the nvcc on PATH; expected one toolkit.",
        evidence=(ev("env.CUDA_HOME", home), ev("nvcc.toolkit", ctx.value("nvcc.toolkit"))),
        fixes=[cuda_home_fix(target, "so that torch builds and PATH agree")])


@rule("ED207", area="toolkit", title="Builds link the CUDA runtime of the nvcc that compiles them",
      needs=("torch", "toolkits", "cuda.linker_cudart"), reads=model.FACTS, blocks_build=True, fixable=True)
def linked_runtime_differs(ctx):
    """An extension build compiles with one CUDA and links another CUDA's ``libcudart``.

    torch links extensions with ``-L$CUDA_HOME/lib64 -lcudart``. When that
    directory has no ``libcudart.so`` (``CUDA_HOME`` guessed as ``/usr/local``
    from a wrapper in ``/usr/local/bin``, a toolkit without its runtime), the
    linker takes the first ``libcudart.so`` on ``LIBRARY_PATH`` and in its
    default directories: often a distribution's packaged CUDA runtime
    (``/usr/lib/x86_64-linux-gnu/libcudart.so.11.0`` from Debian's
    nvidia-cuda-toolkit). The build succeeds; at import the process then holds
    two CUDA runtimes (torch's and the other one), and kernels launched through
    the wrong one fail or misbehave.

    Fix: point ``CUDA_HOME`` at the toolkit whose nvcc compiles the code (it
    has the matching ``lib64/libcudart.so``).
    """
    prediction = model.predict(ctx.facts)
    if prediction is None or not prediction.nvcc_version:
        return ctx.not_applicable("no nvcc for extension builds")
    cudart = prediction.cudart
    if not cudart or not cudart.get("version"):
        return None
    nvcc_major = (prediction.nvcc_mm or (None,))[0]
    runtime_major = int(str(cudart["version"]).split(".")[0])
    if nvcc_major is None or nvcc_major == runtime_major:
        return None
    better = _better_toolkit(ctx) or prediction.nvcc_toolkit
    fixes = [cuda_home_fix(better)] if better and complete(better) else []
    return ctx.finding(
        Severity.ERROR,
        f"Extension builds compile with nvcc {prediction.nvcc_version} (CUDA_HOME={prediction.cuda_home}) but "
        f"`-lcudart` links {cudart.get('path')} (CUDA runtime {cudart.get('version')}, found on the "
        f"{prediction.cudart_from}): the extension then loads a CUDA {runtime_major} runtime next to torch's. "
        f"Expected the libcudart of CUDA {nvcc_major}.",
        evidence=(ev("torch.cpp_ext_cuda_home", prediction.cuda_home), ev("nvcc.version", prediction.nvcc_version),
                  ev("cuda.linker_cudart", cudart.get("real_path") or cudart.get("path"))),
        fixes=fixes)


def _header_fix(ctx, major: Optional[int], headers) -> Optional[Fix]:
    """CPATH pointing at a same-major include dir that has the headers (torch's pip wheels ship them)."""
    for toolkit in toolkits(ctx.facts):
        if model.toolkit_major(toolkit) != major or not toolkit.get("include_dir"):
            continue
        if not set(headers) & set(toolkit.get("missing_headers") or []):
            include = str(toolkit["include_dir"])
        elif toolkit.get("lib_include_dir"):  # the HPC SDK's math_libs beside its cuda/<X.Y>
            include = str(toolkit["lib_include_dir"])
        else:
            continue
        return set_env_fix(f"Take the CUDA library headers from {include} (CUDA {toolkit.get('version')}, "
                           f"{toolkit.get('kind')})", {"CPATH": include})
    return None


@rule("ED208", area="toolkit", title="CUDA library headers come from the toolkit that builds",
      needs=("torch", "toolkits", "cuda.system_headers"), reads=model.FACTS, blocks_build=True, fixable=True)
def library_headers_elsewhere(ctx):
    """The cuBLAS, cuSPARSE and cuSOLVER headers a build includes come from another CUDA, or from nowhere.

    torch's ``ATen/cuda/CUDAContext.h`` (included by most CUDA extensions:
    Mask2Former's MSDeformAttn, detectron2) includes ``cublas_v2.h``,
    ``cublasLt.h``, ``cusparse.h`` and ``cusolverDn.h``; many extensions also
    include ``curand.h`` and ``cufft.h``. Toolkits assembled from
    parts (this one's nvcc and runtime only) lack them; the compiler then takes
    whatever ``/usr/include`` holds, such as a distribution's CUDA 11.8 copies
    under a CUDA 13 build, or stops with "cublas_v2.h: No such file or
    directory".

    Fix: put an include directory of the same CUDA version first, e.g. the one
    torch's ``nvidia-*`` pip wheels install (``CPATH=.../site-packages/nvidia/cu13/include``).
    """
    prediction = model.predict(ctx.facts)
    if prediction is None or not prediction.nvcc_version:
        return ctx.not_applicable("no nvcc for extension builds")
    major = (prediction.nvcc_mm or (None,))[0]
    missing = [h for h, d in prediction.headers.items() if not d]
    foreign = {}
    for header in prediction.headers:
        owner = prediction.header_toolkit(header, ctx.facts)
        if owner is not None and model.toolkit_major(owner) not in (None, major):
            foreign[header] = owner
    if not missing and not foreign:
        return None
    fix = _header_fix(ctx, major, list(missing) + list(foreign)) or Fix(
        summary=f"Install the CUDA {major} math-library headers (cuBLAS, cuSPARSE, cuSOLVER, cuRAND, cuFFT) and put "
                f"their include directory on CPATH",
        commands=(f"# e.g. conda install -c nvidia \"libcublas-dev={major}.*\" \"libcusparse-dev={major}.*\" "
                  f"\"libcusolver-dev={major}.*\" \"libcurand-dev={major}.*\" \"libcufft-dev={major}.*\", or the "
                  f"full CUDA {major} toolkit installer",
                  'export CPATH="<that include directory>"'), action=None, safe=False)
    if foreign:
        owner = next(iter(foreign.values()))
        where = prediction.headers[next(iter(foreign))]
        return ctx.finding(
            Severity.ERROR,
            f"Extension builds compile with nvcc {prediction.nvcc_version}, whose toolkit has no "
            f"{', '.join(foreign)}: the compiler takes them from {where}, which belongs to CUDA "
            f"{owner.get('version')}. Expected CUDA {major} headers.",
            evidence=tuple(ev(f"headers.{h}", prediction.headers[h]) for h in foreign),
            fixes=[fix])
    return ctx.finding(
        Severity.WARNING,
        f"The toolkit of nvcc {prediction.nvcc_version} has no {', '.join(missing)}, and no include directory "
        f"provides them: extensions that include ATen/cuda/CUDAContext.h stop with \"{missing[0]}: No such file or "
        f"directory\".",
        evidence=tuple(ev(f"headers.{h}", None) for h in missing),
        fixes=[fix])
