"""The functional op: validates, then runs the compiled kernel or the reference."""
from __future__ import annotations

import torch

from envdoctor.ops import loader
from envdoctor.ops.errors import OpNotBuiltError
from envdoctor.ops.reference import ms_deform_attn_reference
from envdoctor.ops.validation import check_dtype_for_device, validate_inputs

IMPLS = ("auto", "compiled", "reference")


def ms_deform_attn(value: torch.Tensor, spatial_shapes: torch.Tensor, level_start_index: torch.Tensor,
                   sampling_locations: torch.Tensor, attention_weights: torch.Tensor, *,
                   impl: str = "auto") -> torch.Tensor:
    """Multi-scale deformable attention.

    value [N, S, M, D], spatial_shapes [L, 2] int64 (H, W), level_start_index [L] int64,
    sampling_locations [N, Lq, M, L, P, 2] (x, y in [0, 1]), attention_weights [N, Lq, M, L, P]
    -> [N, Lq, M*D].

    impl: "auto" (compiled when loaded and it supports the device/dtype, else the
    reference), "compiled" (error if unavailable), "reference" (pure PyTorch).
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {impl!r}")
    args = (value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    validate_inputs(*args)
    if impl == "reference":
        return ms_deform_attn_reference(*args)
    device = str(value.device)
    if impl == "compiled":
        if not loader.compiled_available(device):
            raise OpNotBuiltError(loader.not_built_message(device))
        check_dtype_for_device(value)
        return torch.ops.envdoctor.ms_deform_attn(*args)
    if loader.auto_available(device) and _dtype_supported(value):
        return torch.ops.envdoctor.ms_deform_attn(*args)
    return ms_deform_attn_reference(*args)


def _dtype_supported(value: torch.Tensor) -> bool:
    try:
        check_dtype_for_device(value)
    except ValueError:
        return False
    return True
