"""Rules about environment variables and machine resources (ED5xx)."""
from __future__ import annotations

import posixpath
import re
from typing import List, Optional, Tuple

from envdoctor import knowledge as kb
from envdoctor.model import Fix, Severity
from envdoctor.rules._helpers import (arch_list_runs, build_toolkit, cc_text, env_vars, ev, gpu_capabilities,
                                      gpus, norm_path, set_env_fix, sm_name, torch_info, unverified_note)
from envdoctor.parsers import arch_list as arch_parser
from envdoctor.rules import _build_model as model
from envdoctor.rules.base import rule

MIB_PER_NVCC_JOB = model.MIB_PER_JOB["cuda"]  # the one RAM budget (see _build_model)


def _arch_entries(value: str) -> Tuple[List[str], List[str]]:
    """(entries, malformed) of a TORCH_CUDA_ARCH_LIST, exactly as torch's builder parses it."""
    parsed = arch_parser.parse(value)
    return parsed.entries, parsed.invalid


def _build_cuda(ctx) -> Optional[str]:
    return (build_toolkit(ctx.facts) or {}).get("version") or ctx.value("nvcc.version")


def _suggested_arch_list(ctx, cuda: Optional[str]) -> Optional[str]:
    """The GPUs' own capabilities (that nvcc can build), else nothing to suggest."""
    caps = sorted({cc for _, cc in gpu_capabilities(ctx.facts)
                   if not cuda or kb.arch_supported_by_cuda(sm_name(cc), cuda)})
    return ";".join(cc_text(cc) for cc in caps) or None


@rule("ED501", area="env", title="TORCH_CUDA_ARCH_LIST can be built", needs=("env.vars",), blocks_build=True,
      fixable=True, reads=("gpus", "toolkits", "torch"))
def arch_list_unbuildable(ctx):
    """``TORCH_CUDA_ARCH_LIST`` holds entries torch cannot parse or the nvcc that builds
    extensions cannot compile for.

    torch splits the value on ``;`` and spaces ("8.6,8.0" with commas is one
    unknown entry: "Unknown CUDA arch (8.6,8.0)"). Each entry becomes
    ``-gencode`` flags, and nvcc stops with "Unsupported gpu architecture
    'compute_XX'" for architectures it does not know (sm_86 needs CUDA >= 11.1,
    sm_120 >= 12.8; CUDA 13 dropped sm_50-sm_70).

    Fix: set it to the GPUs' capabilities that the toolkit supports (e.g.
    ``TORCH_CUDA_ARCH_LIST="8.6"``).
    """
    value = env_vars(ctx.facts).get("TORCH_CUDA_ARCH_LIST")
    if not value or value == "native":
        return ctx.not_applicable("TORCH_CUDA_ARCH_LIST is not set (ED508 checks a build without a GPU)")
    entries, malformed = _arch_entries(value)
    cuda = _build_cuda(ctx)
    verdicts = {e: kb.arch_support(e.split("+")[0], cuda) or {} for e in entries} if cuda else {}
    # Only a definite "not supported" counts: an arch the tables do not know is not an error.
    unbuildable = [e for e, v in verdicts.items() if v.get("supported") is False]
    shaky = any(verdicts[e].get("unverified") for e in unbuildable)
    if not malformed and not unbuildable:
        return None
    problems = []
    if malformed:
        problems.append(f"{', '.join(repr(m) for m in malformed)} cannot be parsed by torch (it raises "
                        f"\"{arch_parser.parse(value).error()}\"; entries are separated by ';' or spaces, like "
                        f"\"8.0;8.6+PTX\", or named like \"Ampere\")")
    if unbuildable:
        problems.append(f"nvcc {cuda} cannot compile for {', '.join(unbuildable)} (it supports "
                        f"{', '.join(kb.nvcc_archs(cuda)) or 'other architectures'})"
                        f"{unverified_note(shaky, 'architecture')}")
    suggestion = _suggested_arch_list(ctx, cuda)
    if not suggestion:
        # What was meant: commas read as separators, entries this nvcc cannot build dropped.
        meant = arch_parser.parse(value.replace(",", ";"))
        good = [e for e in meant.entries if (kb.arch_support(e.split("+")[0].rstrip("af"), cuda) or {}).get(
            "supported") is not False] if cuda else meant.entries
        suggestion = arch_parser.join(good) if good else model.default_arch_list(ctx.facts)
    fixes = [set_env_fix(f"Set TORCH_CUDA_ARCH_LIST={suggestion}", {"TORCH_CUDA_ARCH_LIST": suggestion})] \
        if suggestion else []
    return ctx.finding(Severity.ERROR, f"TORCH_CUDA_ARCH_LIST={value!r}: " + "; ".join(problems) + ".",
                       evidence=(ev("env.TORCH_CUDA_ARCH_LIST", value), ev("toolkit.version", cuda)), fixes=fixes)


