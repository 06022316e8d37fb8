"""MSDeformAttn on CPU: the compiled kernel vs the grid_sample reference, in the same run.

Mask2Former pixel-decoder shapes: 3 levels at strides 8/16/32 of a square input,
every pixel of the 3 levels is a query (as in the encoder), d_model 256, 8 heads,
4 points, batch 2, float32. Reports median times and the speed-up ratios, and the
peak extra memory of one forward+backward (max RSS growth, each measured in a fresh
process so one implementation's peak cannot hide the other's).

    python benchmarks/bench_msda_cpu.py [--sizes 512 1024] [--repeat 3] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from envdoctor import ops  # noqa: E402  (the repo, not an installed copy)

HEADS, POINTS, D_MODEL, BATCH = 8, 4, 256, 2


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


def run_once(impl: str, inputs, backward: bool) -> Tuple[float, float]:
    """(wall seconds, CPU seconds of the whole process) of one call."""
    value, shapes, starts, loc, attn = (t.detach().requires_grad_(backward and t.is_floating_point())
                                        for t in inputs)
    wall, cpu = time.perf_counter(), time.process_time()
    out = ops.ms_deform_attn(value, shapes, starts, loc, attn, impl=impl)
    if backward:
        out.backward(torch.ones_like(out))
    return time.perf_counter() - wall, time.process_time() - cpu


def best_time(impl: str, inputs, backward: bool, repeat: int) -> Tuple[float, float]:
    """Fastest of ``repeat`` runs (other load on the machine only ever adds time)."""
    run_once(impl, inputs, backward)  # warm-up: allocator, thread pool, caches
    runs = [run_once(impl, inputs, backward) for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def peak_memory_child(impl: str, size: int, uniform: bool = False) -> int:
    """Bytes of peak-RSS growth during one forward+backward, in a fresh process."""
    inputs = make_inputs(size, uniform=uniform)
    if impl == "compiled":
        assert ops.load_extension(cuda=False)
    before = _peak_rss()
    run_once(impl, inputs, backward=True)
    return _peak_rss() - before


def _peak_rss() -> int:
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so a child started by a big
    # parent would report the parent's peak.
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def peak_memory(impl: str, size: int, uniform: bool) -> int:
    code = (f"import sys; sys.argv=['x']; from benchmarks.bench_msda_cpu import peak_memory_child; "
            f"print(peak_memory_child({impl!r}, {size}, {uniform}))")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    return int(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--uniform", action="store_true",
                        help="sampling locations uniform over the map (cache worst case) instead of encoder-like")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if not ops.load_extension(build=True, cuda=False):
        print("the CPU variant could not be built; run `envdoctor build --cpu-only` to see why", file=sys.stderr)
        return 1
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, batch {BATCH}, "
          f"{HEADS} heads, {POINTS} points, d_model {D_MODEL}")
    for size in args.sizes:
        inputs = make_inputs(size, uniform=args.uniform)
        row = {"input": size, "uniform": args.uniform, "queries": inputs[0].shape[1]}
        for impl in ("reference", "compiled"):
            row[f"{impl}_fwd_s"], row[f"{impl}_fwd_cpu_s"] = best_time(impl, inputs, False, args.repeat)
            row[f"{impl}_fwdbwd_s"], row[f"{impl}_fwdbwd_cpu_s"] = best_time(impl, inputs, True, args.repeat)
            row[f"{impl}_peak_bytes"] = peak_memory(impl, size, args.uniform)
        row["speedup_fwd"] = row["reference_fwd_s"] / row["compiled_fwd_s"]
        row["speedup_fwdbwd"] = row["reference_fwdbwd_s"] / row["compiled_fwdbwd_s"]
        row["speedup_fwdbwd_cpu_time"] = row["reference_fwdbwd_cpu_s"] / row["compiled_fwdbwd_cpu_s"]
        row["memory_ratio"] = row["reference_peak_bytes"] / max(1, row["compiled_peak_bytes"])
        rows.append(row)
        mib = 1024 ** 2
        print(f"{size}x{size} (Lq={row['queries']}): "
              f"fwd {row['reference_fwd_s']*1e3:.0f} ms -> {row['compiled_fwd_s']*1e3:.0f} ms "
              f"({row['speedup_fwd']:.1f}x); fwd+bwd {row['reference_fwdbwd_s']*1e3:.0f} ms -> "
              f"{row['compiled_fwdbwd_s']*1e3:.0f} ms ({row['speedup_fwdbwd']:.1f}x, CPU time "
              f"{row['speedup_fwdbwd_cpu_time']:.1f}x); peak extra memory "
              f"{row['reference_peak_bytes']/mib:.0f} MiB -> {row['compiled_peak_bytes']/mib:.0f} MiB "
              f"({row['memory_ratio']:.1f}x less)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"threads": torch.get_num_threads(), "torch": torch.__version__, "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
