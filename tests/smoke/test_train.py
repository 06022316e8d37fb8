"""Real smoke-trains on CPU (slow: each builds the model and trains)."""
import json
import math

import pytest
import torch

from envdoctor.smoke import SmokeConfig, run_smoke
from envdoctor.smoke.render import render_json, render_text

pytestmark = pytest.mark.slow


def test_default_smoke_train_passes_and_the_loss_falls():
    config = SmokeConfig()
    result = run_smoke(config)
    assert result.passed, result.reason
    assert result.steps == 40 and len(result.losses) == 40
    assert result.loss_end <= 0.8 * result.loss_start
    assert result.nan_inf is None and result.params_without_grad == []
    assert result.msda_impl in ("compiled", "reference")
    assert result.steps_per_s > 0 and result.images_per_s == pytest.approx(result.steps_per_s * 4)
    assert result.peak_memory > 0 and result.peak_memory_kind == "process peak RSS"
    assert result.devices[0]["device"] == "cpu"
    text = render_text(result, config)
    assert text.startswith("envdoctor smoke: PASS")
    assert f"MSDeformAttn  {result.msda_impl}" in text
    data = json.loads(render_json(result, config))
    assert data["passed"] is True and data["schema_version"] == 1 and data["config"]["steps"] == 40


def test_learning_rate_zero_fails_because_the_loss_does_not_fall():
    result = run_smoke(SmokeConfig(lr=0.0, steps=4))
    assert not result.passed and not result.usage_error
    assert result.reason.startswith("loss did not fall")
    assert "the learning rate is 0" in result.reason
    assert result.loss_end == pytest.approx(result.loss_start, rel=1e-6)  # same probe, same weights


def test_nan_from_the_op_fails_and_names_the_op():
    result = run_smoke(SmokeConfig(inject_nan=True, steps=4))
    assert not result.passed
    assert result.reason.startswith("NaN/Inf during training: loss at step 1 is nan")
    assert "pixel_decoder.layers.0.self_attn (MSDeformAttn)" in result.reason


def test_two_processes_on_cpu_pass_and_agree():
    result = run_smoke(SmokeConfig(nproc_per_node=2, steps=20))
    assert result.passed, result.reason
    assert result.world_size == 2
    assert len(result.param_hashes) == 2 and result.param_hashes[0] == result.param_hashes[1]
    assert [d["rank"] for d in result.devices] == [0, 1]
    assert all(d["device"] == "cpu" for d in result.devices)
    assert result.loss_end <= 0.8 * result.loss_start


def test_hand_split_user_backbone_is_refused_before_training():
    result = run_smoke(SmokeConfig(backbone="tests.smoke.backbones_for_tests:HandSplit", steps=2))
    assert not result.passed and result.usage_error
    assert "res2: declared stride 4, real stride 2 (declared value is 2x too large)" in result.reason
    assert result.steps == 0


@pytest.mark.parametrize("config, message", [
    (SmokeConfig(backbone="tests.smoke.backbones_for_tests:OnlyTwoOutputs"),
     "does not declare res2, res3 in output_shape()"),
    (SmokeConfig(backbone="tests.smoke.backbones_for_tests:Ours", weights="x.pth"), "--weights loads the built-in"),
    (SmokeConfig(size="huge"), "unknown --size 'huge'"),
    (SmokeConfig(msda_impl="fast"), "unknown MSDeformAttn implementation 'fast'"),
])
def test_unusable_setups_are_usage_errors(config, message):
    result = run_smoke(config)
    assert not result.passed and result.usage_error
    assert message in result.reason


def test_deeplab_weights_with_detectron2_normalisation_trains_and_warns(tmp_path):
    import torchvision

    path = tmp_path / "deeplab.pth"
    torch.save(torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None).state_dict(), path)
    config = SmokeConfig(weights=str(path), steps=2, input_format="BGR",
                         pixel_mean=(103.53, 116.28, 123.675), pixel_std=(1.0, 1.0, 1.0))
    result = run_smoke(config)
    assert result.steps == 2 and result.nan_inf is None
    assert any("loaded 308 backbone tensors, missing 0" in n and "res5 keeps stride 16" in n for n in result.notes)
    assert any("res5 960ch/16" in n for n in result.notes)
    assert any("red and blue are swapped" in w for w in result.warnings)
    assert "warning: input format is BGR" in render_text(result, config)


def test_coco_dataset_from_disk_trains(tmp_path):
    from tests.smoke.test_data import _write_coco

    _write_coco(tmp_path, "png")
    result = run_smoke(SmokeConfig(data=str(tmp_path), steps=3))
    assert result.steps == 3 and result.nan_inf is None and math.isfinite(result.loss_end)
    assert any(n.startswith(f"data {tmp_path}: 1 images, 2 classes") for n in result.notes)
