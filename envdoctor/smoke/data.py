"""Deterministic synthetic instance-segmentation data, generated on the fly (nothing downloaded).

Each image is a textured background with 1-3 shapes (disc, square, triangle):
the class is the shape, the colour varies, so the model has to look at shape.
Image ``i`` of seed ``s`` is always the same, on any machine and in any process.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch

CLASS_NAMES = ("disc", "square", "triangle")
MAX_INSTANCES = 3


def _shape_mask(kind: int, size: int, cx: float, cy: float, r: float) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32) + 0.5,
                            torch.arange(size, dtype=torch.float32) + 0.5, indexing="ij")
    dx, dy = xs - cx, ys - cy
    if kind == 0:
        return dx * dx + dy * dy <= r * r
    if kind == 1:
        return (dx.abs() <= r * 0.85) & (dy.abs() <= r * 0.85)
    # Upward triangle: below the two slanted edges, above the base.
    return (dy <= r * 0.8) & (dy >= -r) & (dx.abs() <= (dy + r) * 0.6)


def _background(size: int, gen: torch.Generator) -> torch.Tensor:
    """Low-frequency colour noise plus stripes: texture so masks cannot be found by colour alone."""
    coarse = torch.rand(3, 4, 4, generator=gen)
    image = torch.nn.functional.interpolate(coarse[None], size=(size, size), mode="bilinear",
                                            align_corners=False)[0]
    freq = 0.2 + 0.4 * torch.rand(1, generator=gen).item()
    xs = torch.arange(size, dtype=torch.float32)
    stripes = 0.5 + 0.5 * torch.sin(xs * freq)[None, None, :]
    return (0.6 * image + 0.25 * stripes + 0.1 * torch.rand(3, size, size, generator=gen)).clamp(0, 1)


def make_sample(index: int, size: int, seed: int) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Return (image RGB float 0-255 (3,H,W), {"labels": (N,), "masks": (N,H,W) bool})."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
    image = _background(size, gen)
    n = 1 + int(torch.randint(0, MAX_INSTANCES, (1,), generator=gen))
    occupied = torch.zeros(size, size, dtype=torch.bool)
    labels: List[int] = []
    masks: List[torch.Tensor] = []
    for _ in range(n):
        kind = int(torch.randint(0, len(CLASS_NAMES), (1,), generator=gen))
        r = size * (0.12 + 0.1 * torch.rand(1, generator=gen).item())
        cx, cy = (r + (size - 2 * r) * torch.rand(2, generator=gen)).tolist()
        mask = _shape_mask(kind, size, cx, cy, r) & ~occupied  # later shapes sit behind earlier ones
        if mask.sum() < 16:
            continue
        colour = 0.2 + 0.8 * torch.rand(3, 1, 1, generator=gen)
        image = torch.where(mask[None], colour.expand(3, size, size), image)
        occupied |= mask
        labels.append(kind)
        masks.append(mask)
    target = {
        "labels": torch.tensor(labels, dtype=torch.long),
        "masks": torch.stack(masks) if masks else torch.zeros(0, size, size, dtype=torch.bool),
    }
    return image * 255.0, target


class SyntheticDataset(torch.utils.data.Dataset):
    num_classes = len(CLASS_NAMES)
    class_names = CLASS_NAMES

    def __init__(self, length: int, size: int, seed: int):
        self.length, self.size, self.seed = length, size, seed

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        return make_sample(index, self.size, self.seed)


def collate(batch):
    images = torch.stack([image for image, _ in batch])
    return images, [target for _, target in batch]
