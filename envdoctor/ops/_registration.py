"""Python-side registrations for the compiled operators, done once after the library loads.

The C++ side declares the schema and the CPU/CUDA kernels; autograd and the
fake (shape-only) kernels are registered here, once, for every backend, which
is what ``torch.library.opcheck`` and ``torch.compile`` need.
"""
from __future__ import annotations

import torch

_registered = False


def _fake_forward(value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    n, _, m, d = value.shape
    return value.new_empty((n, sampling_locations.shape[1], m * d))


def _fake_backward(grad_output, value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
    return (torch.empty_like(value, memory_format=torch.contiguous_format),
            torch.empty_like(sampling_locations, memory_format=torch.contiguous_format),
            torch.empty_like(attention_weights, memory_format=torch.contiguous_format))


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad_output):
    value, spatial_shapes, level_start_index, sampling_locations, attention_weights = ctx.saved_tensors
    grad_value, grad_loc, grad_attn = torch.ops.envdoctor.ms_deform_attn_backward(
        grad_output.contiguous(), value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    needs = ctx.needs_input_grad
    return (grad_value if needs[0] else None, None, None,
            grad_loc if needs[3] else None, grad_attn if needs[4] else None)


def register_once() -> None:
    global _registered
    if _registered:
        return
    torch.library.register_fake("envdoctor::ms_deform_attn")(_fake_forward)
    torch.library.register_fake("envdoctor::ms_deform_attn_backward")(_fake_backward)
    torch.library.register_autograd("envdoctor::ms_deform_attn", _backward, setup_context=_setup_context)
    _registered = True
