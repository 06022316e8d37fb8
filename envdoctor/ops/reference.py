"""Pure-PyTorch MSDeformAttn: the test oracle and the fallback when the op is not built.

Same semantics as Deformable DETR's ``ms_deform_attn_core_pytorch``: one
``grid_sample`` per level (bilinear, zero padding, ``align_corners=False``), then
a weighted sum over levels and points. It is slow and memory hungry (it
materialises every sampled value before the weighted sum), which is why the
compiled kernels exist, but it is obviously right.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
import torch.nn.functional as F


def _level_shapes(spatial_shapes: torch.Tensor) -> List[Tuple[int, int]]:
    return [(int(h), int(w)) for h, w in spatial_shapes.tolist()]


def ms_deform_attn_reference(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """value [N, S, M, D], sampling_locations [N, Lq, M, L, P, 2] (x, y in [0, 1]),
    attention_weights [N, Lq, M, L, P] -> output [N, Lq, M*D]."""
    n, _, m, d = value.shape
    _, lq, _, levels, points, _ = sampling_locations.shape
    if n == 0 or lq == 0 or m == 0 or d == 0 or levels == 0 or points == 0:
        # grid_sample rejects empty batches; the answer is an empty (or zero)
        # output that still depends on every input, so autograd gives zero grads.
        anchor = (value.sum() + sampling_locations.sum() + attention_weights.sum()) * 0
        return value.new_zeros((n, lq, m * d)) + anchor
    starts = [int(s) for s in level_start_index.tolist()]
    grids = 2 * sampling_locations - 1  # grid_sample wants [-1, 1]
    sampled = []
    for level, (h, w) in enumerate(_level_shapes(spatial_shapes)):
        value_l = value[:, starts[level]:starts[level] + h * w]  # [N, H*W, M, D]
        value_l = value_l.flatten(2).transpose(1, 2).reshape(n * m, d, h, w)
        grid_l = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)  # [N*M, Lq, P, 2]
        sampled.append(F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros",
                                     align_corners=False))  # [N*M, D, Lq, P]
    weights = attention_weights.transpose(1, 2).reshape(n * m, 1, lq, levels * points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1)  # [N*M, D, Lq]
    return out.view(n, m * d, lq).transpose(1, 2).contiguous()
