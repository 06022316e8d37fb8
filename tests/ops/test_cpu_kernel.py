"""The compiled CPU kernel against the reference (the same per-element math the CUDA kernel runs)."""
from __future__ import annotations

import pytest
import torch

from envdoctor import ops
from tests.ops.conftest import make_inputs

SHAPES = [
    dict(n=2, m=3, d=5, lq=7, shapes=((6, 5), (3, 4), (2, 2)), p=4),
    dict(n=1, m=2, d=30, lq=9, shapes=((8, 8), (4, 4)), p=2),
    dict(n=2, m=1, d=71, lq=5, shapes=((5, 7), (1, 1), (3, 2), (2, 9)), p=3),
    dict(n=1, m=8, d=32, lq=16, shapes=((16, 16), (8, 8), (4, 4)), p=4),
    dict(n=1, m=1, d=1, lq=3, shapes=((1, 1),), p=1),
]


def _both(inputs, grad_seed=1, impls=("compiled", "reference")):
    """(compiled out, grads), (reference out, grads) for the same inputs and upstream gradient."""
    results = []
    for impl in impls:
        leaves = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
        out = ops.ms_deform_attn(*leaves, impl=impl)
        upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed), dtype=out.dtype)
        grads = torch.autograd.grad(out, (leaves[0], leaves[3], leaves[4]), upstream, allow_unused=True)
        results.append((out.detach(), grads))
    return results


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"m{s['m']}d{s['d']}L{len(s['shapes'])}")
def test_forward_backward_match_reference_float64(compiled, shape):
    (out_c, grads_c), (out_r, grads_r) = _both(make_inputs(**shape))
    torch.testing.assert_close(out_c, out_r, rtol=1e-10, atol=1e-10)
    for name, gc, gr in zip(("value", "sampling_locations", "attention_weights"), grads_c, grads_r):
        torch.testing.assert_close(gc, gr, rtol=1e-9, atol=1e-9, msg=lambda m: f"grad of {name}: {m}")


def test_points_far_outside_give_zero_output_and_grads(compiled):
    inputs = make_inputs(spread=(1.6, 3.0))
    (out_c, grads_c), (out_r, _) = _both(inputs)
    assert torch.count_nonzero(out_c) == 0
    torch.testing.assert_close(out_c, out_r)
    assert all(torch.count_nonzero(g) == 0 for g in grads_c)


def test_points_on_the_border_band_match(compiled):
    # Locations within half a pixel outside the map: some corners in, some out.
    (out_c, grads_c), (out_r, grads_r) = _both(make_inputs(spread=(-0.1, 0.05), seed=3))
    torch.testing.assert_close(out_c, out_r, rtol=1e-10, atol=1e-10)
    for gc, gr in zip(grads_c, grads_r):
        torch.testing.assert_close(gc, gr, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("n,lq", [(0, 7), (2, 0)])
def test_empty_batch_or_no_queries(compiled, n, lq):
    inputs = make_inputs(n=n, lq=lq)
    (out_c, grads_c), (out_r, _) = _both(inputs)
    assert out_c.shape == out_r.shape == (n, lq, 15)
    assert grads_c[0].shape == inputs[0].shape


def test_non_contiguous_inputs(compiled):
    value, shapes, starts, loc, attn = make_inputs(d=6, seed=5)
    value_nc = value.transpose(2, 3).contiguous().transpose(2, 3)  # same values, channel stride != 1
    loc_nc = loc.transpose(1, 2).contiguous().transpose(1, 2)
    attn_nc = attn.transpose(0, 1).contiguous().transpose(0, 1)
    assert not value_nc.is_contiguous() and not loc_nc.is_contiguous() and not attn_nc.is_contiguous()
    (out_c, grads_c), (out_r, grads_r) = _both((value_nc, shapes, starts, loc_nc, attn_nc))
    torch.testing.assert_close(out_c, out_r, rtol=1e-10, atol=1e-10)
    for gc, gr in zip(grads_c, grads_r):
        torch.testing.assert_close(gc, gr, rtol=1e-9, atol=1e-9)


def test_float32_within_tolerance_of_float64_reference(compiled):
    inputs64 = make_inputs(n=2, m=4, d=32, lq=20, shapes=((16, 12), (8, 6), (4, 3)), seed=7)
    inputs32 = tuple(t.float() if t.is_floating_point() else t for t in inputs64)
    out32 = ops.ms_deform_attn(*inputs32, impl="compiled")
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), ops.ms_deform_attn_reference(*inputs64), rtol=1e-5, atol=1e-5)


