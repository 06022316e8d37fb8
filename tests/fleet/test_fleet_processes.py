"""envdoctor fleet with real processes: 2-3 local ranks on gloo over 127.0.0.1."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.fixtures import corpus
from tests.fixtures.fake_bin import write_nvidia_smi
from tests.fleet.procs import finish, free_port, kill, rank_env, sealed_env, start

pytestmark = pytest.mark.slow


def _fake_node(tmp_path, name, banner_id):
    bin_dir = str(tmp_path / name / "bin")
    write_nvidia_smi(bin_dir, corpus.text(banner_id))
    home = tmp_path / name / "home"
    home.mkdir(parents=True)
    return bin_dir, str(home)


def test_odd_node_is_named_with_its_driver(tmp_path):
    port = free_port()
    bin_a, home_a = _fake_node(tmp_path, "a", "smi-devcontainers-1295-535-newfmt")
    bin_b, home_b = _fake_node(tmp_path, "b", "smi-colabfold-74-470")
    procs = [start(rank_env(home_a, 0, 2, port, bin_a), ["--node-name", "node-a", "--timeout", "60", "--no-sweep"],
                   str(tmp_path)),
             start(rank_env(home_b, 1, 2, port, bin_b), ["--node-name", "node-b", "--timeout", "60", "--no-sweep"],
                   str(tmp_path))]
    try:
        (code0, out0, err0), (code1, out1, err1) = finish(procs)
    finally:
        kill(procs)
    assert code0 == 1, err0
    assert code1 == 0 and out1 == "", err1  # only rank 0 reports
    findings = [line for line in out0.splitlines() if line.startswith("    NVIDIA driver:")]
    assert findings == ["    NVIDIA driver: node-b has 470.103.01; the majority (1 of 2 nodes: node-a) has 535.216.03."]
    assert "ED903 error  Same NVIDIA driver on every node" in out0
    assert "odd: node-b: 470.103.01" in out0


def test_nodes_that_agree_exit_zero(tmp_path):
    port = free_port()
    bin_a, home_a = _fake_node(tmp_path, "a", "smi-devcontainers-1295-535-newfmt")
    bin_b, home_b = _fake_node(tmp_path, "b", "smi-devcontainers-1295-535-newfmt")
    args = ["--timeout", "60", "--no-sweep", "--format", "json"]
    procs = [start(rank_env(home_a, 0, 2, port, bin_a), ["--node-name", "node-a", *args], str(tmp_path)),
             start(rank_env(home_b, 1, 2, port, bin_b), ["--node-name", "node-b", *args], str(tmp_path))]
    try:
        (code0, out0, err0), _ = finish(procs)
    finally:
        kill(procs)
    assert code0 == 0, out0 + err0
    result = json.loads(out0)
    assert [r["node"] for r in result["ranks"]] == ["node-a", "node-b"]
    driver = next(row for row in result["table"] if row["field"] == "driver")
    assert driver["majority"] == "535.216.03" and driver["odd"] == []
    assert result["findings"] == []


def test_missing_rank_is_named_within_the_timeout(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    started = time.monotonic()
    proc = start(rank_env(str(home), 0, 2, free_port()), ["--node-name", "node-a", "--timeout", "20"], str(tmp_path))
    try:
        ((code, out, err),) = finish([proc], limit=60)
    finally:
        kill([proc])
    elapsed = time.monotonic() - started
    assert elapsed < 60  # a bound so that a hang fails the test, not a performance claim
    assert code == 1, err
    assert "ED901 error  Every rank joined" in out
    assert "1 of 2 ranks never joined within the rendezvous window: rank 1." in out


def _store_client(port, limit=60):
    import socket
    from datetime import timedelta

    import torch.distributed as dist

    # Poll with plain sockets until rank 0 listens: the c10d client backs off for many
    # seconds after a refused connection, long enough to miss a whole short run.
    deadline = time.monotonic() + limit
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)

    return dist.PrefixStore("envdoctor-fleet/", dist.TCPStore("127.0.0.1", port, is_master=False,
                                                             timeout=timedelta(seconds=30)))


def _wait_key(store, key, limit=60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if store.check([key]):
            return store.get(key).decode()
        time.sleep(0.1)
    raise AssertionError(f"{key} never set")


def test_hung_rank_is_named_and_the_run_still_reports(tmp_path):
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    args = ["--timeout", "30", "--format", "json", "--sizes", "64K"]
    procs = [start(rank_env(str(home), 0, 2, port), ["--node-name", "node-a", *args], str(tmp_path)),
             start(rank_env(str(home), 1, 2, port), ["--node-name", "node-b", *args], str(tmp_path))]
    try:
        store = _store_client(port)
        _wait_key(store, "step/1")
        while _wait_key(store, "step/1") == "joined":  # let it finish its checks, then freeze it
            time.sleep(0.05)
        os.kill(procs[1].pid, signal.SIGSTOP)
        ((code0, out0, err0),) = finish(procs[:1], limit=60)
    finally:
        kill(procs)
    result = json.loads(out0)
    why = json.dumps({"findings": [f["message"] for f in result["findings"]], "missing": result["missing"],
                      "errors": result["errors"], "meta": result["meta"], "stderr": err0[-2000:]}, indent=1)
    assert code0 == 1, why
    hung = [f for f in result["findings"] if f["code"] == "ED902"]
    assert len(hung) == 1 and hung[0]["message"].startswith("rank 1 (node-b) stopped answering during"), why
    assert "its heartbeat stopped" in hung[0]["message"]
    assert [m["rank"] for m in result["missing"]] == [1]
    assert [r["node"] for r in result["ranks"]] in ([], ["node-a"], ["node-a", "node-b"])


def _stutter(pid, stop_event, run_s=0.005, stopped_s=0.2):
    """Freeze a process ~95% of the time: a real straggler (as a throttled or overloaded node)."""
    while not stop_event.is_set():
        os.kill(pid, signal.SIGSTOP)
        time.sleep(stopped_s)
        os.kill(pid, signal.SIGCONT)
        time.sleep(run_s)
    os.kill(pid, signal.SIGCONT)


def test_slow_rank_is_found_by_the_pairwise_test(tmp_path):
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    args = ["--timeout", "90", "--format", "json", "--sizes", "4M", "--fail-on", "error"]
    procs = [start(rank_env(str(home), r, 3, port), ["--node-name", f"node-{'abc'[r]}", *args], str(tmp_path))
             for r in range(3)]
    stop = threading.Event()
    try:
        store = _store_client(port)
        while _wait_key(store, "step/2") == "joined":  # its checks done: slow it from now on
            time.sleep(0.05)
        stutter = threading.Thread(target=_stutter, args=(procs[2].pid, stop), daemon=True)
        stutter.start()
        ((code0, out0, err0),) = finish(procs[:1], limit=120)
    finally:
        stop.set()
        time.sleep(0.2)
        kill(procs)
    result = json.loads(out0)
    slow = [f["message"] for f in result["findings"] if f["code"] == "ED913"]
    why = json.dumps({"findings": [f["message"] for f in result["findings"]], "pairs": result["pairwise"]["pairs"],
                      "errors": result["errors"], "stderr": err0[-2000:]}, indent=1)
    assert code0 == 1, why
    assert len(slow) == 1 and slow[0].startswith("rank 2 (node-c) is slow"), why
    flags = {(p["a"], p["b"]): p["slow"] for p in result["pairwise"]["pairs"]}
    assert flags == {(0, 1): False, (1, 2): True, (2, 0): True}


def test_nproc_per_node_reports_busbw_per_size(tmp_path):
    env = sealed_env(str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "envdoctor", "fleet", "--nproc-per-node", "2", "--timeout", "90",
                           "--sizes", "64K,1M", "--format", "json"], env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result["meta"]["launcher"] == "torchrun" and result["meta"]["ranks_gathered"] == 2
    rows = result["sweep"]["rows"]
    assert [r["bytes"] for r in rows] == [65536, 1048576]
    for r in rows:  # n = 2: busbw = algbw * 2(n-1)/n = algbw
        assert r["busbw_gbps"] == pytest.approx(r["algbw_gbps"], rel=1e-3) and r["busbw_gbps"] > 0
    assert result["sweep"]["backend"] == "gloo"
    assert len(result["pairwise"]["pairs"]) == 1 and result["barrier_latency_us"] > 0


def test_prolog_finishes_within_a_minute(tmp_path):
    env = sealed_env(str(tmp_path))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "envdoctor", "fleet", "--prolog", "--nproc-per-node", "2"],
                          env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=90)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert elapsed < 60  # the prolog contract (Slurm kills a prolog past its limit), not a speed claim
    assert "(launcher: torchrun, prolog)" in proc.stdout and "All-reduce sweep (gloo, 2 ranks" in proc.stdout
