"""A small COCO-format instance-segmentation dataset from disk (polygons or RLE), for ``--data DIR``.

RLE is decoded here (uncompressed ``counts`` lists and COCO's compressed strings)
so pycocotools is not needed.
"""
from __future__ import annotations

import glob
import json
import os
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch


class DatasetError(ValueError):
    """The dataset directory cannot be used; the message says why."""


def rle_string_to_counts(text: str) -> List[int]:
    """Decode COCO's compressed RLE string (pycocotools ``rleFrString``)."""
    counts: List[int] = []
    pos = 0
    while pos < len(text):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(text):
                raise DatasetError("truncated compressed RLE string")
            c = ord(text[pos]) - 48
            value |= (c & 0x1F) << (5 * shift)
            more = bool(c & 0x20)
            pos += 1
            shift += 1
            if not more and (c & 0x10):
                value |= -1 << (5 * shift)  # sign-extend the last 5-bit group
        if len(counts) > 2:
            value += counts[-2]  # counts after the second are stored as differences
        counts.append(value)
    return counts


def counts_to_rle_string(counts: Sequence[int]) -> str:
    """Encode counts as COCO's compressed RLE string (pycocotools ``rleToString``)."""
    out = []
    for i, count in enumerate(counts):
        value = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = value & 0x1F
            value >>= 5
            more = value != -1 if c & 0x10 else value != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def decode_rle(counts: Sequence[int], height: int, width: int) -> np.ndarray:
    """Runs alternate 0s and 1s (starting with 0s) in column-major order, as COCO stores them."""
    if sum(counts) != height * width:
        raise DatasetError(f"RLE counts sum to {sum(counts)}, expected {height}x{width}={height * width}")
    flat = np.zeros(height * width, dtype=bool)
    pos = 0
    for i, run in enumerate(counts):
        if i % 2 == 1:
            flat[pos:pos + run] = True
        pos += run
    return flat.reshape(width, height).T


def encode_rle(mask: np.ndarray) -> List[int]:
    flat = np.asarray(mask, dtype=bool).T.reshape(-1)
    counts, current, run = [], False, 0
    for value in flat:
        if value != current:
            counts.append(run)
            current, run = value, 0
        run += 1
    counts.append(run)
    return counts


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in polygons:
        if len(poly) >= 6:
            draw.polygon([(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly) - 1, 2)], fill=1)
    return np.asarray(canvas, dtype=bool)


def segmentation_to_mask(seg, height: int, width: int) -> np.ndarray:
    if isinstance(seg, list):
        return polygons_to_mask(seg, height, width)
    if isinstance(seg, dict) and "counts" in seg:
        h, w = seg.get("size", (height, width))
        counts = seg["counts"]
        if isinstance(counts, str):
            counts = rle_string_to_counts(counts)
        return decode_rle(list(counts), int(h), int(w))
    raise DatasetError(f"unsupported segmentation format: {type(seg).__name__}")


def find_annotation_file(root: str) -> str:
    candidates = [os.path.join(root, "annotations.json")]
    candidates += sorted(glob.glob(os.path.join(root, "annotations", "*.json")))
    candidates += sorted(glob.glob(os.path.join(root, "*.json")))
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise DatasetError(f"no COCO annotation file in {root}: expected annotations.json or annotations/*.json")


class CocoDataset(torch.utils.data.Dataset):
    """Images resized to a square ``size``; category ids mapped to 0..K-1 in id order."""

    def __init__(self, root: str, size: int):
        if not os.path.isdir(root):
            raise DatasetError(f"--data {root}: not a directory")
        self.root, self.size = root, size
        path = find_annotation_file(root)
        try:
            with open(path, encoding="utf-8") as fh:
                coco = json.load(fh)
        except (OSError, json.JSONDecodeError) as exc:
            raise DatasetError(f"cannot read {path}: {exc}") from None
        for key in ("images", "annotations", "categories"):
            if key not in coco:
                raise DatasetError(f"{path} has no {key!r}: not a COCO instances file")
        cats = sorted(c["id"] for c in coco["categories"])
        self.cat_to_label = {cid: i for i, cid in enumerate(cats)}
        self.class_names = [c.get("name", str(c["id"])) for c in sorted(coco["categories"], key=lambda c: c["id"])]
        self.num_classes = len(cats)
        by_image: Dict[int, List[dict]] = {}
        for ann in coco["annotations"]:
            if not ann.get("iscrowd", 0):
                by_image.setdefault(ann["image_id"], []).append(ann)
        self.images = [img for img in coco["images"] if img["id"] in by_image]
        self.annotations = by_image
        if not self.images:
            raise DatasetError(f"{path}: no image has a (non-crowd) annotation")

    def __len__(self) -> int:
        return len(self.images)

    def _image_path(self, info: dict) -> str:
        for base in (os.path.join(self.root, "images"), self.root):
            path = os.path.join(base, info["file_name"])
            if os.path.isfile(path):
                return path
        raise DatasetError(f"image {info['file_name']} not found under {self.root} or {self.root}/images")

    def __getitem__(self, index: int) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        from PIL import Image

        info = self.images[index % len(self.images)]
        with Image.open(self._image_path(info)) as img:
            rgb = img.convert("RGB")
            height, width = info.get("height", rgb.height), info.get("width", rgb.width)
            rgb = rgb.resize((self.size, self.size), Image.BILINEAR)
        image = torch.from_numpy(np.asarray(rgb, dtype=np.float32).copy()).permute(2, 0, 1)
        labels, masks = [], []
        for ann in self.annotations[info["id"]]:
            mask = segmentation_to_mask(ann["segmentation"], height, width)
            resized = Image.fromarray(mask.astype(np.uint8) * 255).resize((self.size, self.size), Image.NEAREST)
            small = np.asarray(resized) > 127
            if small.any():
                labels.append(self.cat_to_label[ann["category_id"]])
                masks.append(torch.from_numpy(small.copy()))
        target = {"labels": torch.tensor(labels, dtype=torch.long),
                  "masks": torch.stack(masks) if masks else torch.zeros(0, self.size, self.size, dtype=torch.bool)}
        return image, target
