"""What `envdoctor fleet` costs rank 0 as the job grows, per rank.

Part 1, simulated, in one process: N ranks (8 per node, N = 8 .. 4096) whose
comparable values come from this machine's real check (one node in a hundred gets
another driver). Measured for each N:

- ``ours``: what rank 0 does with what it receives (N small records + one set of
  values per distinct digest): build the verdict and render text and JSON;
- ``baseline``: the naive design measured in the same run, every rank's full
  ``check --format json`` report sent to rank 0 and parsed there
  (``load_report_text``), before any comparing at all;
- the bytes rank 0 receives in both designs (pickled, as all_gather_object sends).

Part 2, real: ``envdoctor fleet --nproc-per-node K --no-sweep`` for K = 2..4
local ranks, the gather phase as rank 0 timed it (meta.phase_seconds.gather).

    python benchmarks/bench_fleet.py [--max-ranks 4096] [--real 2,3,4] [--json]

The figures are per rank (microseconds, bytes): flat means linear in N.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from envdoctor import engine  # noqa: E402
from envdoctor.fleet.compare import digest, node_values  # noqa: E402
from envdoctor.fleet.probes import fleet_facts  # noqa: E402
from envdoctor.fleet.render import fleet_redactor, render  # noqa: E402
from envdoctor.fleet.result import FleetState, build_result  # noqa: E402
from envdoctor.render import Redactor, load_report_text, render as render_report  # noqa: E402

PER_NODE = 8


def simulated_state(ranks: int, values, odd_values):
    state = FleetState(world_size=ranks, launcher="simulated", timeout=120, phase="done")
    good, odd = digest(values), digest(odd_values)
    state.values = {good: values, odd: odd_values}
    for rank in range(ranks):
        node = rank // PER_NODE
        is_odd = node % 100 == 99
        state.records.append({"rank": rank, "local_rank": rank % PER_NODE, "node": f"node{node:04d}",
                              "digest": odd if is_odd else good, "boot_id": f"boot-{node}", "pid": 1000 + rank,
                              "clock": 1.0e9 + (rank % 7) * 1e-3, "cuda_devices": 0, "gpu_uuid": None})
    return state


def best_of(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def simulate(max_ranks: int):
    report = engine.run_check(quick=True, paths=())
    values = node_values(report, fleet_facts(os.environ))
    odd_values = dict(values, driver="470.103.01")
    report_text = render_report(report, "json", redactor=Redactor(enabled=False))
    redactor = fleet_redactor()
    rows = []
    n = 8
    while n <= max_ranks:
        state = simulated_state(n, values, odd_values)

        def ours():
            result = build_result(state)
            render(result, "text", redactor)
            render(result, "json", redactor)

        def baseline():
            for _ in range(n):
                load_report_text(report_text)

        ours_s, base_s = best_of(ours), best_of(baseline, repeat=1 if n > 512 else 3)
        received = sum(len(pickle.dumps(r)) for r in state.records) + sum(
            len(pickle.dumps(v)) for v in state.values.values())
        naive_bytes = n * len(pickle.dumps(report_text))
        rows.append({"ranks": n, "nodes": n // PER_NODE, "ours_us_per_rank": round(ours_s / n * 1e6, 2),
                     "baseline_us_per_rank": round(base_s / n * 1e6, 2), "speedup": round(base_s / ours_s, 1),
                     "bytes_per_rank": round(received / n), "naive_bytes_per_rank": round(naive_bytes / n),
                     "ours_ms": round(ours_s * 1e3, 2)})
        n *= 2 if n < 64 else 4 if n < 4096 else 2
    return rows


def real(counts):
    rows = []
    env = dict(os.environ, PYTHONPATH=ROOT)
    for k in counts:
        with tempfile.TemporaryDirectory() as cwd:
            proc = subprocess.run([sys.executable, "-m", "envdoctor", "fleet", "--nproc-per-node", str(k),
                                   "--no-sweep", "--format", "json", "--fail-on", "never", "--timeout", "120"],
                                  cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
        if proc.returncode != 0:
            rows.append({"ranks": k, "error": proc.stderr[-500:]})
            continue
        meta = json.loads(proc.stdout)["meta"]
        gather = meta["phase_seconds"].get("gather")
        rows.append({"ranks": k, "gather_ms": round(gather * 1e3, 1), "gather_ms_per_rank": round(gather * 1e3 / k, 2),
                     "checks_s": meta["phase_seconds"].get("checks"), "total_s": meta["seconds"]})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-ranks", type=int, default=4096)
    parser.add_argument("--real", default="2,3,4", help="local rank counts for part 2 ('' to skip)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load_before = os.getloadavg()
    sim = simulate(args.max_ranks)
    live = real([int(k) for k in args.real.split(",") if k]) if args.real else []
    out = {"simulated": sim, "real": live, "load_before": load_before, "load_after": os.getloadavg()}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print("simulated (rank 0, in-process)")
    print(f"{'ranks':>6} {'nodes':>6} {'ours us/rank':>13} {'naive us/rank':>14} {'naive/ours':>10} "
          f"{'bytes/rank':>11} {'naive bytes/rank':>17}")
    for r in sim:
        print(f"{r['ranks']:>6} {r['nodes']:>6} {r['ours_us_per_rank']:>13} {r['baseline_us_per_rank']:>14} "
              f"{r['speedup']:>10} {r['bytes_per_rank']:>11} {r['naive_bytes_per_rank']:>17}")
    if live:
        print("\nreal (local ranks, gloo over 127.0.0.1)")
        for r in live:
            print("  " + json.dumps(r))
    print(f"\nload average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
