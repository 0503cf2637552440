"""The zoo's contract, the seeds' worked examples, and the output-size formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from upsample_zoo.errors import ConfigError
from upsample_zoo.upsamplers import (
    InterpConv,
    PixelShuffleUp,
    TransposedConv,
    Upsampler,
    conv_output_size,
    tconv_output_size,
)
from upsample_zoo.upsamplers.interp import keys_cubic_phases, resample
from upsample_zoo.zoo import create_upsampler

from ..helpers.zoo import ZOO


# 8 -> 4: in != out, and divisible as dysample (groups=4) and bilinear_additive (in % out == 0) require
def _zoo(tmp_path, name: str, scale: int = 2, cin: int = 8, cout: int = 4) -> Upsampler:
    """The operator as the library builds it (the same factory the models' configs resolve to)."""
    return create_upsampler(name, cin, cout, scale=scale)


def call(up: Upsampler, x: torch.Tensor, output_size=None) -> torch.Tensor:
    """up(x, output_size), with a guide for a guided operator: one fixed random high-resolution feature per
    input shape, cropped to the output size (so a larger output only adds guide rows at the bottom/right)."""
    if not up.requires_guide:
        return up(x) if output_size is None else up(x, output_size=output_size)
    h, w = output_size or up.natural_size(x)
    s = up.scale
    big = torch.randn(x.shape[0], up.guide_channels, s * x.shape[-2] + 2 * s, s * x.shape[-1] + 2 * s,
                      generator=torch.Generator().manual_seed(7))
    return up(x, output_size=(h, w), guide=big[..., :h, :w])


# ---- formulas ---------------------------------------------------------------------------------

@pytest.mark.parametrize("k,s,p,d", [(k, s, p, d) for k in (1, 2, 3, 5) for s in (1, 2, 3) for p in (0, 1, 2)
                                     for d in (1, 2) if p < k * d])
def test_conv_formula_matches_conv2d(k, s, p, d):
    conv = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
    for i in range(max(1, d * (k - 1) + 1 - 2 * p), 14):
        assert conv(torch.zeros(1, 1, i, i)).shape[-1] == conv_output_size(i, k, s, p, d)


@pytest.mark.parametrize("k,s,p,d,op", [(k, s, p, d, op) for k in (1, 2, 3, 4, 5) for s in (1, 2, 3)
                                        for p in (0, 1) for d in (1, 2) for op in range(max(s, d))
                                        if op < max(s, d) and (op < s or op < d)])
def test_tconv_formula_matches_convtranspose2d(k, s, p, d, op):
    tconv = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, dilation=d, output_padding=op)
    for i in range(1, 9):
        want = tconv_output_size(i, k, s, p, d, op)
        if want <= 0:
            continue
        assert tconv(torch.zeros(1, 1, i, i)).shape[-1] == want


# ---- the seeds' worked examples, through TransposedConv with explicit geometry --------------------

X = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).reshape(1, 1, 2, 2)
K = torch.tensor([[4.0, 7.0], [2.0, 2.0]]).reshape(1, 1, 2, 2)


def _tconv(k=2, s=1, p=0, cin=1, cout=1, weight=K) -> TransposedConv:
    t = TransposedConv(cin, cout, kernel_size=k, stride=s, padding=p, bias=False, strict=False)
    with torch.no_grad():
        t.tconv.weight.copy_(weight)
    return t


def test_seed_basic_example():
    assert torch.equal(_tconv()(X)[0, 0], torch.tensor([[0.0, 4, 7], [8, 28, 23], [4, 10, 6]]))


def test_seed_padding_removes_outer_ring():
    assert torch.equal(_tconv(p=1)(X)[0, 0], torch.tensor([[28.0]]))


def test_seed_stride_4_places_kernels_apart():
    want = torch.tensor([[0.0, 0, 0, 0, 4, 7], [0, 0, 0, 0, 2, 2], [0, 0, 0, 0, 0, 0],
                         [0, 0, 0, 0, 0, 0], [8, 14, 0, 0, 12, 21], [4, 4, 0, 0, 6, 6]])
    assert torch.equal(_tconv(s=4)(X)[0, 0], want)


def test_seed_two_channel_example():
    x = torch.tensor([[[0, 1.0], [2.0, 3.0]], [[4, 5], [7, 8]]]).reshape(1, 2, 2, 2)
    k = torch.tensor([[[0.0, 1.0], [2.0, 3.0]], [[4, 5], [2, 3]]]).reshape(2, 1, 2, 2)
    out = _tconv(cin=2, weight=k)(x)
    assert torch.equal(out[0, 0], torch.tensor([[16.0, 40, 26], [36, 93, 61], [18, 49, 33]]))


