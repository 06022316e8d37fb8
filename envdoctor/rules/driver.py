"""Rules about the NVIDIA driver and the GPUs (ED1xx)."""
from __future__ import annotations

from typing import List, Optional

from envdoctor import knowledge as kb
from envdoctor.model import Fix, Severity
from envdoctor.rules._helpers import (arch_list_runs, build_toolkit, cc_text, env_vars, ev, fmt_mm, gpu_capabilities,
                                      find_torch_build, mm, pip_install_fix, public_version, sm_name,
                                      torch_for_driver_fix, torch_info, unverified_note)
from envdoctor.rules.base import rule

DRIVER_DOWNLOAD = "https://www.nvidia.com/Download/index.aspx"


def _driver_upgrade_fix(minimum: Optional[str]) -> Fix:
    target = f">= {minimum}" if minimum else "of a newer branch"
    return Fix(summary=f"Upgrade the NVIDIA driver to {target} (needs administrator rights and a reboot)",
               commands=(f"# install an NVIDIA driver {target}: your distribution's driver packages "
                         f"or {DRIVER_DOWNLOAD}",),
               action=None, safe=False)


@rule("ED101", area="driver", title="Driver runs torch's CUDA build", needs=("driver.version", "torch"),
      fixable=True, reads=("env.python",))
def driver_too_old_for_torch(ctx):
    """The NVIDIA driver is too old for the CUDA version torch was built with.

    Every CUDA build of torch needs a minimum driver. Within a CUDA major
    version, minor-version compatibility lets a newer build run on an older
    driver (CUDA 12.x runs on >= 525.60.13), but never across majors (a cu130
    build needs a CUDA 13 driver, >= 580). When the driver is too old,
    ``torch.cuda.is_available()`` is False with "The NVIDIA driver on your
    system is too old".

    Fix: install the torch build for the newest CUDA your driver runs (the
    exact pip command is given), or upgrade the driver.
    """
    torch = torch_info(ctx.facts)
    cuda, driver = torch.get("cuda"), ctx.value("driver.version")
    if not cuda:
        return ctx.not_applicable("torch is a CPU-only build")
    verdict = kb.check_driver_for_cuda(driver, cuda)
    if verdict.get("ok") is not False:
        return None  # runs, or the tables cannot tell: no verdict without evidence
    reason = str(verdict.get("reason") or "") + unverified_note(verdict.get("unverified"), "driver")
    minimum = verdict.get("min_driver") or kb.min_driver_for_cuda(cuda)
    fixes: List[Fix] = []
    pip_fix = torch_for_driver_fix(ctx.facts, "Install torch {torch} built for CUDA {cuda}, which driver "
                                   + str(driver) + " runs")
    if pip_fix:
        fixes.append(pip_fix)
    fixes.append(_driver_upgrade_fix(minimum))
    return ctx.finding(
        Severity.ERROR,
        f"Driver {driver} cannot run torch {torch.get('version')}, which was built for CUDA {cuda}: {reason}. "
        f"Expected a driver >= {minimum or 'the minimum for that CUDA'}.",
        evidence=(ev("driver.version", driver), ev("torch.cuda", cuda), ev("torch.version", torch.get("version"))),
        fixes=fixes)


@rule("ED102", area="driver", title="Driver runs code built by the CUDA toolkit",
      needs=("driver.version", "nvcc.version"), reads=("driver.cuda_max", "nvcc.toolkit"))
