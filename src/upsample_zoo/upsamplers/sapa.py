"""SAPA (Lu et al., NeurIPS 2022): Similarity-Aware Point Affiliation, in pure PyTorch.

Follows the official code (github.com/poppinace/sapa, ``SAPA.py`` and its pure-PyTorch reference
``sapa/sapa/forward_check.py``): each high-resolution query (from the guide) is compared by a dot product with
the low-resolution keys in a k_up x k_up window, a softmax over the window makes the kernel, and the kernel
reassembles the decoder feature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from upsample_zoo.errors import ConfigError
from upsample_zoo.upsamplers.base import Upsampler, odd_size
from upsample_zoo.upsamplers.carafe import carafe_reassemble


def channel_layer_norm(x: torch.Tensor, norm: nn.LayerNorm | None = None) -> torch.Tensor:
    """LayerNorm over the channels of (N, C, H, W) (the official code's channels-last nn.LayerNorm)."""
    y = x.permute(0, 2, 3, 1)
    y = norm(y) if norm is not None else F.layer_norm(y, y.shape[-1:])
    return y.permute(0, 3, 1, 2)


def window_similarity(q: torch.Tensor, k: torch.Tensor, k_up: int, scale: int) -> torch.Tensor:
    """q (N, d, sH, sW), k (N, d, H, W) -> (N, k_up^2, sH, sW): q at (Y, X) dot each key in the k_up x k_up
    window around (Y // s, X // s). Keys outside the image read zero (similarity 0), as the official op."""
    n, d, h, w = k.shape
    keys = F.unfold(k, k_up, padding=k_up // 2).view(n, d, k_up * k_up, h, w)
    queries = q.view(n, d, h, scale, w, scale)
    sim = torch.einsum("ndhawb,ndkhw->nkhawb", queries, keys)
    return sim.reshape(n, k_up * k_up, h * scale, w * scale)


class SAPA(Upsampler):
    """Guided: ``forward(x, output_size, guide)``, ``guide`` = the encoder (skip) feature at the output size.

    - SAPA-B (default): q = Linear(LayerNorm(guide)), k = Linear(LayerNorm(x)), both to ``embedding_dim``
      (32, as the paper's logged SegFormer runs; the released file's default is 64); trunc-normal(0.02) init,
      zero bias. No 1/sqrt(d) scaling, as the official code.
    - ``identity=True``: SAPA-I, parameter-free kernels: q = LayerNorm(guide), k = LayerNorm(proj(x)) without
      affine parameters (identity projections need one width: the output's).
    - Kernel: softmax over the k_up^2 window (float32). Value: the decoder feature at the output width,
      ``proj(x)`` (1x1 conv; the official module keeps the decoder's width), reassembled as CARAFE.
    """

    requires_guide = True

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2, k_up: int = 5,
                 embedding_dim: int = 32, qkv_bias: bool = True, identity: bool = False) -> None:
        super().__init__(in_channels, out_channels, scale)
        k_up = odd_size("SAPA", "k_up", k_up)
        if int(embedding_dim) <= 0:
            raise ConfigError(f"SAPA: embedding_dim must be positive, got {embedding_dim} (upsampler.embedding_dim)")
        self.k_up, self.identity = int(k_up), bool(identity)
        self.guide_channels = out_channels
        self.proj = nn.Conv2d(in_channels, out_channels, 1)
        if not self.identity:
            self.embedding_dim = int(embedding_dim)
            self.norm_guide, self.norm_x = nn.LayerNorm(out_channels), nn.LayerNorm(in_channels)
            self.q = nn.Conv2d(out_channels, self.embedding_dim, 1, bias=qkv_bias)
            self.k = nn.Conv2d(in_channels, self.embedding_dim, 1, bias=qkv_bias)
            for conv in (self.q, self.k):
                nn.init.trunc_normal_(conv.weight, std=0.02)
                if conv.bias is not None:
                    nn.init.zeros_(conv.bias)

    def kernels(self, x: torch.Tensor, guide: torch.Tensor, value: torch.Tensor | None = None) -> torch.Tensor:
        """(N, k_up^2, scale*H, scale*W) kernels, each summing to 1."""
        if self.identity:
            value = self.proj(x) if value is None else value
            q, k = channel_layer_norm(guide), channel_layer_norm(value)
        else:
            q = self.q(channel_layer_norm(guide, self.norm_guide))
            k = self.k(channel_layer_norm(x, self.norm_x))
        return window_similarity(q.float(), k.float(), self.k_up, self.scale).softmax(dim=1)

    def upsample(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        value = self.proj(x)
        return carafe_reassemble(value, self.kernels(x, guide, value).to(x.dtype), self.k_up, self.scale)

    def extra_repr(self) -> str:
        dim = "identity" if self.identity else f"embedding_dim={self.embedding_dim}"
        return f"k_up={self.k_up}, {dim}, " + super().extra_repr()
