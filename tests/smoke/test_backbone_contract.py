import pytest
import torch

from envdoctor.smoke.backbone import HandSplitMobileNetV3, MobileNetV3Backbone, ShapeSpec, plan_stages
from envdoctor.smoke.contract import BackboneSpecError, build_backbone, check_contract


@pytest.fixture(scope="module")
def ours():
    return MobileNetV3Backbone()


@pytest.fixture(scope="module")
def dilated():
    return MobileNetV3Backbone(dilated=True)


def test_stages_are_measured_on_the_network(ours):
    backbone = ours
    shapes = backbone.output_shape()
    assert shapes == {"res2": ShapeSpec(24, 4), "res3": ShapeSpec(40, 8), "res4": ShapeSpec(112, 16),
                      "res5": ShapeSpec(960, 32)}
    assert [(p.start, p.stop) for p in backbone.stages] == [(0, 4), (4, 7), (7, 13), (13, 17)]


def test_dilated_network_keeps_res5_at_stride_16(dilated):
    backbone = dilated
    assert backbone.output_shape()["res5"] == ShapeSpec(960, 16)
    assert backbone.output_shape()["res4"] == ShapeSpec(112, 16)
    assert [(p.start, p.stop) for p in backbone.stages][-1] == (13, 17)


def test_ours_passes_the_contract_check(ours):
    report = check_contract(ours, input_size=128)
    assert report.ok, report.summary()
    assert "contract holds" in report.summary()


def test_dilated_ours_passes_too(dilated):
    assert check_contract(dilated, input_size=128).ok


def test_hand_split_mobilenetv3_is_caught_with_output_and_factor():
    report = check_contract(HandSplitMobileNetV3(), input_size=128)
    assert not report.ok
    by_name = {o.name: o for o in report.outputs}
    # features[0:2] really is stride 2, [2:4] stride 4, [4:7] stride 8: each declared 2x too large.
    assert (by_name["res2"].real_stride, by_name["res3"].real_stride, by_name["res4"].real_stride) == (2, 4, 8)
    text = report.summary()
    assert "res2: declared stride 4, real stride 2 (declared value is 2x too large)" in text
    assert "res3: declared stride 8, real stride 4 (declared value is 2x too large)" in text
    assert "res4: declared stride 16, real stride 8 (declared value is 2x too large)" in text
    assert not any(p.startswith("res5") for p in report.problems)  # [7:17] does end at stride 32


def test_wrong_channels_are_named():
    class WrongChannels(MobileNetV3Backbone):
        def output_shape(self):
            shapes = super().output_shape()
            shapes["res3"] = ShapeSpec(48, 8)
            return shapes

    report = check_contract(WrongChannels(), input_size=64)
    assert report.problems == ["res3: declared 48 channels, real output has 40"]


def test_declared_output_missing_from_forward():
    class Missing(MobileNetV3Backbone):
        def forward(self, x):
            out = super().forward(x)
            del out["res5"]
            return out

    report = check_contract(Missing(), input_size=64)
    assert report.problems == ["res5: declared in output_shape() but forward() does not return it"]


def test_user_backbone_by_module_and_class():
    backbone = build_backbone("tests.smoke.backbones_for_tests:HandSplit")
    assert not check_contract(backbone, 64).ok
    assert check_contract(build_backbone("tests.smoke.backbones_for_tests:Ours"), 64).ok


@pytest.mark.parametrize("spec, message", [
    ("no_colon_here", "must look like package.module:ClassName"),
    ("envdoctor.does_not_exist:X", "cannot import 'envdoctor.does_not_exist'"),
    ("tests.smoke.backbones_for_tests:Nope", "has no attribute 'Nope'"),
    ("tests.smoke.backbones_for_tests:NeedsArguments", "cannot build"),
    ("tests.smoke.backbones_for_tests:NoOutputShape", "has no output_shape()"),
])
def test_bad_backbone_specs_have_clear_messages(spec, message):
    with pytest.raises(BackboneSpecError, match=None) as info:
        build_backbone(spec)
    assert message in str(info.value)


def test_plan_stages_refuses_a_network_that_never_reaches_stride_32():
    features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
                                   torch.nn.Conv2d(8, 8, 3, stride=2, padding=1))
    with pytest.raises(ValueError, match="never reaches stride 8"):
        plan_stages(features)
