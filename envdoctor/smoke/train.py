"""The smoke-train loop and its verdict (one process; DDP ranks run the same loop)."""
from __future__ import annotations

import hashlib
import os
import random
import resource
import time
from contextlib import nullcontext
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from envdoctor.smoke.build import Built, SmokeSetupError, build
from envdoctor.smoke.coco import DatasetError
from envdoctor.smoke.config import SmokeConfig, SmokeResult
from envdoctor.smoke.contract import BackboneSpecError
from envdoctor.smoke.data import collate
from envdoctor.smoke.msda import MsdaUnavailable, resolve_impl
from envdoctor.smoke.weights import WeightsError

USER_ERRORS = (SmokeSetupError, WeightsError, BackboneSpecError, DatasetError, MsdaUnavailable)


class DeviceUnavailable(RuntimeError):
    """The device asked for does not exist here: the environment fails the smoke test."""


Progress = Callable[[int, int, float], None]
GRAD_CLIP = 1.0  # Mask2Former clips the full-model gradient norm (0.01 over 50k+ iterations); 1.0 suits 40 steps


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(config: SmokeConfig, local_rank: Optional[int] = None) -> torch.device:
    if config.device == "cpu":
        return torch.device("cpu")
    if config.device == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceUnavailable(f"--device {config.device}: CUDA is not available to torch on this machine")
    if local_rank is not None:
        return torch.device("cuda", local_rank)
    device = torch.device("cuda" if config.device == "auto" else config.device)
    index = device.index or 0
    if index >= torch.cuda.device_count():
        raise DeviceUnavailable(f"--device {config.device}: torch sees only {torch.cuda.device_count()} CUDA "
                              f"device(s) (indices 0..{torch.cuda.device_count() - 1})")
    return torch.device("cuda", index)


def amp_dtype(config: SmokeConfig, device: torch.device) -> Optional[torch.dtype]:
    """bf16 where the GPU supports it (compute capability >= 8.0), fp16 otherwise; none on CPU."""
    if device.type != "cuda" or config.amp == "off":
        return None
    if config.amp == "bf16" or (config.amp == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def batch_at(dataset, step: int, batch_size: int, rank: int, world: int):
    """Batch ``step`` of this rank: ranks draw disjoint samples, so only synced gradients keep them equal."""
    start = (step * world + rank) * batch_size
    return collate([dataset[(start + i) % len(dataset)] for i in range(batch_size)])


def to_device(images, targets, device):
    return images.to(device), [{k: v.to(device) for k, v in t.items()} for t in targets]


def probe_loss(model, probe, device, autocast, seed: int) -> float:
    """Loss on fixed samples with fixed matcher points, so start and end are comparable."""
    images, targets = to_device(*collate(probe), device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
        torch.manual_seed(seed)
        with autocast():
            return float(model(images, targets))


def first_nonfinite_module(model, images, targets, autocast) -> str:
    """Re-run one forward pass and name the first module whose output is NaN/Inf."""
    found: List[str] = []

    def hook(name):
        def fn(module, inputs, output):
            tensors = output if isinstance(output, (tuple, list)) else [output]
            if not found and any(isinstance(t, torch.Tensor) and t.is_floating_point()
                                 and not torch.isfinite(t).all() for t in tensors):
                found.append(f"{name} ({type(module).__name__})")
        return fn

    if not all(torch.isfinite(t).all() for t in [images]):
        return "the input images"
    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]
    model.criterion.sync_num_masks = False
    try:
        with torch.no_grad(), autocast():
            model(images, targets)
    finally:
        model.criterion.sync_num_masks = True
        for h in handles:
            h.remove()
    return found[0] if found else "the loss (no module output was NaN/Inf)"


def param_hash(model: torch.nn.Module) -> str:
    """Hash of the trainable parameters. Buffers (BatchNorm running stats) are left out on purpose:
    DDP broadcasts them from rank 0 before each forward, so after the last step they legitimately differ."""
    digest = hashlib.sha256()
    for name, p in model.named_parameters():
        digest.update(name.encode())
        digest.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def peak_memory(device: torch.device) -> Tuple[int, str]:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device)), "CUDA max allocated"
    # ru_maxrss is in KiB on Linux.
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "process peak RSS"


