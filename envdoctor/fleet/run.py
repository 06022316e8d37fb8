"""One rank of ``envdoctor fleet``: check in, run the same checks as ``envdoctor check``,
gather over gloo, sweep, and (on rank 0) hand the verdict to ``emit``.

Every wait is bounded by ``--timeout``: the check-in window is half of it, each
collective gets what is left, and a watchdog ends the process (rank 0 first emits
what it has) if anything still blocks.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

from envdoctor.fleet import comm
from envdoctor.fleet.compare import digest, node_values
from envdoctor.fleet.launcher import RankEnv
from envdoctor.fleet.probes import fleet_facts
from envdoctor.fleet.result import FleetState, build_result

JOIN_FRACTION = 0.5  # of --timeout: how long rank 0 waits for the others to check in
RESERVE_S = 2.0  # kept back from --timeout for rendering
WATCHDOG_GRACE_S = 3.0
DEFAULT_SIZES = {"gloo": (64 << 10, 1 << 20, 4 << 20), "nccl": (1 << 20, 16 << 20, 256 << 20, 1 << 30)}
PROLOG_SIZES = {"gloo": (64 << 10, 1 << 20), "nccl": (1 << 20, 64 << 20, 256 << 20)}
ITERATIONS = {"gloo": 5, "nccl": 20}
PAIR_SIZE_CAP = {"gloo": 4 << 20, "nccl": 64 << 20}
PAIR_ITERATIONS = 10


class RankFailure(RuntimeError):
    """This (non-zero) rank could not take part; the message says why."""


@dataclass
class FleetOptions:
    node_name: str
    timeout: float = 120.0
    sizes: Optional[Sequence[int]] = None
    prolog: bool = False
    sweep: bool = True
    env: Optional[Mapping[str, str]] = None
    sysfs_root: str = "/sys"
    proc_root: str = "/proc"
    root: str = "/"


def default_node_name() -> str:
    return socket.gethostname() or "localhost"


class _Watchdog:
    """Ends the process at the deadline, whatever blocks; rank 0 emits its partial verdict."""

    def __init__(self, seconds: float, on_fire: Callable[[], int]):
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._on_fire = on_fire

    def _fire(self) -> None:
        code = 1
        try:
            code = self._on_fire()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def start(self) -> "_Watchdog":
        self._timer.start()
        return self

    def cancel(self) -> None:
        self._timer.cancel()


def run_rank(info: RankEnv, opts: FleetOptions, emit: Callable[[Dict[str, Any]], int],
             started: Optional[float] = None) -> int:
    """Run this rank. Rank 0 returns ``emit(result)``; other ranks return 0, or raise
    RankFailure. ``started`` is when the command started (time.monotonic())."""
    started = time.monotonic() if started is None else started
    deadline = started + opts.timeout - RESERVE_S
    state = FleetState(world_size=info.world_size, launcher=info.launcher, timeout=opts.timeout, prolog=opts.prolog)
    emitted = threading.Lock()

    def finish(extra_error: Optional[str] = None) -> int:
        if not emitted.acquire(blocking=False):
            return 1
        if extra_error:
            state.errors.append(extra_error)
        state.seconds = time.monotonic() - started
        return emit(build_result(state))

    def on_watchdog() -> int:
        if info.rank == 0:
            return finish(f"envdoctor fleet did not finish within --timeout {opts.timeout:g}s "
                          f"(blocked in '{state.phase}')")
        sys.stderr.write(f"envdoctor fleet: rank {info.rank} did not finish within --timeout {opts.timeout:g}s "
                         f"(blocked in '{state.phase}')\n")
        return 1

    watchdog = _Watchdog(max(1.0, started + opts.timeout + WATCHDOG_GRACE_S - time.monotonic()), on_watchdog).start()
    try:
        return _run(info, opts, state, started, deadline, finish)
    except (RankFailure, comm.StoreError):
        raise
    except Exception as exc:  # envdoctor's own failure: rank 0 still reports what it has (exit 3)
        if info.rank != 0:
            raise
        state.internal.append(f"{type(exc).__name__}: {_first_line(exc)}")
        return finish()
    finally:
        watchdog.cancel()


def _remaining(deadline: float) -> float:
    return max(1.0, deadline - time.monotonic())


def _run(info: RankEnv, opts: FleetOptions, state: FleetState, started: float, deadline: float, finish) -> int:
    from envdoctor import engine

    env = dict(os.environ if opts.env is None else opts.env)
    # torch warns on stderr of every rank when the driver cannot run its CUDA build; the
    # check on each rank reports the driver with its fix, once, in the table.
    warnings.filterwarnings("ignore", message="CUDA initialization")
    state.enter(f"connecting to rank 0's store at {info.master_addr}:{info.master_port}")
    store = comm.open_store(info, max(1.0, _remaining(deadline) - WATCHDOG_GRACE_S))
    comm.set_step(store, info.rank, "joined")
    store.set(f"node/{info.rank}", opts.node_name)
    beat = comm.Heartbeat(info, _remaining(deadline)).start()
    try:
        state.enter("checks")
        report = engine.run_check(env=env, paths=(), quick=True, timeout=min(10.0, opts.timeout / 6), root=opts.root)
        facts = fleet_facts(env, sysfs_root=opts.sysfs_root, proc_root=opts.proc_root, root=opts.root)
        values = node_values(report, facts)
        mine = {"rank": info.rank, "local_rank": info.local_rank, "node": opts.node_name, "pid": os.getpid(),
                "boot_id": facts.get("boot_id"), "digest": digest(values)}
        device = comm.cuda_device(info.local_rank)
        mine.update(cuda_devices=device["count"], gpu_uuid=device["uuid"])
        comm.set_step(store, info.rank, "ready")
        store.add("ready", 1)

        state.enter("check-in")
        if info.rank == 0:
            join_deadline = min(deadline, started + JOIN_FRACTION * opts.timeout)
            comm.wait_ready(store, info.world_size, join_deadline)
            steps = comm.read_steps(store, range(info.world_size))
            roster = [r for r in range(info.world_size) if steps[r] not in (None, "joined")]
            for r in range(info.world_size):
                if r not in roster:
                    state.absent[r] = {"step": steps[r], "node": _node(store, r)}
            store.set("roster", json.dumps(roster))
        else:
            try:
                store.wait(["roster"], timedelta(seconds=_remaining(deadline)))
            except Exception:
                raise RankFailure(f"rank 0 ({info.master_addr}:{info.master_port}) did not start the fleet test "
                                  f"within the timeout") from None
            roster = json.loads(store.get("roster").decode())
            if info.rank not in roster:
                raise RankFailure("rank 0 went ahead without this rank: it was not ready within the check-in window "
                                  f"({JOIN_FRACTION:.0%} of --timeout)")
        return _collectives(info, opts, state, store, roster, mine, values, deadline, finish)
    finally:
        beat.stop()


def _node(store, rank: int) -> Optional[str]:
    key = f"node/{rank}"
    return store.get(key).decode() if store.check([key]) else None


def _collectives(info, opts, state, store, roster, mine, values, deadline, finish) -> int:
    index, size = roster.index(info.rank), len(roster)
    try:
        state.enter("group")
        comm.set_step(store, info.rank, "group")
        # Collectives give up early enough for rank 0 to find out who stopped, and report.
        comm.init_group(store, index, size, _remaining(deadline - _diagnose_s(info.world_size)))
        import torch.distributed as dist

        state.enter("gather")
        comm.set_step(store, info.rank, "gather")
        dist.barrier()
        mine["clock"] = time.time()
        records = comm.all_gather(mine)
        gathered = comm.gather_values(records, index, values)
        if info.rank == 0:
            state.records, state.values = records, gathered
        if opts.sweep and size >= 2:
            backend = comm.choose_backend(records)
            sizes = list(opts.sizes or (PROLOG_SIZES if opts.prolog else DEFAULT_SIZES)[backend])
            state.enter("sweep")
            comm.set_step(store, info.rank, "sweep")
            sweep = comm.Sweep(backend, info.local_rank, _remaining(deadline - _diagnose_s(info.world_size)))
            times = sweep.allreduce_times(sizes, ITERATIONS[backend])
            all_times = comm.all_gather(times)
            state.enter("pairwise")
            comm.set_step(store, info.rank, "pairwise")
            pair_size = min(max(sizes), PAIR_SIZE_CAP[backend])
            pairs = sweep.pairwise(index, size, pair_size, PAIR_ITERATIONS)
            all_pairs = comm.all_gather(pairs)
            state.enter("barrier")
            comm.set_step(store, info.rank, "barrier")
            latency = comm.barrier_latency()
            if info.rank == 0:
                state.backend, state.sweep_ranks, state.pair_size, state.barrier_s = backend, size, pair_size, latency
                state.sweep_times = {s: [t[s] for t in all_times] for s in sizes}
                state.pairs = [{"a": roster[p["a"]], "b": roster[p["b"]], "gbps": p["gbps"]}
                               for ps in all_pairs for p in ps]
        state.enter("done")
        comm.set_step(store, info.rank, "done")
    except Exception as exc:  # a collective failed or timed out
        if info.rank != 0:
            raise RankFailure(f"a collective failed during '{state.phase}': {type(exc).__name__}: "
                              f"{_first_line(exc)}") from None
        others = [r for r in roster if r != 0]
        status = comm.stalled_ranks(store, others, info.world_size) if others else {}
        ahead = {"group": 1, "gather": 2, "sweep": 3, "pairwise": 4, "barrier": 5, "done": 6}
        mine_at = ahead.get(state.phase, 0)
        for r, s in status.items():
            if not s["beating"] or ahead.get(s["step"] or "", 0) < mine_at:
                state.stalled[r] = dict(s, node=_node(store, r))
        return finish(f"{type(exc).__name__}: {_first_line(exc)}")
    finally:
        comm.destroy_group()
    return finish() if info.rank == 0 else 0


def _diagnose_s(world_size: int) -> float:
    """Time kept back from each collective for reading the heartbeats after a failure."""
    return max(2.5, 4 * comm.heartbeat_interval(world_size)) + 1.0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
