import pytest
import torch

from envdoctor.smoke.backbone import MobileNetV3Backbone
from envdoctor.smoke.config import IMAGENET_MEAN_255, IMAGENET_STD_255, SIZES
from envdoctor.smoke.data import SyntheticDataset, collate
from envdoctor.smoke.m2f import Mask2Former
from envdoctor.smoke.pixel_decoder import reference_points_for


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Mask2Former(MobileNetV3Backbone(), 3, SIZES["tiny"], "reference", "RGB", IMAGENET_MEAN_255,
                       IMAGENET_STD_255)


def test_outputs_have_mask2former_shapes(model):
    images, _ = collate([SyntheticDataset(4, 96, 0)[i] for i in range(2)])
    with torch.no_grad():
        out = model.predict(images)
    assert out["pred_logits"].shape == (2, 8, 4)  # 8 queries, 3 classes + no-object
    assert out["pred_masks"].shape == (2, 8, 24, 24)  # stride 4
    assert len(out["aux_outputs"]) == 3  # initial prediction + one per decoder layer but the last


def test_every_parameter_gets_a_gradient(model):
    images, targets = collate([SyntheticDataset(4, 96, 0)[i] for i in range(2)])
    model.zero_grad(set_to_none=True)
    model(images, targets).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_runs_under_autocast(model):
    # The op runs in fp32 inside AMP regions (as Mask2Former does); the rest in bf16.
    images, targets = collate([SyntheticDataset(4, 96, 0)[i] for i in range(2)])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(images, targets)
    assert torch.isfinite(loss)


def test_reference_points_are_cell_centres():
    ref = reference_points_for([(2, 2), (1, 1)], "cpu")
    assert ref.shape == (1, 5, 2, 2)
    assert ref[0, :, 0].tolist() == [[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75], [0.5, 0.5]]
