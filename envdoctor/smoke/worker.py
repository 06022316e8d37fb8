"""One rank of a distributed smoke-train; started by torchrun (``-m envdoctor.smoke.worker``).

Each rank trains on its own batches; only synchronised gradients keep the
parameters identical, so every rank all-gathers a hash of its parameters and
writes its result to ``--out/rank<R>.json`` for the launcher to verify.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

import torch
import torch.distributed as dist

from envdoctor.fix.fsops import atomic_write
from envdoctor.smoke.config import SmokeConfig, SmokeResult
from envdoctor.smoke.train import (USER_ERRORS, DeviceUnavailable, crash_reason, device_record, param_hash,
                                   pick_device, prepare, seed_everything, set_threads, train_loop, verdict)


def _progress(step: int, total: int, loss: float) -> None:
    print(f"[smoke] step {step}/{total} loss {loss:.4f}", flush=True)


def run_rank(config: SmokeConfig, rank: int, local_rank: int, world: int, local_world: int) -> SmokeResult:
    started = time.perf_counter()
    result = SmokeResult(passed=False, reason="", world_size=world)
    seed_everything(config.seed)  # same seed everywhere: identical initial parameters
    set_threads(config, local_world)
    device = pick_device(config, local_rank if config.device != "cpu" and torch.cuda.is_available() else None)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(minutes=10))
    try:
        built, result.msda_impl, result.msda_note = prepare(config, device)
        model = built.model.to(device)
        result.notes, result.warnings = built.notes, built.warnings
        ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
        train_loop(config, built, device, result, ddp_model=ddp, rank=rank, world=world,
                   progress=_progress if rank == 0 else None)
        mine = {"hash": param_hash(model), "device": device_record(device, rank, local_rank)}
        gathered = [None] * world
        dist.all_gather_object(gathered, mine)
        result.param_hashes = [g["hash"] for g in gathered]
        result.devices = [g["device"] for g in gathered]
        result.passed, result.reason = verdict(config, result)
    finally:
        dist.destroy_process_group()
    result.seconds = time.perf_counter() - started
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    with open(args.config, encoding="utf-8") as fh:
        config = SmokeConfig.from_dict(json.load(fh))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    try:
        result = run_rank(config, rank, local_rank, world, local_world)
    except USER_ERRORS as exc:
        result = SmokeResult(passed=False, reason=str(exc), world_size=world, usage_error=True)
    except DeviceUnavailable as exc:
        result = SmokeResult(passed=False, reason=str(exc), world_size=world)
    except Exception as exc:  # reported by the launcher as this rank's reason; torchrun stops the others
        result = SmokeResult(passed=False, reason=crash_reason(exc), world_size=world)
    # Atomic: the launcher never reads a half-written file.
    atomic_write(os.path.join(args.out, f"rank{rank}.json"), json.dumps(result.to_dict()).encode())
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
