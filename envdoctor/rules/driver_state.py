"""Rules about what state the NVIDIA driver is in (ED105-ED109), from ``driver.state``.

The driver probe asks the driver's own libraries (NVML, libcuda), the kernel
module's /proc entry and nvidia-smi, and names the state they add up to; each
state that needs explaining has one rule here.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from envdoctor import knowledge as kb
from envdoctor.model import Fix, Severity
from envdoctor.rules._helpers import ev, torch_info
from envdoctor.rules.base import rule

WSL_LIBS = "/usr/lib/wsl/lib"


def _state(ctx) -> Dict[str, Any]:
    return ctx.value("driver.state") or {}


def _torch_warning(ctx) -> Optional[str]:
    """What torch itself said when it initialised CUDA (its warning or error), first line."""
    text = (torch_info(ctx.facts).get("cuda_error") or "").strip()
    return text.splitlines()[0].strip() if text else None


def _with_torch(ctx, evidence) -> tuple:
    """The evidence, plus what torch said at CUDA initialisation when it said something."""
    warning = _torch_warning(ctx)
    return tuple(evidence) + ((ev("torch.cuda_error", warning),) if warning else ())


def _first_sentence(text: str) -> str:
    """"CUDA initialization: The NVIDIA driver ... too old (found version 12020)" without the advice after it."""
    head = text.split(". ", 1)[0].rstrip(".")
    return head if len(head) <= 200 else head[:197] + "..."


def _torch_verdict(ctx, driver: Optional[str]) -> str:
    """Could this driver run torch's CUDA build once loaded? The same knowledge ED101 uses."""
    torch = torch_info(ctx.facts)
    if not driver or not torch.get("cuda"):
        return ""
    verdict = kb.check_driver_for_cuda(driver, torch["cuda"])
    if verdict.get("ok") is False:
        return (f" Even with its kernel module loaded it could not run torch {torch.get('version')}: "
                f"{verdict.get('reason')}.")
    return ""


@rule("ED105", area="driver", title="The installed driver has its kernel module", needs=("driver.state",),
      reads=("torch",))
def user_space_driver_without_kernel_module(ctx):
    """The NVIDIA user-space driver (``libcuda.so.1``, ``libnvidia-ml.so.1``) is
    installed but its kernel module is not loaded (no ``/proc/driver/nvidia``).

    This happens when a package pulls in the driver libraries on a machine
    without an NVIDIA GPU (Debian's ``nvidia-cuda-toolkit`` depends on
    ``libcuda1``), when the kernel module was not built for the running kernel,
    or in a container whose image carries driver libraries but was started
    without GPU access. ``cuInit`` then fails (``CUDA_ERROR_NO_DEVICE``), NVML
    says "Driver Not Loaded", and torch warns "The NVIDIA driver on your system
    is too old (found version 12020)": the number is the newest CUDA of the
    library (12020 is CUDA 12.2), not a loaded driver.

    Fix: on a machine with an NVIDIA GPU, load the module of the installed
    driver (install its kernel module package for the running kernel, then
    reboot); in a container, start it with GPU access. Without a GPU nothing
    needs fixing: CUDA code can still be compiled.

    Also reads, when present: ``torch`` (its CUDA-init message is evidence, and
    whether this driver could run torch's CUDA once loaded).
    """
    state = _state(ctx)
    if state.get("state") != "user_space_only":
        if state.get("state") in ("none", "container_no_gpu"):
            return ctx.not_applicable("no NVIDIA driver libraries found")
        return None
    version = state.get("user_space_version")
    cuda = f", CUDA {state['cuda_max']}" if state.get("cuda_max") else ""
    cu_init = f"; cuInit returns {state['cu_init']}" if state.get("cu_init") else ""
    nvml = f"; NVML says {state['nvml_init']}" if state.get("nvml_init") else ""
    warning = _torch_warning(ctx)
    said = (f" torch's CUDA initialisation said {_first_sentence(warning)!r}: that comes from this library."
            if warning else "")
    where = state.get("libcuda") or state.get("nvml")
    container = state.get("container")
    fixes = [Fix(summary="On a machine with an NVIDIA GPU: load the kernel module of the installed driver "
                         "(install the driver's kernel module for the running kernel, then reboot)",
                 commands=("sudo modprobe nvidia", "cat /proc/driver/nvidia/version"), action=None, safe=False)]
    if container:
        fixes.insert(0, Fix(summary=f"In this {container} container the kernel module is the host's: start the "
                                    "container with GPU access", commands=("docker run --gpus all ...",),
                            action=None, safe=False))
    fixes.append(Fix(summary="Without an NVIDIA GPU nothing needs fixing: the library came with a package "
                             "(e.g. Debian's nvidia-cuda-toolkit depends on libcuda1) and builds do not need it",
                     commands=(), action=None, safe=True))
    return ctx.finding(
        Severity.WARNING,
        f"User-space driver {version or '(version unknown)'} installed ({where}{cuda}), kernel module not loaded "
        f"(no /proc/driver/nvidia{cu_init}{nvml}): no CUDA program can use a GPU here.{said}"
        f"{_torch_verdict(ctx, version)} Expected the driver's kernel module to be loaded, or no driver "
        f"libraries on a machine without an NVIDIA GPU.",
        evidence=(ev("driver.state", "user_space_only"), ev("driver.libs.libcuda_path", state.get("libcuda")),
                  ev("driver.libs.cu_init", state.get("cu_init")), ev("driver.kernel_module_version", "not loaded"),
                  ev("torch.cuda_error", warning)),
        fixes=fixes)