def test_seed_2x2_k3_s2_gives_5x5():
    t = TransposedConv(1, 1, kernel_size=3, stride=2, padding=0, strict=False)
    assert t(torch.randn(1, 1, 2, 2)).shape[-2:] == (5, 5)


def test_seed_conv_then_matching_tconv_restores_16():
    x = torch.rand(1, 10, 16, 16)
    conv = nn.Conv2d(10, 20, kernel_size=5, padding=2, stride=3)
    tconv = TransposedConv(20, 10, kernel_size=5, stride=3, padding=2, strict=False)
    assert conv(x).shape[-1] == 6
    assert tconv(conv(x)).shape == x.shape


def test_seed_output_size_12_6_11_and_12():
    x = torch.randn(1, 16, 12, 12)
    down = nn.Conv2d(16, 16, 3, stride=2, padding=1)
    up = TransposedConv(16, 16, kernel_size=3, stride=2, padding=1, strict=False)
    y = down(x)
    assert y.shape[-1] == 6
    assert up(y).shape[-1] == 11
    assert up(y, output_size=x.shape).shape[-2:] == (12, 12)
    # and it is exactly nn.ConvTranspose2d's own output_size semantics
    ref = nn.ConvTranspose2d(16, 16, 3, stride=2, padding=1)
    ref.load_state_dict(up.tconv.state_dict())
    assert torch.allclose(up(y, output_size=(12, 12)), ref(y, output_size=[12, 12]))


# ---- the contract, for every zoo config ----------------------------------------------------------

SCALES = [(n, s) for n in ZOO for s in (2, 4) if not (n == "tconv_k3" and s == 4)]


@pytest.mark.parametrize("name,scale", SCALES)
def test_contract_shapes_at_even_and_one_pixel_sizes(tmp_path, name, scale):
    """Beyond the contract check (check_upsampler, upsamplers/test_zoo.py, on 5 x 7): even and one-pixel inputs."""
    up = _zoo(tmp_path, name, scale=scale)
    for h, w in [(8, 8), (1, 3)]:
        x = torch.randn(2, 8, h, w)
        assert call(up, x).shape == (2, 4, h * scale, w * scale)
        for target in [(h * scale - 1, w * scale - 1), (h * scale + 1, w * scale), (h * scale, w * scale - 1)]:
            if min(target) > 0:
                assert call(up, x, output_size=target).shape == (2, 4, *target)


@pytest.mark.parametrize("name", ZOO)
def test_gradients_flow_and_params_reported(tmp_path, name):
    up = _zoo(tmp_path, name, cin=64, cout=32)
    x = torch.randn(2, 64, 5, 5, requires_grad=True)
    call(up, x, output_size=(9, 11)).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in up.parameters())
    n = sum(p.numel() for p in up.parameters())
    assert up.num_parameters() == n and f"params={n}" in up.extra_repr()


