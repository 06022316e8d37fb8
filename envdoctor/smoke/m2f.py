"""Mask2Former assembled from the backbone, the MSDeformAttn pixel decoder and the masked decoder."""
from __future__ import annotations

from typing import Dict, List, Sequence

import torch
from torch import nn

from envdoctor.smoke.config import SizePreset
from envdoctor.smoke.criterion import HungarianMatcher, SetCriterion
from envdoctor.smoke.pixel_decoder import MSDeformAttnPixelDecoder
from envdoctor.smoke.transformer import MaskedTransformerDecoder

# Mask2Former's published loss weights (class 2, mask BCE 5, dice 5, no-object 0.1).
LOSS_WEIGHTS = {"class": 2.0, "mask": 5.0, "dice": 5.0}
NO_OBJECT_WEIGHT = 0.1


class Mask2Former(nn.Module):
    def __init__(self, backbone: nn.Module, num_classes: int, preset: SizePreset, msda_impl: str,
                 input_format: str, pixel_mean: Sequence[float], pixel_std: Sequence[float]):
        super().__init__()
        self.backbone = backbone
        shapes = {k: v for k, v in backbone.output_shape().items() if k in ("res2", "res3", "res4", "res5")}
        d = preset.hidden_dim
        self.pixel_decoder = MSDeformAttnPixelDecoder(shapes, d, d, preset.enc_layers, preset.num_heads,
                                                      preset.ffn_dim, msda_impl)
        self.decoder = MaskedTransformerDecoder(d, num_classes, preset.num_queries, preset.num_heads,
                                                preset.ffn_dim, preset.dec_layers, d)
        matcher = HungarianMatcher(2.0, 5.0, 5.0, preset.train_points)
        self.criterion = SetCriterion(num_classes, matcher, LOSS_WEIGHTS, NO_OBJECT_WEIGHT, preset.train_points)
        self.bgr = input_format.upper() == "BGR"
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1), False)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``images``: RGB float in 0-255, like detectron2 feeds. Channel order and statistics from config."""
        if self.bgr:
            images = images.flip(1)
        return (images - self.pixel_mean) / self.pixel_std

    def predict(self, images: torch.Tensor) -> Dict:
        features = self.backbone(self.normalize(images))
        mask_features, maps = self.pixel_decoder(features)
        return self.decoder(maps, mask_features)

    def forward(self, images: torch.Tensor, targets: List[Dict[str, torch.Tensor]]) -> torch.Tensor:
        outputs = self.predict(images)
        # Targets are at image resolution; the losses compare sampled points, so no resizing needed.
        return self.criterion(outputs, targets)
