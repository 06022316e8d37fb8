"""Declared requirements (ED8xx): the project's ``[tool.envdoctor.require]`` table against this machine.

Each rule needs its ``require.<key>`` fact, so it runs only when the project
declares that key (``envdoctor/require.py`` turns the table into facts). An unmet
requirement is an error: a CI preflight that fails fast, with the value seen, the
value required, and the fix.
"""
from __future__ import annotations

from typing import Any, List, Optional

from envdoctor import knowledge as kb
from envdoctor.model import Fix, Severity
from envdoctor.require import spec_allows
from envdoctor.rules._helpers import (arch_list_runs, cc_text, ev, find_torch_build, gpu_capabilities, gpus,
                                      torch_info)
from envdoctor.rules.base import rule

GB = 1e9 / (1 << 20)  # MiB per GB (10^9 bytes), as GPU makers count memory


def _source(ctx, key: str) -> str:
    fact = ctx.facts.get(f"require.{key}")
    return (fact.source if fact and fact.source else "the requirement table").split(" [")[0]


def _relax(ctx, key: str) -> Fix:
    return Fix(summary=f"If this machine is meant to pass, change `{key}` in [tool.envdoctor.require] of "
                       f"{_source(ctx, key)}", action=None, safe=True)


def _unmet(ctx, key: str, message: str, evidence: List[str], fixes: List[Fix]):
    required = ctx.value(f"require.{key}")
    return ctx.finding(Severity.ERROR, f"{message} The project requires {key} = {required!r} "
                       f"({_source(ctx, key)}).", evidence=[ev(f"require.{key}", required)] + evidence,
                       fixes=fixes + [_relax(ctx, key)])


def _version_rule(ctx, key: str, what: str, seen: Optional[str], fact_key: str, fixes: List[Fix],
                  absent: str):
    spec = ctx.value(f"require.{key}")
    if not seen:
        return _unmet(ctx, key, f"{absent} Expected {what} {spec}.", [ev(fact_key, None)], fixes)
    allowed = spec_allows(spec, seen)
    if allowed:
        return None
    why = "is not a version envdoctor can compare" if allowed is None else "does not satisfy"
    return _unmet(ctx, key, f"{what} {seen} {why} {spec}.", [ev(fact_key, seen)], fixes)


@rule("ED801", area="require", title="Driver meets the declared requirement",
      needs=("require.driver", "driver.present"), reads=("driver.version",))
def require_driver(ctx):
    """The NVIDIA driver is missing or its version is outside ``driver`` in
    ``[tool.envdoctor.require]``.

    A job that needs CUDA 12.x kernels needs a driver that runs them (e.g.
    ``driver = ">=525"``); failing here takes seconds, failing in the job takes a
    queue wait and a cryptic ``cudaErrorInsufficientDriver``.

    Fix: run the job on a machine with a newer driver (install it, or pick a
    runner label that has it), or change the requirement.
    """
    fix = Fix(summary="Install an NVIDIA driver that satisfies the requirement, or run the job where one is "
                      "installed (see docs/ci.md for runner labels)",
              commands=("nvidia-smi --query-gpu=driver_version --format=csv,noheader",), action=None, safe=False)
    return _version_rule(ctx, "driver", "NVIDIA driver", ctx.value("driver.version"), "driver.version", [fix],
                         "No NVIDIA driver was found on this machine.")


@rule("ED802", area="require", title="torch meets the declared requirement", needs=("require.torch", "torch.status"),
      reads=("torch", "require.torch_cuda", "driver.version", "env.python"))
