import sys

from envdoctor.smoke.config import SmokeConfig, SmokeResult
from envdoctor.smoke.launch import first_slurm_host, merge_ranks, slurm_args, torchrun_argv

SLURM = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NUM_NODES": "2", "SLURM_NODEID": "1",
         "SLURM_JOB_NODELIST": "gpu[03-04]"}


def test_single_node_uses_standalone_rendezvous():
    argv = torchrun_argv(SmokeConfig(nproc_per_node=2), "/c.json", "/out", env={})
    assert argv[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert argv[3:8] == ["--nproc-per-node", "2", "--nnodes", "1", "--standalone"]
    assert argv[8:] == ["-m", "envdoctor.smoke.worker", "--config", "/c.json", "--out", "/out"]


def test_user_rendezvous_flags_pass_through_unchanged():
    config = SmokeConfig(nproc_per_node=8, nnodes="2",
                         launch_args=["--rdzv-backend", "c10d", "--rdzv-endpoint", "h:29500", "--rdzv-id", "j"])
    argv = torchrun_argv(config, "/c.json", "/out", env={})
    assert "--standalone" not in argv
    assert argv[3:15] == ["--nproc-per-node", "8", "--nnodes", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                          "h:29500", "--rdzv-id", "j", "-m", "envdoctor.smoke.worker"]


def test_slurm_allocation_fills_nodes_rank_and_endpoint():
    argv = torchrun_argv(SmokeConfig(nproc_per_node=4), "/c.json", "/out", env=SLURM)
    assert argv[3:15] == ["--nproc-per-node", "4", "--nnodes", "2", "--node-rank", "1", "--rdzv-backend", "c10d",
                          "--rdzv-endpoint", "gpu03:29500", "--rdzv-id", "4242"]


def test_slurm_does_not_override_what_the_user_set():
    assert slurm_args(SLURM, [], nnodes="3") == []  # --nnodes given: torchrun flags are the user's
    args = slurm_args(SLURM, ["--rdzv-endpoint", "me:1"], nnodes="1")
    assert args == ["--nnodes", "2", "--node-rank", "1"]
    assert slurm_args({"SLURM_JOB_ID": "1", "SLURM_JOB_NUM_NODES": "1"}, [], "1") == []
    assert slurm_args({}, [], "1") == []


def test_first_slurm_host():
    assert first_slurm_host("gpu[03-05,07],cpu1") == "gpu03"
    assert first_slurm_host("node7") == "node7"
    assert first_slurm_host("a-b[1,2]") == "a-b1"


def _rank(passed=True, hashes=("x", "x"), reason="", peak=None):
    return SmokeResult(passed=passed, reason=reason, world_size=2, param_hashes=list(hashes), peak_memory=peak)


def test_merge_passes_when_all_ranks_pass_and_agree():
    merged = merge_ranks({0: _rank(peak=10), 1: _rank(peak=30)}, expected_local=2, log_tail="")
    assert merged.passed and merged.reason == ""
    assert merged.peak_memory == 30  # the busiest rank


def test_merge_fails_when_parameters_differ():
    merged = merge_ranks({0: _rank(hashes=("a", "b")), 1: _rank(hashes=("a", "b"))}, 2, "")
    assert not merged.passed
    assert merged.reason.startswith("parameters differ across ranks after training")
    assert "rank 0 a, rank 1 b" in merged.reason


def test_merge_fails_when_a_rank_is_missing_or_failed():
    merged = merge_ranks({0: _rank()}, 2, "Traceback ... rank 1 died")
    assert not merged.passed and "only 1 of 2 local ranks finished" in merged.reason
    assert "rank 1 died" in merged.reason
    merged = merge_ranks({0: _rank(), 1: _rank(passed=False, reason="loss did not fall")}, 2, "")
    assert merged.reason == "rank 1: loss did not fall"
    assert "no rank finished" in merge_ranks({}, 2, "boom").reason
