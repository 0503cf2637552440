"""FADE (Lu et al., ECCV 2022): Fusing the Assets of Decoder and Encoder, in pure PyTorch.

Follows the official code (github.com/poppinace/fade, ``FADE_L2H.py``, the version its experiments import):
kernels from the "semi-shift" convolution of both features, a softmax over k_up^2, CARAFE reassembly of
the decoder feature, and a gate that mixes in the encoder feature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from upsample_zoo.errors import ConfigError
from upsample_zoo.upsamplers.base import Upsampler, odd_size
from upsample_zoo.upsamplers.carafe import project_reassemble


class FADE(Upsampler):
    """Guided: ``forward(x, output_size, guide)``, ``guide`` = the encoder (skip) feature at the output size.

    - Value: the decoder feature at the output width, ``proj(x)`` (1x1 conv; the official module needs equal
      widths, the U-Net's decoder is twice its skip's), reassembled by
      :func:`~upsample_zoo.upsamplers.carafe.project_reassemble`: the conv's bias is added after the
      zero-padded reassembly, so it is not faded at the border (added before, a corner pixel kept only the
      bias times the kernel mass inside the image).
    - Kernels (semi-shift conv): one shared k_enc x k_enc ``content`` conv runs on the compressed guide at high
      resolution and on the compressed decoder feature at low resolution; the latter is nearest-upsampled and
      added (so the conv's bias counts twice, as in the official code). Softmax over the k_up^2 weights, in
      float32 (as :class:`CARAFE`'s).
    - Gate: ``sigmoid(nearest(1x1(x)))``, one channel from the decoder feature;
      ``out = gate * guide + (1 - gate) * (reassemble(W x) + b)`` (official order: gate 1 = the encoder feature).
    - ``lite=True``: FADE-Lite: the compressors map straight to k_up^2 channels and the content conv is
      depthwise (groups = k_up^2).
    - Init as the official code: xavier-uniform, zero bias (the width conv keeps PyTorch's default).
    """

    requires_guide = True

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2, k_up: int = 5, k_enc: int = 3,
                 embedding_dim: int = 64, lite: bool = False) -> None:
        super().__init__(in_channels, out_channels, scale)
        k_up, k_enc = odd_size("FADE", "k_up", k_up), odd_size("FADE", "k_enc", k_enc)
        if int(embedding_dim) <= 0:
            raise ConfigError(f"FADE: embedding_dim must be positive, got {embedding_dim} (upsampler.embedding_dim)")
        self.k_up, self.k_enc, self.lite = int(k_up), int(k_enc), bool(lite)
        self.guide_channels = out_channels
        k2 = self.k_up**2
        width = k2 if self.lite else int(embedding_dim)
        self.embedding_dim = width
        self.compress_guide = nn.Conv2d(out_channels, width, 1)
        self.compress_x = nn.Conv2d(in_channels, width, 1, bias=False)
        self.content = nn.Conv2d(width, k2, self.k_enc, padding=self.k_enc // 2, groups=k2 if self.lite else 1)
        self.gate = nn.Conv2d(in_channels, 1, 1)
        for conv in (self.compress_guide, self.compress_x, self.content, self.gate):
            nn.init.xavier_uniform_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        self.proj = nn.Conv2d(in_channels, out_channels, 1)

    def _nearest(self, t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, scale_factor=self.scale, mode="nearest")

    def kernels(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """(N, k_up^2, scale*H, scale*W) reassembly kernels, each summing to 1."""
        logits = self.content(self.compress_guide(guide)) + self._nearest(self.content(self.compress_x(x)))
        return logits.float().softmax(dim=1)

    def gate_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, scale*H, scale*W) in (0, 1): the weight of the guide (encoder feature) in the output."""
        return torch.sigmoid(self._nearest(self.gate(x)))

    def upsample(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        decoder = project_reassemble(x, self.proj, self.kernels(x, guide).to(x.dtype), self.k_up, self.scale)
        gate = self.gate_map(x)
        return gate * guide + (1 - gate) * decoder

    def extra_repr(self) -> str:
        return (f"k_up={self.k_up}, k_enc={self.k_enc}, embedding_dim={self.embedding_dim}, lite={self.lite}, "
                + super().extra_repr())