@rule("ED508", area="env", title="Extension builds know their GPU architectures",
      needs=("torch",), reads=model.FACTS + ("builds", "ext_sources", "detectron2"), blocks_build=True,
      fixable=True)
def arch_list_needed_without_gpu(ctx):
    """No GPU is visible to torch and ``TORCH_CUDA_ARCH_LIST`` is unset (or ``native``).

    torch's extension builder then takes the architectures of the visible GPUs:
    there are none, and every ``CUDAExtension`` build dies in
    ``_get_cuda_arch_flags`` with ``IndexError: list index out of range`` (older
    torch built for a default old arch, which the newest toolkits reject). This
    is the state of a build node, a CI runner, a container without GPU access,
    or a login node.

    Fix: set ``TORCH_CUDA_ARCH_LIST`` to the GPUs the extensions will run on;
    envdoctor proposes the architectures this torch itself ships that the
    build's nvcc can compile (``envdoctor fix --arch 8.6`` names your own).
    This is an error where this machine builds extensions (build dirs,
    extension sources or detectron2 were found, or during ``envdoctor build``),
    otherwise a warning.
    """
    torch = torch_info(ctx.facts)
    if not torch.get("cuda"):
        return ctx.not_applicable("torch is a CPU-only build")
    if model.gpus_visible(ctx.facts):
        return ctx.not_applicable("torch sees a GPU: builds target it")
    prediction = model.predict(ctx.facts)
    if prediction is None or not prediction.nvcc_version:
        return ctx.not_applicable("no nvcc for extension builds (ED201)")
    value = env_vars(ctx.facts).get("TORCH_CUDA_ARCH_LIST")
    if not model.arch_list(ctx.facts).from_gpus:
        return None
    suggestion = model.default_arch_list(ctx.facts)
    builds_here = "builds" not in ctx.facts or ctx.value("builds") or ctx.value("ext_sources") \
        or ctx.value("detectron2")
    fixes = [set_env_fix(f"Set TORCH_CUDA_ARCH_LIST={suggestion} (the architectures torch "
                         f"{torch.get('version')} ships; name your GPUs' instead with `envdoctor fix --arch`)",
                         {"TORCH_CUDA_ARCH_LIST": suggestion})] if suggestion else []
    state = "is 'native'" if value == "native" else "is not set"
    return ctx.finding(
        Severity.ERROR if builds_here else Severity.WARNING,
        f"torch {torch.get('version')} sees no GPU here and TORCH_CUDA_ARCH_LIST {state}: a CUDAExtension build "
        f"finds no architecture to compile for and dies in torch's _get_cuda_arch_flags "
        f"(\"IndexError: list index out of range\"). Expected TORCH_CUDA_ARCH_LIST naming the target GPUs"
        f"{f', e.g. {suggestion}' if suggestion else ''}.",
        evidence=(ev("torch.cuda_available", torch.get("cuda_available")), ev("env.TORCH_CUDA_ARCH_LIST", value)),
        fixes=fixes)


