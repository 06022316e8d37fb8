"""How long `envdoctor check` takes, as a ratio to `python -c "import torch"`.

Importing torch is the floor of a full check (the torch probe imports it in a
subprocess); everything else should hide behind it. The two commands alternate in
one run so that machine load affects both alike; the report is the median ratio.

    python benchmarks/bench_check.py [--rounds 7] [--json]

Targets: full check <= 1.05x import torch; --quick <= 0.1x.
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
    args = parser.parse_args()

    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    py = sys.executable
    commands = {
        "import torch": [py, "-c", "import torch"],
        "envdoctor check": [py, "-m", "envdoctor", "check", "--format", "json", "--fail-on", "never"],
        "envdoctor check --quick": [py, "-m", "envdoctor", "check", "--quick", "--format", "json", "--fail-on", "never"],
        "python -c pass": [py, "-c", "pass"],
    }
    with tempfile.TemporaryDirectory() as cwd:  # an empty project dir: nothing to scan
        for argv in commands.values():  # warm the page cache once
            timed(argv, cwd, env)
        samples = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, argv in commands.items():
                samples[name].append(timed(argv, cwd, env))
    base = samples["import torch"]
    ratios = {name: statistics.median(t / b for t, b in zip(times, base)) for name, times in samples.items()}
    medians = {name: statistics.median(times) for name, times in samples.items()}
    if args.json:
        print(json.dumps({"rounds": args.rounds, "median_seconds": medians, "median_ratio_to_import_torch": ratios},
                         indent=2))
    else:
        print(f"{args.rounds} rounds, alternating; ratio = median over rounds of (command / import torch)")
        for name in commands:
            print(f"  {name:<26} {medians[name]:6.3f} s   {ratios[name]:5.2f}x import torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
