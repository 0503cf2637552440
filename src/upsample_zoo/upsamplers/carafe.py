"""CARAFE (Wang et al., ICCV 2019): content-aware reassembly of features, in pure PyTorch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from upsample_zoo.errors import ConfigError
from upsample_zoo.upsamplers.base import Upsampler, odd_size
from upsample_zoo.upsamplers.window_ops import reassemble


def carafe_reassemble(x: torch.Tensor, kernels: torch.Tensor, k_up: int, scale: int) -> torch.Tensor:
    """CARAFE's reassembly: output pixel (Y, X) is the k_up x k_up neighbourhood of input pixel
    (Y // scale, X // scale), weighted by ``kernels[:, :, Y, X]`` (shared by all channels).

    ``x`` (N, C, H, W), ``kernels`` (N, k_up^2, scale*H, scale*W) -> (N, C, scale*H, scale*W). Positions
    outside the input read zero, as in mmcv's CUDA op. Computed by :func:`~upsample_zoo.upsamplers.window_ops.
    reassemble` (a streaming sum over shifted views, nothing k_up^2-sized allocated).
    """
    return reassemble(x, kernels, k_up, scale)


def project_reassemble(x: torch.Tensor, proj: nn.Conv2d, kernels: torch.Tensor, k_up: int, scale: int) -> torch.Tensor:
    """``proj(x)`` (a 1x1 conv) reassembled by :func:`carafe_reassemble`, its bias added *after* the reassembly.

    The one home of this rule for every reassembling operator (CARAFE, FADE, SAPA). Reassembly reads zeros
    outside the input, so reassembling ``W x + b`` would weigh ``b`` by the kernel mass that falls inside the
    image: at a corner pixel only 9 of a uniform 5x5 kernel's 25 weights (the bias at 0.36 of its value).
    Added after, a constant bias is a constant everywhere. The weight commutes with the reassembly (kernels are
    shared by all channels), so it runs on the side with fewer channels; both orders give the same output.
    """
    if proj.kernel_size != (1, 1) or proj.groups != 1:
        raise ValueError(f"project_reassemble needs a 1x1 conv with groups=1, got {proj}")
    if proj.out_channels < proj.in_channels:
        y = carafe_reassemble(F.conv2d(x, proj.weight), kernels, k_up, scale)
    else:
        y = F.conv2d(carafe_reassemble(x, kernels, k_up, scale), proj.weight)
    return y if proj.bias is None else y + proj.bias.view(1, -1, 1, 1).to(y.dtype)


class CARAFE(Upsampler):
    """Content-Aware ReAssembly of FEatures (Wang et al., ICCV 2019), then a 1x1 conv to out_channels.

    Kernel prediction: channel compressor (1x1, ``compressed_channels``), content encoder
    (``k_enc`` x ``k_enc`` to scale^2 k_up^2 channels), pixel shuffle, softmax over the k_up^2 weights of
    each output pixel. Reassembly: :func:`carafe_reassemble` (CPU and GPU). Init as mmcv's
    CARAFEPack: xavier-uniform compressor, content encoder N(0, 0.001), so the kernels start near-uniform.

    Reassembly is linear and its kernels are shared across channels, so it commutes with the 1x1 conv's
    weight; :func:`project_reassemble` runs the conv on the side with fewer channels and adds its bias after
    the reassembly (a zero-padded reassembly would fade a bias added before it at the border).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale: int = 2,
        k_up: int = 5,
        k_enc: int = 3,
        compressed_channels: int = 64,
    ) -> None:
        super().__init__(in_channels, out_channels, scale)
        k_up, k_enc = odd_size("CARAFE", "k_up", k_up), odd_size("CARAFE", "k_enc", k_enc)
        if int(compressed_channels) <= 0:
            raise ConfigError(f"CARAFE: compressed_channels must be positive, got {compressed_channels}")
        self.k_up, self.k_enc, self.compressed_channels = int(k_up), int(k_enc), int(compressed_channels)
        self.compressor = nn.Conv2d(in_channels, self.compressed_channels, 1)
        self.encoder = nn.Conv2d(self.compressed_channels, scale * scale * self.k_up**2, self.k_enc,
                                 padding=self.k_enc // 2)
        self.proj = nn.Conv2d(in_channels, out_channels, 1)
        nn.init.xavier_uniform_(self.compressor.weight)
        nn.init.zeros_(self.compressor.bias)
        nn.init.normal_(self.encoder.weight, 0.0, 0.001)
        nn.init.zeros_(self.encoder.bias)

    def kernels(self, x: torch.Tensor) -> torch.Tensor:
        """(N, k_up^2, scale*H, scale*W) reassembly kernels, softmax-normalised (each sums to 1).

        The softmax runs in float32 even under autocast: in bf16 its sums drifted from 1 by up to 0.3%,
        a brightness error that no other operator has.
        """
        mask = F.pixel_shuffle(self.encoder(self.compressor(x)), self.scale)
        return mask.float().softmax(dim=1)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        return project_reassemble(x, self.proj, self.kernels(x).to(x.dtype), self.k_up, self.scale)

    def extra_repr(self) -> str:
        return (f"k_up={self.k_up}, k_enc={self.k_enc}, compressed_channels={self.compressed_channels}, "
                + super().extra_repr())
