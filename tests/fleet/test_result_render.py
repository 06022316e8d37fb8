import json

from envdoctor.fleet.compare import digest
from envdoctor.fleet.render import fleet_redactor, render
from envdoctor.fleet.result import FleetState, build_result, exit_status
from envdoctor.render.redact import Redactor

VALUES = {"driver": "550.54.15", "torch": "2.4.0", "nccl_env": {"NCCL_DEBUG": "WARN"},
          "nccl_loaded": ["/home/alice/venv/nvidia/nccl/lib/libnccl.so.2"]}
ODD = dict(VALUES, driver="470.103.01")


def _state(odd=True, **kw):
    a, b = digest(VALUES), digest(ODD if odd else VALUES)
    state = FleetState(world_size=2, launcher="env", timeout=60, phase="done", seconds=3.25, **kw)
    state.records = [{"rank": 0, "local_rank": 0, "node": "node-a", "digest": a, "clock": 100.0, "cuda_devices": 0},
                     {"rank": 1, "local_rank": 0, "node": "node-b", "digest": b, "clock": 100.01, "cuda_devices": 0}]
    state.values = {a: VALUES, b: ODD if odd else VALUES}
    state.backend, state.sweep_ranks, state.pair_size, state.barrier_s = "gloo", 2, 1 << 20, 0.000125
    state.sweep_times = {65536: [0.001, 0.0011], 1 << 20: [0.004, 0.004]}
    state.pairs = [{"a": 0, "b": 1, "gbps": 2.5}]
    return state


def test_text_report_pinned():
    text = render(build_result(_state()), "text", Redactor(home="/home/alice", user="alice"))
    assert text == """\
envdoctor fleet: 2 of 2 ranks on 2 nodes, 3.2 s (launcher: env)

Consistency (majority value [its nodes]; odd nodes below)
  NVIDIA driver                   550.54.15  [node-a]
                                  odd: node-b: 470.103.01
  newest CUDA of the driver       n/a  [all nodes]
  torch                           2.4.0  [all nodes]
  torch's CUDA                    n/a  [all nodes]
  NCCL (torch.cuda.nccl.version)  n/a  [all nodes]
  libnccl loaded                  ~/venv/nvidia/nccl/lib/libnccl.so.2  [all nodes]
  NCCL net plugin                 n/a  [all nodes]
  NCCL_* variables                NCCL_DEBUG=WARN  [all nodes]
  UCX_* variables                 n/a  [all nodes]
  FI_* variables                  n/a  [all nodes]
  GPU model                       n/a  [all nodes]
  GPU count                       n/a  [all nodes]
  GPU memory (MiB)                n/a  [all nodes]
  compute capability              n/a  [all nodes]
  InfiniBand ports                n/a  [all nodes]
  errors of `envdoctor check`     n/a  [all nodes]
  clock skew                      0.010 s across nodes

All-reduce sweep (gloo, 2 ranks; busbw = algbw x 2(n-1)/n, as nccl-tests)
    size    time (us)  algbw (GB/s)  busbw (GB/s)
     64K       1100.0         0.060         0.060
      1M       4000.0         0.262         0.262
  expected: no sourced figure for this hardware and job shape (measured only)

Pairwise test (ring neighbours, 1M ping-pong)
  ranks 0-1 (node-a - node-b): 2.500 GB/s

Barrier latency (gloo, median): 125.0 us

Findings
ED903 error  Same NVIDIA driver on every node
    NVIDIA driver: node-b has 470.103.01; the majority (1 of 2 nodes: node-a) has 550.54.15.
    docs: docs/codes/ED903.md
"""


def test_json_is_the_stable_interface_and_keeps_node_names():
    result = build_result(_state())
    data = json.loads(render(result, "json", fleet_redactor()))
    assert data["schema_version"] == 1 and data["kind"] == "envdoctor-fleet"
    assert [r["node"] for r in data["ranks"]] == ["node-a", "node-b"]
    assert [r["busbw_gbps"] for r in data["sweep"]["rows"]] == [0.0596, 0.2621]
    assert data["summary"] == {"worst": "error", "counts": {"info": 0, "warning": 0, "error": 1}}
    assert exit_status(result, "error") == 1 and exit_status(result, "never") == 0


def test_markdown_has_the_findings_and_the_table():
    md = render(build_result(_state()), "markdown", Redactor(enabled=False))
    assert "| ED903 | error | NVIDIA driver: node-b has 470.103.01; the majority (1 of 2 nodes: node-a) has 550.54.15. |" in md
    assert "| NVIDIA driver | 550.54.15 | node-b: 470.103.01 |" in md
    assert "| 1M | 4000.0 | 0.262 | 0.262 |" in md


def test_consistent_fleet_exits_zero_and_says_so():
    result = build_result(_state(odd=False))
    assert result["findings"] == [] and exit_status(result, "error") == 0
    assert render(result, "text").endswith("No findings: the nodes agree and the collectives ran.\n")


def test_missing_and_stalled_ranks_always_fail():
    state = _state(odd=False)
    state.absent = {2: {"step": None, "node": None}, 3: {"step": "joined", "node": "node-d"}}
    state.world_size = 5
    state.stalled = {4: {"step": "gather", "beating": False, "node": "node-e"}}
    state.phase = "sweep"
    result = build_result(state)
    messages = [(f["code"], f["message"]) for f in result["findings"]]
    assert messages == [
        ("ED901", "1 of 5 ranks never joined within the rendezvous window: rank 2."),
        ("ED902", "rank 3 (node-d) joined but did not finish its checks within the rendezvous window (last step: "
                  "joined); it was left out of the fleet test."),
        ("ED902", "rank 4 (node-e) stopped answering during 'sweep' (its last step: gather); its heartbeat stopped: "
                  "the process died or is frozen.")]
    assert exit_status(result, "never") == 1


def test_a_failed_collective_without_a_culprit_is_quoted():
    state = _state(odd=False)
    state.errors = ["RuntimeError: Connection closed by peer [127.0.0.1]:1234"]
    state.phase = "sweep"
    (finding,) = build_result(state)["findings"]
    assert finding["code"] == "ED915"
    assert finding["message"] == "a collective failed during 'sweep': RuntimeError: Connection closed by peer [127.0.0.1]:1234"


def test_internal_failure_exits_three():
    state = _state(odd=False)
    state.internal = ["ValueError: boom"]
    assert exit_status(build_result(state), "error") == 3
