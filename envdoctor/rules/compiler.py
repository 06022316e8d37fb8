"""Rules about the host C++ compiler nvcc uses (ED4xx)."""
from __future__ import annotations

from typing import Any, Mapping, Optional

from envdoctor import knowledge as kb
from envdoctor.model import Fix, Severity
from envdoctor.rules._helpers import (build_toolkit, env_vars, ev, release_mm, set_env_fix, torch_info,
                                      unverified_note)
from envdoctor.rules.base import rule


def _host_compiler(ctx) -> Optional[Mapping[str, Any]]:
    """The compiler nvcc will use; falls back to gcc on PATH."""
    host = ctx.value("compiler.host")
    if host and host.get("version"):
        return host
    gcc = ctx.value("compiler.gcc")
    if gcc and gcc.get("version"):
        return {"path": gcc.get("path"), "name": "gcc", "version": gcc.get("version"), "via": "default"}
    return None


def _build_cuda_version(ctx) -> Optional[str]:
    toolkit = build_toolkit(ctx.facts)
    return (toolkit or {}).get("version") or ctx.value("nvcc.version")


def _older_gcc_fix(major: int, conda: bool) -> Fix:
    """Use an older gcc for nvcc: torch passes ``CC`` to nvcc as ``-ccbin``; NVCC_CCBIN covers plain nvcc."""
    gcc, gxx = f"gcc-{major}", f"g++-{major}"
    commands = [f"# install gcc {major}: e.g. `sudo apt install {gcc} {gxx}` (Debian/Ubuntu)"]
    if conda:
        commands.insert(0, f'conda install -c conda-forge "gcc={major}.*" "gxx={major}.*"  # no sudo')
    fix = set_env_fix(f"Build with gcc {major} (the newest nvcc accepts): point CC/CXX/NVCC_CCBIN at it",
                      {"CC": gcc, "CXX": gxx, "NVCC_CCBIN": gxx})
    return Fix(summary=fix.summary, commands=tuple(commands) + fix.commands, action=fix.action, params=fix.params,
               safe=fix.safe)


@rule("ED401", area="compiler", title="nvcc supports the host compiler",
      needs=("compiler.gcc",), blocks_build=True, fixable=True)
def host_compiler_unsupported(ctx):
    """The host compiler (gcc or clang) is newer, or older, than the nvcc that builds
    extensions supports.

    nvcc checks the host compiler version in ``crt/host_config.h`` and stops
    with "unsupported GNU version! gcc versions later than N are not
    supported!". Each CUDA release supports a range (CUDA 11.1: gcc <= 10; 12.0:
    <= 12; 12.8: <= 14; 13.0: <= 15). ``-allow-unsupported-compiler`` bypasses
    the check at your own risk.

    Fix: install a supported gcc (conda-forge, no sudo, or the distribution's
    ``gcc-N`` package) and point ``CC``/``CXX`` (torch passes ``CC`` to nvcc as
    ``-ccbin``) and ``NVCC_CCBIN`` at it.
    """
    cuda = _build_cuda_version(ctx)
    host = _host_compiler(ctx)
    if not cuda:
        return ctx.not_applicable("no CUDA toolkit found")
    if not host or not torch_info(ctx.facts).get("cuda", True):
        return None
    version = release_mm(host.get("version")) or (None, None)
    if version[0] is None:
        return None
    name = host.get("name") or "gcc"
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
    via = host.get("via") or "default"
    conda = bool(env_vars(ctx.facts).get("CONDA_PREFIX"))
    fixes = [_older_gcc_fix(newest, conda)] if too_new and name != "clang" else [
        Fix(summary=f"Use a {name} {bound} for nvcc {cuda} via CC/CXX/NVCC_CCBIN", action=None, safe=False)]
    return ctx.finding(
        Severity.ERROR,
        f"nvcc {cuda} supports {name} {bound}, but the host compiler is {name} {host.get('version')} "
        f"({host.get('path')}, chosen via {via}). CUDA extension builds stop with \"unsupported "
        f"{'GNU' if name == 'gcc' else 'clang'} version\"{note}.",
        evidence=(ev("compiler.host.version", host.get("version")), ev("toolkit.version", cuda)),
        fixes=fixes)