def driver_too_old_for_toolkit(ctx):
    """The driver is too old for the CUDA toolkit (nvcc) that builds extensions.

    Code compiled by nvcc needs a driver that supports its CUDA version (with
    minor-version compatibility inside a major, never across majors).
    Extensions built with a too-new nvcc compile fine and then fail at run time
    with "CUDA driver version is insufficient for CUDA runtime version" or "the
    provided PTX was compiled with an unsupported toolchain".

    Fix: build with a toolkit of the CUDA major your driver supports (matching
    torch's CUDA), or upgrade the driver.
    """
    driver, nvcc = ctx.value("driver.version"), ctx.value("nvcc.version")
    verdict = kb.check_driver_for_cuda(driver, nvcc)
    if verdict.get("ok") is not False:
        return None
    reason = str(verdict.get("reason") or "") + unverified_note(verdict.get("unverified"), "driver")
    minimum = verdict.get("min_driver") or kb.min_driver_for_cuda(nvcc)
    # check_driver_for_cuda is ED101's verdict too; its reason and newest_cuda_for_driver apply
    # minor-version compatibility, so a driver runs more than the "CUDA Version" it reports.
    newest = kb.newest_cuda_for_driver(driver)
    reported = ctx.value("driver.cuda_max") or kb.driver_max_cuda(driver)
    target = (f"a CUDA toolkit driver {driver} runs (CUDA {newest.split('.')[0]}.x up to {newest}), matching "
              f"torch's CUDA" if newest else "a CUDA toolkit of the major your driver supports, matching torch's CUDA")
    return ctx.finding(
        Severity.WARNING,
        f"nvcc {nvcc} (at {ctx.value('nvcc.toolkit') or ctx.value('nvcc.path')}) produces code that needs a "
        f"driver >= {minimum or 'a newer one'}: {reason}. Extensions it builds will fail to run.",
        evidence=(ev("driver.version", driver), ev("nvcc.version", nvcc), ev("driver.cuda_max", reported)),
        fixes=[Fix(summary=f"Build with {target}, with CUDA_HOME on it", commands=(), action=None),
               _driver_upgrade_fix(minimum)])


_SMI_PROBLEMS = {
    "library_mismatch": (Severity.ERROR, "the loaded NVIDIA kernel module and the user-space driver libraries "
                         "have different versions (usually after a driver update without a reboot)",
                         Fix(summary="Reboot so that the kernel module of the installed driver is loaded",
                             commands=("# reboot the machine (or reload the nvidia kernel modules)",), safe=False)),
    "not_loaded": (Severity.ERROR, "nvidia-smi cannot talk to the NVIDIA kernel driver (not loaded, not "
                   "installed for this kernel, or a container started without GPU access)",
                   Fix(summary="Load the driver: reboot after installing it; in a container, start it with "
                                "GPU access", commands=("docker run --gpus all ...  # containers",
                                                        "# on the host: reinstall the driver for the running "
                                                        "kernel, then reboot"), safe=False)),
    "timeout": (Severity.WARNING, "nvidia-smi did not answer in time (a hung GPU or driver); its facts are "
                "missing from this report", Fix(summary="Check `dmesg` for Xid errors; a reboot usually clears a "
                                                         "hung GPU", commands=("dmesg | grep -i xid",), safe=False)),
    "error": (Severity.WARNING, "nvidia-smi failed", Fix(summary="Run nvidia-smi yourself to see the error",
                                                        commands=("nvidia-smi",), safe=False)),
}


@rule("ED103", area="driver", title="nvidia-smi talks to the driver", needs=("driver.smi",),
      reads=("driver.kernel_module_version", "driver.version"))
def smi_fails(ctx):
    """``nvidia-smi`` exists but cannot talk to the driver, or the driver libraries
    do not match the loaded kernel module.

    "Failed to initialize NVML: Driver/library version mismatch" means the
    driver was updated and the old kernel module is still loaded. "NVIDIA-SMI has
    failed because it couldn't communicate with the NVIDIA driver" means the
    module is not loaded (or, in a container, the GPU was not passed through).
    Either way no CUDA program can use the GPU.

    Fix: reboot (mismatch), reinstall the driver for the running kernel, or start
    the container with ``--gpus all``.
    """
    smi = ctx.value("driver.smi") or {}
    status = smi.get("status")
    kernel, user = ctx.value("driver.kernel_module_version"), ctx.value("driver.version")
    if status == "ok" and kernel and user and kernel != user:
        status = "library_mismatch"
    if status == "not_found":
        return ctx.not_applicable("nvidia-smi is not installed here")
    if status not in _SMI_PROBLEMS:
        return None
    severity, meaning, fix = _SMI_PROBLEMS[status]
    detail = (smi.get("message") or "").strip().splitlines()
    observed = f" It said: {detail[0]!r}." if detail else ""
    if kernel and user and kernel != user:
        observed += f" Kernel module {kernel}, libraries {user}."
    return ctx.finding(severity, f"nvidia-smi status is {status}: {meaning}.{observed} Expected it to list the "
                                 f"GPUs.", evidence=(ev("driver.smi.status", status), "driver.smi"), fixes=[fix])


