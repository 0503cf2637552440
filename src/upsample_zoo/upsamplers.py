"""The upsampler zoo: one small nn.Module per operator, one shared contract.

Contract (every class): ``__init__(in_channels, out_channels, scale=2, **options)`` and
``forward(x, output_size=None)`` returning exactly ``(N, out_channels, H*scale, W*scale)``, or exactly
``output_size`` when given. Models never ask which upsampler they hold.

Alignment rule (owned by :class:`Upsampler`): a subclass implements only :meth:`Upsampler.upsample`, an
exact ``scale x`` upsampling; ``forward`` then fits that to ``output_size`` by cropping or
replicate-padding the bottom/right edge. So ``up(x, output_size=(2h+1, 2w+1))[..., :2h, :2w] == up(x)``:
output pixel (Y, X) always sits over input pixel (Y // scale, X // scale), the grid of a U-Net's max-pool
skips. Resampling straight to an odd size would stretch the grid by (2h+1)/2h instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from upsample_zoo.errors import ConfigError

SUPPORTED_SCALES = (2, 4)


def conv_output_size(i: int, k: int, s: int = 1, p: int = 0, d: int = 1) -> int:
    """Output side of a convolution: floor((i + 2p - d(k-1) - 1) / s) + 1."""
    return (i + 2 * p - d * (k - 1) - 1) // s + 1


def tconv_output_size(i: int, k: int, s: int = 1, p: int = 0, d: int = 1, output_padding: int = 0) -> int:
    """Output side of a transposed convolution: (i-1)s - 2p + d(k-1) + 1 + output_padding."""
    return (i - 1) * s - 2 * p + d * (k - 1) + 1 + output_padding


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def fit_to_size(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop or replicate-pad the bottom/right edge so that y has spatial ``size``.

    Used by operators whose natural output is exactly ``scale x`` the input: a U-Net skip of odd
    side s comes from floor(s/2) and needs one row or column less.
    """
    h, w = size
    y = y[..., :h, :w]
    ph, pw = h - y.shape[-2], w - y.shape[-1]
    if ph or pw:
        y = F.pad(y, (0, pw, 0, ph), mode="replicate")
    return y


class Upsampler(nn.Module):
    """Shared contract: validation, the target size, and the cost report."""

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2) -> None:
        super().__init__()
        if int(in_channels) <= 0 or int(out_channels) <= 0:
            raise ConfigError(
                f"{type(self).__name__}: channels must be positive, got in_channels={in_channels}, "
                f"out_channels={out_channels}"
            )
        if scale not in SUPPORTED_SCALES:
            raise ConfigError(
                f"{type(self).__name__}: scale={scale} is not supported; use one of {SUPPORTED_SCALES} "
                "(upsampler.scale=2)"
            )
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.scale = int(scale)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        """The operator itself: (N, in_channels, H, W) -> exactly (N, out_channels, scale*H, scale*W)."""
        raise NotImplementedError

    def natural_size(self, x: torch.Tensor) -> tuple[int, int]:
        """(scale*H, scale*W): the only size :meth:`upsample` may return."""
        return x.shape[-2] * self.scale, x.shape[-1] * self.scale

    def forward(self, x: torch.Tensor, output_size: Sequence[int] | None = None) -> torch.Tensor:
        y = self.upsample(x)
        natural = self.natural_size(x)
        if tuple(y.shape[-2:]) != natural:
            raise RuntimeError(
                f"{type(self).__name__}.upsample made {tuple(y.shape[-2:])} from {tuple(x.shape[-2:])}, not exactly "
                f"scale={self.scale} x {natural}; the alignment rule needs an exact scale x output"
            )
        size = self.target_size(x, output_size)
        return y if size == natural else fit_to_size(y, size)

    def target_size(self, x: torch.Tensor, output_size: Sequence[int] | None) -> tuple[int, int]:
        if output_size is None:
            return x.shape[-2] * self.scale, x.shape[-1] * self.scale
        h, w = (int(v) for v in tuple(output_size)[-2:])
        if h <= 0 or w <= 0:
            raise ValueError(f"output_size must be positive, got {tuple(output_size)}")
        return h, w

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        return f"{self.in_channels}->{self.out_channels}, scale={self.scale}, params={self.num_parameters()}"


