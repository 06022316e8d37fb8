"""detectron2 adapter: the smoke-train's MobileNetV3 backbone in detectron2's BACKBONE_REGISTRY.

With detectron2 installed, importing this module registers ``build_mobilenetv3_backbone``,
so a Mask2Former config can say ``MODEL.BACKBONE.NAME: "build_mobilenetv3_backbone"``.
Without detectron2 it imports cleanly and ``AVAILABLE`` is False.
"""
from __future__ import annotations

from typing import Dict

try:
    from detectron2.modeling import BACKBONE_REGISTRY, Backbone, ShapeSpec
    AVAILABLE = True
except ImportError:  # detectron2 is optional; nothing to register without it
    AVAILABLE = False

REGISTERED_NAME = "build_mobilenetv3_backbone"

if AVAILABLE:
    from envdoctor.smoke.backbone import MobileNetV3Backbone

    class D2MobileNetV3(Backbone):
        """res2..res5 with channels and strides measured on the network (see smoke.backbone)."""

        def __init__(self, out_features=("res2", "res3", "res4", "res5"), dilated: bool = False):
            super().__init__()
            self.body = MobileNetV3Backbone(dilated=dilated)
            self._out_features = list(out_features)
            shapes = self.body.output_shape()
            self._out_feature_channels = {k: shapes[k].channels for k in self._out_features}
            self._out_feature_strides = {k: shapes[k].stride for k in self._out_features}

        def forward(self, x) -> Dict[str, object]:
            features = self.body(x)
            return {k: features[k] for k in self._out_features}

        def output_shape(self) -> Dict[str, "ShapeSpec"]:
            return {k: ShapeSpec(channels=self._out_feature_channels[k], stride=self._out_feature_strides[k])
                    for k in self._out_features}

        @property
        def size_divisibility(self) -> int:
            return 32

    if REGISTERED_NAME not in BACKBONE_REGISTRY:
        @BACKBONE_REGISTRY.register()
        def build_mobilenetv3_backbone(cfg, input_shape):
            out_features = cfg.MODEL.get("MOBILENETV3", {}).get("OUT_FEATURES", ("res2", "res3", "res4", "res5"))
            return D2MobileNetV3(out_features=tuple(out_features))
