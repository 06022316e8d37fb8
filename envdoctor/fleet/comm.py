"""The torch.distributed side of the fleet: a TCPStore for bounded check-in and
heartbeats, a gloo process group for the gather, and the measured collectives
(all-reduce sweep, ring pairwise test, barrier latency). torch is imported here only.

Why a store before the process group: a gloo collective cannot say *which* rank is
missing, and ``init_process_group`` waits for all of ``WORLD_SIZE``. Every rank first
writes its progress into the store (``step/<rank>``) and bumps a heartbeat counter
(``beat/<rank>``); rank 0 waits for them with a deadline, starts the group with the
ranks that are there, and, when a collective fails, reads the store to name the rank
that stopped and where.
"""
from __future__ import annotations

import json
import threading
import time
import warnings
from datetime import timedelta
from typing import Any, Dict, List, Optional, Sequence

from envdoctor.fleet.bandwidth import ring_rounds
from envdoctor.fleet.launcher import RankEnv

PREFIX = "envdoctor-fleet/"
HEARTBEAT_S = 0.5
# Rank 0's store serves every heartbeat: beyond this many per second, beats slow down.
STORE_BEATS_PER_S = 4000


def heartbeat_interval(world_size: int) -> float:
    return max(HEARTBEAT_S, world_size / STORE_BEATS_PER_S)


class StoreError(RuntimeError):
    """The rendezvous store could not be opened (rank 0 cannot listen, or a rank cannot reach it)."""


def open_store(info: RankEnv, timeout: float):
    """A client (or, on rank 0 unless torchrun's agent already serves one, the server) of
    the TCPStore at MASTER_ADDR:MASTER_PORT, under our own key prefix."""
    import torch.distributed as dist

    serve = info.rank == 0 and not info.agent_store
    try:
        base = dist.TCPStore(info.master_addr, info.master_port, world_size=None, is_master=serve,
                             timeout=timedelta(seconds=max(timeout, 1.0)), wait_for_workers=False)
    except Exception as exc:
        what = "listen on" if serve else "reach rank 0's store at"
        raise StoreError(f"cannot {what} {info.master_addr}:{info.master_port} within {timeout:.0f}s: "
                         f"{type(exc).__name__}: {exc}") from None
    return dist.PrefixStore(PREFIX, base)


class Heartbeat:
    """Bumps ``beat/<rank>`` every heartbeat_interval() from a thread with its own store connection,
    so a rank frozen in a call still beats, and a dead or stopped one does not."""

    def __init__(self, info: RankEnv, timeout: float):
        self.info, self.timeout = info, timeout
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "Heartbeat":
        import torch.distributed as dist

        base = dist.TCPStore(self.info.master_addr, self.info.master_port, world_size=None, is_master=False,
                             timeout=timedelta(seconds=max(self.timeout, 1.0)), wait_for_workers=False)
        store = dist.PrefixStore(PREFIX, base)
        key = f"beat/{self.info.rank}"

        def beat():
            while not self._stop.wait(heartbeat_interval(self.info.world_size)):
                try:
                    store.add(key, 1)
                except Exception:
                    return  # the store is gone: rank 0 finished or died; nothing to tell

        store.add(key, 1)
        self._thread = threading.Thread(target=beat, name="envdoctor-fleet-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()


def set_step(store, rank: int, step: str) -> None:
    store.set(f"step/{rank}", step)


def read_steps(store, ranks: Sequence[int]) -> Dict[int, Optional[str]]:
    out: Dict[int, Optional[str]] = {}
    for r in ranks:
        key = f"step/{r}"
        out[r] = store.get(key).decode() if store.check([key]) else None
    return out


def read_beats(store, ranks: Sequence[int]) -> Dict[int, int]:
    return {r: int(store.add(f"beat/{r}", 0)) for r in ranks}


def wait_ready(store, world: int, deadline: float, poll: float = 0.2) -> None:
    """Rank 0: until every rank counted itself ready, or the deadline."""
    while time.monotonic() < deadline:
        if int(store.add("ready", 0)) >= world:
            return
        time.sleep(poll)


def stalled_ranks(store, ranks: Sequence[int], world_size: int) -> Dict[int, Dict[str, Any]]:
    """Rank 0, after a failure: each rank's last step and whether its heartbeat still moves
    (watched for several beats)."""
    first = read_beats(store, ranks)
    time.sleep(max(2.5, 4 * heartbeat_interval(world_size)))
    second = read_beats(store, ranks)
    steps = read_steps(store, ranks)
    return {r: {"step": steps[r], "beating": second[r] > first[r]} for r in ranks}


# ---- the process group and the measured collectives ------------------------------------

def init_group(store, roster_index: int, roster_size: int, timeout: float) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.PrefixStore("pg/", store), rank=roster_index,
                            world_size=roster_size, timeout=timedelta(seconds=max(timeout, 1.0)))


def destroy_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:
            pass


