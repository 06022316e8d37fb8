"""Backbones importable by ``--backbone tests.smoke.backbones_for_tests:Name`` in tests."""
from envdoctor.smoke.backbone import HandSplitMobileNetV3, MobileNetV3Backbone


class HandSplit(HandSplitMobileNetV3):
    pass


class Ours(MobileNetV3Backbone):
    pass


class OnlyTwoOutputs(MobileNetV3Backbone):
    def output_shape(self):
        return {k: v for k, v in super().output_shape().items() if k in ("res4", "res5")}

    def forward(self, x):
        return {k: v for k, v in super().forward(x).items() if k in ("res4", "res5")}


class NeedsArguments:
    def __init__(self, depth):
        self.depth = depth


class NoOutputShape:
    def forward(self, x):
        return {}