@rule("ED104", area="driver", title="nvidia-smi's \"CUDA Version\" read correctly", needs=("driver.cuda_max",),
      reads=("driver.version", "nvcc.version", "torch"))
def smi_cuda_version_is_a_maximum(ctx):
    """Explains that the "CUDA Version" printed by ``nvidia-smi`` is the newest CUDA
    the driver supports, not an installed CUDA toolkit.

    A common misreading is "nvidia-smi says 12.0, so I must install CUDA 12.0"
    or "torch's 11.1 does not match the 12.0 in nvidia-smi". The driver runs
    any CUDA build up to its maximum (older builds always; newer minor versions
    of the same major through minor-version compatibility). What must match is
    torch's CUDA and the nvcc that builds extensions.

    Nothing to fix: this is information.
    """
    driver_max = ctx.value("driver.cuda_max")
    torch_cuda = torch_info(ctx.facts).get("cuda")
    nvcc = ctx.value("nvcc.version")
    if not torch_cuda and not nvcc:
        return ctx.not_applicable("neither a CUDA torch nor nvcc to compare with")
    others = [(name, value) for name, value in (("torch's CUDA", torch_cuda), ("nvcc", nvcc))
              if value and mm(value) != mm(driver_max)]
    if not others:
        return None
    seen = "; ".join(f"{name} is {fmt_mm(mm(value))}" for name, value in others)
    return ctx.finding(
        Severity.INFO,
        f"nvidia-smi's \"CUDA Version: {driver_max}\" is the newest CUDA driver {ctx.value('driver.version')} "
        f"supports, not an installed toolkit ({seen}). A driver runs builds for older CUDA versions, so a "
        f"different number here is not a problem by itself.",
        evidence=(ev("driver.cuda_max", driver_max), ev("torch.cuda", torch_cuda), ev("nvcc.version", nvcc)))


def _torch_build_for_gpu(ctx, cc) -> Optional[Fix]:
    """A published torch build (this release first, then the newest) whose arch list runs on ``cc``."""
    def runs_here(release: str, cuda: str) -> bool:
        archs = kb.torch_arch_list(release, cuda)
        return bool(archs) and arch_list_runs(cc, archs) and bool(kb.pip_install_command(release, cuda))

    found = find_torch_build(ctx.facts, runs_here, first=torch_info(ctx.facts).get("version"))
    if not found:
        return None
    release, cuda = found
    return pip_install_fix(release, cuda, f"Install torch {release} built for CUDA {cuda}, whose kernels include "
                                          f"{sm_name(cc)}")


@rule("ED110", area="gpus", title="torch has kernels for every GPU", needs=("gpus", "torch"), fixable=True,
      reads=("driver.version", "env.python"))
