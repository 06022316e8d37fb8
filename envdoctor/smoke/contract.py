"""Backbone contract check: do the declared ``output_shape()`` channels and strides match reality?

detectron2 builds the pixel decoder from ``output_shape()`` alone. A backbone
whose declared strides are wrong still trains, with every level misaligned, so
this runs a dummy image through it and compares every output.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, List, Optional

import torch
from torch import nn


class BackboneSpecError(ValueError):
    """The ``--backbone`` value cannot be imported or built; the message says why."""


@dataclass
class OutputCheck:
    name: str
    declared_channels: Optional[int]
    declared_stride: Optional[int]
    real_channels: Optional[int]
    real_stride: Optional[float]
    problems: List[str] = field(default_factory=list)


@dataclass
class ContractReport:
    outputs: List[OutputCheck]
    input_size: int

    @property
    def ok(self) -> bool:
        return all(not o.problems for o in self.outputs)

    @property
    def problems(self) -> List[str]:
        return [p for o in self.outputs for p in o.problems]

    def summary(self) -> str:
        if self.ok:
            shapes = ", ".join(f"{o.name} {o.real_channels}ch/{o.real_stride:g}" for o in self.outputs)
            return f"backbone contract holds ({shapes})"
        return "backbone contract broken: " + "; ".join(self.problems)


def load_backbone_class(spec: str) -> type:
    """Import ``package.module:ClassName``."""
    if ":" not in spec:
        raise BackboneSpecError(f"--backbone must look like package.module:ClassName, got {spec!r}")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackboneSpecError(f"cannot import {module_name!r} for --backbone: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BackboneSpecError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def build_backbone(spec: str) -> nn.Module:
    cls = load_backbone_class(spec)
    try:
        backbone = cls()
    except Exception as exc:  # user code: any failure becomes a plain message
        raise BackboneSpecError(f"cannot build {spec}() with no arguments: {type(exc).__name__}: {exc}") from None
    if not hasattr(backbone, "output_shape"):
        raise BackboneSpecError(f"{spec} has no output_shape(): expected detectron2's Backbone convention")
    return backbone


def _spec_fields(spec: Any) -> tuple:
    if isinstance(spec, dict):
        return spec.get("channels"), spec.get("stride")
    if isinstance(spec, (tuple, list)) and not hasattr(spec, "channels"):
        return spec[0], spec[1]
    return getattr(spec, "channels", None), getattr(spec, "stride", None)


@torch.no_grad()
def check_contract(backbone: nn.Module, input_size: int = 256) -> ContractReport:
    """Run a dummy ``input_size`` square image through ``backbone`` and compare with ``output_shape()``."""
    declared = backbone.output_shape()
    was_training = backbone.training
    backbone.eval()
    try:
        param = next(backbone.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        outputs = backbone(torch.zeros(1, 3, input_size, input_size, device=device))
    finally:
        backbone.train(was_training)
    checks = []
    for name, spec in declared.items():
        channels, stride = _spec_fields(spec)
        check = OutputCheck(name, channels, stride, None, None)
        checks.append(check)
        feature = outputs.get(name) if isinstance(outputs, dict) else None
        if feature is None:
            check.problems.append(f"{name}: declared in output_shape() but forward() does not return it")
            continue
        check.real_channels = int(feature.shape[1])
        check.real_stride = input_size / feature.shape[-1]
        if channels is not None and channels != check.real_channels:
            check.problems.append(f"{name}: declared {channels} channels, real output has {check.real_channels}")
        if stride is not None and abs(stride - check.real_stride) > 1e-6:
            check.problems.append(_stride_problem(name, stride, check.real_stride))
    if isinstance(outputs, dict):
        for name in outputs:
            if name not in declared:
                checks.append(OutputCheck(name, None, None, int(outputs[name].shape[1]), None,
                                          [f"{name}: returned by forward() but missing from output_shape()"]))
    return ContractReport(checks, input_size)


def _stride_problem(name: str, declared: float, real: float) -> str:
    if real < declared:
        how = f"{declared / real:g}x too large"
    else:
        how = f"{real / declared:g}x too small"
    return f"{name}: declared stride {declared:g}, real stride {real:g} (declared value is {how})"
