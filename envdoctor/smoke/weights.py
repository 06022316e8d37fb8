"""Load a local MobileNetV3 checkpoint into the smoke backbone, and check input normalisation.

Two layouts are understood: torchvision's ImageNet ``mobilenet_v3_large`` state dict
(``features.N...`` plus a ``classifier`` head) and torchvision's
``deeplabv3_mobilenet_v3_large`` (``backbone.N...``, last stages dilated so the
output stride stays 16).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from envdoctor.smoke.config import IMAGENET_MEAN_255, IMAGENET_STD_255

# Below this fraction of backbone tensors loaded, the file is not a MobileNetV3-Large
# checkpoint and training on it would silently be training from scratch.
MIN_LOADED_FRACTION = 0.5


class WeightsError(ValueError):
    """The checkpoint cannot be used; the message says why in plain words."""


@dataclass
class WeightsReport:
    path: str
    kind: str  # "torchvision-imagenet" | "deeplabv3" | "unknown"
    loaded: int = 0
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    shape_mismatch: List[str] = field(default_factory=list)
    dilated: bool = False

    def summary(self) -> str:
        text = (f"weights {os.path.basename(self.path)} ({self.kind}): loaded {self.loaded} backbone tensors, "
                f"missing {len(self.missing)}, unexpected {len(self.unexpected)}")
        if self.shape_mismatch:
            text += f", wrong shape {len(self.shape_mismatch)}"
        if self.dilated:
            text += "; DeepLabV3 backbone is dilated: res5 keeps stride 16 (not 32)"
        return text


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read a checkpoint file and return its tensor state dict (unwrapping common containers)."""
    if not os.path.isfile(path):
        raise WeightsError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and format errors all mean "not a checkpoint we can read"
        raise WeightsError(f"cannot read weights file {path}: {exc}") from None
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not contain a state dict of tensors")
    return {_strip_prefix(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _strip_prefix(key: str) -> str:
    # Checkpoints saved from DataParallel/DDP wrap every key in "module.".
    return key[len("module."):] if key.startswith("module.") else key


def detect_kind(state: Dict[str, torch.Tensor]) -> str:
    if any(k.startswith("backbone.") for k in state):
        return "deeplabv3"
    if any(k.startswith("features.") for k in state):
        return "torchvision-imagenet"
    return "unknown"


def backbone_keys(state: Dict[str, torch.Tensor], kind: str) -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """Map checkpoint keys to our ``features.N...`` names; return (mapped, the keys not used)."""
    mapped, unused = {}, []
    for key, value in state.items():
        if kind == "deeplabv3" and key.startswith("backbone."):
            mapped["features." + key[len("backbone."):]] = value
        elif key.startswith("features."):
            mapped[key] = value
        else:
            unused.append(key)
    return mapped, unused


def load_into(backbone: torch.nn.Module, path: str, state: Optional[Dict[str, torch.Tensor]] = None) -> WeightsReport:
    """Load ``path`` into ``backbone`` (a MobileNetV3Backbone); refuse when almost nothing matches."""
    state = read_state_dict(path) if state is None else state
    kind = detect_kind(state)
    mapped, unused = backbone_keys(state, kind)
    own = backbone.state_dict()
    report = WeightsReport(path=path, kind=kind, dilated=getattr(backbone, "dilated", False))
    usable = {}
    for key, value in mapped.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != value.shape:
            report.shape_mismatch.append(f"{key}: checkpoint {tuple(value.shape)}, model {tuple(own[key].shape)}")
        else:
            usable[key] = value
    report.unexpected.extend(unused)
    report.missing = sorted(k for k in own if k not in usable)
    report.loaded = len(usable)
    if report.loaded < MIN_LOADED_FRACTION * len(own):
        raise WeightsError(
            f"{path} does not look like a MobileNetV3-Large checkpoint: only {report.loaded} of {len(own)} "
            f"backbone tensors matched ({len(report.unexpected)} unexpected, {len(report.shape_mismatch)} "
            f"with the wrong shape). Expected torchvision 'features.N...' or DeepLabV3 'backbone.N...' keys.")
    backbone.load_state_dict(usable, strict=False)
    return report


def check_normalization(input_format: str, pixel_mean: Sequence[float], pixel_std: Sequence[float]) -> List[str]:
    """Warnings when the input normalisation differs from what torchvision's weights were trained on.

    The weights expect RGB, (x/255 - mean)/std with ImageNet statistics. detectron2's
    defaults (BGR, mean 103.53/116.28/123.675, std 1) feed values ~58x too large in the
    wrong channel order: training still runs, it just silently starts from bad features.
    """
    fmt = input_format.upper()
    if fmt not in ("RGB", "BGR"):
        return [f"unknown input format {input_format!r}: expected RGB or BGR"]
    # Compare in RGB order: detectron2 lists BGR statistics in BGR order.
    mean = list(pixel_mean) if fmt == "RGB" else list(pixel_mean)[::-1]
    std = list(pixel_std) if fmt == "RGB" else list(pixel_std)[::-1]
    warnings = []
    if fmt == "BGR":
        warnings.append("input format is BGR but torchvision MobileNetV3 weights were trained on RGB: "
                        "red and blue are swapped")
    if not _close(mean, IMAGENET_MEAN_255, rel=0.05):
        if max(mean) <= 1.0:
            warnings.append(f"pixel mean {list(pixel_mean)} looks like a [0,1] mean, but inputs are in 0-255 "
                            f"units: expected {list(IMAGENET_MEAN_255)}")
        else:
            warnings.append(f"pixel mean {list(pixel_mean)} in {fmt} order differs from the ImageNet mean the "
                            f"weights expect ({list(IMAGENET_MEAN_255)} in RGB order, 0-255 units)")
    if not _close(std, IMAGENET_STD_255, rel=0.05):
        factor = IMAGENET_STD_255[0] / std[0] if std[0] else math.inf
        warnings.append(f"pixel std {list(pixel_std)} differs from the ImageNet std the weights expect "
                        f"({list(IMAGENET_STD_255)} in 0-255 units): inputs reach the backbone about "
                        f"{factor:.0f}x {'larger' if factor >= 1 else 'smaller'} than in training")
    return warnings


def _close(a: Sequence[float], b: Sequence[float], rel: float) -> bool:
    return len(a) == len(b) and all(abs(x - y) <= rel * abs(y) for x, y in zip(a, b))
