"""Input checks of the Python API: every message says what was expected and what was got."""
from __future__ import annotations

from typing import Tuple

import torch

# float16 and bfloat16 accumulate in float32 on both devices.
CPU_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
# float64 on CUDA is for gradcheck; the fast paths are float32, float16 and bfloat16.
CUDA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


class MSDeformAttnInputError(ValueError):
    """The inputs of ms_deform_attn do not fit together."""


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def _expect(cond: bool, message: str) -> None:
    if not cond:
        raise MSDeformAttnInputError("ms_deform_attn: " + message)


def validate_inputs(value, spatial_shapes, level_start_index, sampling_locations,
                    attention_weights) -> Tuple[int, int, int, int, int, int, int]:
    """Return (N, S, M, D, Lq, L, P) or raise MSDeformAttnInputError."""
    named = (("value", value), ("spatial_shapes", spatial_shapes), ("level_start_index", level_start_index),
             ("sampling_locations", sampling_locations), ("attention_weights", attention_weights))
    for name, t in named:
        _expect(isinstance(t, torch.Tensor), f"{name} must be a torch.Tensor, got {type(t).__name__}")
    _expect(value.dim() == 4, f"value must be 4-D [N, S, M, D], got shape {_shape(value)}")
    n, s, m, d = value.shape
    _expect(spatial_shapes.dim() == 2 and spatial_shapes.shape[1] == 2,
            f"spatial_shapes must be [L, 2], got shape {_shape(spatial_shapes)}")
    _expect(spatial_shapes.dtype == torch.int64, f"spatial_shapes must be int64, got {spatial_shapes.dtype}")
    levels = spatial_shapes.shape[0]
    _expect(level_start_index.dim() == 1 and level_start_index.shape[0] == levels,
            f"level_start_index must be [L] = [{levels}], got shape {_shape(level_start_index)}")
    _expect(level_start_index.dtype == torch.int64,
            f"level_start_index must be int64, got {level_start_index.dtype}")
    _expect(sampling_locations.dim() == 6, "sampling_locations must be 6-D [N, Lq, M, L, P, 2], "
            f"got shape {_shape(sampling_locations)}")
    lq, points = sampling_locations.shape[1], sampling_locations.shape[4]
    expected_loc = (n, lq, m, levels, points, 2)
    _expect(tuple(sampling_locations.shape) == expected_loc,
            f"sampling_locations must be [N, Lq, M, L, P, 2] = [{n}, Lq, {m}, {levels}, P, 2], "
            f"got shape {_shape(sampling_locations)}")
    expected_attn = (n, lq, m, levels, points)
    _expect(tuple(attention_weights.shape) == expected_attn,
            f"attention_weights must be [N, Lq, M, L, P] = [{n}, {lq}, {m}, {levels}, {points}], "
            f"got shape {_shape(attention_weights)}")
    _expect(value.is_floating_point(), f"value must be a floating-point tensor, got {value.dtype}")
    for name, t in (("sampling_locations", sampling_locations), ("attention_weights", attention_weights)):
        _expect(t.dtype == value.dtype, f"{name} must have value's dtype {value.dtype}, got {t.dtype}")
    for name, t in named[1:]:
        _expect(t.device == value.device, f"{name} must be on value's device {value.device}, got {t.device}")
    if value.device.type != "meta" and not _is_fake(spatial_shapes):
        _check_levels(spatial_shapes, level_start_index, s)
    return n, s, m, d, lq, levels, points


def _is_fake(t: torch.Tensor) -> bool:
    # Under torch.compile / opcheck the tensors carry no data to read.
    return type(t).__name__ == "FakeTensor" or t.device.type == "meta"


def _check_levels(spatial_shapes: torch.Tensor, level_start_index: torch.Tensor, s: int) -> None:
    shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    starts = [int(x) for x in level_start_index.tolist()]
    _expect(all(h >= 0 and w >= 0 for h, w in shapes), f"spatial_shapes must be non-negative, got {shapes}")
    total = sum(h * w for h, w in shapes)
    _expect(total == s, f"value has S = {s} positions but spatial_shapes {shapes} sum to {total}")
    expected_starts = [sum(h * w for h, w in shapes[:i]) for i in range(len(shapes))]
    _expect(starts == expected_starts,
            f"level_start_index must be the running sum of H*W = {expected_starts}, got {starts}")


def check_dtype_for_device(value: torch.Tensor) -> None:
    """The compiled kernels support fewer dtypes than the reference."""
    allowed = CUDA_DTYPES if value.device.type == "cuda" else CPU_DTYPES
    _expect(value.dtype in allowed, f"the compiled op on {value.device.type} supports "
            f"{', '.join(str(d).replace('torch.', '') for d in allowed)}, got {str(value.dtype).replace('torch.', '')}")
