"""Mask2Former's transformer decoder: learnable queries, masked cross-attention, deep supervision."""
from __future__ import annotations

from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from envdoctor.smoke.pixel_decoder import sine_position_embedding


class MLP(nn.Module):
    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int):
        super().__init__()
        dims = [in_dim] + [hidden] * (layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class DecoderLayer(nn.Module):
    """Masked cross-attention to one feature level, then self-attention, then FFN (Mask2Former order)."""

    def __init__(self, d_model: int, n_heads: int, ffn_dim: int):
        super().__init__()
        self.cross = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d_model, ffn_dim), nn.ReLU(), nn.Linear(ffn_dim, d_model))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3))

    def forward(self, tgt, query_pos, memory, memory_pos, attn_mask):
        attn, _ = self.cross(tgt + query_pos, memory + memory_pos, memory, attn_mask=attn_mask, need_weights=False)
        tgt = self.norms[0](tgt + attn)
        q = tgt + query_pos
        attn, _ = self.self_attn(q, q, tgt, need_weights=False)
        tgt = self.norms[1](tgt + attn)
        return self.norms[2](tgt + self.ffn(tgt))


class MaskedTransformerDecoder(nn.Module):
    def __init__(self, d_model: int, num_classes: int, num_queries: int, n_heads: int, ffn_dim: int,
                 dec_layers: int, mask_dim: int, n_levels: int = 3):
        super().__init__()
        self.n_heads, self.n_levels = n_heads, n_levels
        self.query_feat = nn.Embedding(num_queries, d_model)
        self.query_embed = nn.Embedding(num_queries, d_model)
        self.level_embed = nn.Embedding(n_levels, d_model)
        self.layers = nn.ModuleList(DecoderLayer(d_model, n_heads, ffn_dim) for _ in range(dec_layers))
        self.decoder_norm = nn.LayerNorm(d_model)
        self.class_embed = nn.Linear(d_model, num_classes + 1)  # last class = "no object"
        self.mask_embed = MLP(d_model, d_model, mask_dim, 3)

    def _predict(self, tgt, mask_features, attn_size):
        out = self.decoder_norm(tgt)
        logits = self.class_embed(out)
        masks = torch.einsum("bqc,bchw->bqhw", self.mask_embed(out), mask_features)
        # Masked attention: each query only looks where its current mask says foreground.
        with torch.no_grad():
            small = F.interpolate(masks.float(), size=attn_size, mode="bilinear", align_corners=False)
            blocked = small.sigmoid().flatten(2) < 0.5
            blocked = blocked.unsqueeze(1).repeat(1, self.n_heads, 1, 1).flatten(0, 1)
            # A query with an empty mask would attend to nothing (NaN): let it see everything.
            blocked[blocked.all(-1)] = False
        return logits, masks, blocked

    def forward(self, features: List[torch.Tensor], mask_features: torch.Tensor) -> Dict[str, object]:
        memories, positions, sizes = [], [], []
        for i, feat in enumerate(features[: self.n_levels]):
            sizes.append(feat.shape[-2:])
            positions.append(sine_position_embedding(feat, feat.shape[1] // 2).flatten(2).transpose(1, 2))
            memories.append(feat.flatten(2).transpose(1, 2) + self.level_embed.weight[i].view(1, 1, -1))
        b = mask_features.shape[0]
        query_pos = self.query_embed.weight.unsqueeze(0).expand(b, -1, -1)
        tgt = self.query_feat.weight.unsqueeze(0).expand(b, -1, -1)
        logits, masks, blocked = self._predict(tgt, mask_features, sizes[0])
        predictions = [(logits, masks)]
        for i, layer in enumerate(self.layers):
            lvl = i % self.n_levels
            tgt = layer(tgt, query_pos, memories[lvl], positions[lvl], blocked)
            logits, masks, blocked = self._predict(tgt, mask_features, sizes[(i + 1) % self.n_levels])
            predictions.append((logits, masks))
        final_logits, final_masks = predictions[-1]
        return {
            "pred_logits": final_logits,
            "pred_masks": final_masks,
            "aux_outputs": [{"pred_logits": lg, "pred_masks": mk} for lg, mk in predictions[:-1]],
        }