def gpu_missing_from_torch_arch_list(ctx):
    """A GPU's compute capability is missing from the architectures torch was built for.

    torch ships machine code for a list of architectures
    (``torch.cuda.get_arch_list()``). A GPU runs code built for its own major
    version at an equal or lower minor, or PTX it can JIT-compile. Otherwise
    every kernel fails with "no kernel image is available for execution on the
    device" (old GPUs such as sm_50-sm_70 on recent cu128+/cu13 builds, or new
    GPUs such as sm_120 on builds older than cu128).

    Fix: install a torch build whose arch list covers the GPU (the exact
    command is given when the tables know one), or build torch from source with
    ``TORCH_CUDA_ARCH_LIST`` set to the GPU's capability.
    """
    torch = torch_info(ctx.facts)
    if not torch.get("cuda"):
        return ctx.not_applicable("torch is a CPU-only build")
    if not gpu_capabilities(ctx.facts):
        return ctx.not_applicable("no GPU with a known compute capability")
    archs = torch.get("arch_list")
    source = ""
    if not archs:
        info = kb.torch_arch_list_info(public_version(torch.get("version")), torch["cuda"]) or {}
        archs = info.get("arch_list")
        source = " (arch list from envdoctor's tables" + (", unverified)" if info.get("unverified") else ")")
    if not archs:
        return ctx.not_applicable("torch's architecture list is not known")
    findings = []
    for gpu, cc in gpu_capabilities(ctx.facts):
        if arch_list_runs(cc, archs):
            continue
        fix = _torch_build_for_gpu(ctx, cc)
        manual = Fix(summary="Build torch from source for this GPU",
                     commands=(f"export TORCH_CUDA_ARCH_LIST={cc_text(cc)}",), action=None, safe=False)
        findings.append(ctx.finding(
            Severity.ERROR,
            f"GPU {gpu.get('index')} ({gpu.get('name')}) has compute capability {cc_text(cc)} ({sm_name(cc)}), "
            f"but torch {torch.get('version')} has kernels only for {', '.join(archs)}{source}: CUDA calls on it "
            f"fail with \"no kernel image is available for execution on the device\".",
            evidence=(ev("gpus[].compute_cap", cc_text(cc)), ev("torch.arch_list", ",".join(archs))),
            fixes=[f for f in (fix, manual) if f]))
    return findings


def _arch_range(support) -> str:
    first, last = support.get("first_cuda"), support.get("last_cuda")
    if first and last:
        return f"; {support.get('arch')} needs CUDA {first} to {last}"
    if first:
        return f"; {support.get('arch')} needs CUDA >= {first}"
    return ""


@rule("ED111", area="gpus", title="nvcc can compile for every GPU", needs=("gpus",), blocks_build=True,
      reads=("env.vars", "nvcc.path", "nvcc.version", "toolkits", "torch"))
def gpu_unknown_to_nvcc(ctx):
    """The CUDA toolkit that builds extensions cannot compile for a GPU in this machine.

    Each nvcc knows a range of architectures: new GPUs need a new enough
    toolkit (sm_86 needs CUDA >= 11.1, sm_90 >= 11.8, sm_120 >= 12.8) and CUDA
    13 dropped sm_50-sm_70. When ``TORCH_CUDA_ARCH_LIST`` is unset, torch builds
    for the visible GPUs and nvcc stops with "Unsupported gpu architecture
    'compute_XX'".

    Fix: build with a toolkit that supports the GPU (and matches torch's CUDA
    major), or set ``TORCH_CUDA_ARCH_LIST`` to architectures the toolkit has.
    """
    toolkit = build_toolkit(ctx.facts)
    version = (toolkit or {}).get("version") or ctx.value("nvcc.version")
    if not version:
        return ctx.not_applicable("no CUDA toolkit found")
    if env_vars(ctx.facts).get("TORCH_CUDA_ARCH_LIST"):
        return ctx.not_applicable("TORCH_CUDA_ARCH_LIST chooses the architectures (see ED501)")
    if not gpu_capabilities(ctx.facts):
        return ctx.not_applicable("no GPU with a known compute capability")
    findings = []
    for gpu, cc in gpu_capabilities(ctx.facts):
        support = kb.arch_support(sm_name(cc), str(version)) or {}
        if support.get("supported") is not False:
            continue  # supported, or unknown to the tables
        findings.append(ctx.finding(
            Severity.ERROR,
            f"GPU {gpu.get('index')} ({gpu.get('name')}) is {sm_name(cc)}, which nvcc {version} cannot compile "
            f"for (it supports {', '.join(kb.nvcc_archs(str(version))) or 'other architectures'})"
            f"{_arch_range(support)}{unverified_note(support.get('unverified'), 'architecture')}. Extension "
            f"builds for this GPU stop with \"Unsupported gpu architecture 'compute_{cc[0]}{cc[1]}'\".",
            evidence=(ev("gpus[].compute_cap", cc_text(cc)), ev("toolkit.version", version)),
            fixes=[Fix(summary=f"Use a CUDA toolkit that supports {sm_name(cc)} and matches torch's CUDA major, "
                               f"with CUDA_HOME on it", action=None, safe=False)]))
    return findings
