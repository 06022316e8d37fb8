"""The oracle itself: the grid_sample reference against a literal scalar implementation of
Deformable DETR's bilinear sampling (pixel = loc * size - 0.5, zero outside)."""
from __future__ import annotations

import math

import pytest
import torch

from envdoctor.ops import ms_deform_attn_reference
from tests.ops.conftest import make_inputs


def _scalar_sample(img, h_im, w_im):
    """img [H, W, D]; literal bilinear with zero padding."""
    height, width, _ = img.shape
    out = torch.zeros(img.shape[-1], dtype=img.dtype)
    if not (-1 < h_im < height and -1 < w_im < width):
        return out
    h0, w0 = math.floor(h_im), math.floor(w_im)
    for hh, ww in ((h0, w0), (h0, w0 + 1), (h0 + 1, w0), (h0 + 1, w0 + 1)):
        if 0 <= hh < height and 0 <= ww < width:
            weight = (1 - abs(h_im - hh)) * (1 - abs(w_im - ww))
            out += weight * img[hh, ww]
    return out


def _scalar_msda(value, shapes, starts, loc, attn):
    n, _, m, d = value.shape
    _, lq, _, levels, points, _ = loc.shape
    out = torch.zeros(n, lq, m, d, dtype=value.dtype)
    for b in range(n):
        for q in range(lq):
            for head in range(m):
                for lvl in range(levels):
                    h, w = (int(x) for x in shapes[lvl])
                    img = value[b, starts[lvl]:starts[lvl] + h * w, head].reshape(h, w, d)
                    for p in range(points):
                        x, y = (float(c) for c in loc[b, q, head, lvl, p])
                        out[b, q, head] += attn[b, q, head, lvl, p] * _scalar_sample(img, y * h - 0.5, x * w - 0.5)
    return out.reshape(n, lq, m * d)


@pytest.mark.parametrize("seed", [0, 1])
def test_reference_matches_literal_bilinear(seed):
    value, shapes, starts, loc, attn = make_inputs(n=1, m=2, d=3, lq=4, p=3, seed=seed, spread=(-0.3, 1.3))
    expected = _scalar_msda(value, shapes, starts.tolist(), loc, attn)
    torch.testing.assert_close(ms_deform_attn_reference(value, shapes, starts, loc, attn), expected)


def test_reference_pixel_centre_reads_that_pixel():
    # One level 2x2, the location of pixel (row 1, col 0)'s centre is x=0.25, y=0.75.
    value = torch.arange(4, dtype=torch.float64).reshape(1, 4, 1, 1)
    shapes = torch.tensor([[2, 2]])
    starts = torch.tensor([0])
    loc = torch.tensor([0.25, 0.75], dtype=torch.float64).reshape(1, 1, 1, 1, 1, 2)
    attn = torch.ones(1, 1, 1, 1, 1, dtype=torch.float64)
    assert ms_deform_attn_reference(value, shapes, starts, loc, attn).item() == 2.0


def test_reference_empty_batch_keeps_autograd():
    value, shapes, starts, loc, attn = make_inputs(n=0, requires_grad=True)
    out = ms_deform_attn_reference(value, shapes, starts, loc, attn)
    assert out.shape == (0, 7, 15)
    out.sum().backward()
    assert value.grad is not None and value.grad.shape == value.shape
