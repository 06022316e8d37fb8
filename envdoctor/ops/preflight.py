"""Refuse a CUDA build that cannot work, with the reason and the fix, before compiling.

Two sources: the doctor's own build-blocking rules (``envdoctor.engine.build_preflight``)
and a minimal check of the toolkit torch.utils.cpp_extension would use, kept here
so the build explains itself even if the doctor's rules are skipped or crash.
Codes EDB01..EDB04 are this module's and are never reused.
"""
from __future__ import annotations

import os
from typing import List, Mapping

from envdoctor.model import Finding, Fix, Severity
from envdoctor.ops import toolkit


def _finding(code: str, title: str, message: str, fixes: tuple, evidence: tuple = ()) -> Finding:
    return Finding(code=code, severity=Severity.ERROR, area="build", title=title, message=message,
                   evidence=evidence, fixes=fixes, docs=f"docs/build.md#{code.lower()}")


_CPU_ONLY = Fix("Build the CPU-only variant instead", commands=("envdoctor build --cpu-only",))


def cuda_home_findings(env: Mapping[str, str], runner=None) -> List[Finding]:
    """Check the CUDA_HOME torch would use: headers, libcudart, nvcc, and the nvcc/torch CUDA major."""
    home, how = toolkit.torch_cuda_home_guess(env)
    real = toolkit.real_toolkit(env)
    if home is None:
        return [_finding("EDB01", "No CUDA toolkit found",
                         f"torch.utils.cpp_extension finds no CUDA toolkit ({how}).",
                         (Fix("Install the CUDA toolkit matching torch, or build for CPU only",
                              commands=("envdoctor build --cpu-only",)),))]
    missing = []
    if not toolkit.has_runtime_header(home):
        missing.append(f"{os.path.join(home, 'include', 'cuda_runtime.h')}")
    if not toolkit.has_cudart(home):
        missing.append(f"libcudart ({os.path.join(home, 'lib64', 'libcudart.so*')})")
    if missing:
        message = (f"torch.utils.cpp_extension would use CUDA_HOME={home} ({how}), but {home} has no "
                   + " and no ".join(missing) + "; the build would stop with "
                   "'fatal error: cuda_runtime.h: No such file' or 'cannot find -lcudart'.")
        if real and os.path.realpath(real) != os.path.realpath(home):
            message += f" The nvcc on PATH belongs to the CUDA toolkit at {real}."
            fixes = (Fix(f"Point CUDA_HOME at the real toolkit {real}",
                         commands=(f"export CUDA_HOME={real}",), action="set_env",
                         params={"vars": {"CUDA_HOME": real}}), _CPU_ONLY)
        else:
            fixes = (Fix("Install the CUDA toolkit (with its runtime library) and set CUDA_HOME to it"), _CPU_ONLY)
        return [_finding("EDB01", f"CUDA_HOME={home} is not a CUDA toolkit", message, fixes,
                         evidence=(f"CUDA_HOME = {home} ({how})",))]
    return _nvcc_findings(home, runner)


def _nvcc_findings(home: str, runner=None) -> List[Finding]:
    import torch

    nvcc = os.path.join(home, "bin", "nvcc")
    if not os.path.exists(nvcc):
        return [_finding("EDB02", f"No nvcc in CUDA_HOME={home}", f"{nvcc} does not exist.",
                         (Fix("Set CUDA_HOME to a full CUDA toolkit (it must contain bin/nvcc)"), _CPU_ONLY))]
    if not torch.version.cuda:
        return [_finding("EDB03", "torch is a CPU-only build",
                         f"torch {torch.__version__} has no CUDA support, so a CUDA extension cannot link "
                         "against it.", (Fix("Install a CUDA build of torch (see `envdoctor check`)"), _CPU_ONLY))]
    version = toolkit.nvcc_version(nvcc, runner)
    if version and version.split(".")[0] != torch.version.cuda.split(".")[0]:
        return [_finding("EDB04", f"nvcc {version} does not match torch's CUDA {torch.version.cuda}",
                         f"{nvcc} is CUDA {version} but torch {torch.__version__} was built with CUDA "
                         f"{torch.version.cuda}; the major versions must match.",
                         (Fix(f"Set CUDA_HOME to a CUDA {torch.version.cuda.split('.')[0]}.x toolkit, or install "
                              f"the torch build for CUDA {version}"), _CPU_ONLY),
                         evidence=(f"nvcc = {version}", f"torch.version.cuda = {torch.version.cuda}"))]
    return []


def doctor_findings(env: Mapping[str, str], cuda: bool, runner=None) -> List[Finding]:
    """The doctor's build-blocking findings; empty if the doctor itself cannot run."""
    try:
        from envdoctor.engine import build_preflight
    except ImportError:
        return []
    try:
        return list(build_preflight(dict(env), cuda=cuda, runner=runner))
    except Exception:  # the doctor failing must not block a build it cannot judge
        return []


def build_blockers(env: Mapping[str, str], cuda: bool, runner=None) -> List[Finding]:
    """Everything that stops the build: the doctor's findings first (they are what
    `envdoctor fix` can apply), then this module's for anything the doctor did not cover."""
    doctor = doctor_findings(env, cuda, runner)
    covered_home = any("CUDA_HOME" in f.message for f in doctor)
    result = list(doctor)
    for finding in cuda_home_findings(env, runner) if cuda else []:
        if finding.code in ("EDB01", "EDB02") and covered_home:
            continue
        result.append(finding)
    return result


def explain(findings: List[Finding]) -> str:
    """Plain text for the refusal: each problem, why, and the commands that fix it."""
    lines: List[str] = []
    for f in findings:
        lines.append(f"[{f.code}] {f.title}")
        lines.append(f"  {f.message}")
        for fix in f.fixes:
            lines.append(f"  fix: {fix.summary}")
            lines.extend(f"    {cmd}" for cmd in fix.commands)
    return "\n".join(lines)


