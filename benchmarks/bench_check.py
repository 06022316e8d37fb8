"""How long `envdoctor check` takes, as a ratio to `python -c "import torch"`.

Importing torch is the floor of a full check (the torch probe imports it in a
subprocess); everything else should hide behind it. The two commands alternate in
one run so that machine load affects both alike; the report is the median ratio.

    python benchmarks/bench_check.py [--rounds 7] [--json] [--bytecode]

Targets: full check <= 0.85x import torch; --quick <= 0.1x (see docs/performance.md).

By default nothing is byte-compiled (PYTHONDONTWRITEBYTECODE=1), so a source
checkout without ``__pycache__`` recompiles envdoctor's modules on every run: the
worst case. ``--bytecode`` lets every command cache its byte-code in a temporary
PYTHONPYCACHEPREFIX (filled by the warm-up round, for torch and envdoctor alike),
which is what a pip-installed envdoctor has. The figures and the load average
before and after are printed: on a busy machine the ratios are noisy.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def timed(argv, cwd, env) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--bytecode", action="store_true",
                        help="cache byte-code in a temporary directory (like an installed package)")
    args = parser.parse_args()

    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPYCACHEPREFIX", None)
    pycache = tempfile.TemporaryDirectory(prefix="envdoctor-bench-pyc-") if args.bytecode else None
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE")
        env["PYTHONPYCACHEPREFIX"] = pycache.name
    py = sys.executable
    commands = {
        "import torch": [py, "-c", "import torch"],
        "envdoctor check": [py, "-m", "envdoctor", "check", "--format", "json", "--fail-on", "never"],
        "envdoctor check --quick": [py, "-m", "envdoctor", "check", "--quick", "--format", "json", "--fail-on", "never"],
        "python -c pass": [py, "-c", "pass"],
    }
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as cwd:  # an empty project dir: nothing to scan
        for argv in commands.values():  # warm the page cache (and the byte-code cache) once
            timed(argv, cwd, env)
        samples = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, argv in commands.items():
                samples[name].append(timed(argv, cwd, env))
    load_after = os.getloadavg()
    if pycache is not None:
        pycache.cleanup()
    base = samples["import torch"]
    ratios = {name: statistics.median(t / b for t, b in zip(times, base)) for name, times in samples.items()}
    medians = {name: statistics.median(times) for name, times in samples.items()}
    if args.json:
        print(json.dumps({"rounds": args.rounds, "bytecode": args.bytecode, "cpus": os.cpu_count(),
                          "load_average_before": load_before, "load_average_after": load_after,
                          "median_seconds": medians, "median_ratio_to_import_torch": ratios}, indent=2))
    else:
        print(f"{args.rounds} rounds, alternating; ratio = median over rounds of (command / import torch); "
              f"byte-code {'cached' if args.bytecode else 'not cached'}")
        print(f"  {os.cpu_count()} CPUs; load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
        for name in commands:
            print(f"  {name:<26} {medians[name]:6.3f} s   {ratios[name]:5.2f}x import torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
