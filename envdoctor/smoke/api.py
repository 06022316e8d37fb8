"""``run_smoke(config)``: the one entry point (CLI, checks and other code call this)."""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Callable, Dict, List, Mapping, Optional

from envdoctor.smoke.config import SmokeConfig, SmokeResult
from envdoctor.smoke.devices import (GpuRequestError, build_map, child_env_for, late_visible_change,
                                     requested_uuids, verify_placement)

# What CUDA will use is the value when CUDA initialised, usually the value at process start.
VISIBLE_AT_START = os.environ.get("CUDA_VISIBLE_DEVICES")

Progress = Callable[[int, int, float], None]


def gpu_facts() -> Optional[List[Dict]]:
    """The ``gpus`` fact from the engine's nvidia-smi probe; None when it cannot be had."""
    try:
        from envdoctor.engine import probe_facts
    except ImportError:
        return None
    try:
        facts = probe_facts(["gpus", "driver"])
    except Exception:  # a probe problem must not hide the smoke verdict; the table just lacks nvidia-smi
        return None
    value = facts.value("gpus")
    return list(value) if isinstance(value, list) else None


def is_distributed(config: SmokeConfig) -> bool:
    return bool(config.gpus) or config.nproc_per_node > 1 or config.nnodes != "1"


def run_smoke(config: SmokeConfig, progress: Optional[Progress] = None,
              env: Optional[Mapping[str, str]] = None) -> SmokeResult:
    env = os.environ if env is None else env
    expected: Optional[List[str]] = None
    child_env: Optional[Dict[str, str]] = None
    gpus = None
    if config.gpus:
        gpus = gpu_facts()
        try:
            if not gpus:
                raise GpuRequestError(f"--gpus {config.gpus}: nvidia-smi lists no GPU on this machine")
            expected = requested_uuids(config.gpus, gpus)
        except GpuRequestError as exc:
            return SmokeResult(passed=False, reason=str(exc), usage_error=bool(gpus))
        nproc = len(expected) if config.nproc_per_node == 1 else config.nproc_per_node
        if nproc != len(expected):
            return SmokeResult(passed=False, usage_error=True,
                               reason=f"--gpus names {len(expected)} GPU(s) but --nproc-per-node is "
                                      f"{config.nproc_per_node}: use one process per GPU")
        child_env = child_env_for(expected)
        config = replace(config, nproc_per_node=nproc, device="cuda")
    if is_distributed(config):
        from envdoctor.smoke.launch import run_distributed

        result = run_distributed(config, child_env, progress)
    else:
        from envdoctor.smoke.train import run_single

        result = run_single(config, progress)
    if any(str(d.get("device", "")).startswith("cuda") for d in result.devices):
        _map_devices(result, gpus if gpus is not None else gpu_facts(), env, child_env, expected)
    return result


def _map_devices(result: SmokeResult, gpus, env, child_env, expected) -> None:
    """Fill the nvidia-smi -> CUDA -> UUID table and fail when work ran on another GPU than asked."""
    visible = (child_env or {}).get("CUDA_VISIBLE_DEVICES", env.get("CUDA_VISIBLE_DEVICES"))
    order = (child_env or {}).get("CUDA_DEVICE_ORDER", env.get("CUDA_DEVICE_ORDER"))
    if child_env is not None:
        # --gpus: rank i runs on CUDA index i of its UUID-pinned visibility; its UUID came from inside the rank.
        torch_uuids = [d["uuid"] for d in sorted(result.devices, key=lambda d: d.get("local_rank", 0))
                       if d.get("uuid")]
    else:
        import torch

        # This process ran the work (or shares its children's environment): list every device it sees.
        torch_uuids = [str(torch.cuda.get_device_properties(i).uuid) for i in range(torch.cuda.device_count())]
        late = late_visible_change(VISIBLE_AT_START, env.get("CUDA_VISIBLE_DEVICES"), torch.cuda.is_initialized())
        if late:
            result.device_problems.append(late)
    mapping = build_map(gpus or [], visible, order, torch_uuids)
    if not gpus:
        result.device_problems.append("nvidia-smi GPU list not available: the table shows CUDA indices only")
    result.device_map = [r.to_dict() for r in mapping.rows]
    result.device_problems.extend(mapping.problems)
    wrong = verify_placement(expected, result.devices) if expected else []
    if wrong and result.passed:
        result.passed, result.reason = False, "the work ran on a different GPU than asked: " + "; ".join(wrong)