def prepare(config: SmokeConfig, device: torch.device) -> Tuple[Built, str, str]:
    impl, note = resolve_impl(config.msda_impl, device.type)
    built = build(config, impl)
    if config.inject_nan:
        built.model.pixel_decoder.inject_nan()
    return built, impl, note


class _Amp:
    """Autocast context and gradient scaler for the chosen precision (no-ops on CPU / AMP off)."""

    def __init__(self, config: SmokeConfig, device: torch.device):
        self.dtype = amp_dtype(config, device)
        self.name = {None: "off", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]
        # fp16 overflows are expected now and then: the scaler skips those steps, so they are no failure.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)

    def autocast(self):
        return torch.autocast("cuda", dtype=self.dtype) if self.dtype else nullcontext()


def _train_step(step: int, images, targets, model, runner, optimizer, amp: _Amp, result: SmokeResult,
                device: torch.device, profiler=None) -> Optional[str]:
    """One optimisation step; returns where NaN/Inf appeared, or None."""
    part = profiler.part if profiler is not None else (lambda key: nullcontext())
    with amp.autocast():
        loss = runner(images, targets)
    if _any_rank(not torch.isfinite(loss), device):
        where = first_nonfinite_module(model, images, targets, amp.autocast)
        return f"loss at step {step + 1} is {loss.item()}; first NaN/Inf output: {where}"
    with part("optimizer"):
        optimizer.zero_grad(set_to_none=True)
    with part("backward"):
        amp.scaler.scale(loss).backward()
    if step == 0:
        result.params_without_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    with part("optimizer"):
        amp.scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
    if _any_rank(not torch.isfinite(norm), device) and not amp.scaler.is_enabled():
        return f"gradient norm at step {step + 1} is {norm.item()}"
    with part("optimizer"):
        amp.scaler.step(optimizer)
        amp.scaler.update()
    result.losses.append(round(loss.item(), 5))
    result.steps = step + 1
    return None


def train_loop(config: SmokeConfig, built: Built, device: torch.device, result: SmokeResult,
               ddp_model=None, rank: int = 0, world: int = 1, progress: Optional[Progress] = None,
               profiler=None) -> None:
    """Train ``config.steps`` steps, filling ``result`` (losses, speed, NaN, params without grad).

    ``profiler`` (a StepProfiler) measures every step after the first."""
    model = built.model
    amp = _Amp(config, device)
    result.amp = amp.name
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    batch = config.preset.batch_size
    model.train()
    result.loss_start = probe_loss(model, built.probe, device, amp.autocast, config.seed)
    timer_start = None
    for step in range(config.steps):
        measured = profiler is not None and step > 0
        if measured:
            profiler.step_begin()
        images, targets = to_device(*batch_at(built.dataset, step, batch, rank, world), device)
        result.nan_inf = _train_step(step, images, targets, model, ddp_model or model, optimizer, amp, result,
                                     device, profiler if measured else None)
        if measured:
            profiler.step_end()
        if result.nan_inf:
            break
        if step == 0:
            _sync(device)
            timer_start = time.perf_counter()  # step 1 includes one-time setup: not timed
        if progress:
            progress(step + 1, config.steps, result.losses[-1])
    _sync(device)
    if timer_start is not None and result.steps > 1:
        result.steps_per_s = (result.steps - 1) / (time.perf_counter() - timer_start)
        result.images_per_s = result.steps_per_s * batch * world
    if result.nan_inf is None:
        result.loss_end = probe_loss(model, built.probe, device, amp.autocast, config.seed)
    result.peak_memory, result.peak_memory_kind = peak_memory(device)


