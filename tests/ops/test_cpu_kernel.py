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


def _both(inputs, grad_seed=1):
    """(compiled out, grads), (reference out, grads) for the same inputs and upstream gradient."""
    results = []
    for impl in ("compiled", "reference"):
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
