"""Smoke-train configuration and result: plain data, no torch imports at module level."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

SCHEMA_VERSION = 1

# ImageNet statistics in 0-255 RGB: what torchvision's MobileNetV3 weights were trained
# with (torchvision.transforms._presets.ImageClassification: mean/std of [0,1] RGB x 255).
IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class SizePreset:
    """Model and data sizes. ``tiny`` is sized so a CPU smoke-train on 2 cores takes seconds."""

    image_size: int
    batch_size: int
    hidden_dim: int
    num_queries: int
    enc_layers: int
    dec_layers: int
    num_heads: int
    ffn_dim: int
    train_points: int  # points sampled per mask for matching and the mask losses


SIZES: Dict[str, SizePreset] = {
    "tiny": SizePreset(96, 4, 64, 8, 1, 3, 4, 128, 256),
    "small": SizePreset(192, 4, 128, 20, 3, 6, 8, 512, 1024),
    "base": SizePreset(384, 8, 256, 100, 6, 9, 8, 1024, 12544),
}


@dataclass
class SmokeConfig:
    """Everything one smoke-train needs. Defaults are the CI (CPU) smoke-train."""

    steps: int = 40
    size: str = "tiny"
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:N"
    lr: float = 1e-3
    seed: int = 0
    weights: Optional[str] = None
    backbone: Optional[str] = None  # "package.module:ClassName"
    data: Optional[str] = None  # COCO-format dataset directory
    msda_impl: str = "auto"  # "auto" | "compiled" | "reference"
    amp: str = "auto"  # "auto" | "off" | "bf16" | "fp16"
    threads: int = 0  # torch intra-op threads; 0 = one per available core
    # Normalisation fed to the backbone, in 0-255 units like detectron2's PIXEL_MEAN/STD.
    input_format: str = "RGB"
    pixel_mean: Tuple[float, float, float] = IMAGENET_MEAN_255
    pixel_std: Tuple[float, float, float] = IMAGENET_STD_255
    inject_nan: bool = False  # make the MSDeformAttn output NaN: proves the NaN check fires
    # Several processes (torchrun). gpus: nvidia-smi indices or UUIDs, "2,3".
    gpus: Optional[str] = None
    nproc_per_node: int = 1
    nnodes: str = "1"
    launch_args: List[str] = field(default_factory=list)  # passed to torchrun as given (rendezvous flags)
    # How much the probe loss must fall: end <= start * max_loss_ratio.
    max_loss_ratio: float = 0.8
    profile: bool = False  # time each part of the step (one process only)

    @property
    def preset(self) -> SizePreset:
        return SIZES[self.size]

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["pixel_mean"] = list(self.pixel_mean)
        d["pixel_std"] = list(self.pixel_std)
        return d

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "SmokeConfig":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("pixel_mean", "pixel_std"):
            if key in known:
                known[key] = tuple(float(v) for v in known[key])
        return cls(**known)


@dataclass
class SmokeResult:
    """The verdict of one smoke-train (one process, or all ranks merged)."""

    passed: bool
    reason: str  # plain words; "" when passed
    usage_error: bool = False  # the failure is a wrong input (file, option), not a broken environment
    loss_start: Optional[float] = None
    loss_end: Optional[float] = None
    steps: int = 0
    steps_per_s: Optional[float] = None
    images_per_s: Optional[float] = None
    peak_memory: Optional[int] = None  # bytes: CUDA max allocated, or process peak RSS on CPU
    peak_memory_kind: str = ""
    msda_impl: str = ""  # "compiled" | "reference"
    msda_note: str = ""  # why the reference ran, when it did
    nan_inf: Optional[str] = None  # where the first NaN/Inf was seen, None when none
    params_without_grad: List[str] = field(default_factory=list)
    devices: List[Dict[str, Any]] = field(default_factory=list)  # per rank
    seconds: float = 0.0
    amp: str = "off"
    warnings: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)  # backbone/weights/data facts worth showing
    losses: List[float] = field(default_factory=list)  # training loss per step
    world_size: int = 1
    device_map: List[Dict[str, Any]] = field(default_factory=list)  # nvidia-smi -> CUDA -> UUID rows
    device_problems: List[str] = field(default_factory=list)
    param_hashes: List[str] = field(default_factory=list)  # per rank, after the last step
    # --profile: [{part, label, parent, ms_per_step, share}], mean over profile_steps steps
    profile: List[Dict[str, Any]] = field(default_factory=list)
    profile_steps: int = 0

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["schema_version"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "SmokeResult":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