def require_torch(ctx):
    """torch is missing, broken, or its release is outside ``torch`` (a PEP 440
    spec such as ``">=2.1,<3"``).

    Fix: install a torch release that satisfies the spec (the pip command is
    given), or change the requirement.
    """
    spec = ctx.value("require.torch")
    fix = _torch_build_fix(ctx) or Fix(summary=f"Install a torch release that satisfies {spec}",
                                       commands=(f"python -m pip install 'torch{_pip_spec(spec)}'",),
                                       action=None, safe=False)
    status = (ctx.value("torch.status") or {}).get("status")
    absent = "torch is not installed in this Python." if status == "missing" else \
        f"torch does not import here (torch.status = {status})."
    return _version_rule(ctx, "torch", "torch", torch_info(ctx.facts).get("version"), "torch.version", [fix], absent)


def _torch_build_fix(ctx) -> Optional[Fix]:
    """The pip command of a published torch build that meets both ``torch`` and ``torch_cuda`` (those
    declared), this Python and the driver, from the knowledge tables; None when none is known."""
    torch_spec, cuda_spec = ctx.value("require.torch"), ctx.value("require.torch_cuda")

    def accept(release: str, cuda: str) -> bool:
        command = kb.pip_install_command(release, cuda)
        return bool(command) and (not cuda_spec or bool(spec_allows(cuda_spec, cuda))) and (
            not torch_spec or bool(spec_allows(torch_spec, _newest_patch(command, release))))

    found = find_torch_build(ctx.facts, accept, first=torch_info(ctx.facts).get("version"))
    if not found:
        return None
    release, cuda = found
    return Fix(summary=f"Install torch {release} built for CUDA {cuda}, which meets the requirements",
               commands=(kb.pip_install_command(release, cuda),), action=None, safe=False)


def _newest_patch(command: str, release: str) -> str:
    # "pip install torch==2.5.1 ..." -> "2.5.1"; a wildcard pin -> the release itself
    for word in command.split():
        if word.startswith("torch==") and "*" not in word:
            return word[len("torch=="):]
    return release


def _pip_spec(spec: str) -> str:
    from envdoctor.require import normalise_spec

    return normalise_spec(spec)


@rule("ED803", area="require", title="torch's CUDA build meets the declared requirement",
      needs=("require.torch_cuda", "torch.status"), reads=("torch", "require.torch", "driver.version", "env.python"))
def require_torch_cuda(ctx):
    """torch is a CPU-only build, or was built for a CUDA outside ``torch_cuda``
    (e.g. ``"12.*"``).

    The CUDA torch was built for decides which driver it needs and which
    toolkit extensions must be built with.

    Fix: install the torch wheel of the required CUDA from the PyTorch index
    (``--index-url https://download.pytorch.org/whl/cuXY``), or change the
    requirement.
    """
    spec = ctx.value("require.torch_cuda")
    torch = torch_info(ctx.facts)
    fix = _torch_build_fix(ctx) or Fix(
        summary=f"Install a torch wheel built for a CUDA that satisfies {spec} from the PyTorch index "
                "(https://download.pytorch.org/whl/ followed by cu and the CUDA major and minor, e.g. cu126)",
        action=None, safe=False)
    if torch and not torch.get("cuda"):
        return _unmet(ctx, "torch_cuda", f"torch {torch.get('version')} is a CPU-only build (torch.version.cuda is "
                      f"None). Expected a CUDA build satisfying {spec}.", [ev("torch.cuda", None)], [fix])
    return _version_rule(ctx, "torch_cuda", "torch's CUDA", torch.get("cuda"), "torch.cuda", [fix],
                         "torch's facts are not available (torch is missing or does not import).")


@rule("ED804", area="require", title="nvcc meets the declared requirement", needs=("require.nvcc",),
      reads=("nvcc.path", "nvcc.version"))