class InterpConv(Upsampler):
    """Parameter-free resampling, then a 1x1 conv that only changes channels (mmseg's InterpConv)."""

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2, mode: str = "bilinear") -> None:
        super().__init__(in_channels, out_channels, scale)
        if mode not in ("nearest", "bilinear", "bicubic"):
            raise ConfigError(f"InterpConv: unknown mode {mode!r}; use nearest, bilinear or bicubic")
        self.mode = mode
        self.proj = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        align = None if self.mode == "nearest" else False
        # Project first when it shrinks channels: the same result (1x1 conv and linear resampling
        # commute), with fewer channels to resample.
        if self.out_channels < self.in_channels and self.mode != "bicubic":
            return F.interpolate(self.proj(x), size=self.natural_size(x), mode=self.mode, align_corners=align)
        return self.proj(F.interpolate(x, size=self.natural_size(x), mode=self.mode, align_corners=align))

    def extra_repr(self) -> str:
        return f"mode={self.mode}, " + super().extra_repr()


class ResizeConv(Upsampler):
    """Resampling, then a k x k conv (Odena, Dumoulin, Olah 2016, "Deconvolution and Checkerboard Artifacts")."""

    def __init__(
        self, in_channels: int, out_channels: int, scale: int = 2, mode: str = "nearest", kernel_size: int = 3
    ) -> None:
        super().__init__(in_channels, out_channels, scale)
        if kernel_size <= 0 or kernel_size % 2 == 0:
            raise ConfigError(f"ResizeConv: kernel_size must be odd and positive, got {kernel_size}")
        self.mode = mode
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        align = None if self.mode == "nearest" else False
        return self.conv(F.interpolate(x, size=self.natural_size(x), mode=self.mode, align_corners=align))

    def extra_repr(self) -> str:
        return f"mode={self.mode}, " + super().extra_repr()


