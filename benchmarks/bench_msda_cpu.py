"""MSDeformAttn on CPU: the compiled kernel vs the grid_sample reference, in the same run.

Mask2Former pixel-decoder shapes: 3 levels at strides 8/16/32 of a square input,
every pixel of the 3 levels is a query (as in the encoder), d_model 256, 8 heads
(D = 32), 4 points, batch 2, float32. Two sampling patterns, measured side by side:

* encoder: each query samples around its own pixel (reference point) with offsets
  of a few pixels, as Mask2Former's encoder does;
* uniform: locations spread uniformly over the whole map (a cache worst case).

Timing: after one warm-up call of each, the reference and the compiled op are
run in alternated pairs (reference first in even pairs, compiled first in odd
ones), so load from other processes hits both alike. Each run measures the
forward alone (no autograd), and one forward+backward through autograd split into
its forward and backward parts. The ratio reference/compiled is taken per pair;
the report gives the median ratio and its spread (min-max over pairs), and the
median times. Peak memory is the growth of the process's peak RSS (VmHWM) during
one forward+backward, each implementation in a fresh process.

    python benchmarks/bench_msda_cpu.py [--sizes 512 1024] [--pairs 5] [--threads 2] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from envdoctor import ops  # noqa: E402  (the repo, not an installed copy)

HEADS, POINTS, D_MODEL, BATCH = 8, 4, 256, 2
PATTERNS = ("encoder", "uniform")
IMPLS = ("reference", "compiled")
PARTS = ("fwd", "bwd", "fwdbwd")


def make_inputs(size: int, seed: int = 0, uniform: bool = False):
    """Encoder-like inputs: each query samples around its own pixel (reference point)
    with offsets of a few pixels, as Mask2Former's encoder does. ``uniform`` scatters
    the locations over the whole map instead (a cache worst case)."""
    gen = torch.Generator().manual_seed(seed)
    shapes = torch.tensor([[size // s, size // s] for s in (8, 16, 32)], dtype=torch.int64)
    sizes = shapes.prod(1)
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    s = int(sizes.sum())
    value = torch.randn(BATCH, s, HEADS, D_MODEL // HEADS, generator=gen)
    if uniform:
        loc = torch.rand(BATCH, s, HEADS, 3, POINTS, 2, generator=gen) * 1.1 - 0.05
    else:
        ref = torch.cat([_pixel_centres(int(h), int(w)) for h, w in shapes.tolist()])  # [S, 2] (x, y)
        offsets = torch.randn(BATCH, s, HEADS, 3, POINTS, 2, generator=gen) * 2.0  # pixels
        scale = torch.stack([shapes[:, 1], shapes[:, 0]], -1).float()  # (W, H) per level
        loc = ref[None, :, None, None, None, :] + offsets / scale[None, None, None, :, None, :]
    attn = torch.softmax(torch.randn(BATCH, s, HEADS, 3 * POINTS, generator=gen), -1).view(BATCH, s, HEADS, 3, POINTS)
    return value, shapes, starts, loc, attn


def _pixel_centres(h: int, w: int) -> torch.Tensor:
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], -1)


def run_once(impl: str, inputs) -> Dict[str, float]:
    """Seconds of: the forward alone (no autograd), and one forward+backward through
    autograd split into its forward and backward parts."""
    with torch.no_grad():
        start = time.perf_counter()
        ops.ms_deform_attn(*inputs, impl=impl)
        fwd = time.perf_counter() - start
    value, shapes, starts, loc, attn = (t.detach().requires_grad_(t.is_floating_point()) for t in inputs)
    start = time.perf_counter()
    out = ops.ms_deform_attn(value, shapes, starts, loc, attn, impl=impl)
    mid = time.perf_counter()
    out.backward(torch.ones_like(out))
    end = time.perf_counter()
    return {"fwd": fwd, "bwd": end - mid, "fwdbwd": end - start}


def alternated_pairs(inputs, pairs: int) -> List[Dict[str, Dict[str, float]]]:
    for impl in IMPLS:  # warm-up: allocator, thread pool, caches
        run_once(impl, inputs)
    results = []
    for i in range(pairs):
        order = IMPLS if i % 2 == 0 else IMPLS[::-1]
        results.append({impl: run_once(impl, inputs) for impl in order})
    return results


def summarise(pairs: List[Dict[str, Dict[str, float]]]) -> dict:
    row = {}
    for part in PARTS:
        ratios = [p["reference"][part] / p["compiled"][part] for p in pairs]
        row[part] = {
            "reference_s": statistics.median(p["reference"][part] for p in pairs),
            "compiled_s": statistics.median(p["compiled"][part] for p in pairs),
            "speedup": statistics.median(ratios),
            "speedup_min": min(ratios),
            "speedup_max": max(ratios),
        }
    return row


def peak_memory_child(impl: str, size: int, uniform: bool = False) -> int:
    """Bytes of peak-RSS growth during one forward+backward, in a fresh process."""
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    inputs = make_inputs(size, uniform=uniform)
    if impl == "compiled":
        assert ops.load_extension(cuda=False)
    value, shapes, starts, loc, attn = (t.detach().requires_grad_(t.is_floating_point()) for t in inputs)
    before = _peak_rss()
    out = ops.ms_deform_attn(value, shapes, starts, loc, attn, impl=impl)
    out.backward(torch.ones_like(out))
    return _peak_rss() - before


def _peak_rss() -> int:
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child started by a big
    # parent would report the parent's peak.
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def peak_memory(impl: str, size: int, uniform: bool, threads: int) -> int:
    code = (f"import sys; sys.argv=['x']; from benchmarks.bench_msda_cpu import peak_memory_child; "
            f"print(peak_memory_child({impl!r}, {size}, {uniform}))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, BENCH_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True, env=env)
    return int(proc.stdout.strip().splitlines()[-1])


def _fmt(part: dict) -> str:
    return (f"{part['reference_s']*1e3:6.0f} -> {part['compiled_s']*1e3:5.1f} ms "
            f"{part['speedup']:5.1f}x [{part['speedup_min']:.1f}-{part['speedup_max']:.1f}]")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--patterns", nargs="+", choices=PATTERNS, default=list(PATTERNS))
    parser.add_argument("--pairs", type=int, default=5, help="alternated reference/compiled pairs per case")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (torch.set_num_threads)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not ops.load_extension(build=True, cuda=False):
        print("the CPU variant could not be built; run `envdoctor build --cpu-only` to see why", file=sys.stderr)
        return 1
    isa = torch.ops.envdoctor._cpu_isa()
    load_before = os.getloadavg()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, kernel ISA {isa}, float32, batch {BATCH}, "
          f"{HEADS} heads x {D_MODEL // HEADS} channels, 3 levels, {POINTS} points; {args.pairs} alternated pairs; "
          f"load average {load_before[0]:.2f} on {os.cpu_count()} CPUs")
    print("speed-up = reference / compiled per pair: median [min-max]")
    rows = []
    for size in args.sizes:
        for pattern in args.patterns:
            inputs = make_inputs(size, uniform=pattern == "uniform")
            row = {"input": size, "pattern": pattern, "queries": inputs[0].shape[1]}
            row.update(summarise(alternated_pairs(inputs, args.pairs)))
            if not args.no_memory:
                for impl in IMPLS:
                    row[f"{impl}_peak_bytes"] = peak_memory(impl, size, pattern == "uniform", args.threads)
            rows.append(row)
            line = (f"{size}x{size} {pattern:7s} fwd+bwd {_fmt(row['fwdbwd'])} | fwd {_fmt(row['fwd'])} | "
                    f"bwd {_fmt(row['bwd'])}")
            if not args.no_memory:
                mib = 1024 ** 2
                line += (f" | peak extra memory {row['reference_peak_bytes'] / mib:.0f} -> "
                         f"{row['compiled_peak_bytes'] / mib:.0f} MiB")
            print(line, flush=True)
    load_after = os.getloadavg()
    print(f"load average {load_before[0]:.2f} -> {load_after[0]:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"threads": torch.get_num_threads(), "torch": torch.__version__, "isa": isa,
                       "pairs": args.pairs, "cpus": os.cpu_count(), "load_average": [load_before[0], load_after[0]],
                       "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