def all_gather(obj: Any) -> List[Any]:
    import torch.distributed as dist

    out: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_values(records: Sequence[Dict[str, Any]], my_index: int,
                  my_values: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Full comparable values, once per distinct digest: each digest's first rank sends
    them to rank 0 (point to point), so rank 0 receives O(distinct nodes), not O(world)."""
    import torch.distributed as dist

    senders: Dict[str, int] = {}
    for index, rec in enumerate(records):
        senders.setdefault(rec["digest"], index)
    result: Dict[str, Dict[str, Any]] = {}
    if my_index == 0:
        result[records[0]["digest"]] = my_values
        for dig, index in senders.items():
            if index == 0:
                continue
            box: List[Any] = [None]
            dist.recv_object_list(box, src=index)
            result[dig] = box[0]
    elif senders.get(records[my_index]["digest"]) == my_index:
        dist.send_object_list([my_values], dst=0)
    return result


def barrier_latency(iterations: int = 20) -> float:
    """Median seconds of a gloo barrier."""
    import torch.distributed as dist

    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        dist.barrier()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return samples[len(samples) // 2]


class Sweep:
    """The all-reduce sweep and pairwise test on one backend: NCCL when every rank has a
    GPU of its own, gloo on CPU tensors otherwise."""

    def __init__(self, backend: str, local_rank: int, timeout: float):
        import torch
        import torch.distributed as dist

        self.torch, self.dist = torch, dist
        self.backend = backend
        self.group = None
        self.device = torch.device("cpu")
        if backend == "nccl":
            self.device = torch.device("cuda", local_rank % torch.cuda.device_count())
            torch.cuda.set_device(self.device)
            self.group = dist.new_group(backend="nccl", timeout=timedelta(seconds=max(timeout, 1.0)))

    def _sync(self) -> None:
        if self.backend == "nccl":
            self.torch.cuda.synchronize(self.device)

    def _tensor(self, size: int):
        return self.torch.ones(size // 4, dtype=self.torch.float32, device=self.device)

    def allreduce_times(self, sizes: Sequence[int], iterations: int, warmup: int = 2) -> Dict[int, float]:
        """Mean seconds per all-reduce for each size, as this rank saw it."""
        out = {}
        for size in sizes:
            tensor = self._tensor(size)
            for _ in range(warmup):
                self.dist.all_reduce(tensor, group=self.group)
            self._sync()
            self.dist.barrier()
            started = time.perf_counter()
            for _ in range(iterations):
                self.dist.all_reduce(tensor, group=self.group)
            self._sync()
            out[size] = (time.perf_counter() - started) / iterations
            del tensor
        return out

    def pairwise(self, my_index: int, world: int, size: int, iterations: int, repeats: int = 5
                 ) -> List[Dict[str, Any]]:
        """Ping-pong with each ring neighbour; the lower index of each pair reports GB/s
        (2 x size x iterations bytes moved), the median of ``repeats`` timings taken in
        turns with the other pairs: a passing hiccup of a shared machine slows a few
        timings of any pair, a slow link or rank slows most of its own."""
        timings: Dict[tuple, List[float]] = {}
        tensor = self._tensor(size)
        rounds = ring_rounds(world)
        for repeat in range(repeats):
            for round_pairs in rounds:
                for a, b in round_pairs:
                    if my_index not in (a, b):
                        continue
                    peer = b if my_index == a else a
                    if repeat == 0:
                        self._exchange(tensor, peer, first=my_index == a)  # warm the connection
                    self._sync()
                    started = time.perf_counter()
                    for _ in range(iterations):
                        self._exchange(tensor, peer, first=my_index == a)
                    self._sync()
                    elapsed = time.perf_counter() - started
                    if my_index == a:
                        timings.setdefault((a, b), []).append(elapsed)
                self.dist.barrier()
        medians = {pair: sorted(ts)[len(ts) // 2] for pair, ts in timings.items()}
        return [{"a": a, "b": b, "gbps": 2 * size * iterations / t / 1e9, "seconds": t}
                for (a, b), t in medians.items()]

    def _exchange(self, tensor, peer: int, first: bool) -> None:
        if first:
            self.dist.send(tensor, peer, group=self.group)
            self.dist.recv(tensor, peer, group=self.group)
        else:
            self.dist.recv(tensor, peer, group=self.group)
            self.dist.send(tensor, peer, group=self.group)


def cuda_device(local_rank: int) -> Dict[str, Any]:
    """How many GPUs this rank sees and the UUID of the one it would use (local rank
    modulo that count): NCCL needs a GPU of its own per rank, which the UUIDs tell even
    when every rank sees only its own device through CUDA_VISIBLE_DEVICES."""
    try:
        import torch

        with warnings.catch_warnings():  # "driver too old" and the like: the check reports the driver
            warnings.simplefilter("ignore")
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        uuid = str(torch.cuda.get_device_properties(local_rank % count).uuid) if count else None
        return {"count": count, "uuid": uuid}
    except Exception:
        return {"count": 0, "uuid": None}


def choose_backend(records: Sequence[Dict[str, Any]]) -> str:
    """NCCL when every rank has a GPU and no two ranks of a node share one; else gloo."""
    seen = set()
    for rec in records:
        uuid = rec.get("gpu_uuid")
        if not rec.get("cuda_devices") or not uuid or (rec["node"], uuid) in seen:
            return "gloo"
        seen.add((rec["node"], uuid))
    return "nccl"


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)