@pytest.mark.slow
def test_param_counts_by_hand(tmp_path):
    """At 64->32 channels: weights + biases, hand arithmetic."""
    want = {
        "nearest": 64 * 32 + 32, "bilinear": 64 * 32 + 32, "bicubic": 64 * 32 + 32,
        "tconv": 64 * 32 * 4 * 4 + 32, "tconv_k3": 64 * 32 * 3 * 3 + 32, "resize_conv": 64 * 32 * 9 + 32,
        "pixel_shuffle": 64 * 128 * 9 + 128, "pixel_shuffle_icnr": 64 * 128 * 9 + 128,
        # compressor 1x1 64->64, encoder 3x3 64->2^2*5^2, 1x1 64->32
        "carafe": (64 * 64 + 64) + (64 * 100 * 9 + 100) + (64 * 32 + 32),
        # offset 1x1 64->2*4 groups*2^2, 1x1 64->32 (init_pos is a buffer)
        "dysample": (64 * 32 + 32) + (64 * 32 + 32),
        "bilinear_additive": 32 * 32 * 9 + 32,  # parameter-free, then the 3x3 conv 32->32
        # guide compressor 1x1 32->64 (bias), decoder compressor 1x1 64->64 (no bias), shared content conv
        # 3x3 64->25, gate 1x1 64->1, width conv 1x1 64->32
        "fade": (32 * 64 + 64) + 64 * 64 + (64 * 25 * 9 + 25) + (64 + 1) + (64 * 32 + 32),
        # lite: compressors to 25 channels, depthwise 3x3 on 25
        "fade_lite": (32 * 25 + 25) + 64 * 25 + (25 * 9 + 25) + (64 + 1) + (64 * 32 + 32),
        # LayerNorms (32 and 64 wide, weight + bias), q 1x1 32->32, k 1x1 64->32, width conv 64->32
        "sapa": 2 * 32 + 2 * 64 + (32 * 32 + 32) + (64 * 32 + 32) + (64 * 32 + 32),
        "sapa_i": 64 * 32 + 32,  # identity projections: only the width conv, as bilinear
        "fir_sinc": 64 * 32 + 32,  # a fixed filter, then the 1x1 conv, as bilinear
        "tconv_blur": 64 * 32 * 3 * 3 + 32,  # the 3x3 stride-2 tconv; the blur is fixed
        # the 1x1 channel map; keys 1x1 32->32 -> GELU -> 1x1 32->32 from the 32-wide guide; temperature, sigma
        "jbu": (64 * 32 + 32) + 2 * (32 * 32 + 32) + 2,
        "jbf": 64 * 32 + 32,  # parameter-free filter, then the 1x1 conv, as bilinear
        # compressors to (64+32)/4 = 24; 3x3 encoders to 25 and 9 logits; the 1x1 width conv; the resampler's 3x3
        # convs from 24+8 features to 2*4*2^2 (offset, scope) and 2*4 (hr offset, hr scope); two GroupNorms
        "freqfusion": (32 * 24 + 24) + (64 * 24 + 24) + (24 * 25 * 9 + 25) + (24 * 9 * 9 + 9) + (64 * 32 + 32)
        + 2 * (32 * 32 * 9 + 32) + 2 * (32 * 8 * 9 + 8) + 2 * (2 * 24),
    }
    assert set(want) == set(ZOO)
    for name, n in want.items():
        assert _zoo(tmp_path, name, cin=64, cout=32).num_parameters() == n, name


def test_tconv_defaults_come_from_scale():
    t2, t4 = TransposedConv(3, 3, scale=2), TransposedConv(3, 3, scale=4)
    assert (t2.kernel_size, t2.stride, t2.padding) == ((4, 4), (2, 2), (1, 1))
    assert (t4.kernel_size, t4.stride, t4.padding) == ((8, 8), (4, 4), (2, 2))


# ---- the alignment rule: exactly scale x, then fit (the U-Net's odd skips stay on the max-pool grid) ----

@pytest.mark.parametrize("name,scale", SCALES)
def test_alignment_odd_output_size_extends_the_exact_upsampling(tmp_path, name, scale):
    """up(x, output_size=scale*h + r)[..., :scale*h, :scale*w] == up(x) for 0 < r < scale: an odd skip adds
    rows at the bottom/right, it never stretches the grid. Resampling straight to 2h+1 (the old nearest,
    bilinear, bicubic, resize_conv, bilinear_additive) or making 2h-1 rows and padding (the old tconv_k3)
    moves every row."""
    torch.manual_seed(0)
    up = _zoo(tmp_path, name, scale=scale)
    with torch.no_grad():  # far from init, so that learned operators are not near-constant
        for p in up.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 8, 6, 5)
    h, w = scale * 6, scale * 5
    want = call(up, x)
    for r in range(1, scale):
        got = call(up, x, output_size=(h + r, w + r))
        assert got.shape[-2:] == (h + r, w + r)
        assert torch.allclose(got[..., :h, :w], want, atol=1e-6), (name, scale, r)
        # the added rows/columns replicate the last exact one (fit_to_size), the same for every operator
        assert torch.equal(got[..., h:, :w], want[..., -1:, :].expand(-1, -1, r, -1))


def test_tconv_odd_size_follows_the_shared_rule_not_output_padding():
    """The zoo's tconv fits like every other operator: output_padding would add a row that only the
    learned operators get (a row of real kernel taps where interpolation replicates)."""
    t = TransposedConv(3, 2)  # k4 s2 p1: natural 2i
    x = torch.randn(1, 3, 5, 6)
    y = t(x)
    assert torch.equal(t(x, output_size=(11, 13)), F.pad(y, (0, 1, 0, 1), mode="replicate"))


def test_upsample_must_be_exactly_scale_x():
    """The base class refuses an operator whose upsample() breaks the exact-scale rule."""
    class Stretch(Upsampler):
        def upsample(self, x):
            return F.interpolate(x, size=(2 * x.shape[-2] + 1, 2 * x.shape[-1]))

    with pytest.raises(RuntimeError, match="not exactly scale=2"):
        Stretch(3, 3)(torch.randn(1, 3, 4, 4))