def require_nvcc(ctx):
    """No ``nvcc`` is on ``PATH``, or its version is outside ``nvcc`` (``true``
    asks only for an nvcc).

    Jobs that compile CUDA extensions (detectron2, MSDeformAttn, flash-attn)
    need nvcc, and one whose major matches torch's CUDA.

    Fix: install the CUDA toolkit (or ``conda install cuda-nvcc``) and put its
    ``bin/`` on ``PATH``, or change the requirement.
    """
    required = ctx.value("require.nvcc")
    fix = Fix(summary="Install a CUDA toolkit with nvcc and put its bin/ first on PATH (e.g. "
                      "/usr/local/cuda/bin), or `conda install -c nvidia cuda-nvcc` in a conda env",
              commands=("export PATH=/usr/local/cuda/bin:$PATH", "nvcc --version"), action=None, safe=False)
    path, version = ctx.value("nvcc.path"), ctx.value("nvcc.version")
    if required is True:
        if path:
            return None
        return _unmet(ctx, "nvcc", "No nvcc is on PATH.", [ev("nvcc.path", None)], [fix])
    return _version_rule(ctx, "nvcc", "nvcc", version, "nvcc.version", [fix], "No nvcc is on PATH.")


@rule("ED805", area="require", title="gcc meets the declared requirement", needs=("require.gcc",),
      reads=("compiler.gcc",))
def require_gcc(ctx):
    """No ``gcc`` is on ``PATH``, or its version is outside ``gcc``.

    nvcc accepts only host compilers up to a maximum version per CUDA release
    (see ED401); a project pins the range its builds were tested with.

    Fix: install a gcc in the range and point builds at it (``CC``, ``CXX``,
    ``NVCC_CCBIN``), or change the requirement.
    """
    fix = Fix(summary="Install a gcc that satisfies the requirement and select it for builds",
              commands=("export CC=/usr/bin/gcc-12 CXX=/usr/bin/g++-12 NVCC_CCBIN=/usr/bin/g++-12",),
              action=None, safe=False)
    gcc = ctx.value("compiler.gcc") or {}
    return _version_rule(ctx, "gcc", "gcc", gcc.get("version"), "compiler.gcc.version", [fix],
                         "No gcc is on PATH.")


def _gpu_fix(what: str) -> Fix:
    return Fix(summary=f"Run the job on a machine with {what}: pick a GPU runner label, request GPUs from the "
                       "scheduler (e.g. `srun --gpus=1`), or start the container with `--gpus all`",
               action=None, safe=False)


def _gpu_names(ctx) -> str:
    return ", ".join(f"{g.get('index')}: {g.get('name')}" for g in gpus(ctx.facts)) or "none"


@rule("ED806", area="require", title="GPUs have the declared compute capability",
      needs=("require.compute_capability", "driver.present"), reads=("gpus",))
def require_compute_capability(ctx):
    """A GPU's compute capability is outside ``compute_capability`` (e.g.
    ``">=8.0"`` for bfloat16 and FlashAttention), or no GPU is visible.

    Every visible GPU must satisfy the spec: a job spread over mixed GPUs runs
    at the pace, and with the kernels, of the oldest.

    Fix: run the job on GPUs of the required generation, hide the others with
    ``CUDA_VISIBLE_DEVICES``, or change the requirement.
    """
    spec = ctx.value("require.compute_capability")
    caps = gpu_capabilities(ctx.facts)
    if not caps:
        return _unmet(ctx, "compute_capability", f"No GPU with a known compute capability is visible (GPUs: "
                      f"{_gpu_names(ctx)}).", [ev("gpus", len(gpus(ctx.facts)))],
                      [_gpu_fix(f"GPUs of compute capability {spec}")])
    bad = [(g, cc) for g, cc in caps if not spec_allows(spec, cc_text(cc))]
    if not bad:
        return None
    listed = ", ".join(f"GPU {g.get('index')} {g.get('name')} ({cc_text(cc)})" for g, cc in bad)
    return _unmet(ctx, "compute_capability", f"{listed} {'does' if len(bad) == 1 else 'do'} not satisfy "
                  f"compute capability {spec}.", [ev("gpus.compute_cap", ", ".join(cc_text(cc) for _, cc in bad))],
                  [_gpu_fix(f"GPUs of compute capability {spec}")])


