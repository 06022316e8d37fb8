"""Smoke-train speed on CPU: the compiled MSDeformAttn op vs the reference, measured in the same run.

    python benchmarks/bench_smoke.py [--steps 20] [--repeats 2] [--threads 1] [--build]

Both implementations train the same model on the same data, alternating
(reference, compiled, reference, compiled, ...) so machine load affects both
alike. The result is a ratio, never an absolute time: compiled steps/s divided
by reference steps/s. Also reports the op alone (forward+backward) at the
smoke-train's shapes. The compiled side is skipped, with the reason, when the
op cannot be built or loaded.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from envdoctor import ops  # noqa: E402
from envdoctor.smoke.config import SmokeConfig  # noqa: E402
from envdoctor.smoke.train import run_single  # noqa: E402


def compiled_ready(build: bool) -> str:
    """"" when the compiled CPU op is usable, else why not."""
    try:
        if not ops.load_extension(build=build, cuda=False):
            return "the compiled CPU op is not built (rerun with --build, or run `envdoctor build --cpu-only`)"
    except Exception as exc:  # any load failure just means "no compiled side"
        return f"the compiled CPU op cannot be loaded: {exc}"
    return "" if ops.active_implementation("cpu") == "compiled" else "the loaded op has no CPU kernel"


def smoke_steps_per_s(impl: str, steps: int, threads: int) -> float:
    result = run_single(SmokeConfig(steps=steps, msda_impl=impl, threads=threads))
    if result.steps_per_s is None or result.nan_inf:
        raise RuntimeError(f"{impl} smoke-train did not run: {result.reason}")
    return result.steps_per_s


def op_seconds(impl: str, repeats: int = 20) -> float:
    """Forward+backward of the op alone at the tiny preset's encoder shapes (96px input: 3x3, 6x6, 12x12)."""
    gen = torch.Generator().manual_seed(0)
    shapes = torch.tensor([[3, 3], [6, 6], [12, 12]])
    start = torch.cat((shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]))
    s, n, m, d, lq, levels, points = int(shapes.prod(1).sum()), 4, 4, 16, int(shapes.prod(1).sum()), 3, 4
    value = torch.randn(n, s, m, d, generator=gen, requires_grad=True)
    loc = torch.rand(n, lq, m, levels, points, 2, generator=gen, requires_grad=True)
    attn = torch.rand(n, lq, m, levels, points, generator=gen).softmax(-1).requires_grad_()
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(repeats):
            ops.ms_deform_attn(value, shapes, start, loc, attn, impl=impl).sum().backward()
        best = min(best, time.perf_counter() - began)
    return best / repeats


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="fixed, so both sides get the same CPU")
    parser.add_argument("--build", action="store_true", help="build the compiled CPU op if it is missing")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    skip = compiled_ready(args.build)
    impls = ["reference"] + ([] if skip else ["compiled"])
    speeds = {impl: [] for impl in impls}
    for _ in range(args.repeats):
        for impl in impls:
            speeds[impl].append(smoke_steps_per_s(impl, args.steps, args.threads))
    report = {"steps": args.steps, "repeats": args.repeats, "threads": args.threads,
              "smoke_steps_per_s": {k: round(statistics.median(v), 3) for k, v in speeds.items()}}
    op_times = {impl: op_seconds(impl) for impl in impls}
    report["op_fwd_bwd_ms"] = {k: round(v * 1e3, 3) for k, v in op_times.items()}
    if skip:
        report["compiled"] = f"skipped: {skip}"
    else:
        report["smoke_speedup_compiled_vs_reference"] = round(
            report["smoke_steps_per_s"]["compiled"] / report["smoke_steps_per_s"]["reference"], 3)
        report["op_speedup_compiled_vs_reference"] = round(op_times["reference"] / op_times["compiled"], 3)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
