"""Launch a distributed smoke-train with torchrun and verify the ranks agree.

The command is the standard one (``python -m torch.distributed.run ... -m
envdoctor.smoke.worker``), so multi-node is the same command with ``--nnodes``
and rendezvous flags. Under Slurm (one launcher task per node), the node count,
node rank and rendezvous endpoint come from SLURM_* variables unless given.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import signal
import tempfile
import threading
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from envdoctor.smoke.config import SmokeConfig, SmokeResult

RDZV_PORT = 29500
LOG_TAIL_LINES = 15


def first_slurm_host(nodelist: str) -> str:
    """First host of a Slurm node list: "gpu[03-05,07],cpu1" -> "gpu03" (what ``scontrol show hostnames`` gives)."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        return nodelist.strip()
    prefix, ranges = match.group(1), match.group(2)
    if not ranges:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


def _has_flag(args: Sequence[str], *names: str) -> bool:
    return any(a == n or a.startswith(n + "=") for a in args for n in names)


def slurm_args(env: Mapping[str, str], user_args: Sequence[str], nnodes: str) -> List[str]:
    """torchrun flags from the Slurm allocation, for what the user did not set."""
    if "SLURM_JOB_ID" not in env or nnodes != "1":
        return []
    count = env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES") or "1"
    if count == "1":
        return []
    args = ["--nnodes", count]
    if not _has_flag(user_args, "--node-rank", "--node_rank") and "SLURM_NODEID" in env:
        args += ["--node-rank", env["SLURM_NODEID"]]
    if not _has_flag(user_args, "--rdzv-endpoint", "--rdzv_endpoint", "--master-addr", "--master_addr"):
        host = first_slurm_host(env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST", "localhost"))
        args += ["--rdzv-backend", "c10d", "--rdzv-endpoint", f"{host}:{RDZV_PORT}",
                 "--rdzv-id", env["SLURM_JOB_ID"]]
    return args


def torchrun_argv(config: SmokeConfig, config_path: str, out_dir: str, env: Mapping[str, str]) -> List[str]:
    argv = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(config.nproc_per_node)]
    extra = slurm_args(env, config.launch_args, config.nnodes)
    if extra:
        argv += extra
    else:
        argv += ["--nnodes", config.nnodes]
        # Single node with no rendezvous given: --standalone picks a free port, so runs never collide.
        if config.nnodes == "1" and not _has_flag(config.launch_args, "--rdzv-endpoint", "--rdzv_endpoint",
                                                  "--master-addr", "--master_addr", "--master-port",
                                                  "--master_port"):
            argv.append("--standalone")
    argv += list(config.launch_args)
    argv += ["-m", "envdoctor.smoke.worker", "--config", config_path, "--out", out_dir]
    return argv


def merge_ranks(results: Dict[int, SmokeResult], expected_local: int, log_tail: str) -> SmokeResult:
    """One verdict from the rank files this node has: all finished, all passed, parameters identical."""
    if not results:
        return SmokeResult(passed=False, reason="no rank finished; torchrun output ends with:\n" + log_tail)
    first = results[min(results)]
    merged = SmokeResult(**{**first.__dict__})
    merged.world_size = first.world_size
    merged.seconds = max(r.seconds for r in results.values())
    # Every local rank's peak, not just rank 0's: the busiest process is the one that runs out.
    merged.peak_memory = max((r.peak_memory for r in results.values() if r.peak_memory is not None), default=None)
    failed = {rank: r for rank, r in results.items() if not r.passed}
    if len(results) < expected_local:
        merged.passed = False
        merged.reason = (f"only {len(results)} of {expected_local} local ranks finished; torchrun output ends "
                         f"with:\n{log_tail}")
    elif failed:
        rank = min(failed)
        merged.passed, merged.reason = False, f"rank {rank}: {failed[rank].reason}"
    elif len(set(first.param_hashes)) != 1 or len(first.param_hashes) != first.world_size:
        merged.passed = False
        merged.reason = ("parameters differ across ranks after training (gradients were not synchronised): "
                         + ", ".join(f"rank {i} {h}" for i, h in enumerate(first.param_hashes)))
    else:
        merged.passed, merged.reason = True, ""
    return merged


def read_rank_files(out_dir: str) -> Dict[int, SmokeResult]:
    results = {}
    for name in os.listdir(out_dir):
        match = re.fullmatch(r"rank(\d+)\.json", name)
        if match:
            with open(os.path.join(out_dir, name), encoding="utf-8") as fh:
                results[int(match.group(1))] = SmokeResult.from_dict(json.load(fh))
    return results


def run_distributed(config: SmokeConfig, child_env: Optional[Dict[str, str]] = None,
                    progress: Optional[Callable[[int, int, float], None]] = None,
                    timeout: Optional[float] = None) -> SmokeResult:
    started = time.perf_counter()
    env = dict(os.environ)
    env.update(child_env or {})
    # The worker must import this same envdoctor, installed or not.
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")  # torchrun sets this too; the worker sets threads itself
    limit = timeout if timeout is not None else 300 + 30 * config.steps
    with tempfile.TemporaryDirectory(prefix="envdoctor-smoke-") as out_dir:
        config_path = os.path.join(out_dir, "config.json")
        with open(config_path, "w", encoding="utf-8") as fh:
            json.dump(config.to_dict(), fh)
        argv = torchrun_argv(config, config_path, out_dir, env)
        lines, timed_out = _run_streaming(argv, env, limit, progress)
        results = read_rank_files(out_dir)
    tail = "\n".join(lines[-LOG_TAIL_LINES:])
    merged = merge_ranks(results, config.nproc_per_node, tail)
    if timed_out:
        merged.passed = False
        merged.reason = f"the distributed smoke-train did not finish within {limit:g}s" + (
            f"; {merged.reason}" if merged.reason else "")
    merged.seconds = time.perf_counter() - started
    return merged


def _run_streaming(argv, env, limit, progress) -> tuple:
    """Run torchrun, feeding rank 0's progress lines to ``progress``; keep the output for failures."""
    lines: List[str] = []
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)

    def read() -> None:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            match = re.search(r"\[smoke\] step (\d+)/(\d+) loss (\S+)", line)
            if match and progress:
                progress(int(match.group(1)), int(match.group(2)), float(match.group(3)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)  # our own session: torchrun and its ranks, nothing else
        proc.wait()
    reader.join(timeout=5)
    return lines, timed_out