@rule("ED807", area="require", title="Enough GPUs are visible", needs=("require.gpus", "driver.present"),
      reads=("gpus", "env.vars"))
def require_gpus(ctx):
    """Fewer GPUs are visible than ``gpus`` requires.

    A CI runner without GPU access, a container started without ``--gpus``, a
    Slurm job that asked for fewer GPUs, or ``CUDA_VISIBLE_DEVICES`` hiding some:
    the job would fall back to the CPU or fail later in ``torch.distributed``.

    Fix: run the job where the GPUs are (runner label, ``--gpus all``,
    ``srun --gpus=N``), or change the requirement.
    """
    need = ctx.value("require.gpus")
    found = gpus(ctx.facts)
    count = len(found)
    if count >= need:
        return None
    visible = (ctx.value("env.vars") or {}).get("CUDA_VISIBLE_DEVICES")
    hint = f" CUDA_VISIBLE_DEVICES={visible!r}." if visible is not None else ""
    where = "no NVIDIA driver is present" if not ctx.value("driver.present") else f"GPUs: {_gpu_names(ctx)}"
    return _unmet(ctx, "gpus", f"{count} GPU(s) visible, {need} required ({where}).{hint}",
                  [ev("gpus", count), ev("driver.present", ctx.value("driver.present"))],
                  [_gpu_fix(f"at least {need} GPU(s)")])


@rule("ED808", area="require", title="GPUs have the declared memory", needs=("require.gpu_memory_gb", "driver.present"),
      reads=("gpus",))
def require_gpu_memory(ctx):
    """A visible GPU has less memory than ``gpu_memory_gb`` (GB of 10^9 bytes,
    as GPU makers count: an "80GB" H100 reports 81559 MiB, 85.5 GB), or no
    GPU is visible.

    Fix: run the job on GPUs with more memory, or change the requirement.
    """
    need = ctx.value("require.gpu_memory_gb")
    found = gpus(ctx.facts)
    if not found:
        return _unmet(ctx, "gpu_memory_gb", "No GPU is visible.", [ev("gpus", 0)],
                      [_gpu_fix(f"GPUs of at least {need} GB")])
    small = [g for g in found if (g.get("memory_total_mib") or 0) / GB < need]
    if not small:
        return None
    listed = ", ".join(f"GPU {g.get('index')} {g.get('name')} ({_gb(g.get('memory_total_mib'))})" for g in small)
    return _unmet(ctx, "gpu_memory_gb", f"{listed}: less than {need} GB.",
                  [ev("gpus.memory_total_mib", ", ".join(str(g.get("memory_total_mib")) for g in small))],
                  [_gpu_fix(f"GPUs of at least {need} GB")])


def _gb(mib: Any) -> str:
    return f"{mib / GB:.1f} GB" if isinstance(mib, (int, float)) else "memory unknown"


@rule("ED809", area="require", title="NCCL meets the declared requirement", needs=("require.nccl", "torch.status"),
      reads=("torch",))
def require_nccl(ctx):
    """The NCCL torch uses is missing (a CPU-only or a non-NCCL build) or its
    version is outside ``nccl``.

    With ``--quick`` torch is not imported and its NCCL is not known: the check
    is skipped.

    Fix: install the torch build that bundles the NCCL you need (NCCL comes with
    the ``nvidia-nccl-cu*`` wheel torch depends on), or change the requirement.
    """
    torch = torch_info(ctx.facts)
    if torch.get("cuda") and torch.get("nccl") is None and torch.get("cuda_available") is None:
        return ctx.not_applicable("torch's NCCL is known only when torch is imported (not with --quick)")
    fix = Fix(summary="Upgrade the NCCL wheel torch loads, or install the torch build that brings it",
              commands=("python -m pip install --upgrade nvidia-nccl-cu12  # cu13 for CUDA 13 builds",),
              action=None, safe=False)
    return _version_rule(ctx, "nccl", "NCCL", torch.get("nccl"), "torch.nccl", [fix],
                         "torch reports no NCCL (CPU-only build, or torch's facts are not available).")


