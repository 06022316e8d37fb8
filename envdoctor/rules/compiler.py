"""Rules about the host C++ compiler nvcc uses (ED4xx)."""
from __future__ import annotations

from typing import Optional

from envdoctor import knowledge as kb
from envdoctor.model import Fix, Severity
from envdoctor.rules import _build_model as model
from envdoctor.rules._helpers import env_vars, ev, release_mm, set_env_fix, torch_info, unverified_note
from envdoctor.rules.base import rule


def _installed(ctx, name: str) -> bool:
    return any(c.get("name") == name and c.get("path") for c in ctx.value("compiler.all") or [])


def _older_gcc_fix(ctx, newest: int, oldest: Optional[int], conda: bool) -> Fix:
    """Use an older gcc for nvcc: torch passes ``CC`` to nvcc as ``-ccbin``; NVCC_CCBIN covers plain nvcc.

    Only a compiler that is installed is pinned (the newest accepted one); otherwise the
    fix says how to install one and envdoctor applies nothing."""
    for major in range(newest, (oldest or newest - 6) - 1, -1):
        gcc, gxx = f"gcc-{major}", f"g++-{major}"
        if _installed(ctx, gcc) and _installed(ctx, gxx):
            return set_env_fix(f"Build with gcc {major} (installed; nvcc accepts it): point CC/CXX/NVCC_CCBIN at it",
                               {"CC": gcc, "CXX": gxx, "NVCC_CCBIN": gxx})
    gcc, gxx = f"gcc-{newest}", f"g++-{newest}"
    commands = [f"# install gcc {newest}: e.g. `sudo apt install {gcc} {gxx}` (Debian/Ubuntu), then:",
                f"export CC={gcc} CXX={gxx} NVCC_CCBIN={gxx}"]
    if conda:
        commands.insert(0, f'conda install -c conda-forge "gcc={newest}.*" "gxx={newest}.*"  # no sudo')
    return Fix(summary=f"Install gcc {newest} (the newest nvcc accepts) and point CC/CXX/NVCC_CCBIN at it",
               commands=tuple(commands), action=None, safe=False)


@rule("ED401", area="compiler", title="nvcc supports the host compiler",
      needs=("toolkits",), reads=model.FACTS + ("compiler.all",), blocks_build=True, fixable=True)
def host_compiler_unsupported(ctx):
    """The host compiler (gcc or clang) that nvcc runs for extension builds is newer, or
    older, than that nvcc supports.

    nvcc checks the host compiler version in ``crt/host_config.h`` and stops
    with "unsupported GNU version! gcc versions later than N are not
    supported!". Each CUDA release supports a range (CUDA 11.1: gcc <= 10; 12.0:
    <= 12; 12.8: <= 14; 13.0: <= 15). ``-allow-unsupported-compiler`` bypasses
    the check at your own risk. The compiler judged is the one nvcc really
    runs: ``CC`` (torch passes it as ``-ccbin``), ``-ccbin`` in
    ``NVCC_PREPEND_FLAGS``, ``NVCC_CCBIN``, else the toolkit's own default (a
    distribution's nvcc, such as Debian's, runs its own gcc-N wrapper).

    Fix: point ``CC``/``CXX`` and ``NVCC_CCBIN`` at an installed supported gcc
    (envdoctor pins only one that is installed), or install one (conda-forge, no
    sudo, or the distribution's ``gcc-N`` package).
    """
    prediction = model.predict(ctx.facts)
    if prediction is None or not prediction.nvcc_version:
        return ctx.not_applicable("no nvcc for extension builds")
    host = prediction.host
    if not torch_info(ctx.facts).get("cuda", True) or host is None or host.missing or not host.version:
        return None  # a named compiler that is absent is ED402
    cuda = prediction.nvcc_version
    version = release_mm(host.version) or (None, None)
    if version[0] is None:
        return None
    name = host.kind
    support = kb.gcc_support(cuda) or {}
    if name == "clang":
        newest, oldest = kb.max_clang_for_cuda(cuda), None
    else:
        newest, oldest = kb.max_gcc_for_cuda(cuda), kb.min_gcc_for_cuda(cuda)
    note = unverified_note(support.get("unverified") or support.get("disputed"), "compiler")
    too_new = newest is not None and version[0] > newest
    too_old = oldest is not None and version[0] < oldest
    if not (too_new or too_old):
        return None
    bound = f"<= {newest}" if too_new else f">= {oldest}"
    conda = bool(env_vars(ctx.facts).get("CONDA_PREFIX"))
    fixes = [_older_gcc_fix(ctx, newest, oldest, conda)] if too_new and name != "clang" else [
        Fix(summary=f"Use a {name} {bound} for nvcc {cuda} via CC/CXX/NVCC_CCBIN", action=None, safe=False)]
    return ctx.finding(
        Severity.ERROR,
        f"nvcc {cuda} (CUDA_HOME={prediction.cuda_home}) supports {name} {bound}, but the host compiler it runs is "
        f"{name} {host.version} ({host.path}, chosen via {host.via}). CUDA extension builds stop with \"unsupported "
        f"{'GNU' if name == 'gcc' else 'clang'} version\"{note}.",
        evidence=(ev("compiler.host.version", host.version), ev("nvcc.version", cuda),
                  ev("compiler.host.via", host.via)),
        fixes=fixes)


@rule("ED402", area="compiler", title="The compilers the environment names exist",
      needs=("compiler.named",), blocks_build=True, fixable=True)
def named_compiler_missing(ctx):
    """``CC``, ``CXX``, ``NVCC_CCBIN`` or ``-ccbin`` in ``NVCC_PREPEND_FLAGS`` names a
    compiler that is not installed.

    torch builds C++ files with ``$CXX`` and passes ``$CC`` to nvcc as
    ``-ccbin``; a name left over from another machine or an old install guide
    (``CC=gcc-10``) makes every extension build fail with "gcc-10: not found"
    or "nvcc fatal : Failed to preprocess host compiler properties".

    Fix: unset the variable (the default compiler is then used) or point it at
    an installed compiler.
    """
    named = [n for n in ctx.value("compiler.named") or [] if not n.get("path")]
    if not named:
        return None
    variables = [str(n.get("var")) for n in named]
    listed = ", ".join(f"{n.get('var')}={n.get('value')!r}" for n in named)
    unset = [v for v in variables if v != "NVCC_PREPEND_FLAGS"]
    fixes = [set_env_fix(f"Unset {', '.join(unset)} (builds then use the default compiler)", unset=unset)] \
        if unset else [Fix(summary="Remove -ccbin from NVCC_PREPEND_FLAGS or point it at an installed compiler",
                           action=None, safe=False)]
    return ctx.finding(
        Severity.ERROR,
        f"{listed}: {'this compiler is' if len(named) == 1 else 'these compilers are'} not installed (not on PATH, "
        f"no such file), so every extension build fails (\"{named[0].get('name')}: not found\"). Expected "
        f"installed compilers, or the variables unset.",
        evidence=tuple(ev(f"env.{n.get('var')}", n.get("value")) for n in named),
        fixes=fixes)
