import json

import numpy as np
import pytest
import torch
from PIL import Image

from envdoctor.smoke.coco import (CocoDataset, DatasetError, counts_to_rle_string, decode_rle, encode_rle,
                                  rle_string_to_counts, segmentation_to_mask)
from envdoctor.smoke.data import CLASS_NAMES, SyntheticDataset, make_sample


def test_synthetic_samples_are_deterministic():
    a_img, a_tgt = make_sample(7, 64, seed=3)
    b_img, b_tgt = make_sample(7, 64, seed=3)
    assert torch.equal(a_img, b_img)
    assert torch.equal(a_tgt["labels"], b_tgt["labels"]) and torch.equal(a_tgt["masks"], b_tgt["masks"])
    c_img, _ = make_sample(7, 64, seed=4)
    d_img, _ = make_sample(8, 64, seed=3)
    assert not torch.equal(a_img, c_img) and not torch.equal(a_img, d_img)


def test_synthetic_samples_are_valid_instance_segmentation():
    counts = []
    for i in range(30):
        image, target = SyntheticDataset(100, 64, seed=0)[i]
        assert image.shape == (3, 64, 64) and 0 <= image.min() and image.max() <= 255
        masks, labels = target["masks"], target["labels"]
        assert masks.dtype == torch.bool and masks.shape[1:] == (64, 64)
        assert len(labels) == len(masks) >= 1
        assert labels.min() >= 0 and labels.max() < len(CLASS_NAMES)
        assert int(masks.sum(0).max()) == 1  # instances do not overlap
        counts.append(len(labels))
    assert max(counts) > 1  # several instances per image happen


def test_rle_string_known_values():
    # Worked by hand from pycocotools' rleToString: 5-bit groups, sign bit, delta from counts[i-2] for i > 2.
    assert counts_to_rle_string([3, 2]) == "32"
    assert counts_to_rle_string([5, 20, 30, 7]) == "5d0n0C"
    assert rle_string_to_counts("5d0n0C") == [5, 20, 30, 7]


@pytest.mark.parametrize("seed", range(5))
def test_rle_round_trip(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((13, 17)) > 0.6
    counts = encode_rle(mask)
    assert sum(counts) == 13 * 17
    assert np.array_equal(decode_rle(counts, 13, 17), mask)
    assert rle_string_to_counts(counts_to_rle_string(counts)) == counts


def test_rle_is_column_major():
    # counts [1, 2, ...]: skip (0,0), then (1,0) and (0,1) are set: COCO runs go down columns first.
    mask = decode_rle([1, 2, 3], 2, 3)
    assert mask.tolist() == [[False, True, False], [True, False, False]]


def test_rle_with_wrong_total_is_refused():
    with pytest.raises(DatasetError, match="expected 2x3=6"):
        decode_rle([1, 2], 2, 3)


def _write_coco(root, fmt):
    (root / "images").mkdir()
    mask_a = np.zeros((40, 50), dtype=bool)
    mask_a[5:20, 10:30] = True
    mask_b = np.zeros((40, 50), dtype=bool)
    mask_b[25:35, 5:45] = True
    ext = "png" if fmt == "png" else "jpg"
    Image.fromarray((np.random.default_rng(0).random((40, 50, 3)) * 255).astype(np.uint8)).save(
        root / "images" / f"a.{ext}")
    anns = [
        {"id": 1, "image_id": 1, "category_id": 7, "iscrowd": 0,
         "segmentation": [[10, 5, 30, 5, 30, 20, 10, 20]]},  # polygon
        {"id": 2, "image_id": 1, "category_id": 9, "iscrowd": 0,
         "segmentation": {"size": [40, 50], "counts": encode_rle(mask_b)}},  # uncompressed RLE
        {"id": 3, "image_id": 1, "category_id": 9, "iscrowd": 0,
         "segmentation": {"size": [40, 50], "counts": counts_to_rle_string(encode_rle(mask_a))}},  # compressed
    ]
    coco = {"images": [{"id": 1, "file_name": f"a.{ext}", "height": 40, "width": 50}], "annotations": anns,
            "categories": [{"id": 9, "name": "b"}, {"id": 7, "name": "a"}]}
    (root / "annotations.json").write_text(json.dumps(coco))
    return mask_a, mask_b


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_coco_dataset_with_polygon_and_rle(tmp_path, fmt):
    mask_a, mask_b = _write_coco(tmp_path, fmt)
    dataset = CocoDataset(str(tmp_path), size=40)
    assert len(dataset) == 1 and dataset.num_classes == 2 and dataset.class_names == ["a", "b"]
    image, target = dataset[0]
    assert image.shape == (3, 40, 40)
    assert target["labels"].tolist() == [0, 1, 1]  # category 7 -> 0, 9 -> 1
    masks = target["masks"].numpy()
    for got, want in zip(masks, [mask_a, mask_b, mask_a]):
        small = np.asarray(Image.fromarray(want.astype(np.uint8) * 255).resize((40, 40), Image.NEAREST)) > 127
        assert iou(got, small) > 0.8


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_segmentations_decode_at_full_resolution():
    mask = np.zeros((40, 50), dtype=bool)
    mask[5:20, 10:30] = True
    assert np.array_equal(segmentation_to_mask({"size": [40, 50], "counts": encode_rle(mask)}, 40, 50), mask)
    compressed = {"size": [40, 50], "counts": counts_to_rle_string(encode_rle(mask))}
    assert np.array_equal(segmentation_to_mask(compressed, 40, 50), mask)
    polygon = segmentation_to_mask([[10, 5, 30, 5, 30, 20, 10, 20]], 40, 50)
    assert iou(polygon, mask) > 0.85  # rasterisers differ on edge pixels only
    with pytest.raises(DatasetError, match="unsupported segmentation format"):
        segmentation_to_mask(42, 40, 50)


def test_coco_errors_are_plain(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        CocoDataset(str(tmp_path / "missing"), 32)
    with pytest.raises(DatasetError, match="no COCO annotation file"):
        CocoDataset(str(tmp_path), 32)
    (tmp_path / "annotations.json").write_text(json.dumps({"images": []}))
    with pytest.raises(DatasetError, match="has no 'annotations'"):
        CocoDataset(str(tmp_path), 32)
