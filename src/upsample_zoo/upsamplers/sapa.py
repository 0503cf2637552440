"""SAPA (Lu et al., NeurIPS 2022): Similarity-Aware Point Affiliation, in pure PyTorch.

Follows the official experiment module (github.com/poppinace/sapa, ``SAPAExp.py``, the class its logged
SegFormer runs build: ``segformer/*.log``, ``upsample_mode='lca_exp'``) and the pure-PyTorch reference of its
CUDA ops (``sapa/sapa/forward_check.py``): each high-resolution query (from the guide) is compared by a dot
product with the low-resolution keys in a k_up x k_up window, a softmax over the window makes the kernel, and
the kernel reassembles the (LayerNorm-ed, width-adapted) decoder feature.
"""

from __future__ import annotations

import torch
from torch import nn

from upsample_zoo.errors import ConfigError
from upsample_zoo.upsamplers.base import Upsampler, odd_size
from upsample_zoo.upsamplers.carafe import carafe_reassemble, project_reassemble
from upsample_zoo.upsamplers.window_ops import window_dot


def channel_layer_norm(x: torch.Tensor, norm: nn.LayerNorm | None = None) -> torch.Tensor:
    """LayerNorm over the channels of (N, C, H, W): what the official code's channels-last nn.LayerNorm computes
    (biased variance, its eps and affine parameters), in place in NCHW: the permutes to channels-last and back
    would cost two strided copies of the tensor."""
    eps = norm.eps if norm is not None else 1e-5
    centred = x - x.mean(dim=1, keepdim=True)  # two passes: var_mean over dim 1 is the slow path on CPU
    y = centred * torch.rsqrt(centred.square().mean(dim=1, keepdim=True) + eps)
    if norm is not None and norm.elementwise_affine:
        y = y * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1)
    return y


def window_similarity(q: torch.Tensor, k: torch.Tensor, k_up: int, scale: int) -> torch.Tensor:
    """q (N, d, sH, sW), k (N, d, H, W) -> (N, k_up^2, sH, sW): q at (Y, X) dot each key in the k_up x k_up
    window around (Y // s, X // s). Keys outside the image read zero (similarity 0), as the official op.
    Computed by :func:`~upsample_zoo.upsamplers.window_ops.window_dot` (no k_up^2-sized copy of the keys)."""
    return window_dot(q, k, k_up, scale)


class SAPA(Upsampler):
    """Guided: ``forward(x, output_size, guide)``, ``guide`` = the encoder (skip) feature at the output size.

    As ``SAPAExp(dim_y=out_channels, dim_x=in_channels, out_dim=out_channels, q_mode='encoder_only',
    v_embed=False)``, the SegFormer logs' settings (y = the guide, x = the decoder feature):

    - ``x_ = norm_x(x)``, ``y_ = norm_y(guide)``: LayerNorms over the channels (affine, weight 1, bias 0).
    - SAPA-B (default): ``q = q(y_)``, ``k = k(x_)``, 1x1 projections to ``embedding_dim`` (32, as the logged
      runs; the released file's default is 64). No 1/sqrt(d) scaling, as the official code.
    - Value: where the widths differ (the U-Net's decoder is twice its skip's), ``v(x_)``: a 1x1 projection of
      the *LayerNorm-ed* decoder feature to out_channels (SAPAExp builds ``v`` when ``out_dim != dim_x``); at
      equal widths the raw decoder feature ``x``, as SAPAExp without ``v``.
    - Init as SAPAExp ``_init_weights``: trunc-normal(std 0.02) weights and zero biases for q, k and v.
    - Kernel: softmax over the k_up^2 window (float32); reassembly as CARAFE, zero padded (the official op).

    Deviations, each with its reason:

    - v's bias is added *after* the reassembly (:func:`~upsample_zoo.upsamplers.carafe.project_reassemble`,
      as every reassembling operator here); SAPAExp reassembles ``v(x_)`` with its bias, whose zero-padded
      reassembly weighs the bias by the kernel mass inside the image (0.36 at a corner pixel with uniform 5x5
      kernels). Identical at init (zero bias) and wherever the window lies inside the image.
    - ``identity=True``: SAPA-I, no q/k projections. SAPAExp.py has no identity mode (the logs' ``LCAExp`` has an
      unreleased ``embed`` flag); the paper's form is ``q = y_``, ``k = x_``, which needs equal widths. Here
      ``q = LN(guide)`` and ``k = LN(value)``, with LayerNorms without affine parameters (the kernels have no
      parameters; before v the affine would be redundant with v's weight): at equal widths the value is ``x``,
      so ``k = LN(x)`` is the paper's form (its LayerNorms at their init). At unequal widths the official code
      has no parameter-free map from the decoder's width to the guide's, so the keys read the learned ``v``
      (``LN(v(LN(x)))``), the one place where SAPA-I's kernels depend on a learned weight. Smoke comparison
      (U-Net base 16, depth 3, voc_synthetic, 250 AdamW steps, CPU, seeds 0/1; test mIoU): these keys 0.417 /
      0.368; the previous ``LN(proj(x))`` keys 0.388 / 0.396; fixed parameter-free keys ``LN(mean of channel
      groups of LN(x))`` (not in the zoo) 0.468 / 0.436. Seed spread at this budget is 0.02-0.05 (docs/usage.md).
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
        self.embedding_dim = None if self.identity else int(embedding_dim)
        self.norm_x = self.norm_y = self.q = self.k = self.v = None
        if not self.identity:
            self.norm_y, self.norm_x = nn.LayerNorm(out_channels), nn.LayerNorm(in_channels)
            self.q = nn.Conv2d(out_channels, self.embedding_dim, 1, bias=qkv_bias)
            self.k = nn.Conv2d(in_channels, self.embedding_dim, 1, bias=qkv_bias)
        if in_channels != out_channels:
            self.v = nn.Conv2d(in_channels, out_channels, 1, bias=qkv_bias)
        for conv in (self.q, self.k, self.v):
            if conv is not None:
                nn.init.trunc_normal_(conv.weight, std=0.02)
                if conv.bias is not None:
                    nn.init.zeros_(conv.bias)

    def normed_x(self, x: torch.Tensor) -> torch.Tensor:
        """``x_``: the decoder feature LayerNorm-ed over its channels (no affine parameters in SAPA-I)."""
        return channel_layer_norm(x, self.norm_x)

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """The feature the kernels reassemble, at out_channels, bias included: ``v(x_)``, or ``x`` at equal widths."""
        return x if self.v is None else self.v(self.normed_x(x))

    def kernels(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        """(N, k_up^2, scale*H, scale*W) kernels, each summing to 1."""
        if self.identity:
            q, k = channel_layer_norm(guide), channel_layer_norm(self.value(x))
        else:
            q, k = self.q(channel_layer_norm(guide, self.norm_y)), self.k(self.normed_x(x))
        return window_similarity(q.float(), k.float(), self.k_up, self.scale).softmax(dim=1)

    def upsample(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        kernels = self.kernels(x, guide).to(x.dtype)
        if self.v is None:
            return carafe_reassemble(x, kernels, self.k_up, self.scale)
        return project_reassemble(self.normed_x(x), self.v, kernels, self.k_up, self.scale)

    def extra_repr(self) -> str:
        dim = "identity" if self.identity else f"embedding_dim={self.embedding_dim}"
        return f"k_up={self.k_up}, {dim}, " + super().extra_repr()
