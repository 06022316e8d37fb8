import importlib

import pytest


def test_adapter_imports_without_detectron2():
    module = importlib.import_module("envdoctor.smoke.d2_backbone")
    try:
        import detectron2  # noqa: F401
    except ImportError:
        assert module.AVAILABLE is False
    else:
        assert module.AVAILABLE is True


def test_registered_in_detectron2_backbone_registry():
    pytest.importorskip("detectron2")
    from detectron2.config import get_cfg
    from detectron2.modeling import BACKBONE_REGISTRY, ShapeSpec

    from envdoctor.smoke import d2_backbone
    from envdoctor.smoke.contract import check_contract

    assert d2_backbone.REGISTERED_NAME in BACKBONE_REGISTRY
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = d2_backbone.REGISTERED_NAME
    backbone = BACKBONE_REGISTRY.get(cfg.MODEL.BACKBONE.NAME)(cfg, ShapeSpec(channels=3))
    assert {k: (v.channels, v.stride) for k, v in backbone.output_shape().items()} == {
        "res2": (24, 4), "res3": (40, 8), "res4": (112, 16), "res5": (960, 32)}
    assert check_contract(backbone, 64).ok