def test_gradcheck_tiny(compiled):
    value, shapes, starts, loc, attn = make_inputs(n=1, m=2, d=3, lq=2, shapes=((3, 4), (2, 2)), p=2, seed=11,
                                                   spread=(0.05, 0.95), requires_grad=True)
    fn = lambda v, lo, a: ops.ms_deform_attn(v, shapes, starts, lo, a, impl="compiled")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (value, loc, attn), eps=1e-6, atol=1e-5)


def test_opcheck(compiled):
    value, shapes, starts, loc, attn = make_inputs(n=1, m=2, d=3, lq=2, shapes=((3, 4), (2, 2)), p=2, seed=12,
                                                   requires_grad=True)
    torch.library.opcheck(torch.ops.envdoctor.ms_deform_attn.default, (value, shapes, starts, loc, attn))


def test_kernel_is_registered_for_cpu_through_the_dispatcher(compiled):
    from envdoctor.ops import loader

    assert loader.has_kernel("CPU")
    assert ops.active_implementation("cpu") == "compiled"
    assert int(torch.ops.envdoctor._cuda_version()) == 0  # the CPU variant is loaded here


def test_cpp_checks_state_expected_and_got(compiled):
    value, shapes, starts, loc, attn = make_inputs()
    with pytest.raises(RuntimeError, match=r"attention_weights must be \[N, Lq, M, L, P\] = \[2, 7, 3, 3, 4\], got"):
        torch.ops.envdoctor.ms_deform_attn(value, shapes, starts, loc, attn[..., :2])


def test_module_compiled_matches_reference(compiled):
    torch.manual_seed(0)
    module = ops.MSDeformAttn(d_model=32, n_levels=2, n_heads=4, n_points=2, impl="compiled").double()
    shapes = torch.tensor([[6, 6], [3, 3]])
    starts = torch.tensor([0, 36])
    src = torch.randn(2, 45, 32, dtype=torch.float64)
    query = torch.randn(2, 10, 32, dtype=torch.float64)
    ref_points = torch.rand(2, 10, 2, 2, dtype=torch.float64)
    mask = torch.zeros(2, 45, dtype=torch.bool)
    mask[1, -5:] = True
    out = module(query, ref_points, src, shapes, starts, mask)
    module.impl = "reference"
    torch.testing.assert_close(out, module(query, ref_points, src, shapes, starts, mask))
    assert out.shape == (2, 10, 32)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_and_bfloat16_match_float64_on_the_same_rounded_inputs(compiled, dtype):
    inputs64 = make_inputs(n=2, m=4, d=32, lq=20, shapes=((16, 12), (8, 6), (4, 3)), seed=21)
    low = tuple(t.to(dtype) if t.is_floating_point() else t for t in inputs64)
    rounded = tuple(t.double() if t.is_floating_point() else t for t in low)  # what the kernel actually sees
    # The same upstream gradient, rounded to dtype, for both.
    upstream = torch.randn(2, 20, 4 * 32, generator=torch.Generator().manual_seed(1)).to(dtype)
    results = []
    for inputs in (low, rounded):
        leaves = [t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs]
        impl = "compiled" if inputs is low else "reference"
        out = ops.ms_deform_attn(*leaves, impl=impl)
        grads = torch.autograd.grad(out, (leaves[0], leaves[3], leaves[4]), upstream.to(out.dtype))
        results.append((out.detach(), grads))
    (out_c, grads_c), (out_r, grads_r) = results
    assert out_c.dtype == dtype and all(g.dtype == dtype for g in grads_c)
    # Float accumulation: the only error left is the final rounding to dtype (plus the
    # upstream gradient rounded to dtype), a few units in the last place.
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(out_c.double(), out_r, rtol=4 * eps, atol=4 * eps)
    for gc, gr in zip(grads_c, grads_r):
        scale = gr.abs().max().item()
        torch.testing.assert_close(gc.double(), gr, rtol=8 * eps, atol=8 * eps * scale)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_grad_value_accumulates_in_float_for_reduced_precision(compiled, dtype):
    # 4096 queries all sampling the centre of a single pixel with weight 1: grad_value
    # of that pixel is 4096 exactly. Accumulated in bfloat16 it would stop at 256
    # (256 + 1 rounds back to 256), in float16 at 2048.
    n, lq, d = 1, 4096, 8
    value = torch.randn(n, 1, 1, d).to(dtype)
    shapes, starts = torch.tensor([[1, 1]]), torch.tensor([0])
    loc = torch.full((n, lq, 1, 1, 1, 2), 0.5, dtype=dtype)
    attn = torch.ones(n, lq, 1, 1, 1, dtype=dtype)
    grad_value, grad_loc, grad_attn = torch.ops.envdoctor.ms_deform_attn_backward(
        torch.ones(n, lq, d, dtype=dtype), value, shapes, starts, loc, attn)
    assert torch.equal(grad_value.float(), torch.full((n, 1, 1, d), 4096.0))
    expected_attn = torch.full(grad_attn.shape, value.double().sum().item()).to(dtype)  # grad_out . value
    torch.testing.assert_close(grad_attn, expected_attn)