@rule("ED106", area="driver", title="WSL2's driver is the one in use", needs=("driver.state",))
def wsl_driver(ctx):
    """This is WSL2: the GPU driver is the Windows host's, and its Linux
    libraries live in ``/usr/lib/wsl/lib``.

    There is no ``/proc/driver/nvidia`` and no kernel module inside WSL2, and
    that is normal. A Linux NVIDIA driver installed inside WSL2 puts its own
    ``libcuda.so.1`` in front of WSL's and breaks CUDA.

    Fix: update the driver on Windows, never inside WSL2; remove a Linux
    ``libcuda`` that shadows WSL's.
    """
    state = _state(ctx)
    if not state.get("wsl"):
        return ctx.not_applicable("not WSL2")
    if state.get("state") != "wsl":
        return None
    libcuda = state.get("libcuda") or ""
    if libcuda and not libcuda.startswith(WSL_LIBS + "/"):
        return ctx.finding(
            Severity.WARNING,
            f"WSL2, but the libcuda.so.1 loaded is {libcuda}, not WSL's in {WSL_LIBS}: a Linux driver installed "
            f"inside WSL2 shadows the Windows driver's library. Expected libcuda from {WSL_LIBS}.",
            evidence=(ev("driver.state", "wsl"), ev("driver.libs.libcuda_path", libcuda)),
            fixes=[Fix(summary="Remove the Linux NVIDIA driver packages from WSL2 (keep the CUDA toolkit), "
                               "then `sudo ldconfig`", commands=("sudo ldconfig", "ldconfig -p | grep libcuda"),
                       action=None, safe=False)])
    cuda = f" (CUDA {state['cuda_max']})" if state.get("cuda_max") else ""
    return ctx.finding(
        Severity.INFO,
        f"WSL2: the GPU driver is the Windows host's{cuda} (libraries in {WSL_LIBS}); no /proc/driver/nvidia and "
        f"no kernel module here is normal. Update the driver on Windows, never inside WSL2.",
        evidence=(ev("driver.state", "wsl"), ev("driver.libs.libcuda_path", libcuda or None)))


