"""Where this process sits in the job: rank, world size, local rank and the rendezvous
address, read from whichever launcher started it. Pure: takes the environment as a mapping.

Order of precedence (the first that gives a rank and a world size wins):

- torchrun, or plain env:// variables: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``;
- Slurm (``srun``): ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``; the
  rendezvous host is the first node of the step (where task 0 runs), else
  ``SLURM_LAUNCH_NODE_IPADDR``;
- Open MPI (``mpirun``): ``OMPI_COMM_WORLD_RANK``, ``OMPI_COMM_WORLD_SIZE``,
  ``OMPI_COMM_WORLD_LOCAL_RANK``; ``MASTER_ADDR`` must be given.

``MASTER_ADDR``/``MASTER_PORT`` set in the environment always win over guesses.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional

from envdoctor.smoke.launch import RDZV_PORT, first_slurm_host


class LauncherError(ValueError):
    """The environment does not say where this rank is (a usage error)."""


@dataclass(frozen=True)
class RankEnv:
    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    launcher: str  # "torchrun" | "env" | "slurm" | "mpi"
    local_world_size: Optional[int] = None
    agent_store: bool = False  # torchrun's agent already serves the store at MASTER_ADDR:MASTER_PORT


def _int(env: Mapping[str, str], name: str) -> Optional[int]:
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise LauncherError(f"{name}={value!r} is not an integer") from None


def _port(env: Mapping[str, str]) -> int:
    port = _int(env, "MASTER_PORT")
    if port is None:
        return RDZV_PORT
    if not 0 < port < 65536:
        raise LauncherError(f"MASTER_PORT={port} is not a TCP port")
    return port


def rank_env(env: Mapping[str, str]) -> RankEnv:
    """The launcher's view of this process. Raises LauncherError naming what is missing."""
    rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
    if rank is not None and world is not None:
        launcher = "torchrun" if "TORCHELASTIC_RUN_ID" in env else "env"
        local = _int(env, "LOCAL_RANK")
        master = env.get("MASTER_ADDR")
        if not master:
            raise LauncherError("RANK and WORLD_SIZE are set but MASTER_ADDR is not (the host of rank 0)")
        return _checked(RankEnv(rank, world, local if local is not None else 0, master, _port(env), launcher,
                                _int(env, "LOCAL_WORLD_SIZE"),
                                agent_store=env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"))
    rank, world = _int(env, "SLURM_PROCID"), _int(env, "SLURM_NTASKS")
    if rank is not None and world is not None:
        master = env.get("MASTER_ADDR")
        if not master:
            nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
            master = first_slurm_host(nodelist) if nodelist else env.get("SLURM_LAUNCH_NODE_IPADDR", "")
        if not master:
            raise LauncherError("under Slurm but neither MASTER_ADDR, SLURM_STEP_NODELIST nor "
                                "SLURM_LAUNCH_NODE_IPADDR says where rank 0 runs")
        local = _int(env, "SLURM_LOCALID")
        per_node = _int(env, "SLURM_NTASKS_PER_NODE")
        return _checked(RankEnv(rank, world, local if local is not None else 0, master, _port(env), "slurm",
                                per_node))
    rank, world = _int(env, "OMPI_COMM_WORLD_RANK"), _int(env, "OMPI_COMM_WORLD_SIZE")
    if rank is not None and world is not None:
        master = env.get("MASTER_ADDR")
        if not master:
            raise LauncherError("under mpirun: set MASTER_ADDR to the host of rank 0 "
                                "(mpirun -x MASTER_ADDR=host0 -x MASTER_PORT=29500 ...)")
        local = _int(env, "OMPI_COMM_WORLD_LOCAL_RANK")
        return _checked(RankEnv(rank, world, local if local is not None else 0, master, _port(env), "mpi",
                                _int(env, "OMPI_COMM_WORLD_LOCAL_SIZE")))
    raise LauncherError("not started by a distributed launcher: no RANK/WORLD_SIZE, SLURM_PROCID/SLURM_NTASKS or "
                        "OMPI_COMM_WORLD_RANK/OMPI_COMM_WORLD_SIZE in the environment. Run it under torchrun, "
                        "srun or mpirun, or use --nproc-per-node N to start local ranks")


def _checked(info: RankEnv) -> RankEnv:
    if info.world_size < 1:
        raise LauncherError(f"world size {info.world_size} must be at least 1")
    if not 0 <= info.rank < info.world_size:
        raise LauncherError(f"rank {info.rank} is outside world size {info.world_size}")
    if info.local_rank < 0:
        raise LauncherError(f"local rank {info.local_rank} is negative")
    return info
