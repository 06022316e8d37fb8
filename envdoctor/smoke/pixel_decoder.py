"""Mask2Former's MSDeformAttn pixel decoder: a deformable encoder over res3-res5 plus FPN mask features."""
from __future__ import annotations

import math
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from envdoctor.smoke.backbone import ShapeSpec
from envdoctor.smoke.msda import make_msda


def sine_position_embedding(x: torch.Tensor, num_pos_feats: int) -> torch.Tensor:
    """DETR's normalised sine embedding for a (B, C, H, W) map: returns (B, 2*num_pos_feats, H, W)."""
    b, _, h, w = x.shape
    y_embed = torch.arange(1, h + 1, device=x.device, dtype=torch.float32).view(1, h, 1).expand(b, h, w)
    x_embed = torch.arange(1, w + 1, device=x.device, dtype=torch.float32).view(1, 1, w).expand(b, h, w)
    scale = 2 * math.pi
    y_embed = y_embed / (h + 1e-6) * scale
    x_embed = x_embed / (w + 1e-6) * scale
    dim_t = torch.arange(num_pos_feats, device=x.device, dtype=torch.float32)
    dim_t = 10000 ** (2 * (dim_t // 2) / num_pos_feats)
    pos_x = x_embed[..., None] / dim_t
    pos_y = y_embed[..., None] / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2).to(x.dtype)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(32, channels), channels)


class DeformEncoderLayer(nn.Module):
    def __init__(self, d_model: int, ffn_dim: int, n_levels: int, n_heads: int, n_points: int, impl: str):
        super().__init__()
        self.self_attn = make_msda(d_model, n_levels, n_heads, n_points, impl)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src, pos, reference_points, spatial_shapes, level_start_index):
        # Like Mask2Former (custom_fwd(cast_inputs=float32)), the op runs in fp32 under AMP: sampling
        # locations lose whole pixels in half precision on large maps.
        with torch.autocast(src.device.type, enabled=False):
            attn = self.self_attn((src + pos).float(), reference_points.float(), src.float(), spatial_shapes,
                                  level_start_index)
        src = self.norm1(src + attn)
        src = self.norm2(src + self.linear2(F.relu(self.linear1(src))))
        return src


def reference_points_for(spatial_shapes: List[Tuple[int, int]], device) -> torch.Tensor:
    """Centres of every cell of every level, normalised to [0,1]: (1, sum HW, n_levels, 2)."""
    points = []
    for h, w in spatial_shapes:
        ref_y, ref_x = torch.meshgrid(
            torch.linspace(0.5, h - 0.5, h, device=device) / h,
            torch.linspace(0.5, w - 0.5, w, device=device) / w,
            indexing="ij",
        )
        points.append(torch.stack((ref_x.reshape(-1), ref_y.reshape(-1)), -1))
    ref = torch.cat(points, 0)[None, :, None, :]
    return ref.repeat(1, 1, len(spatial_shapes), 1)


class MSDeformAttnPixelDecoder(nn.Module):
    """Encodes res3-res5 with deformable attention; builds stride-4 mask features from res2 (FPN)."""

    def __init__(self, input_shape: Dict[str, ShapeSpec], conv_dim: int, mask_dim: int, enc_layers: int,
                 n_heads: int, ffn_dim: int, impl: str, n_points: int = 4):
        super().__init__()
        ordered = sorted(input_shape.items(), key=lambda kv: kv[1].stride)
        self.fpn_name, fpn_spec = ordered[0]
        self.in_names = [name for name, _ in ordered[1:]][::-1]  # res5, res4, res3: coarse first
        self.n_levels = len(self.in_names)
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(input_shape[n].channels, conv_dim, 1), _norm(conv_dim)) for n in self.in_names)
        self.level_embed = nn.Parameter(torch.randn(self.n_levels, conv_dim) * 0.02)
        self.layers = nn.ModuleList(
            DeformEncoderLayer(conv_dim, ffn_dim, self.n_levels, n_heads, n_points, impl) for _ in range(enc_layers))
        self.lateral = nn.Sequential(nn.Conv2d(fpn_spec.channels, conv_dim, 1, bias=False), _norm(conv_dim))
        self.output = nn.Sequential(nn.Conv2d(conv_dim, conv_dim, 3, padding=1, bias=False), _norm(conv_dim),
                                    nn.ReLU())
        self.mask_features = nn.Conv2d(conv_dim, mask_dim, 1)
        self.conv_dim = conv_dim

    def inject_nan(self) -> None:
        """Make every MSDeformAttn output NaN, as a broken kernel would: proves the verdict catches it.

        A forward hook on the op's module itself, so the NaN is seen coming out of MSDeformAttn.
        """
        for layer in self.layers:
            layer.self_attn.register_forward_hook(lambda module, inputs, output: output * float("nan"))

    def forward(self, features: Dict[str, torch.Tensor]):
        srcs, pos, shapes = [], [], []
        for lvl, name in enumerate(self.in_names):
            x = self.input_proj[lvl](features[name])
            shapes.append((x.shape[-2], x.shape[-1]))
            srcs.append(x.flatten(2).transpose(1, 2))
            p = sine_position_embedding(x, self.conv_dim // 2).flatten(2).transpose(1, 2)
            pos.append(p + self.level_embed[lvl].view(1, 1, -1))
        src, pos_flat = torch.cat(srcs, 1), torch.cat(pos, 1)
        device = src.device
        spatial_shapes = torch.as_tensor(shapes, dtype=torch.long, device=device)
        level_start = torch.cat((spatial_shapes.new_zeros(1), spatial_shapes.prod(1).cumsum(0)[:-1]))
        ref = reference_points_for(shapes, device).expand(src.shape[0], -1, -1, -1)
        for layer in self.layers:
            src = layer(src, pos_flat, ref, spatial_shapes, level_start)
        b = src.shape[0]
        maps = [m.transpose(1, 2).reshape(b, self.conv_dim, h, w)
                for m, (h, w) in zip(src.split([h * w for h, w in shapes], 1), shapes)]
        finest = maps[-1]  # res3 level, stride 8
        y = self.lateral(features[self.fpn_name])
        y = y + F.interpolate(finest, size=y.shape[-2:], mode="bilinear", align_corners=False)
        mask_features = self.mask_features(self.output(y))
        return mask_features, maps  # maps: coarse (res5) to fine (res3), as the decoder cycles them