@rule("ED502", area="env", title="TORCH_CUDA_ARCH_LIST covers the GPUs", needs=("env.vars", "gpus"), fixable=True)
def arch_list_misses_gpu(ctx):
    """``TORCH_CUDA_ARCH_LIST`` is set, but none of its entries runs on a GPU of this machine.

    Extensions are compiled only for the listed architectures. Built for 7.5 and
    run on an 8.6 GPU, every kernel fails with "no kernel image is available
    for execution on the device" (PTX entries, "+PTX", run on newer GPUs).

    Fix: include the GPU's capability (e.g. ``TORCH_CUDA_ARCH_LIST="8.6"``) and
    rebuild the extension.
    """
    value = env_vars(ctx.facts).get("TORCH_CUDA_ARCH_LIST")
    if not value or value == "native":
        return ctx.not_applicable("TORCH_CUDA_ARCH_LIST is not set")
    entries, _ = _arch_entries(value)
    missed = [(gpu, cc) for gpu, cc in gpu_capabilities(ctx.facts) if not arch_list_runs(cc, entries)]
    if not entries or not missed:
        return None
    names = ", ".join(f"GPU {g.get('index')} {g.get('name')} ({cc_text(cc)})" for g, cc in missed)
    wanted = ";".join(dict.fromkeys(entries + [cc_text(cc) for _, cc in missed]))
    return ctx.finding(
        Severity.WARNING,
        f"TORCH_CUDA_ARCH_LIST={value!r} has no code that runs on {names}: extensions built with it fail there with "
        f"\"no kernel image is available\". Expected it to include each GPU's capability.",
        evidence=(ev("env.TORCH_CUDA_ARCH_LIST", value), ev("gpus", names)),
        fixes=[set_env_fix(f"Set TORCH_CUDA_ARCH_LIST={wanted} and rebuild the extensions",
                           {"TORCH_CUDA_ARCH_LIST": wanted})])


@rule("ED503", area="env", title="ninja is installed", fixable=True, reads=("env.ninja",))
def ninja_missing(ctx):
    """``ninja`` is not installed in this environment.

    torch compiles extensions with ninja when it is there: in parallel, and
    incrementally. Without it ``setup.py build_ext`` falls back to a slow
    one-file-at-a-time build, and ``torch.utils.cpp_extension.load()`` refuses
    with "Ninja is required to load C++ extensions".

    Fix: ``python -m pip install ninja``.
    """
    fact = ctx.facts.get("env.ninja")
    if fact is None:
        return ctx.not_applicable("ninja was not probed")
    if fact.available:
        return None
    return ctx.finding(
        Severity.WARNING, f"ninja was not found ({fact.error}): torch extension builds fall back to slow serial "
                          f"compiles and cpp_extension.load() refuses to run. Expected ninja on PATH.",
        evidence=(ev("env.ninja", None),),
        fixes=[Fix(summary="Install ninja into this environment", action="pip_install",
                   commands=("python -m pip install ninja",), params={"argv": ["pip", "install", "ninja"]},
                   safe=False)])


@rule("ED504", area="env", title="RAM is enough for parallel nvcc jobs", needs=("env.resources",), fixable=True,
      reads=("env.vars",))
