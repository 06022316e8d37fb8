import pytest

from envdoctor.fleet.launcher import LauncherError, rank_env


def test_torchrun_environment():
    info = rank_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4",
                     "MASTER_ADDR": "node0", "MASTER_PORT": "29400", "TORCHELASTIC_RUN_ID": "x",
                     "TORCHELASTIC_USE_AGENT_STORE": "True"})
    assert (info.rank, info.world_size, info.local_rank, info.local_world_size) == (3, 8, 1, 4)
    assert (info.master_addr, info.master_port, info.launcher, info.agent_store) == ("node0", 29400, "torchrun", True)


def test_plain_env_defaults_port_and_local_rank():
    info = rank_env({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"})
    assert (info.launcher, info.master_port, info.local_rank, info.agent_store) == ("env", 29500, 0, False)


def test_slurm_maps_procid_ntasks_localid_and_first_node():
    env = {"SLURM_PROCID": "9", "SLURM_NTASKS": "16", "SLURM_LOCALID": "1", "SLURM_NTASKS_PER_NODE": "8",
           "SLURM_STEP_NODELIST": "gpu[03-04]", "SLURM_LAUNCH_NODE_IPADDR": "10.0.0.3"}
    info = rank_env(env)
    assert (info.rank, info.world_size, info.local_rank, info.master_addr, info.launcher) == (9, 16, 1, "gpu03",
                                                                                             "slurm")
    del env["SLURM_STEP_NODELIST"]
    assert rank_env(env).master_addr == "10.0.0.3"
    assert rank_env(dict(env, MASTER_ADDR="head", MASTER_PORT="1234")).master_addr == "head"


def test_open_mpi_needs_master_addr():
    env = {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}
    with pytest.raises(LauncherError, match="MASTER_ADDR"):
        rank_env(env)
    info = rank_env(dict(env, MASTER_ADDR="h0"))
    assert (info.rank, info.world_size, info.local_rank, info.launcher) == (1, 4, 1, "mpi")


@pytest.mark.parametrize("env, message", [
    ({}, "not started by a distributed launcher"),
    ({"RANK": "0", "WORLD_SIZE": "2"}, "MASTER_ADDR is not"),
    ({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h"}, "rank 2 is outside world size 2"),
    ({"RANK": "x", "WORLD_SIZE": "2", "MASTER_ADDR": "h"}, "RANK='x' is not an integer"),
    ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "70000"}, "not a TCP port"),
])
def test_errors_say_what_is_missing(env, message):
    with pytest.raises(LauncherError, match=message):
        rank_env(env)