class TransposedConv(Upsampler):
    """ConvTranspose2d. Defaults from scale: kernel 2*scale, stride scale, padding scale/2 (even overlap).

    ``strict=True`` (every zoo config) requires a geometry that maps each side i to exactly scale * i, and
    ``output_size`` follows the zoo's alignment rule like every operator. With ``strict=False`` any geometry
    is accepted (the seeds' worked examples use stride 1 and 4), and ``output_size`` is honoured through
    :func:`tconv_output_size`: the missing rows/columns become ``output_padding``, exactly as the formula
    says (``nn.ConvTranspose2d(output_size=...)`` semantics).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        scale: int = 2,
        kernel_size: int | Sequence[int] | None = None,
        stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] | None = None,
        output_padding: int | Sequence[int] = 0,
        dilation: int | Sequence[int] = 1,
        bias: bool = True,
        strict: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, scale)
        self.kernel_size = _pair(2 * scale if kernel_size is None else kernel_size)
        self.stride = _pair(scale if stride is None else stride)
        self.padding = _pair(scale // 2 if padding is None else padding)
        self.output_padding = _pair(output_padding)
        self.dilation = _pair(dilation)
        self.strict = bool(strict)
        if min(self.kernel_size) <= 0 or min(self.stride) <= 0 or min(self.padding) < 0:
            raise ConfigError(
                f"TransposedConv: kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding} must be positive (padding >= 0)"
            )
        if strict:
            # The zoo contract: this geometry must map every side i to exactly scale * i.
            for i in (1, 2, 7):
                got = tuple(tconv_output_size(i, k, st, p, d, op) for k, st, p, d, op in zip(
                    self.kernel_size, self.stride, self.padding, self.dilation, self.output_padding))
                if got != (scale * i, scale * i):
                    raise ConfigError(
                        f"TransposedConv: kernel_size={self.kernel_size}, stride={self.stride}, "
                        f"padding={self.padding}, output_padding={self.output_padding} upsamples {i} px to "
                        f"{got}, not scale={scale} x; fix the geometry (or use upsampler=tconv, which "
                        "derives it from scale)"
                    )
        self.tconv = nn.ConvTranspose2d(
            in_channels,
            out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            output_padding=self.output_padding,
            dilation=self.dilation,
            bias=bias,
        )

    @property
    def weight(self) -> torch.Tensor:
        return self.tconv.weight

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        return self.tconv(x)  # the configured output_padding: exactly scale x (checked in strict mode)

    def forward(self, x: torch.Tensor, output_size: Sequence[int] | None = None) -> torch.Tensor:
        if self.strict:
            return super().forward(x, output_size)
        # Free geometry (the seeds' worked examples): nn.ConvTranspose2d's own output_size semantics, where
        # the missing rows/columns become output_padding and an unreachable size is an error.
        size = None if output_size is None else list(self.target_size(x, output_size))
        return self.tconv(x, output_size=size)

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"output_padding={self.output_padding}, " + super().extra_repr()
        )


class PixelShuffleUp(Upsampler):
    """k x k conv to out*scale^2 channels, then PixelShuffle (Shi et al. 2016).

    With ``icnr=True`` the conv is initialised with ICNR (Aitken et al. 2017): all scale^2 sub-pixel
    kernels of an output channel start equal, so at init the layer equals conv + nearest upsampling.
    """

    def __init__(
        self, in_channels: int, out_channels: int, scale: int = 2, kernel_size: int = 3, icnr: bool = False
    ) -> None:
        super().__init__(in_channels, out_channels, scale)
        if kernel_size <= 0 or kernel_size % 2 == 0:
            raise ConfigError(f"PixelShuffleUp: kernel_size must be odd and positive, got {kernel_size}")
        self.icnr = bool(icnr)
        self.conv = nn.Conv2d(in_channels, out_channels * scale * scale, kernel_size, padding=kernel_size // 2)
        self.shuffle = nn.PixelShuffle(scale)
        if self.icnr:
            self.reset_icnr()

    @torch.no_grad()
    def reset_icnr(self) -> None:
        # Initialise one kernel per output channel as a plain conv would be, then copy it to the
        # scale^2 sub-pixel positions. PixelShuffle reads channel c*r^2 + i as sub-position i of c.
        r2 = self.scale * self.scale
        base = nn.Conv2d(self.in_channels, self.out_channels, self.conv.kernel_size, padding=self.conv.padding)
        self.conv.weight.copy_(base.weight.repeat_interleave(r2, dim=0))
        self.conv.bias.copy_(base.bias.repeat_interleave(r2, dim=0))

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv(x))

    def extra_repr(self) -> str:
        return f"icnr={self.icnr}, " + super().extra_repr()


def upsampler_parameters(module: nn.Module) -> int:
    """Parameters held by the upsamplers inside a model (the cost the comparison is about)."""
    return sum(m.num_parameters() for m in module.modules() if isinstance(m, Upsampler))


__all__ = [
    "SUPPORTED_SCALES",
    "InterpConv",
    "PixelShuffleUp",
    "ResizeConv",
    "TransposedConv",
    "Upsampler",
    "conv_output_size",
    "fit_to_size",
    "tconv_output_size",
    "upsampler_parameters",
]



# ---- learned content-aware upsamplers (issue 9) ----------------------------------------------------

def carafe_reassemble(x: torch.Tensor, kernels: torch.Tensor, k_up: int, scale: int) -> torch.Tensor:
    """CARAFE's reassembly in pure PyTorch: output pixel (Y, X) is the k_up x k_up neighbourhood of input
    pixel (Y // scale, X // scale), weighted by ``kernels[:, :, Y, X]`` (shared by all channels).

    ``x`` (N, C, H, W), ``kernels`` (N, k_up^2, scale*H, scale*W) -> (N, C, scale*H, scale*W). Positions
    outside the input read zero, as in mmcv's CUDA op. The neighbourhoods come from ``F.unfold`` once per
    *input* pixel (not per output pixel), so the memory is C k_up^2 H W, not C k_up^2 s^2 H W.
    """
    n, c, h, w = x.shape
    k2 = k_up * k_up
    cols = F.unfold(x, k_up, padding=k_up // 2).view(n, c, k2, h * w).permute(0, 3, 1, 2)  # (n, hw, c, k2)
    m = kernels.view(n, k2, h, scale, w, scale).permute(0, 2, 4, 1, 3, 5).reshape(n, h * w, k2, scale * scale)
    out = torch.matmul(cols, m)  # (n, hw, c, s^2): one (c x k2) @ (k2 x s^2) product per input pixel
    return out.view(n, h, w, c, scale, scale).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h * scale, w * scale)


class CARAFE(Upsampler):
    """Content-Aware ReAssembly of FEatures (Wang et al., ICCV 2019), then a 1x1 conv to out_channels.

    Kernel prediction: channel compressor (1x1, ``compressed_channels``), content encoder
    (``k_enc`` x ``k_enc`` to scale^2 k_up^2 channels), pixel shuffle, softmax over the k_up^2 weights of
    each output pixel. Reassembly: :func:`carafe_reassemble` (``F.unfold``, CPU and GPU). Init as mmcv's
    CARAFEPack: xavier-uniform compressor, content encoder N(0, 0.001), so the kernels start near-uniform.

    Reassembly is linear and its kernels are shared across channels, so it commutes with the 1x1 conv's
    weight (the bias is added after); when the conv shrinks channels it runs first, on fewer channels.
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
        for name, k in (("k_up", k_up), ("k_enc", k_enc)):
            if int(k) <= 0 or int(k) % 2 == 0:
                raise ConfigError(f"CARAFE: {name} must be odd and positive, got {k} (upsampler.{name})")
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
        kernels = self.kernels(x).to(x.dtype)
        if self.out_channels < self.in_channels:
            # The bias is added after: reassembly reads zeros outside the input, where W x + b would read b.
            y = carafe_reassemble(F.conv2d(x, self.proj.weight), kernels, self.k_up, self.scale)
            y = y + self.proj.bias.view(1, -1, 1, 1)
        else:
            y = self.proj(carafe_reassemble(x, kernels, self.k_up, self.scale))
        return y

    def extra_repr(self) -> str:
        return (f"k_up={self.k_up}, k_enc={self.k_enc}, compressed_channels={self.compressed_channels}, "
                + super().extra_repr())


class DySample(Upsampler):
    """DySample (Liu et al., ICCV 2023, "Learning to Upsample by Learning to Sample"), 'lp' style, then a
    1x1 conv to out_channels.

    A 1x1 conv predicts 2 * groups * scale^2 offsets per input pixel, scaled by 0.25 (static scope) or by
    0.5 sigmoid(a learned 1x1 scope conv) (``dyscope=True``), plus the initial-position bias ``init_pos``
    (the sub-pixel positions of bilinear upsampling); pixel shuffle turns them into one sampling point per
    output pixel and group, and ``F.grid_sample`` (bilinear, border padding) samples the input. Structure
    and init follow the official implementation: offset conv N(0, 0.001) with zero bias, scope conv zero.
    With zero offsets it is exactly bilinear upsampling (align_corners=False).
    """

    def __init__(
        self, in_channels: int, out_channels: int, scale: int = 2, groups: int = 4, dyscope: bool = False
    ) -> None:
        super().__init__(in_channels, out_channels, scale)
        if int(groups) <= 0 or in_channels % int(groups):
            raise ConfigError(
                f"DySample: in_channels={in_channels} must be a positive multiple of groups={groups} (each "
                "group of channels shares one sampling grid); set upsampler.groups to a divisor of every "
                "decoder width, e.g. upsampler.groups=1"
            )
        self.groups, self.dyscope = int(groups), bool(dyscope)
        n_offsets = 2 * self.groups * scale * scale
        self.offset = nn.Conv2d(in_channels, n_offsets, 1)
        nn.init.normal_(self.offset.weight, 0.0, 0.001)
        nn.init.zeros_(self.offset.bias)
        if self.dyscope:
            self.scope = nn.Conv2d(in_channels, n_offsets, 1, bias=False)
            nn.init.zeros_(self.scope.weight)
        self.register_buffer("init_pos", self._init_pos())
        self.proj = nn.Conv2d(in_channels, out_channels, 1)

    def _init_pos(self) -> torch.Tensor:
        """(1, 2 * groups * scale^2, 1, 1): the (x, y) offset, in input pixels, of each sub-pixel from its
        input pixel's centre, e.g. +-0.25 at scale 2; channel layout (xy, group, sub-pixel i*scale + j)."""
        s = self.scale
        h = torch.arange((-s + 1) / 2, (s - 1) / 2 + 1) / s
        return torch.stack(torch.meshgrid([h, h], indexing="ij")).transpose(1, 2).repeat(
            1, self.groups, 1).reshape(1, -1, 1, 1)

    def offsets(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 2 * groups * scale^2, H, W) sampling offsets in input pixels, init_pos included, in float32."""
        x = x.float()

        def conv1x1(conv: nn.Conv2d) -> torch.Tensor:  # float32 whatever the parameters' dtype
            return F.conv2d(x, conv.weight.float(), None if conv.bias is None else conv.bias.float())

        init_pos = self.init_pos.float()
        if self.dyscope:
            return conv1x1(self.offset) * conv1x1(self.scope).sigmoid() * 0.5 + init_pos
        return conv1x1(self.offset) * 0.25 + init_pos

    def positions(self, x: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        """(N * groups, scale*H, scale*W, 2) float32 (x, y) sampling positions in input pixels (0 = the
        input's left/top edge), as ``grid_sample`` reads them once normalised. ``offset`` defaults to
        :meth:`offsets`.

        Coordinates and offsets are float32 with autocast off: in bf16 (8 mantissa bits) a position near
        256 px is off by up to 0.75 px, and the +-0.25 initial offsets vanish past 64 px.
        """
        with torch.autocast(x.device.type, enabled=False):
            offset = (self.offsets(x) if offset is None else offset).float()
        b, _, h, w = offset.shape
        s, g = self.scale, self.groups
        ys = torch.arange(h, device=x.device, dtype=torch.float32) + 0.5
        xs = torch.arange(w, device=x.device, dtype=torch.float32) + 0.5
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        pos = torch.stack([gx, gy]).view(1, 2, 1, h, w) + offset.view(b, 2, g * s * s, h, w)
        pos = F.pixel_shuffle(pos.reshape(b, -1, h, w), s).view(b, 2, g, s * h, s * w)
        return pos.permute(0, 2, 3, 4, 1).reshape(b * g, s * h, s * w, 2)

    def sample(self, x: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        """Sample x (N, C, H, W) at :meth:`positions`: (N, C, scale*H, scale*W), in x's dtype."""
        b, _, h, w = x.shape
        pos = self.positions(x, offset)
        grid = 2 * pos / torch.tensor([w, h], dtype=torch.float32, device=x.device) - 1
        with torch.autocast(x.device.type, enabled=False):
            out = F.grid_sample(x.float().reshape(b * self.groups, -1, h, w), grid, mode="bilinear",
                                align_corners=False, padding_mode="border")
        return out.view(b, -1, self.scale * h, self.scale * w).to(x.dtype)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.sample(x))

    def extra_repr(self) -> str:
        return f"groups={self.groups}, dyscope={self.dyscope}, " + super().extra_repr()


class BilinearAdditive(Upsampler):
    """Bilinear additive upsampling (Wojna et al. 2017, "The Devil is in the Decoder"), then a k x k conv.

    Bilinear resampling (align_corners=False), then the sum of every in/out consecutive channels: no
    parameters. The conv (out -> out, 3x3 by default) is the one the paper's decoder puts after it.
    Summing and resampling are both linear, so the channels are summed first (same result, less work).
    """

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2, kernel_size: int = 3) -> None:
        super().__init__(in_channels, out_channels, scale)
        if in_channels % out_channels:
            raise ConfigError(
                f"BilinearAdditive: in_channels={in_channels} must be a multiple of out_channels={out_channels} "
                "(it sums groups of in/out consecutive channels); use a model whose decoder halves the width, "
                "or another upsampler"
            )
        if kernel_size <= 0 or kernel_size % 2 == 0:
            raise ConfigError(f"BilinearAdditive: kernel_size must be odd and positive, got {kernel_size}")
        self.group = in_channels // out_channels
        self.conv = nn.Conv2d(out_channels, out_channels, kernel_size, padding=kernel_size // 2)

    def resample(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The parameter-free part: channel-group sums, bilinearly resampled to ``size``."""
        n, _, h, w = x.shape
        x = x.reshape(n, self.out_channels, self.group, h, w).sum(dim=2)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def upsample(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.resample(x, self.natural_size(x)))

    def extra_repr(self) -> str:
        return f"group={self.group}, " + super().extra_repr()


__all__ += ["BilinearAdditive", "CARAFE", "DySample", "carafe_reassemble"]
