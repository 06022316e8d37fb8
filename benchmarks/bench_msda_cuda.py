"""MSDeformAttn on a GPU: the CUDA kernel vs the grid_sample reference on the same GPU,
with the bytes-moved model of the op so the achieved bandwidth can be compared to the card's peak.

Shapes as in bench_msda_cpu.py (Mask2Former encoder: 3 levels at strides 8/16/32,
d_model 256, 8 heads, 4 points, batch 2). Needs a GPU; without one it says so and exits 0.

    python benchmarks/bench_msda_cuda.py [--sizes 512 1024] [--dtype float32 float16 bfloat16]
                                         [--peak-gbps 2039] [--json out.json]

Bytes-moved model (per call; e = element size, K = N*Lq*M*L*P sampling points):
  forward   compulsory = e*(N*S*M*D + 3K + N*Lq*M*D)  (value once, locations+weights, output)
            gathered   = e*(4*K*D + 3K + N*Lq*M*D)    (every corner's D channels, as the kernel issues them)
  backward  compulsory = e*(2*N*S*M*D + 6K + N*Lq*M*D) + 4*N*S*M*D  (+ fp32 grad_value buffer)
            gathered   = e*(4*K*D + 6K + N*Lq*M*D) + 2*4*4*K*D       (+ atomics: read-modify-write fp32)
The compulsory figure divided by the time is a lower bound of the DRAM bandwidth used; the
gathered one is what the load/store units see (mostly served by L2). Compare them with the
card's peak DRAM bandwidth (--peak-gbps, or the table below for common cards).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from envdoctor import ops  # noqa: E402  (the repo, not an installed copy)
from benchmarks.bench_msda_cpu import BATCH, HEADS, POINTS, make_inputs  # noqa: E402

# Peak DRAM bandwidth in GB/s, from NVIDIA's product pages (read 2026-11); override with --peak-gbps.
PEAK_GBPS: Dict[str, float] = {
    "A100-SXM4-80GB": 2039, "A100-SXM4-40GB": 1555, "A100-PCIE-40GB": 1555, "A100 80GB PCIe": 1935,
    "H100 80GB HBM3": 3350, "H100 PCIe": 2000, "L4": 300, "L40S": 864, "A10": 600, "T4": 320,
    "RTX 4090": 1008, "RTX 3090": 936, "RTX A6000": 768,
}
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def bytes_moved(inputs, elem: int) -> Dict[str, float]:
    value, _, _, loc, _ = inputs
    n, s, m, d = value.shape
    lq = loc.shape[1]
    k = loc.numel() // 2
    out = n * lq * m * d
    return {
        "fwd_compulsory": elem * (n * s * m * d + 3 * k + out),
        "fwd_gathered": elem * (4 * k * d + 3 * k + out),
        "bwd_compulsory": elem * (2 * n * s * m * d + 6 * k + out) + 4 * n * s * m * d,
        "bwd_gathered": elem * (4 * k * d + 6 * k + out) + 2 * 4 * 4 * k * d,
    }


def gpu_time(fn, repeat: int) -> float:
    """Best of ``repeat`` timings with CUDA events, in seconds."""
    fn()  # warm-up
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return min(times)


def call(impl: str, inputs, backward: bool):
    def run():
        leaves = [t.detach().requires_grad_(backward and t.is_floating_point()) for t in inputs]
        out = ops.ms_deform_attn(*leaves, impl=impl)
        if backward:
            out.backward(torch.ones_like(out))
    return run


def peak_gbps(args) -> float:
    if args.peak_gbps:
        return args.peak_gbps
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_GBPS.items() if k in name), 0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--dtype", nargs="+", choices=sorted(DTYPES), default=["float32", "float16"])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--peak-gbps", type=float, default=None, help="the card's peak DRAM bandwidth")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU is visible to torch: nothing to benchmark here. Run this on a GPU machine "
              "(`envdoctor check` explains why torch sees no GPU).")
        return 0
    if not ops.load_extension(build=True, cuda=True):
        print("the CUDA variant could not be built; run `envdoctor build` to see why", file=sys.stderr)
        return 1
    peak = peak_gbps(args)
    print(f"{torch.cuda.get_device_name()} (peak {peak or '?'} GB/s), torch {torch.__version__}, batch {BATCH}, "
          f"{HEADS} heads, {POINTS} points")
    rows = []
    for size in args.sizes:
        for dtype_name in args.dtype:
            dtype = DTYPES[dtype_name]
            inputs = tuple(t.cuda().to(dtype) if t.is_floating_point() else t.cuda() for t in make_inputs(size))
            model = bytes_moved(inputs, torch.finfo(dtype).bits // 8)
            row = {"input": size, "dtype": dtype_name}
            for impl in ("reference", "compiled"):
                row[f"{impl}_fwd_s"] = gpu_time(call(impl, inputs, False), args.repeat)
                row[f"{impl}_fwdbwd_s"] = gpu_time(call(impl, inputs, True), args.repeat)
            bwd_s = max(row["compiled_fwdbwd_s"] - row["compiled_fwd_s"], 1e-9)
            row.update({
                "speedup_fwd": row["reference_fwd_s"] / row["compiled_fwd_s"],
                "speedup_fwdbwd": row["reference_fwdbwd_s"] / row["compiled_fwdbwd_s"],
                "fwd_gbps_compulsory": model["fwd_compulsory"] / row["compiled_fwd_s"] / 1e9,
                "fwd_gbps_gathered": model["fwd_gathered"] / row["compiled_fwd_s"] / 1e9,
                "bwd_gbps_compulsory": model["bwd_compulsory"] / bwd_s / 1e9,
                "bwd_gbps_gathered": model["bwd_gathered"] / bwd_s / 1e9,
                "peak_gbps": peak,
            })
            rows.append(row)
            print(f"{size}x{size} {dtype_name}: fwd {row['reference_fwd_s']*1e3:.2f} -> {row['compiled_fwd_s']*1e3:.2f} ms "
                  f"({row['speedup_fwd']:.1f}x), fwd+bwd {row['reference_fwdbwd_s']*1e3:.2f} -> "
                  f"{row['compiled_fwdbwd_s']*1e3:.2f} ms ({row['speedup_fwdbwd']:.1f}x); forward moves "
                  f"{row['fwd_gbps_compulsory']:.0f} GB/s compulsory, {row['fwd_gbps_gathered']:.0f} GB/s gathered; "
                  f"backward {row['bwd_gbps_compulsory']:.0f} / {row['bwd_gbps_gathered']:.0f} GB/s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
