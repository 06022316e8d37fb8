"""Acceptance check of the MSDeformAttn op on a GPU machine.

Builds the CUDA variant for the GPUs present (or TORCH_CUDA_ARCH_LIST), then:
  1. gradcheck of the CUDA kernels in float64 on tiny shapes;
  2. CUDA vs the reference (float64) on odd channel counts (30, 71, 1025) and points outside the maps;
  3. CUDA float32 / float16 / bfloat16 vs the compiled CPU kernel in float64 (forward and gradients);
  4. repeatability: grad_value is scattered with atomics, so two backward passes may differ in the
     order of their additions; they must agree within a few float32 roundings.
Prints one line per check and exits 1 if any fails (or if there is no GPU to check on).

    python checks/gpu_op_check.py [--cache-dir DIR] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Callable, List, Tuple

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from envdoctor import ops  # noqa: E402  (the repo, not an installed copy)

# Tolerances for the low-precision dtypes vs a float64 oracle (accumulation is float32 in all).
TOLERANCE = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 8e-2}


def make_inputs(n, m, d, lq, shapes, p, seed, device="cpu", dtype=torch.float64, spread=(-0.2, 1.2)):
    gen = torch.Generator().manual_seed(seed)
    spatial_shapes = torch.tensor(shapes, dtype=torch.int64)
    sizes = spatial_shapes.prod(1)
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    value = torch.randn(n, int(sizes.sum()), m, d, generator=gen, dtype=torch.float64)
    loc = torch.rand(n, lq, m, len(shapes), p, 2, generator=gen, dtype=torch.float64) * (spread[1] - spread[0]) + spread[0]
    attn = torch.softmax(torch.randn(n, lq, m, len(shapes) * p, generator=gen, dtype=torch.float64), -1)
    attn = attn.view(n, lq, m, len(shapes), p)
    cast = lambda t: t.to(device=device, dtype=dtype)  # noqa: E731
    return cast(value), spatial_shapes.to(device), starts.to(device), cast(loc), cast(attn)


def forward_and_grads(inputs, impl="compiled"):
    leaves = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
    out = ops.ms_deform_attn(*leaves, impl=impl)
    upstream = torch.ones_like(out)
    grads = torch.autograd.grad(out, (leaves[0], leaves[3], leaves[4]), upstream)
    return [out.detach()] + [g.detach() for g in grads]


def max_rel_error(got: torch.Tensor, want: torch.Tensor) -> float:
    scale = want.abs().max().clamp_min(1.0)
    return float(((got.double().cpu() - want.double().cpu()).abs().max() / scale).item()) if want.numel() else 0.0


def check_gradcheck() -> str:
    inputs = make_inputs(1, 2, 3, 2, [[3, 4], [2, 2]], 2, seed=1, device="cuda", spread=(0.05, 0.95))
    value, shapes, starts, loc, attn = (t.requires_grad_() if t.is_floating_point() else t for t in inputs)
    fn = lambda v, lo, a: ops.ms_deform_attn(v, shapes, starts, lo, a, impl="compiled")  # noqa: E731
    torch.autograd.gradcheck(fn, (value, loc, attn), eps=1e-6, atol=1e-5, raise_exception=True)
    return "gradcheck passed"


def check_vs_reference(d: int) -> str:
    cuda = make_inputs(2, 2, d, 9, [[7, 5], [3, 3], [2, 1]], 3, seed=d, device="cuda")
    got = forward_and_grads(cuda, "compiled")
    want = forward_and_grads(tuple(t.cpu() for t in cuda), "reference")
    worst = max(max_rel_error(g, w) for g, w in zip(got, want))
    if worst > 1e-9:
        raise AssertionError(f"max relative error {worst:.2e} > 1e-9")
    return f"max relative error {worst:.1e}"


def check_dtype(dtype: torch.dtype) -> str:
    cpu64 = make_inputs(2, 8, 32, 64, [[32, 32], [16, 16], [8, 8]], 4, seed=7)
    want = forward_and_grads(cpu64, "compiled")  # the compiled CPU kernel, float64
    got = forward_and_grads(tuple(t.to("cuda", dtype) if t.is_floating_point() else t.cuda() for t in cpu64))
    names = ("output", "grad value", "grad locations", "grad weights")
    errors = {name: max_rel_error(g, w) for name, g, w in zip(names, got, want)}
    bad = {k: v for k, v in errors.items() if v > TOLERANCE[dtype]}
    if bad:
        raise AssertionError(", ".join(f"{k} {v:.2e}" for k, v in bad.items()) + f" > {TOLERANCE[dtype]:.0e}")
    return "max relative error " + ", ".join(f"{k} {v:.1e}" for k, v in errors.items())


def check_repeatable() -> str:
    """Atomics make the backward's sums order-dependent: runs differ by roundings, never more."""
    inputs = make_inputs(2, 8, 32, 256, [[32, 32], [16, 16], [8, 8]], 4, seed=9, device="cuda", dtype=torch.float32,
                         spread=(0.3, 0.7))  # crowded: many queries hit the same pixels
    first, second = forward_and_grads(inputs), forward_and_grads(inputs)
    worst = max(max_rel_error(a, b) for a, b in zip(first, second))
    if worst > 1e-5:
        raise AssertionError(f"two identical runs differ by {worst:.2e} (relative) > 1e-5")
    return f"two runs differ by at most {worst:.1e} (relative)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--json", help="also write the results here: [{name, status, detail}, ...]")
    args = parser.parse_args(argv)
    records = []

    def finish(code: int) -> int:
        if args.json:
            with open(args.json, "w", encoding="utf-8") as fh:
                json.dump(records, fh, indent=2)
        return code

    if not torch.cuda.is_available():
        print("FAIL  no CUDA GPU is visible to torch, so the CUDA op cannot be checked here. "
              "Run `envdoctor check` to see why.")
        records.append({"name": "CUDA GPU visible to torch", "status": "fail", "detail": "torch sees no GPU"})
        return finish(1)
    print(f"GPU: {torch.cuda.get_device_name()} (sm {'.'.join(map(str, torch.cuda.get_device_capability()))})")
    result = ops.build_extension(cuda=True, cache_dir=args.cache_dir,
                                 progress=lambda msg: print(f"      {msg}", flush=True))
    if not result.ok:
        print(f"FAIL  build\n{result.error}")
        records.append({"name": "CUDA build", "status": "fail", "detail": result.error})
        return finish(1)
    print(f"ok    build ({'cached' if result.cached else f'{result.seconds:.0f}s'}): {result.path}")
    if not ops.load_extension(cuda=True, cache_dir=args.cache_dir) or ops.active_implementation("cuda") != "compiled":
        print("FAIL  the built op does not register a CUDA kernel")
        records.append({"name": "CUDA kernel registered", "status": "fail", "detail": "no CUDA kernel"})
        return finish(1)
    checks: List[Tuple[str, Callable[[], str]]] = [("gradcheck float64 (CUDA)", check_gradcheck)]
    checks += [(f"CUDA vs reference, D={d}", lambda d=d: check_vs_reference(d)) for d in (30, 71, 1025)]
    checks += [(f"CUDA {str(dt).replace('torch.', '')} vs CPU float64", lambda dt=dt: check_dtype(dt))
               for dt in (torch.float32, torch.float16, torch.bfloat16)]
    checks.append(("CUDA float32 backward repeatable (atomics)", check_repeatable))
    failed = 0
    for name, fn in checks:
        try:
            detail = fn()
            print(f"ok    {name}: {detail}")
            records.append({"name": name, "status": "pass", "detail": detail})
        except Exception as exc:  # report every check, then fail
            failed += 1
            print(f"FAIL  {name}: {type(exc).__name__}: {exc}")
            records.append({"name": name, "status": "fail", "detail": f"{type(exc).__name__}: {exc}"})
            if os.environ.get("ENVDOCTOR_DEBUG"):
                traceback.print_exc()
    print(f"{len(checks) - failed}/{len(checks)} checks passed")
    return finish(1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())