def ram_too_small_for_jobs(ctx):
    """The parallel compile jobs of an extension build may exhaust the RAM.

    ninja runs ``MAX_JOBS`` jobs (default: CPU count + 2), and one nvcc job on
    a large ``.cu`` file can take about 2 GiB. When they do not fit, the kernel
    OOM killer ends the build with "Killed signal terminated program cc1plus"
    or "'cicc' died due to signal 9".

    Fix: set ``MAX_JOBS`` to what fits in the available memory.
    """
    resources = ctx.value("env.resources") or {}
    available = resources.get("ram_available_mib")
    cpus = resources.get("cpu_count") or 1
    if not available:
        return None
    raw = env_vars(ctx.facts).get("MAX_JOBS")
    jobs, source = cpus + 2, f"default: {cpus} CPUs + 2"
    if raw is not None:
        if not raw.strip().isdigit() or int(raw) < 1:
            return ctx.finding(Severity.WARNING, f"MAX_JOBS={raw!r} is not a positive number; expected e.g. "
                                                 f"MAX_JOBS={max(1, available // MIB_PER_NVCC_JOB)}.",
                               evidence=(ev("env.MAX_JOBS", raw),),
                               fixes=[set_env_fix("Set MAX_JOBS to a number",
                                                  {"MAX_JOBS": str(max(1, min(cpus, available // MIB_PER_NVCC_JOB)))})])
        jobs, source = int(raw), "MAX_JOBS"
    fits = max(1, int(available // MIB_PER_NVCC_JOB))
    if jobs <= fits:
        return None
    return ctx.finding(
        Severity.WARNING,
        f"{jobs} parallel compile jobs ({source}) need about {jobs * MIB_PER_NVCC_JOB} MiB, but only {available} MiB "
        f"of RAM is available: the build may be killed by the OOM killer. Expected at most {fits} jobs.",
        evidence=(ev("env.resources.ram_available_mib", available), ev("env.resources.cpu_count", cpus),
                  ev("env.MAX_JOBS", raw)),
        fixes=[set_env_fix(f"Limit parallel compile jobs to {fits}", {"MAX_JOBS": str(fits)})])


def _indices(found: list) -> str:
    return "only GPU 0" if len(found) == 1 else f"GPUs 0-{len(found) - 1}"


def _visible_devices_problems(value: str, found: list) -> Tuple[List[str], List[str]]:
    """(entries CUDA will use, problems). CUDA stops at the first invalid entry."""
    uuids = [str(g.get("uuid") or "") for g in found]
    used, problems, seen = [], [], set()
    if not value.strip():
        return used, problems  # empty: hides every GPU, by design
    for token in [t.strip() for t in value.split(",")]:
        if re.fullmatch(r"-?\d+", token):
            index = int(token)
            if index < 0:
                break  # a negative index ends the list by design
            if found and index >= len(found):
                problems.append(f"index {index} does not exist ({_indices(found)})")
                break
        elif token.startswith(("GPU-", "MIG-")):
            if found and token.startswith("GPU-") and not any(u.startswith(token) for u in uuids if u):
                problems.append(f"{token} matches no GPU UUID")
                break
        else:
            problems.append(f"{token!r} is neither an index nor a GPU-/MIG- UUID")
            break
        if token in seen:
            problems.append(f"{token} is listed twice")
            break
        seen.add(token)
        used.append(token)
    return used, problems


@rule("ED505", area="env", title="CUDA_VISIBLE_DEVICES is valid", needs=("env.vars",), fixable=True, reads=("gpus",))
def visible_devices_invalid(ctx):
    """``CUDA_VISIBLE_DEVICES`` has entries CUDA cannot use, or hides every GPU.

    CUDA reads the comma-separated list up to the first invalid entry (an index
    that does not exist, an unknown UUID, a typo, a duplicate) and ignores the
    rest. When the first entry is invalid, or the value is empty or ``-1``, no
    GPU is visible and torch reports CUDA not available.

    Fix: list existing GPU indices or UUIDs (``nvidia-smi -L``), or unset it.
    """
    value = env_vars(ctx.facts).get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return ctx.not_applicable("CUDA_VISIBLE_DEVICES is not set")
    found = gpus(ctx.facts)
    used, problems = _visible_devices_problems(value, found)
    if not problems and used:
        return None
    deliberate = not problems  # "", "-1": hiding GPUs on purpose is common; say so only when GPUs exist
    if deliberate:
        if not found:
            return None
        problems.append("it hides every GPU")
    hides_all = not used and bool(found) and not deliberate
    fix = set_env_fix(f"Set CUDA_VISIBLE_DEVICES={','.join(used)}", {"CUDA_VISIBLE_DEVICES": ",".join(used)}) \
        if used else set_env_fix("Unset CUDA_VISIBLE_DEVICES to use every GPU", unset=["CUDA_VISIBLE_DEVICES"])
    visible = ", ".join(used) if used else "no GPU"
    return ctx.finding(
        Severity.ERROR if hides_all else Severity.WARNING,
        f"CUDA_VISIBLE_DEVICES={value!r}: {'; '.join(problems)}. CUDA will use {visible}; expected existing GPU "
        f"indices or UUIDs{f' ({_indices(found)})' if found else ''}.",
        evidence=(ev("env.CUDA_VISIBLE_DEVICES", repr(value)), ev("gpus.count", len(found))), fixes=[fix])


@rule("ED506", area="env", title="nvidia-smi and CUDA number the GPUs alike", needs=("gpus",), fixable=True,
      reads=("env.vars", "torch"))
def device_order_differs(ctx):
    """GPUs of different models are numbered differently by ``nvidia-smi`` and CUDA.

    ``nvidia-smi`` numbers GPUs by PCI bus id; CUDA, by default
    (``CUDA_DEVICE_ORDER=FASTEST_FIRST``), puts the fastest first. On a machine
    with, say, an RTX 3090 and a GTX 1080, ``cuda:0`` and ``nvidia-smi``'s GPU 0
    can be different cards, and ``CUDA_VISIBLE_DEVICES=1`` selects the wrong one.

    Fix: ``export CUDA_DEVICE_ORDER=PCI_BUS_ID``.
    """
    found = gpus(ctx.facts)
    order = env_vars(ctx.facts).get("CUDA_DEVICE_ORDER")
    if len(found) < 2:
        return ctx.not_applicable("fewer than two GPUs")
    if order == "PCI_BUS_ID":
        return None
    models = {(g.get("name"), g.get("compute_cap")) for g in found}
    if len(models) < 2:
        return None
    # With CUDA_VISIBLE_DEVICES set, cuda:N is renumbered anyway: comparing names would mislead.
    devices = [] if "CUDA_VISIBLE_DEVICES" in env_vars(ctx.facts) else torch_info(ctx.facts).get("devices") or []
    swapped = [f"cuda:{d.get('index')} is {d.get('name')} but nvidia-smi GPU {d.get('index')} is "
               f"{found[int(d.get('index'))].get('name')}" for d in devices
               if isinstance(d.get("index"), int) and d["index"] < len(found)
               and d.get("name") and d.get("name") != found[d["index"]].get("name")]
    detail = ("; ".join(swapped) + ".") if swapped else "CUDA may number them differently."
    return ctx.finding(
        Severity.WARNING,
        f"This machine has GPUs of different models ({', '.join(str(g.get('name')) for g in found)}) and "
        f"CUDA_DEVICE_ORDER is {order or 'unset (FASTEST_FIRST)'}: nvidia-smi numbers by PCI bus id, {detail} "
        f"Expected CUDA_DEVICE_ORDER=PCI_BUS_ID.",
        evidence=(ev("env.CUDA_DEVICE_ORDER", order), ev("gpus", len(found))),
        fixes=[set_env_fix("Number GPUs by PCI bus id, like nvidia-smi", {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"})])


_CUDA_LIB = re.compile(r"lib(cudart|cudnn\w*|cublas\w*|nccl|cusparse\w*|cufft\w*|curand|cusolver\w*|nvrtc\w*|"
                       r"nvJitLink|cupti)\.so")


@rule("ED507", area="env", title="LD_LIBRARY_PATH leaves torch's CUDA libraries alone",
      needs=("env.ld_library_path", "torch"), fixable=True)
def ld_library_path_shadows(ctx):
    """``LD_LIBRARY_PATH`` makes torch load CUDA libraries (cuDNN, cuBLAS, NCCL,
    cudart) other than the ones it ships with.

    pip wheels of torch bring their own CUDA libraries (``nvidia-*`` wheels). A
    system CUDA ``lib64`` on ``LD_LIBRARY_PATH`` takes precedence over them and
    leads to "cuDNN version incompatibility", "undefined symbol" or silent
    slowdowns.

    Fix: drop those entries from ``LD_LIBRARY_PATH`` (torch does not need them).
    """
    entries = [norm_path(e) for e in ctx.value("env.ld_library_path") or [] if e]
    torch = torch_info(ctx.facts)
    if not entries:
        return ctx.not_applicable("LD_LIBRARY_PATH is empty")
    if not torch.get("cuda"):
        return ctx.not_applicable("torch is a CPU-only build")
    site = posixpath.dirname(posixpath.dirname(norm_path(torch.get("file")) or "")) or None
    loaded = [norm_path(p) for p in torch.get("loaded_cuda_libs") or [] if p]
    shadowing = [p for p in loaded if _CUDA_LIB.search(posixpath.basename(p))
                 and posixpath.dirname(p) in entries and not (site and p.startswith(site + "/"))]
    if shadowing:
        dirs = list(dict.fromkeys(posixpath.dirname(p) for p in shadowing))
        return ctx.finding(
            Severity.WARNING,
            f"torch {torch.get('version')} loaded {', '.join(shadowing)} through LD_LIBRARY_PATH instead of the "
            f"libraries it ships with. Expected CUDA libraries from torch's own installation.",
            evidence=(ev("env.ld_library_path", ":".join(entries)), ev("torch.loaded_cuda_libs", ", ".join(shadowing))),
            fixes=[set_env_fix(f"Drop {', '.join(dirs)} from LD_LIBRARY_PATH", unset=dirs)])
    if loaded or torch.get("install") != "pip":
        return None
    suspects = [e for e in entries if re.search(r"cuda|cudnn|nccl", e, re.I)]
    if not suspects:
        return None
    return ctx.finding(
        Severity.INFO,
        f"LD_LIBRARY_PATH has CUDA library directories ({', '.join(suspects)}) ahead of the libraries pip's torch "
        f"ships; they may be loaded instead (envdoctor did not see which libraries torch loaded).",
        evidence=(ev("env.ld_library_path", ":".join(entries)),),
        fixes=[set_env_fix(f"Drop {', '.join(suspects)} from LD_LIBRARY_PATH", unset=suspects)])
