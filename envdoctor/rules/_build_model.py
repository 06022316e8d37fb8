"""What a torch extension build will really use, predicted from the facts alone.

``torch.utils.cpp_extension`` decides ``CUDA_HOME`` (CUDA_HOME, CUDA_PATH, the
grandparent of ``which nvcc``, /usr/local/cuda), then runs ``$CUDA_HOME/bin/nvcc``
with ``-I$CUDA_HOME/include`` and links with ``-L$CUDA_HOME/lib64`` (``lib`` when
there is no lib64) and ``-lcudart``. What that means on a given machine:

* the nvcc that runs, and its CUDA version;
* the host compiler that nvcc runs (``-ccbin $CC`` from torch, NVCC_PREPEND_FLAGS,
  NVCC_CCBIN, else the toolkit's own default: a distribution's wrapper picks
  its gcc-N, NVIDIA's toolkit runs gcc from PATH);
* which ``libcudart.so`` the linker takes (when ``$CUDA_HOME/lib64`` has none, the
  first in LIBRARY_PATH and the linker's default directories, a distribution's
  CUDA runtime included: two CUDA runtimes in one process);
* where the CUDA math-library headers that torch's CUDA headers include come from
  (the toolkit, or a system directory holding another CUDA's copies).

Everything here is a pure function of a FactSet, so the same prediction is made
for this machine, for a saved report, and for the environment a fix plan would
produce (``envdoctor.fix.project``). Rules and ``envdoctor build`` read it; no one
re-probes.
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from envdoctor import knowledge as kb
from envdoctor.model import FactSet
from envdoctor.parsers import arch_list as arch_parser
from envdoctor.parsers.nvcc import ccbin_from_flags
from envdoctor.probes.toolkits import LIB_HEADERS  # the headers the toolkit facts cover: one list
from envdoctor.rules._helpers import (build_cuda_home, cc_of, env_vars, find_toolkit, mm, norm_path, toolkit_mm,
                                      toolkits, torch_info)

# Facts the prediction reads (rules that use it declare these).
FACTS = ("torch", "env.vars", "toolkits", "nvcc.path", "nvcc.toolkit", "nvcc.version", "cuda.linker_cudart",
         "cuda.system_headers", "compiler.gcc", "compiler.all", "compiler.named")
_WRAPPERS = ("ccache", "sccache", "distcc")


@dataclass
class HostCompiler:
    name: str  # as named: "gcc-11", "/opt/gcc/bin/gcc", "gcc"
    via: str  # "CC", "NVCC_PREPEND_FLAGS", "NVCC_CCBIN", the toolkit wrapper, or "gcc on PATH"
    path: Optional[str] = None
    version: Optional[str] = None
    kind: str = "gcc"  # "gcc" or "clang"

    @property
    def missing(self) -> bool:
        return self.path is None


@dataclass
class BuildPrediction:
    cuda_home: str
    source: Optional[str]
    toolkit: Optional[Mapping[str, Any]]  # the entry CUDA_HOME names, if it is one
    nvcc: Optional[str]  # $CUDA_HOME/bin/nvcc when it exists (as a path on that machine)
    nvcc_version: Optional[str]
    nvcc_toolkit: Optional[Mapping[str, Any]]  # the toolkit that nvcc really belongs to
    cudart: Optional[Mapping[str, Any]]  # {"path", "real_path", "version"} the linker takes
    cudart_from: str  # "CUDA_HOME" | "linker search path" | "none"
    host: Optional[HostCompiler]
    headers: Dict[str, Optional[str]] = field(default_factory=dict)  # header -> directory it comes from

    @property
    def nvcc_mm(self) -> Optional[Tuple[int, int]]:
        return mm(self.nvcc_version)

    def header_toolkit(self, header: str, facts: FactSet) -> Optional[Mapping[str, Any]]:
        directory = self.headers.get(header)
        if not directory:
            return None
        for toolkit in toolkits(facts):
            if norm_path(toolkit.get("include_dir")) == norm_path(directory):
                return toolkit
        return None


def _compiler_named(facts: FactSet, var: str, value: str) -> HostCompiler:
    """A compiler named by a variable: resolved by the probe for this machine's values,
    else looked up among the compilers on PATH (a plan's value)."""
    for named in facts.value("compiler.named") or []:
        if named.get("var") == var and named.get("value") == value:
            return HostCompiler(name=str(named.get("name") or value), via=var, path=named.get("path"),
                                version=named.get("version"), kind=_kind(named.get("name") or value))
    words = value.split()
    while len(words) > 1 and posixpath.basename(words[0]) in _WRAPPERS:
        words = words[1:]
    name = words[0] if words else value
    return _lookup(facts, name, via=var)


def _kind(name: str) -> str:
    return "clang" if "clang" in posixpath.basename(str(name)) else "gcc"


def _lookup(facts: FactSet, name: str, via: str) -> HostCompiler:
    for known in facts.value("compiler.all") or []:
        if name in (known.get("name"), known.get("path")):
            return HostCompiler(name=name, via=via, path=known.get("path"), version=known.get("version"),
                                kind=_kind(name))
    return HostCompiler(name=name, via=via, kind=_kind(name))


def host_compiler(facts: FactSet, nvcc_toolkit: Optional[Mapping[str, Any]]) -> Optional[HostCompiler]:
    """The host compiler nvcc runs for a torch extension build."""
    variables = env_vars(facts)
    if variables.get("CC"):  # torch adds -ccbin $CC
        return _compiler_named(facts, "CC", variables["CC"])
    flagged = ccbin_from_flags(variables.get("NVCC_PREPEND_FLAGS", ""))
    if flagged:
        return _compiler_named(facts, "NVCC_PREPEND_FLAGS", flagged)
    if variables.get("NVCC_CCBIN"):
        return _compiler_named(facts, "NVCC_CCBIN", variables["NVCC_CCBIN"])
    default = (nvcc_toolkit or {}).get("default_host")
    if default:
        if not default.get("command"):
            return HostCompiler(name="gcc", via=str(default.get("via")))
        found = _lookup(facts, str(default.get("command")), via=str(default.get("via")))
        if found.path is None and default.get("path"):
            found.path = default["path"]
        return found
    gcc = facts.value("compiler.gcc") or {}
    if not gcc:
        return None
    return HostCompiler(name="gcc", via="gcc on PATH", path=gcc.get("path"), version=gcc.get("version"))


def _nvcc(facts: FactSet, home: str, toolkit: Optional[Mapping[str, Any]]
          ) -> Tuple[Optional[str], Optional[str], Optional[Mapping[str, Any]]]:
    """(nvcc path, version, toolkit it belongs to) for ``$home/bin/nvcc``."""
    nvcc = posixpath.join(home, "bin", "nvcc")
    if toolkit and toolkit.get("has_nvcc"):
        return nvcc, toolkit.get("version"), toolkit
    if norm_path(facts.value("nvcc.path")) == nvcc:  # a wrapper in /usr/local/bin: home is /usr/local
        real = find_toolkit(facts.value("nvcc.toolkit"), toolkits(facts))
        return nvcc, facts.value("nvcc.version") or (real or {}).get("version"), real
    return None, None, None


def predict(facts: FactSet) -> Optional[BuildPrediction]:
    """What an extension build would use on the machine the facts describe; None without a CUDA_HOME."""
    home, source = build_cuda_home(facts)
    home = norm_path(home)
    if not home:
        return None
    found = toolkits(facts)
    toolkit = find_toolkit(home, found)
    nvcc, version, nvcc_toolkit = _nvcc(facts, home, toolkit)
    if toolkit and toolkit.get("cudart"):
        cudart, cudart_from = toolkit["cudart"], "CUDA_HOME"
    elif facts.value("cuda.linker_cudart"):
        cudart, cudart_from = facts.value("cuda.linker_cudart"), "linker search path"
    else:
        cudart, cudart_from = None, "none"
    prediction = BuildPrediction(cuda_home=home, source=source, toolkit=toolkit, nvcc=nvcc, nvcc_version=version,
                                 nvcc_toolkit=nvcc_toolkit, cudart=cudart, cudart_from=cudart_from,
                                 host=host_compiler(facts, nvcc_toolkit))
    system = facts.value("cuda.system_headers") or {}
    for header in LIB_HEADERS:
        # nvcc's own include dir, then -I$CUDA_HOME/include, then CPATH and the system dirs.
        source_dir = None
        for candidate in (nvcc_toolkit, toolkit):
            if candidate and candidate.get("include_dir") and header not in (candidate.get("missing_headers") or []):
                source_dir = candidate["include_dir"]
                break
        prediction.headers[header] = source_dir or system.get(header)
    return prediction


def gpus_visible(facts: FactSet) -> bool:
    torch = torch_info(facts)
    return bool(torch.get("cuda_available")) and bool(torch.get("device_count", 1))


def default_arch_list(facts: FactSet) -> Optional[str]:
    """TORCH_CUDA_ARCH_LIST for a build where no GPU is visible: the architectures torch
    itself ships (so the extension runs wherever this torch does) that the build's nvcc
    can compile, the newest also as PTX."""
    torch = torch_info(facts)
    prediction = predict(facts)
    cuda = prediction.nvcc_version if prediction and prediction.nvcc_version else torch.get("cuda")
    caps = []
    for arch in torch.get("arch_list") or kb.torch_arch_list(str(torch.get("version") or "").split("+")[0],
                                                             str(torch.get("cuda") or "")) or []:
        if not str(arch).startswith("sm_"):
            continue
        cc = cc_of(arch)
        if cc and (not cuda or (kb.arch_support(f"sm_{cc[0]}{cc[1]}", cuda) or {}).get("supported") is not False):
            caps.append(cc)
    return arch_parser.from_capabilities(caps) or None


# Peak memory of one compile job with torch's headers (cicc + ptxas for nvcc, cc1plus for
# C++); working assumptions, not measured constants of every project. The one budget that
# check (ED504), build and fix use.
MIB_PER_JOB = {"cuda": 2048, "cpu": 1024}


def jobs_that_fit(facts: FactSet, variant: str = "cuda") -> Optional[int]:
    """Parallel compile jobs that fit in the available RAM (at most one per CPU), or None if unknown."""
    resources = facts.value("env.resources") or {}
    available, cpus = resources.get("ram_available_mib"), resources.get("cpu_count") or 1
    if not available:
        return None
    return max(1, min(int(cpus), int(available // MIB_PER_JOB[variant])))


def arch_list(facts: FactSet) -> arch_parser.ArchList:
    return arch_parser.parse(env_vars(facts).get("TORCH_CUDA_ARCH_LIST"))


def toolkit_major(toolkit: Optional[Mapping[str, Any]]) -> Optional[int]:
    version = toolkit_mm(toolkit)
    return version[0] if version else None
