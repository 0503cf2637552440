"""FreqFusion (Chen et al., TPAMI 2024): frequency-aware feature fusion, in pure PyTorch.

Written from the paper's equations and read against its official code (github.com/Linwei-Chen/FreqFusion,
``FreqFusion.py``, which carries no licence, so none of it is copied here). Three parts, each on the zoo's own
building blocks:

- **ALPF**, an adaptive low-pass filter: 5x5 kernels (softmax, so non-negative and of sum 1) reassemble the
  decoder feature to the output grid, by :func:`~upsample_zoo.upsamplers.carafe.project_reassemble`.
- **AHPF**, an adaptive high-pass filter: 3x3 low-pass kernels on the skip; ``skip - reassemble(skip)`` is its
  high band, added back to the skip (the official ``hr_residual=True``).
- **The offset resampler** (``feature_resample``): DySample-style points
  (:func:`~upsample_zoo.upsamplers.dysample.point_sample`), offsets predicted from both features and their
  local cosine similarities, re-sample the low-passed decoder feature.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from upsample_zoo.errors import ConfigError
from upsample_zoo.upsamplers.base import Upsampler, odd_size
from upsample_zoo.upsamplers.carafe import carafe_reassemble, project_reassemble
from upsample_zoo.upsamplers.dysample import point_sample, subpixel_offsets

# The two configurations the official code ships: the paper's (its SegNeXt ADE20K config, ``LightHamHeadFreqAware``
# with compress_ratio=4, feature_resample=True, hamming_window=False), and the FreqFusion class's own defaults.
PROFILES = {
    "paper": dict(feature_resample=True, hamming_window=False, compress_ratio=4, compressed_channels=None),
    "code": dict(feature_resample=False, hamming_window=True, compress_ratio=None, compressed_channels=64),
}


def normalise_kernels(logits: torch.Tensor, window: torch.Tensor | None) -> torch.Tensor:
    """(N, k^2, H, W) logits -> kernels: softmax over the k^2 taps (float32, as every zoo kernel), times the
    Hamming ``window`` (k^2,) when given, renormalised to sum 1."""
    k = logits.float().softmax(dim=1)
    if window is None:
        return k
    k = k * window.view(1, -1, 1, 1)
    return k / k.sum(dim=1, keepdim=True)


COSINE_EPS = 1e-8  # F.cosine_similarity's: a norm below it is clamped (a zero vector has similarity 0)


def local_cosine_similarity(x: torch.Tensor, dilation: int = 2) -> torch.Tensor:
    """(N, C, H, W) -> (N, 8, H, W): the cosine similarity of each pixel to its 8 neighbours at ``dilation``
    (positions outside the image are zero vectors: similarity 0), in the 3x3 window's order without its centre.

    Each pixel's vector is normalised once, then dotted with its 8 shifted neighbours: what
    ``F.cosine_similarity`` over a 9-times unfolded copy computes, without the copy and its 9 norms per pixel
    (bench row 1 times FreqFusion)."""
    h, w = x.shape[-2:]
    d = dilation
    unit = x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(COSINE_EPS)
    padded = F.pad(unit, [d] * 4)
    sims = [torch.linalg.vecdot(unit, padded[..., d + dy:d + dy + h, d + dx:d + dx + w], dim=1)
            for dy in (-d, 0, d) for dx in (-d, 0, d) if (dy, dx) != (0, 0)]
    return torch.stack(sims, dim=1)


def _largest_divisor_at_most(n: int, cap: int) -> int:
    return max(d for d in range(1, max(1, cap) + 1) if n % d == 0)


class OffsetResampler(nn.Module):
    """FreqFusion's offset generator (official ``LocalSimGuidedSampler``, style 'lp', 'sim_concat' features).

    Each feature (compressed skip at high resolution, compressed decoder feature at low) is GroupNorm-ed and
    concatenated with its 8 local cosine similarities (dilation 2). Offsets, in low-resolution pixels:
    ``(offset(lr) + unshuffle(hr_offset(hr))) * sigmoid(scope(lr) + unshuffle(hr_scope(hr))) + init_pos``, all
    3x3 convs; ``init_pos`` is bilinear upsampling's sub-pixel grid, so zero offsets sample every output pixel
    at its own centre: an identity resampling.
    """

    def __init__(self, channels: int, scale: int, groups: int, kernel: int) -> None:
        super().__init__()
        self.scale, self.groups = scale, groups
        feat = channels + 8
        lr_out, hr_out = 2 * groups * scale * scale, 2 * groups
        self.offset = nn.Conv2d(feat, lr_out, kernel, padding=kernel // 2)
        self.scope = nn.Conv2d(feat, lr_out, kernel, padding=kernel // 2)
        self.hr_offset = nn.Conv2d(feat, hr_out, kernel, padding=kernel // 2)
        self.hr_scope = nn.Conv2d(feat, hr_out, kernel, padding=kernel // 2)
        # the official GroupNorm has channels // 8 groups, which must divide the channels: the largest that does
        norm_groups = _largest_divisor_at_most(channels, channels // 8)
        self.norm_hr = nn.GroupNorm(norm_groups, channels)
        self.norm_lr = nn.GroupNorm(norm_groups, channels)
        self.register_buffer("init_pos", subpixel_offsets(scale, groups))

    def offsets(self, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """(N, 2 * groups * scale^2, h, w) offsets in low-resolution pixels, init_pos included (float32)."""
        dtype = torch.promote_types(hr.dtype, self.offset.weight.dtype)  # float32 under autocast
        with torch.autocast(hr.device.type, enabled=False):
            hr, lr = self.norm_hr(hr.to(dtype)), self.norm_lr(lr.to(dtype))
            hr = torch.cat([hr, local_cosine_similarity(hr)], dim=1)
            lr = torch.cat([lr, local_cosine_similarity(lr)], dim=1)
            s = self.scale
            move = self.offset(lr) + F.pixel_unshuffle(self.hr_offset(hr), s)
            scope = (self.scope(lr) + F.pixel_unshuffle(self.hr_scope(hr), s)).sigmoid()
            return move * scope + self.init_pos

    def forward(self, feature: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        return point_sample(feature, self.offsets(hr, lr), self.scale, self.groups)


class FreqFusion(Upsampler):
    """Guided: ``forward(x, output_size, guide)``, ``guide`` = the skip at the output size.

    Returns FreqFusion's fused feature as its FPN builds it (``hires + lowres``, the Panoptic FPN configuration
    of the paper's PQ table): ``resample(ALPF(proj(x))) + skip + AHPF_high(skip)``. The U-Net then concatenates
    the skip, as for every operator (FADE's output also carries the skip).

    Kernels ("semi-shift" with initial-kernel upsampling, the official ``semi_conv`` and ``comp_feat_upsample``):

    1. ``hr = C_hr(skip)``, ``lr = C_lr(x)``: 1x1 compressors to ``compressed_channels``.
    2. Initial AHPF kernels ``A0 = E_hp(hr)``; ``hr <- 2 hr - reassemble(hr, norm(A0))`` (the compressed skip
       sharpened).
    3. Initial ALPF kernels ``L0 = norm(E_lp(hr))``; ``L = E_lp(hr) + reassemble_up(E_lp(lr), L0)``.
    4. ``A = A0 + reassemble_up(E_hp(lr), norm(L))``.
    5. ALPF = ``norm(L)`` reassembles the decoder feature up; AHPF = ``norm(A)`` low-passes the skip at its own
       resolution, and ``skip - that`` is the high band.

    ``E_lp``, ``E_hp``: 3x3 convs to 25 and 9 logits; ``norm``: softmax (times a Hamming window in the ``code``
    profile, renormalised). Reassembly is zero-padded (mmcv's CUDA op, which the paper's runs used).

    Deviations, each with its reason:

    - The decoder feature is projected to the skip's width first (``proj``, 1x1, its bias after the reassembly, as
      every reassembling operator here): FreqFusion adds the two, and the U-Net's decoder is twice its skip's
      width. The official fusions have equal widths (FPN) or concatenate (SegNeXt).
    - Scale 4 as well as 2: the reassembly, the pixel (un)shuffles and the sub-pixel grid are written for any
      scale; the official resampler asserts 2.
    - Init as the official code's effective one: its ``init_weights`` runs last and re-initialises *every* conv
      xavier-uniform, the resampler's included (so its offsets start at about a low-resolution pixel, not near
      zero), then the two kernel encoders N(0, 0.001).
    """

    requires_guide = True

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2, profile: str = "paper",
                 lowpass_kernel: int = 5, highpass_kernel: int = 3, encoder_kernel: int = 3,
                 resample_groups: int = 4) -> None:
        super().__init__(in_channels, out_channels, scale)
        if profile not in PROFILES:
            raise ConfigError(f"FreqFusion: profile must be one of {sorted(PROFILES)}, got {profile!r} "
                              "(upsampler.profile)")
        p = PROFILES[profile]
        self.profile = profile
        self.k_lp = odd_size("FreqFusion", "lowpass_kernel", lowpass_kernel)
        self.k_hp = odd_size("FreqFusion", "highpass_kernel", highpass_kernel)
        k_enc = odd_size("FreqFusion", "encoder_kernel", encoder_kernel)
        self.guide_channels = out_channels
        width = p["compressed_channels"] or max(1, (in_channels + out_channels) // p["compress_ratio"])
        self.compressed_channels = width
        self.compress_hr = nn.Conv2d(out_channels, width, 1)
        self.compress_lr = nn.Conv2d(in_channels, width, 1)
        self.encode_lp = nn.Conv2d(width, self.k_lp**2, k_enc, padding=k_enc // 2)
        self.encode_hp = nn.Conv2d(width, self.k_hp**2, k_enc, padding=k_enc // 2)
        self.proj = nn.Conv2d(in_channels, out_channels, 1)
        self.resampler = None
        if p["feature_resample"]:
            if int(resample_groups) <= 0 or out_channels % int(resample_groups):
                raise ConfigError(f"FreqFusion: out_channels={out_channels} must be a positive multiple of "
                                  f"resample_groups={resample_groups}; set upsampler.resample_groups=1, or "
                                  "upsampler.profile=code (no resampler)")
            self.resampler = OffsetResampler(width, scale, int(resample_groups), k_enc)
        for name, k in (("window_lp", self.k_lp), ("window_hp", self.k_hp)):
            window = torch.from_numpy(np.outer(np.hamming(k), np.hamming(k))).float().reshape(-1)
            self.register_buffer(name, window if p["hamming_window"] else None)
        for m in self.modules():
            if isinstance(m, nn.Conv2d) and m is not self.proj:
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for m in (self.encode_lp, self.encode_hp):
            nn.init.normal_(m.weight, 0.0, 0.001)

    def _up(self, t: torch.Tensor, kernels: torch.Tensor, k: int) -> torch.Tensor:
        return carafe_reassemble(t, kernels.to(t.dtype), k, self.scale)

    def kernels(self, x: torch.Tensor, guide: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                     torch.Tensor]:
        """(ALPF (N, 25, sH, sW), AHPF (N, 9, sH, sW), the sharpened compressed skip, the compressed x)."""
        hr, lr = self.compress_hr(guide), self.compress_lr(x)
        a0 = self.encode_hp(hr)
        hr = 2 * hr - carafe_reassemble(hr, normalise_kernels(a0, self.window_hp).to(hr.dtype), self.k_hp, 1)
        l_hr = self.encode_lp(hr)
        low = l_hr + self._up(self.encode_lp(lr), normalise_kernels(l_hr, self.window_lp), self.k_lp)
        alpf = normalise_kernels(low, self.window_lp)
        high = a0 + self._up(self.encode_hp(lr), alpf, self.k_lp)
        return alpf, normalise_kernels(high, self.window_hp), hr, lr

    def upsample(self, x: torch.Tensor, guide: torch.Tensor) -> torch.Tensor:
        alpf, ahpf, hr, lr = self.kernels(x, guide)
        decoder = project_reassemble(x, self.proj, alpf.to(x.dtype), self.k_lp, self.scale)
        if self.resampler is not None:
            decoder = self.resampler(decoder, hr, lr)
        high = guide - carafe_reassemble(guide, ahpf.to(guide.dtype), self.k_hp, 1)
        return decoder + guide + high

    def extra_repr(self) -> str:
        return (f"profile={self.profile}, compressed_channels={self.compressed_channels}, "
                + super().extra_repr())