@pytest.mark.parametrize("scale", [2, 4])
def test_icnr_at_init_equals_conv_then_nearest(scale):
    torch.manual_seed(0)
    ps = PixelShuffleUp(5, 3, scale=scale, icnr=True)
    x = torch.randn(2, 5, 6, 7)
    w = ps.conv.weight[:: scale * scale]
    b = ps.conv.bias[:: scale * scale]
    want = F.interpolate(F.conv2d(x, w, b, padding=1), scale_factor=scale, mode="nearest")
    assert torch.allclose(ps(x), want, atol=1e-6)
    # default init does not have that structure
    plain = PixelShuffleUp(5, 3, scale=scale)
    y = plain(x)
    assert not torch.allclose(y[..., ::scale, ::scale], y[..., 1::scale, ::scale])


def test_bilinear_matches_resample_then_1x1():
    up = InterpConv(8, 3, mode="bilinear")
    x = torch.randn(2, 8, 5, 7)
    want = up.proj(F.interpolate(x, size=(10, 14), mode="bilinear", align_corners=False))
    assert torch.allclose(up(x), want, atol=1e-5)


@pytest.mark.parametrize("bad", [dict(scale=0), dict(scale=3), dict(in_channels=0), dict(out_channels=-2)])
def test_invalid_hyperparameters_raise_config_error(bad):
    kw = dict(in_channels=4, out_channels=4, scale=2) | bad
    for cls in (InterpConv, TransposedConv, PixelShuffleUp):
        with pytest.raises(ConfigError):
            cls(**kw)


@pytest.mark.slow
def test_every_zoo_config_builds_an_upsampler(tmp_path):
    for name, scale in SCALES:
        assert isinstance(_zoo(tmp_path, name, scale=scale), Upsampler)


def test_tconv_k3_refuses_scale_4(tmp_path):
    """k3 s2 p1 op1 is a 2x geometry: asking it for 4x is a config error, not a silent 2x."""
    with pytest.raises(ConfigError, match="not scale=4"):
        _zoo(tmp_path, "tconv_k3", scale=4)


# ---- bicubic as separable polyphase convs ---------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("h,w", [(5, 7), (1, 1), (2, 3)])
def test_polyphase_bicubic_equals_interpolate_in_output_and_gradient(scale, h, w):
    """The phases come from Keys' cubic (a = -0.75) at source offsets (p + 0.5) / s - 0.5, the border is
    replicate-padded (PyTorch clamps the taps): F.interpolate's numbers, and its gradient, in float64."""
    torch.manual_seed(h * 10 + w)
    x = torch.randn(2, 3, h, w, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, h * scale, w * scale, dtype=torch.float64)
    got = resample(x, scale, "bicubic")
    want = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)
    assert torch.allclose(got, want, atol=1e-12)
    assert torch.allclose(torch.autograd.grad(got, x, g)[0], torch.autograd.grad(want, x, g)[0], atol=1e-12)


def test_keys_phases_by_hand():
    """Scale 2: phase 0 sits 0.25 px before y (taps y-2..y+1 at distances 1.75, 0.75, 0.25, 1.25), phase 1 0.25
    after (taps y-1..y+2). Keys (a = -0.75), by hand: w(0.25) = 1 - 1.9375/16 = 0.87890625,
    w(0.75) = 1 - 1.3125 * 0.5625 = 0.26171875, w(1.25) = 3 - 2.484375 * 1.25 = -0.10546875,
    w(1.75) = 3 - 1.734375 * 1.75 = -0.03515625; each phase sums to 1."""
    w = keys_cubic_phases(2)
    assert torch.allclose(w[0], torch.tensor([-0.03515625, 0.26171875, 0.87890625, -0.10546875, 0.0],
                                             dtype=torch.float64))
    assert torch.allclose(w[1], w[0].flip(0))
    assert torch.allclose(w.sum(1), torch.ones(2, dtype=torch.float64))


def test_bicubic_projects_first_like_bilinear():
    """A 1x1 conv commutes with any linear resampling whose weights sum to 1 (bias included): bicubic, like
    bilinear, runs it on the narrower side, and gives the resample-then-project numbers."""
    torch.manual_seed(0)
    up = InterpConv(8, 3, mode="bicubic")
    x = torch.randn(2, 8, 5, 6)
    assert torch.allclose(up(x), up.proj(F.interpolate(x, scale_factor=2, mode="bicubic", align_corners=False)),
                          atol=1e-5)
