"""Host compilers: ``gcc``/``g++``/``clang`` on PATH and the one nvcc will use.

torch's ``cpp_extension`` passes ``-ccbin $CC`` to nvcc when ``CC`` is set; nvcc
itself honours ``-ccbin`` in ``NVCC_PREPEND_FLAGS`` and the ``NVCC_CCBIN``
variable; otherwise it runs ``gcc``/``g++`` from PATH. ``compiler.host`` says
which compiler that is and why (``via``).
"""
from __future__ import annotations

import os
import re
import shlex
from typing import Dict, List, Optional, Tuple

from envdoctor.model import Fact
from envdoctor.parsers.nvcc import ccbin_from_flags
from envdoctor.parsers.versions import parse_compiler_version
from envdoctor.probes.base import Probe, ProbeContext

KEYS = ("compiler.gcc", "compiler.gxx", "compiler.clang", "compiler.host", "compiler.all", "compiler.named")
# Versioned names distributions install side by side (gcc-11, g++-12, clang-14).
_VERSIONED = re.compile(r"^(gcc|g\+\+|clang|clang\+\+)(-\d+(\.\d+)*)?$")
TIMEOUT = 5.0
_WRAPPERS = ("ccache", "sccache", "distcc")


class _Versions:
    """``--version`` of each compiler binary, run once per path."""

    def __init__(self, ctx: ProbeContext) -> None:
        self.ctx = ctx
        self.cache: Dict[str, Tuple[Optional[dict], str, Optional[str]]] = {}

    def get(self, path: str) -> Tuple[Optional[dict], str, Optional[str]]:
        """(``{"name", "version"}``, raw output, error)."""
        if path not in self.cache:
            result = self.ctx.runner.run([path, "--version"], timeout=min(self.ctx.timeout, TIMEOUT))
            parsed = parse_compiler_version(result.stdout) if result.ok else None
            error = None if parsed else (result.describe_failure() if not result.ok
                                         else "could not read a version from --version")
            self.cache[path] = (parsed, result.output, error)
        return self.cache[path]


def _on_path(ctx: ProbeContext, versions: _Versions, key: str, name: str) -> Fact:
    path = ctx.which(name)
    if path is None:
        return Fact.unavailable(key, f"{name} is not on PATH", source="PATH")
    parsed, raw, error = versions.get(path)
    if parsed is None:
        return Fact.unavailable(key, error or "unknown version", source=f"{path} --version", raw=raw)
    return Fact(key, {"path": path, "version": parsed["version"]}, source=f"{path} --version", raw=raw)


def _resolve(ctx: ProbeContext, value: str) -> Tuple[Optional[str], str]:
    """A compiler named by CC / -ccbin: a path, a directory holding gcc, or a
    name on PATH. Launchers like ``ccache gcc`` name the compiler second."""
    try:
        words = shlex.split(value)
    except ValueError:
        words = value.split()
    while len(words) > 1 and os.path.basename(words[0]) in _WRAPPERS:
        words = words[1:]
    if not words:
        return None, value
    name = words[0]
    if os.sep in name:
        if os.path.isdir(name):
            name = os.path.join(name, "gcc")  # nvcc -ccbin <dir> uses the gcc in it
        return (name if os.path.isfile(name) else None), name
    return ctx.which(name), name


def _host_choice(ctx: ProbeContext) -> Tuple[str, str]:
    """(value naming the compiler, via)."""
    if ctx.env.get("CC"):
        return ctx.env["CC"], "CC"
    flagged = ccbin_from_flags(ctx.env.get("NVCC_PREPEND_FLAGS", ""))
    if flagged:
        return flagged, "NVCC_PREPEND_FLAGS"
    if ctx.env.get("NVCC_CCBIN"):
        return ctx.env["NVCC_CCBIN"], "NVCC_CCBIN"
    return "gcc", "default"


def _host(ctx: ProbeContext, versions: _Versions) -> Fact:
    value, via = _host_choice(ctx)
    source = f"{via}={value}" if via != "default" else "gcc on PATH (nvcc's default)"
    path, name = _resolve(ctx, value)
    if path is None:
        return Fact.unavailable("compiler.host", f"the host compiler {name!r} (from {via}) was not found",
                                source=source)
    parsed, raw, error = versions.get(path)
    if parsed is None:
        return Fact.unavailable("compiler.host", error or "unknown version", source=source, raw=raw)
    record = {"path": path, "name": parsed["name"], "version": parsed["version"], "via": via}
    return Fact("compiler.host", record, source=source, raw=raw)


def _all_on_path(ctx: ProbeContext, versions: _Versions) -> Fact:
    """Every gcc/g++/clang on PATH, versioned names included: what a plan may point CC/CXX at."""
    found: Dict[str, dict] = {}
    for entry in ctx.env.get("PATH", "").split(os.pathsep):
        try:
            names = sorted(os.listdir(entry)) if entry else []
        except OSError:
            continue
        for name in names:
            path = os.path.join(entry, name)
            if name in found or not _VERSIONED.match(name) or not os.access(path, os.X_OK):
                continue
            parsed, _raw, _error = versions.get(path)
            found[name] = {"name": name, "path": path, "version": parsed["version"] if parsed else None}
    return Fact("compiler.all", list(found.values()), source="gcc*, g++*, clang* on PATH")


def _named(ctx: ProbeContext, versions: _Versions) -> Fact:
    """The compilers the environment names (CC, CXX, NVCC_CCBIN, -ccbin): do they exist?"""
    named = []
    choices = [(var, ctx.env.get(var)) for var in ("CC", "CXX", "NVCC_CCBIN")]
    choices.append(("NVCC_PREPEND_FLAGS", ccbin_from_flags(ctx.env.get("NVCC_PREPEND_FLAGS", ""))))
    for var, value in choices:
        if not value:
            continue
        path, name = _resolve(ctx, value)
        parsed = versions.get(path)[0] if path else None
        named.append({"var": var, "value": value, "name": name, "path": path,
                      "version": parsed["version"] if parsed else None})
    return Fact("compiler.named", named, source="CC, CXX, NVCC_CCBIN, NVCC_PREPEND_FLAGS")


def probe(ctx: ProbeContext) -> List[Fact]:
    versions = _Versions(ctx)
    facts = [
        _on_path(ctx, versions, "compiler.gcc", "gcc"),
        _on_path(ctx, versions, "compiler.gxx", "g++"),
        _on_path(ctx, versions, "compiler.clang", "clang"),
    ]
    facts.append(_host(ctx, versions))
    facts.append(_all_on_path(ctx, versions))
    facts.append(_named(ctx, versions))
    return facts


PROBE = Probe(name="compiler", fn=probe, keys=KEYS)
