import pytest
import torch
import torchvision

from envdoctor.smoke.backbone import MobileNetV3Backbone
from envdoctor.smoke.config import IMAGENET_MEAN_255, IMAGENET_STD_255
from envdoctor.smoke.weights import WeightsError, check_normalization, detect_kind, load_into, read_state_dict

BACKBONE_TENSORS = 308  # parameters + buffers of mobilenet_v3_large().features


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    paths = {}
    imagenet = torchvision.models.mobilenet_v3_large(weights=None)
    paths["imagenet"] = str(root / "mobilenet_v3_large.pth")
    torch.save(imagenet.state_dict(), paths["imagenet"])
    deeplab = torchvision.models.segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None)
    paths["deeplab"] = str(root / "deeplabv3_mobilenet_v3_large.pth")
    torch.save({"model": deeplab.state_dict()}, paths["deeplab"])  # wrapped, like training scripts save
    paths["resnet"] = str(root / "resnet18.pth")
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), paths["resnet"])
    paths["garbage"] = str(root / "garbage.pth")
    with open(paths["garbage"], "wb") as fh:
        fh.write(b"not a checkpoint")
    return paths, imagenet, deeplab


def test_torchvision_imagenet_state_dict_loads_with_counts(checkpoints):
    paths, imagenet, _ = checkpoints
    backbone = MobileNetV3Backbone()
    report = load_into(backbone, paths["imagenet"])
    assert report.kind == "torchvision-imagenet"
    assert (report.loaded, len(report.missing), len(report.shape_mismatch)) == (BACKBONE_TENSORS, 0, 0)
    assert sorted(report.unexpected) == ["classifier.0.bias", "classifier.0.weight", "classifier.3.bias",
                                         "classifier.3.weight"]
    assert torch.equal(backbone.features[5].block[0][0].weight, imagenet.features[5].block[0][0].weight)
    assert "loaded 308 backbone tensors, missing 0, unexpected 4" in report.summary()


def test_deeplab_checkpoint_loads_and_keeps_stride_16(checkpoints):
    paths, _, deeplab = checkpoints
    state = read_state_dict(paths["deeplab"])
    assert detect_kind(state) == "deeplabv3"
    backbone = MobileNetV3Backbone(dilated=True)
    report = load_into(backbone, paths["deeplab"], state)
    head = [k for k in deeplab.state_dict() if not k.startswith("backbone.")]
    assert (report.loaded, len(report.missing), len(report.unexpected)) == (BACKBONE_TENSORS, 0, len(head))
    assert torch.equal(backbone.features[14].block[1][0].weight, deeplab.backbone["14"].block[1][0].weight)
    assert backbone.output_shape()["res5"].stride == 16
    assert "res5 keeps stride 16 (not 32)" in report.summary()


def test_mismatched_file_is_refused_clearly(checkpoints):
    paths, _, _ = checkpoints
    with pytest.raises(WeightsError) as info:
        load_into(MobileNetV3Backbone(), paths["resnet"])
    message = str(info.value)
    assert "does not look like a MobileNetV3-Large checkpoint" in message
    assert "only 0 of 308 backbone tensors matched" in message


def test_unreadable_and_missing_files_are_refused(checkpoints, tmp_path):
    paths, _, _ = checkpoints
    with pytest.raises(WeightsError, match="cannot read weights file"):
        read_state_dict(paths["garbage"])
    with pytest.raises(WeightsError, match="weights file not found"):
        read_state_dict(str(tmp_path / "nope.pth"))


def test_wrong_shapes_count_as_not_loaded(tmp_path):
    state = MobileNetV3Backbone().state_dict()
    state["features.16.0.weight"] = torch.zeros(3, 3, 1, 1)
    path = tmp_path / "bad_shape.pth"
    torch.save(state, path)
    report = load_into(MobileNetV3Backbone(), str(path))
    assert report.loaded == BACKBONE_TENSORS - 1
    assert report.missing == ["features.16.0.weight"]
    assert report.shape_mismatch == ["features.16.0.weight: checkpoint (3, 3, 1, 1), model (960, 160, 1, 1)"]


def test_normalisation_that_matches_torchvision_gives_no_warning():
    assert check_normalization("RGB", IMAGENET_MEAN_255, IMAGENET_STD_255) == []


def test_detectron2_style_bgr_0_255_input_is_warned_about():
    # detectron2's defaults for MSRA ResNets: BGR, mean in BGR order, std 1.
    warnings = check_normalization("BGR", [103.53, 116.28, 123.675], [1.0, 1.0, 1.0])
    assert len(warnings) == 2
    assert "BGR" in warnings[0] and "red and blue are swapped" in warnings[0]
    assert "about 58x larger than in training" in warnings[1]


def test_bgr_with_rgb_ordered_statistics_is_warned_about():
    warnings = check_normalization("BGR", IMAGENET_MEAN_255, IMAGENET_STD_255)
    # The std is nearly the same in both orders; the mean is not.
    assert len(warnings) == 2
    assert warnings[1].startswith("pixel mean [123.675, 116.28, 103.53] in BGR order differs")


def test_unit_range_mean_is_warned_about():
    warnings = check_normalization("RGB", [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert any("looks like a [0,1] mean" in w for w in warnings)
    assert any("about 255x larger" in w for w in warnings)  # dividing 0-255 values by a [0,1] std