@rule("ED810", area="require", title="Declared modules import", needs=("require.imports", "import_check"))
def require_imports(ctx):
    """A module listed in ``imports`` does not import in a fresh interpreter
    (each is imported in its own child of the diagnosed Python, with a timeout).

    The usual failures: a compiled extension (``detectron2._C``,
    ``MultiScaleDeformableAttention``) built against another torch (undefined
    symbol), never built, or built for another Python.

    Fix: rebuild or reinstall the module in this environment (the error names
    the cause), or change the requirement.
    """
    checked = ctx.value("import_check") or {}
    findings = []
    for name in ctx.value("require.imports"):
        outcome = checked.get(name) or {"status": "not checked", "message": "no import result recorded"}
        if outcome.get("status") == "ok":
            continue
        fix = Fix(summary=f"See the full error, then rebuild or reinstall {name} in this environment",
                  commands=(f"python -c 'import {name}'",), action=None, safe=True)
        findings.append(_unmet(ctx, "imports", f"`import {name}` fails ({outcome.get('status')}): "
                               f"{(outcome.get('message') or '').strip() or 'no message'}.",
                               [ev(f"import_check.{name}", outcome.get("status"))], [fix]))
    return findings


@rule("ED811", area="require", title="Declared modules carry device code for these GPUs",
      needs=("require.cuda_kernels", "device_code"), reads=("gpus",))
def require_cuda_kernels(ctx):
    """A module listed in ``cuda_kernels`` has no device code (SASS or PTX) that
    runs on this machine's GPUs, read from the ``.nv_fatbin`` sections of its
    binaries; on a machine without GPUs, no device code at all.

    An extension built with ``TORCH_CUDA_ARCH_LIST="7.5"`` imports on an A100
    and then fails at the first kernel launch with "no kernel image is available
    for execution on the device".

    Fix: rebuild it with ``TORCH_CUDA_ARCH_LIST`` naming these GPUs'
    capabilities (add ``+PTX`` for newer ones), or change the requirement.
    """
    device = ctx.value("device_code") or {}
    caps = gpu_capabilities(ctx.facts)
    arch_list = ";".join(sorted({cc_text(cc) for _, cc in caps})) or "8.0;8.6;9.0+PTX"
    findings = []
    for name in ctx.value("require.cuda_kernels"):
        info = device.get(name) or {"binaries": [], "error": "not read"}
        archs = sorted({a for b in info.get("binaries") or [] for a in b.get("archs") or []})
        fix = Fix(summary=f"Rebuild {name} with device code for these GPUs: in its source directory, run",
                  commands=(f"TORCH_CUDA_ARCH_LIST='{arch_list}' python -m pip install --no-build-isolation "
                            f"--force-reinstall --no-deps .",), action=None, safe=False)
        evidence = [ev(f"device_code.{name}", ", ".join(archs) or None)]
        if info.get("error"):
            findings.append(_unmet(ctx, "cuda_kernels", f"{name}: {info['error']}.", evidence, [fix]))
        elif not archs:
            findings.append(_unmet(ctx, "cuda_kernels", f"{name} carries no CUDA device code (no .nv_fatbin in "
                                   f"its binaries): it is a CPU-only build.", evidence, [fix]))
        else:
            missing = [(g, cc) for g, cc in caps if not arch_list_runs(cc, archs)]
            if missing:
                listed = ", ".join(f"GPU {g.get('index')} {g.get('name')} (sm_{cc[0]}{cc[1]})" for g, cc in missing)
                findings.append(_unmet(ctx, "cuda_kernels", f"{name} carries device code for {', '.join(archs)}, "
                                       f"none of which runs on {listed}.", evidence, [fix]))
    return findings
