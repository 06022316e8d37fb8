"""Build everything a smoke-train needs from a SmokeConfig: backbone (+weights), model, dataset."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import torch

from envdoctor.smoke.backbone import STAGE_NAMES, MobileNetV3Backbone
from envdoctor.smoke.config import SIZES, SmokeConfig
from envdoctor.smoke.contract import build_backbone, check_contract
from envdoctor.smoke.data import SyntheticDataset, make_sample
from envdoctor.smoke.m2f import Mask2Former
from envdoctor.smoke.weights import check_normalization, detect_kind, load_into, read_state_dict

SYNTHETIC_LENGTH = 100_000  # training images a smoke-train can draw (indices wrap around)
PROBE_OFFSET = 10_000_000


class SmokeSetupError(ValueError):
    """A user input (weights, backbone, data, options) cannot be used; the message says why."""


@dataclass
class Built:
    model: Mask2Former
    dataset: torch.utils.data.Dataset
    probe: list  # fixed samples the start/end loss is measured on
    notes: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)


def make_backbone(config: SmokeConfig, notes: List[str], warnings: List[str]) -> torch.nn.Module:
    if config.backbone:
        if config.weights:
            raise SmokeSetupError("--weights loads the built-in MobileNetV3; with --backbone, load weights in "
                                  "your backbone's constructor")
        backbone = build_backbone(config.backbone)
        missing = [name for name in STAGE_NAMES if name not in backbone.output_shape()]
        if missing:
            raise SmokeSetupError(f"{config.backbone} does not declare {', '.join(missing)} in output_shape(): "
                                  f"the Mask2Former pixel decoder needs {', '.join(STAGE_NAMES)}")
        notes.append(f"backbone {config.backbone}")
    else:
        state = read_state_dict(config.weights) if config.weights else None
        # DeepLabV3 checkpoints come from a dilated network: build the same one, res5 stays stride 16.
        dilated = state is not None and detect_kind(state) == "deeplabv3"
        backbone = MobileNetV3Backbone(dilated=dilated)
        notes.append("backbone MobileNetV3-Large, stages " + ", ".join(
            f"{p.name} {p.channels}ch/s{p.stride} (features[{p.start}:{p.stop}])" for p in backbone.stages))
        if state is not None:
            report = load_into(backbone, config.weights, state)
            notes.append(report.summary())
            warnings.extend(check_normalization(config.input_format, config.pixel_mean, config.pixel_std))
    contract = check_contract(backbone, input_size=config.preset.image_size)
    if not contract.ok:
        raise SmokeSetupError(contract.summary())
    notes.append(contract.summary())
    return backbone


def make_dataset(config: SmokeConfig, notes: List[str]):
    size = config.preset.image_size
    if config.data:
        from envdoctor.smoke.coco import CocoDataset

        dataset = CocoDataset(config.data, size)
        notes.append(f"data {config.data}: {len(dataset)} images, {dataset.num_classes} classes")
        probe = [dataset[i % len(dataset)] for i in range(config.preset.batch_size)]
    else:
        dataset = SyntheticDataset(SYNTHETIC_LENGTH, size, config.seed)
        # Probe images come from indices training never reaches, so the end loss is not a memory test.
        probe = [make_sample(PROBE_OFFSET + i, size, config.seed) for i in range(config.preset.batch_size)]
        notes.append(f"data synthetic shapes ({', '.join(dataset.class_names)}), {size}x{size}, seed {config.seed}")
    return dataset, probe


def build(config: SmokeConfig, msda_impl: str) -> Built:
    if config.size not in SIZES:
        raise SmokeSetupError(f"unknown --size {config.size!r}: choose {', '.join(SIZES)}")
    notes: List[str] = []
    warnings: List[str] = []
    backbone = make_backbone(config, notes, warnings)
    dataset, probe = make_dataset(config, notes)
    model = Mask2Former(backbone, dataset.num_classes, config.preset, msda_impl, config.input_format,
                        config.pixel_mean, config.pixel_std)
    return Built(model, dataset, probe, notes, warnings)