@rule("ED107", area="driver", title="The container has a GPU", needs=("driver.state",), reads=("torch",))
def container_without_gpu(ctx):
    """envdoctor runs in a container that was given no GPU: no ``/dev/nvidia*``
    device nodes, no driver libraries, and ``NVIDIA_VISIBLE_DEVICES`` unset or
    ``void``/``none``.

    With the NVIDIA Container Toolkit, a container gets the GPUs and the driver
    libraries only when started with ``--gpus`` (Docker), a GPU resource
    (Kubernetes) or ``NVIDIA_VISIBLE_DEVICES`` naming devices. A CUDA build of
    torch then runs on the CPU.

    Fix: start the container with ``--gpus all`` (or request ``nvidia.com/gpu``
    in Kubernetes); nothing to do if it is meant to be CPU-only.

    Also reads, when present: ``torch`` (a CUDA build makes this a warning; its
    CUDA-init message is evidence).
    """
    state = _state(ctx)
    if not state.get("container"):
        return ctx.not_applicable("not in a container")
    if state.get("state") != "container_no_gpu":
        if state.get("state") in ("ok", "wsl", "library_mismatch", "init_failed"):
            return None
        return ctx.not_applicable(f"the driver state is {state.get('state')}")
    visible = state.get("nvidia_visible_devices")
    shown = "NVIDIA_VISIBLE_DEVICES unset" if visible is None else f"NVIDIA_VISIBLE_DEVICES={visible!r}"
    cuda_torch = bool(torch_info(ctx.facts).get("cuda"))
    return ctx.finding(
        Severity.WARNING if cuda_torch else Severity.INFO,
        f"This {state.get('container')} container has no GPU: {shown}, no /dev/nvidia* "
        f"device nodes and no driver libraries."
        + (" torch is a CUDA build and will run on the CPU." if cuda_torch else "")
        + " Expected a container started with GPU access, if a GPU is wanted here.",
        evidence=_with_torch(ctx, (ev("driver.state", "container_no_gpu"), ev("env.NVIDIA_VISIBLE_DEVICES", visible),
                                   ev("driver.state.device_nodes", "none"))),
        fixes=[Fix(summary="Start the container with GPU access (NVIDIA Container Toolkit)",
                   commands=("docker run --gpus all ...", "# Kubernetes: resources.limits: nvidia.com/gpu: 1"),
                   action=None, safe=False)])


@rule("ED108", area="driver", title="Driver libraries are there for the GPU", needs=("driver.state",), reads=("torch",))
def device_nodes_without_libraries(ctx):
    """NVIDIA device nodes (``/dev/nvidia0``...) or a loaded kernel module are
    present, but neither ``libcuda.so.1`` nor ``nvidia-smi`` can be found.

    Typical for a container started with ``--device /dev/nvidia0`` instead of
    the NVIDIA runtime, or with ``NVIDIA_DRIVER_CAPABILITIES`` lacking
    ``compute,utility``: the GPU is there but no CUDA program can load the
    driver. On a host, the driver's user-space package is missing.

    Fix: start the container with ``--gpus all`` (the runtime mounts the
    driver libraries that match the host's module); on a host, install the
    user-space package of the loaded driver's version.

    Also reads, when present: ``torch`` (its CUDA-init message is evidence).
    """
    state = _state(ctx)
    if state.get("state") != "no_user_space":
        if not state.get("device_nodes") and not state.get("kernel_module_loaded"):
            return ctx.not_applicable("no NVIDIA device nodes or kernel module")
        return None
    nodes = ", ".join(state.get("device_nodes") or [])
    module = state.get("kernel_module_version") or ("loaded" if state.get("kernel_module_loaded") else None)
    seen = " and ".join(part for part in (f"device nodes ({nodes})" if nodes else "",
                                          f"kernel module ({module})" if module else "") if part)
    host_fix = f"of the loaded module's version ({module})" if module and module != "loaded" else \
        "of the loaded module's version"
    return ctx.finding(
        Severity.ERROR,
        f"NVIDIA {seen or 'hardware'} present, but no libcuda.so.1 or nvidia-smi was found: CUDA programs cannot "
        f"load the driver. Expected the driver's libraries next to its device nodes.",
        evidence=_with_torch(ctx, (ev("driver.state", "no_user_space"), ev("driver.state.device_nodes", nodes or None),
                                   ev("driver.kernel_module_version", module), ev("driver.libs", None))),
        fixes=[Fix(summary="In a container: use the NVIDIA runtime, which mounts the host driver's libraries",
                   commands=("docker run --gpus all -e NVIDIA_DRIVER_CAPABILITIES=compute,utility ...",),
                   action=None, safe=False),
               Fix(summary=f"On a host: install the user-space driver {host_fix}",
                   commands=("# your distribution's NVIDIA driver packages, same version as the module",),
                   action=None, safe=False)])