@pytest.mark.parametrize("threads", [1, 4])
def test_many_queries_on_the_same_pixels_give_exact_grad_value(compiled, threads):
    # Every query samples the same 4 pixels of a 1-head, 1-level map, so every
    # backward task (and, with more threads than (batch, head) pairs, every query
    # block's private copy of grad_value) writes the same rows; the sum must still be
    # exact and independent of the thread count.
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        n, lq, d = 1, 3000, 16
        value = torch.randn(n, 9, 1, d, dtype=torch.float64)
        shapes, starts = torch.tensor([[3, 3]]), torch.tensor([0])
        loc = torch.tensor([0.5, 0.5], dtype=torch.float64).expand(n, lq, 1, 1, 2, 2).clone()
        loc[..., 1, :] = torch.tensor([0.4, 0.6], dtype=torch.float64)  # between 4 pixels
        attn = torch.rand(n, lq, 1, 1, 2, dtype=torch.float64)
        grad_out = torch.randn(n, lq, d, dtype=torch.float64)
        (out_c, grads_c), (out_r, grads_r) = _both((value, shapes, starts, loc, attn))
        torch.testing.assert_close(out_c, out_r, rtol=1e-10, atol=1e-10)
        got = torch.ops.envdoctor.ms_deform_attn_backward(grad_out, value, shapes, starts, loc, attn)
        leaves = [t.clone().requires_grad_() for t in (value, loc, attn)]
        ref = ops.ms_deform_attn_reference(leaves[0], shapes, starts, leaves[1], leaves[2])
        expected = torch.autograd.grad(ref, leaves, grad_out)
        for g, e in zip(got, expected):
            torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-9)
        # Pixel (1, 1) from both points, (1, 0), (2, 0) and (2, 1) from the second one.
        assert torch.count_nonzero(got[0].abs().sum(-1)) == 4
    finally:
        torch.set_num_threads(before)


def test_kernel_reports_its_instruction_set(compiled):
    assert torch.ops.envdoctor._cpu_isa() in ("avx2", "baseline")


_ISA_SCRIPT = """
import sys, torch
torch.ops.load_library(sys.argv[1])
from tests.ops.conftest import make_inputs
value, shapes, starts, loc, attn = (t.float() if t.is_floating_point() else t for t in
                                    make_inputs(n=2, m=4, d=32, lq=40, shapes=((16, 12), (8, 6), (4, 3)), seed=8))
out = torch.ops.envdoctor.ms_deform_attn(value, shapes, starts, loc, attn)
grads = torch.ops.envdoctor.ms_deform_attn_backward(torch.ones_like(out), value, shapes, starts, loc, attn)
torch.save({"isa": torch.ops.envdoctor._cpu_isa(), "out": out, "grads": grads}, sys.argv[2])
"""


def test_baseline_and_vector_variants_agree(compiled, tmp_path):
    # ATEN_CPU_CAPABILITY=default turns the AVX2 variant off (for torch and the op alike).
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    results = {}
    for capability in ("default", None):
        env = dict(os.environ, PYTHONPATH=root)
        env.pop("ATEN_CPU_CAPABILITY", None)
        if capability:
            env["ATEN_CPU_CAPABILITY"] = capability
        target = tmp_path / f"{capability}.pt"
        subprocess.run([sys.executable, "-c", _ISA_SCRIPT, compiled.path, str(target)], env=env, check=True,
                       cwd=root, timeout=120)
        results[capability] = torch.load(target)
    assert results["default"]["isa"] == "baseline"
    if results[None]["isa"] == "baseline":
        pytest.skip("this CPU has no AVX2: only the baseline variant runs here")
    torch.testing.assert_close(results[None]["out"], results["default"]["out"], rtol=1e-5, atol=1e-5)
    for a, b in zip(results[None]["grads"], results["default"]["grads"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
