"""MobileNetV3-Large cut into detectron2-style stages res2..res5.

The stage boundaries, channel counts and strides are measured on the network
itself (a dummy forward pass), not typed in: hand-made splits of MobileNetV3 are
a classic source of off-by-a-factor-of-two strides.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Tuple

import torch
from torch import nn

STAGE_NAMES = ("res2", "res3", "res4", "res5")
NOMINAL_STRIDES = (4, 8, 16, 32)
PROBE_SIZE = 64  # dummy input side used to measure strides; a multiple of 32


class ShapeSpec(NamedTuple):
    """detectron2's ShapeSpec fields that matter here (channels and stride)."""

    channels: int
    stride: int


@dataclass(frozen=True)
class StagePlan:
    name: str
    start: int  # first index into ``features``
    stop: int  # one past the last index
    channels: int
    stride: int  # real output stride (16 for res5 of a dilated network)


def _max_dilation(module: nn.Module) -> int:
    dilations = [max(m.dilation) for m in module.modules() if isinstance(m, nn.Conv2d)]
    return max(dilations or [1])


@torch.no_grad()
def plan_stages(features: nn.Sequential) -> List[StagePlan]:
    """Cut ``features`` where the nominal stride changes.

    A dilated network (DeepLabV3) stops downsampling at stride 16 and dilates
    instead, so the nominal stride is the measured stride times the largest
    dilation seen so far: res5 is still found, with a real stride of 16.
    """
    was_training = features.training
    features.eval()
    x = torch.zeros(1, 3, PROBE_SIZE, PROBE_SIZE)
    measured: List[Tuple[int, int, int]] = []  # (nominal stride, real stride, channels)
    dilation = 1
    for layer in features:
        x = layer(x)
        real = PROBE_SIZE // x.shape[-1]
        dilation = max(dilation, _max_dilation(layer))
        measured.append((real * dilation, real, x.shape[1]))
    features.train(was_training)
    plans = []
    for name, nominal in zip(STAGE_NAMES, NOMINAL_STRIDES):
        idx = [i for i, (nom, _, _) in enumerate(measured) if nom == nominal]
        if not idx:
            raise ValueError(f"the network never reaches stride {nominal}: cannot build {name}")
        start = plans[-1].stop if plans else 0
        stop = idx[-1] + 1
        plans.append(StagePlan(name, start, stop, measured[stop - 1][2], measured[stop - 1][1]))
    return plans


class MobileNetV3Backbone(nn.Module):
    """detectron2-style backbone: ``forward(x) -> {"res2": ..., "res5": ...}`` and ``output_shape()``.

    ``features`` keeps torchvision's module names, so torchvision checkpoints
    (``features.N...``) load with no renaming.
    """

    def __init__(self, dilated: bool = False):
        super().__init__()
        from torchvision.models import mobilenet_v3_large

        self.features = mobilenet_v3_large(weights=None, dilated=dilated).features
        self.dilated = dilated
        self.stages = plan_stages(self.features)

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {p.name: ShapeSpec(p.channels, p.stride) for p in self.stages}

    @property
    def size_divisibility(self) -> int:
        return 32

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        out = {}
        for plan in self.stages:
            for layer in self.features[plan.start:plan.stop]:
                x = layer(x)
            out[plan.name] = x
        return out


class HandSplitMobileNetV3(nn.Module):
    """The classic hand-made split, kept as a known-bad example for the contract check.

    Stages cut at ``features[0:2]``, ``[2:4]``, ``[4:7]``, ``[7:17]`` and declared as
    strides 4/8/16/32: the first three really are 2/4/8.
    """

    CUTS = ((0, 2), (2, 4), (4, 7), (7, 17))
    DECLARED = {"res2": (16, 4), "res3": (24, 8), "res4": (40, 16), "res5": (960, 32)}

    def __init__(self):
        super().__init__()
        from torchvision.models import mobilenet_v3_large

        self.features = mobilenet_v3_large(weights=None).features

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {k: ShapeSpec(c, s) for k, (c, s) in self.DECLARED.items()}

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        out = {}
        for name, (start, stop) in zip(STAGE_NAMES, self.CUTS):
            x = self.features[start:stop](x)
            out[name] = x
        return out