def _seen_by_smi(ctx) -> bool:
    """ED103 already reports a mismatch that nvidia-smi or the version numbers show."""
    smi = ctx.value("driver.smi") or {}
    kernel, user = ctx.value("driver.kernel_module_version"), ctx.value("driver.version")
    return smi.get("status") == "library_mismatch" or (smi.get("status") == "ok" and bool(kernel and user)
                                                         and kernel != user)


@rule("ED109", area="driver", title="The driver's libraries talk to its kernel module", needs=("driver.state",),
      reads=("driver.kernel_module_version", "driver.smi", "driver.version", "torch"))
def driver_libraries_fail(ctx):
    """The driver's own libraries cannot talk to the driver: NVML returns
    ``NVML_ERROR_LIB_RM_VERSION_MISMATCH`` (the libraries were updated and the
    old kernel module is still loaded), or NVML and ``cuInit`` fail although a
    kernel module is loaded.

    Seen without nvidia-smi (which reports a mismatch as "Failed to initialize
    NVML: Driver/library version mismatch", see ED103). No CUDA program can use
    the GPU until this is resolved.

    Fix: reboot (or reload the nvidia kernel modules) after a driver update;
    otherwise read ``dmesg`` for the driver's own error.

    Also reads, when present: ``driver.smi``, ``driver.kernel_module_version``
    and ``driver.version`` (to leave to ED103 what nvidia-smi already showed),
    and ``torch`` (its CUDA-init message is evidence).
    """
    state = _state(ctx)
    name = state.get("state")
    if name not in ("library_mismatch", "init_failed") or _seen_by_smi(ctx):
        if name == "user_space_only":
            return ctx.not_applicable("no kernel module loaded (see ED105)")
        if not state.get("libcuda") and not state.get("nvml") and name != "library_mismatch":
            return ctx.not_applicable("no NVIDIA driver libraries found")
        return None
    said = "; ".join(f"{label} {value}" for label, value in (("NVML:", state.get("nvml_init")),
                                                             ("cuInit:", state.get("cu_init")),
                                                             ("the probe:", state.get("child_error"))) if value)
    evidence = _with_torch(ctx, (ev("driver.state", name), ev("driver.libs.nvml_init", state.get("nvml_init")),
                                 ev("driver.libs.cu_init", state.get("cu_init")),
                                 ev("driver.kernel_module_version", state.get("kernel_module_version"))))
    if name == "library_mismatch":
        return ctx.finding(
            Severity.ERROR,
            f"Driver/library version mismatch: kernel module {state.get('kernel_module_version') or 'unknown'}, "
            f"driver libraries {state.get('user_space_version') or 'unknown'} ({said or 'versions differ'}). "
            f"Expected the libraries of the loaded kernel module (usually: updated without a reboot).",
            evidence=evidence,
            fixes=[Fix(summary="Reboot so that the kernel module of the installed driver is loaded",
                       commands=("# reboot the machine (or reload the nvidia kernel modules)",), safe=False)])
    return ctx.finding(
        Severity.ERROR,
        f"The NVIDIA driver libraries were found ({state.get('libcuda') or state.get('nvml') or 'on disk'}) but the "
        f"driver does "
        f"not answer ({said or 'no details'}). Expected NVML and cuInit to succeed.",
        evidence=evidence,
        fixes=[Fix(summary="Read the kernel log for the driver's error (Xid, RmInit failed)",
                   commands=("dmesg | grep -i -E 'nvrm|xid'",), action=None, safe=False)])


__all__: List[str] = []