def _any_rank(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` is true on any rank: all ranks must leave the loop together or DDP hangs."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return bool(value.item())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def verdict(config: SmokeConfig, result: SmokeResult) -> Tuple[bool, str]:
    """Pass/fail and the reason in plain words. The first problem found is the reason."""
    if result.nan_inf:
        return False, f"NaN/Inf during training: {result.nan_inf}"
    if result.params_without_grad:
        names = ", ".join(result.params_without_grad[:5])
        more = f" and {len(result.params_without_grad) - 5} more" if len(result.params_without_grad) > 5 else ""
        return False, f"{len(result.params_without_grad)} parameter(s) got no gradient: {names}{more}"
    if result.loss_start is None or result.loss_end is None:
        return False, "training did not run to the end"
    if not result.loss_end <= config.max_loss_ratio * result.loss_start:
        hint = " (the learning rate is 0, so nothing can be learned)" if config.lr == 0 else ""
        return False, (f"loss did not fall: {result.loss_start:.4f} at the start, {result.loss_end:.4f} after "
                       f"{result.steps} steps; it must fall below {config.max_loss_ratio:g}x the start "
                       f"({config.max_loss_ratio * result.loss_start:.4f}){hint}")
    return True, ""


def choose_threads(cores: int, load: float, local_world: int = 1) -> int:
    """Threads per process: the idle cores shared among local ranks, at least 1.

    OpenMP threads spin while waiting, so on a busy machine asking for more
    threads than idle cores makes each step several times slower, not faster.
    """
    share = max(1, cores // max(1, local_world))
    idle = int(cores - load + 0.5)
    return max(1, min(share, idle))


def set_threads(config: SmokeConfig, local_world: int = 1) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    torch.set_num_threads(config.threads or choose_threads(cores, load, local_world))


def device_record(device: torch.device, rank: int = 0, local_rank: int = 0) -> Dict[str, object]:
    record: Dict[str, object] = {"rank": rank, "local_rank": local_rank, "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        record.update(name=props.name, cuda_index=device.index, uuid=_uuid_text(props),
                      compute_cap=f"{props.major}.{props.minor}",
                      cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))
    else:
        record.update(name="CPU", threads=torch.get_num_threads())
    return record


def _uuid_text(props) -> Optional[str]:
    uuid = getattr(props, "uuid", None)
    if uuid is None:
        return None
    text = str(uuid)
    return text if text.startswith(("GPU-", "MIG-")) else "GPU-" + text


def crash_reason(exc: BaseException) -> str:
    """One line: what was raised and where (innermost frame), without a traceback."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" (at {os.path.basename(tb.tb_frame.f_code.co_filename)}:{tb.tb_lineno})" if tb is not None else ""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"training crashed: {type(exc).__name__}: {first}{where}"


def run_single(config: SmokeConfig, progress: Optional[Progress] = None) -> SmokeResult:
    """One process, one device. User mistakes become a failed result with the reason, never a traceback."""
    started = time.perf_counter()
    result = SmokeResult(passed=False, reason="")
    try:
        seed_everything(config.seed)
        set_threads(config)
        device = pick_device(config)
        built, result.msda_impl, result.msda_note = prepare(config, device)
        built.model.to(device)
        result.notes, result.warnings = built.notes, built.warnings
        result.devices = [device_record(device)]
        if config.profile:
            from envdoctor.smoke.profile import StepProfiler

            with StepProfiler(built.model, device) as profiler:
                train_loop(config, built, device, result, progress=progress, profiler=profiler)
            result.profile, result.profile_steps = profiler.table(), profiler.steps
        else:
            train_loop(config, built, device, result, progress=progress)
        result.param_hashes = [param_hash(built.model)]
        result.passed, result.reason = verdict(config, result)
    except USER_ERRORS as exc:
        result.reason, result.usage_error = str(exc), True
    except DeviceUnavailable as exc:
        result.reason = str(exc)
    except Exception as exc:  # the smoke-train exists to report failures: any crash becomes the verdict
        result.reason = crash_reason(exc)
    result.seconds = time.perf_counter() - started
    return result
