"""FADE and SAPA, the guided operators: a property from each paper, the guide contract, and where they may run.

The shared contract (shapes, odd sizes, alignment, gradients, parameter counts) is in tests/test_upsamplers.py,
parametrized over ZOO.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from upsample_zoo.errors import ConfigError
from upsample_zoo.models.dcgan import DCGAN
from upsample_zoo.models.unet import UNet
from upsample_zoo.upsamplers import FADE, SAPA, Upsampler, carafe_reassemble
from upsample_zoo.upsamplers.sapa import window_similarity
from upsample_zoo.zoo import check_upsampler, create_upsampler, upsampler_factory


def _inputs(cin=6, cout=4, h=5, w=7, s=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, cin, h, w, generator=g), torch.randn(2, cout, s * h, s * w, generator=g)


def _randomise(up: torch.nn.Module, std: float = 0.5) -> None:
    """Far from the init, so kernels and gate are genuinely content-dependent."""
    with torch.no_grad():
        for p in up.parameters():
            p.normal_(0, std)


# ---- FADE ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("lite", [False, True])
def test_fade_kernels_sum_to_one(lite):
    torch.manual_seed(0)
    up = FADE(6, 4, lite=lite)
    _randomise(up)
    x, g = _inputs()
    k = up.kernels(x, g)
    assert k.shape == (2, 25, 10, 14) and (k >= 0).all()
    assert torch.allclose(k.sum(1), torch.ones(2, 10, 14), atol=1e-5)
    assert k.std(dim=1).mean() > 1e-2  # not the uniform kernel


@pytest.mark.parametrize("lite", [False, True])
def test_fade_gate_selects_encoder_or_reassembled_decoder(lite):
    """out = gate * guide + (1 - gate) * reassemble(proj(x)) (the official FADE_L2H.py order): a gate held at 1
    returns the encoder feature, held at 0 the reassembled decoder feature."""
    torch.manual_seed(1)
    up = FADE(6, 4, lite=lite)
    _randomise(up)
    x, g = _inputs(seed=1)
    with torch.no_grad():
        up.gate.weight.zero_()
        up.gate.bias.fill_(100.0)  # sigmoid -> exactly 1.0 in float32
        assert torch.equal(up(x, guide=g), g)
        up.gate.bias.fill_(-200.0)  # sigmoid -> exactly 0.0
        want = carafe_reassemble(up.proj(x), up.kernels(x, g), up.k_up, up.scale)
        assert torch.allclose(up(x, guide=g), want, atol=1e-6)
        assert not torch.allclose(want, g, atol=0.1)


def test_fade_semi_shift_the_guide_is_what_varies_kernels_within_a_block():
    """The decoder branch is computed at low resolution and nearest-upsampled (semi-shift): without the
    encoder term, the s x s sub-pixels of a low-resolution pixel share one kernel; the guide makes them differ."""
    torch.manual_seed(2)
    up = FADE(6, 4)
    _randomise(up)
    x, g = _inputs(seed=2)
    with torch.no_grad():
        k = up.kernels(x, g)
        up.compress_guide.weight.zero_()
        up.compress_guide.bias.zero_()
        k0 = up.kernels(x, g)
    blocks = k0.view(2, 25, 5, 2, 7, 2)
    assert torch.allclose(blocks, blocks[:, :, :, :1, :, :1].expand_as(blocks), atol=1e-6)
    kb = k.view(2, 25, 5, 2, 7, 2)
    assert (kb - kb[:, :, :, :1, :, :1]).abs().max() > 1e-2


# ---- SAPA ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("identity", [False, True])
def test_sapa_kernels_sum_to_one(identity):
    torch.manual_seed(3)
    up = SAPA(6, 4, identity=identity)
    _randomise(up)
    x, g = _inputs(seed=3)
    k = up.kernels(x, g)
    assert k.shape == (2, 25, 10, 14) and (k >= 0).all()
    assert torch.allclose(k.sum(1), torch.ones(2, 10, 14), atol=1e-5)
    assert k.std(dim=1).mean() > 1e-2


@pytest.mark.parametrize("identity", [False, True])
def test_sapa_with_a_constant_guide_is_a_fixed_local_average(identity):
    """A constant guide has no similarity to offer (LayerNorm makes the query 0, biases start at 0): every
    window weight is 1/k^2, so SAPA is a k x k mean (zero padded, as the official op) of proj(x), then nearest."""
    torch.manual_seed(4)
    up = SAPA(6, 4, identity=identity)
    x, _ = _inputs(seed=4)
    g = torch.full((2, 4, 10, 14), 0.7)
    with torch.no_grad():
        got = up(x, guide=g)
        mean = F.avg_pool2d(up.proj(x), 5, stride=1, padding=2, count_include_pad=True)
        want = F.interpolate(mean, scale_factor=2, mode="nearest")
    assert torch.allclose(got, want, atol=1e-5)


def test_sapa_similarity_matches_a_naive_window_loop():
    torch.manual_seed(5)
    n, d, h, w, s, k = 2, 3, 4, 5, 2, 3
    q, key = torch.randn(n, d, s * h, s * w), torch.randn(n, d, h, w)
    got = window_similarity(q, key, k, s)
    padded = F.pad(key, (k // 2,) * 4)  # keys outside the image read zero
    for yy in range(s * h):
        for xx in range(s * w):
            window = padded[:, :, yy // s: yy // s + k, xx // s: xx // s + k].reshape(n, d, k * k)
            want = (q[:, :, yy, xx, None] * window).sum(1)
            assert torch.allclose(got[:, :, yy, xx], want, atol=1e-5)


def test_sapa_i_follows_the_guide_to_the_matching_key():
    """Point affiliation: with identity projections, a high-resolution pixel whose guide equals one decoder
    pixel's (normalised) feature weighs that pixel most in its window."""
    torch.manual_seed(6)
    up = SAPA(4, 4, identity=True, k_up=3)
    x = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        value = up.proj(x)
        g = torch.randn(1, 4, 8, 8)
        g[:, :, 3, 4] = 10 * F.layer_norm(value.permute(0, 2, 3, 1), (4,))[0, 2, 1]  # the key at (2, 1)
        k = up.kernels(x, g)[0, :, 3, 4]  # pixel (3, 4) sits over (1, 2); its 3x3 window holds (2, 1)
    assert int(k.argmax()) == 2 * 3 + 0  # window row +1, column -1 -> index (1+1)*3 + (-1+1)


# ---- the guide contract ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fade", "fade_lite", "sapa", "sapa_i"])
def test_guided_operator_without_or_with_a_wrong_guide_is_one_clear_line(name):
    up = create_upsampler(name, 6, 4)
    x, g = _inputs()
    with pytest.raises(ValueError, match="guided upsampler") as e:
        up(x)
    assert "\n" not in str(e.value) and "(N, 4, 10, 14)" in str(e.value)
    with pytest.raises(ValueError, match=r"expected \(N, 4, 11, 14\)"):
        up(x, output_size=(11, 14), guide=g)  # a guide of the exact-scale size, not the asked one


def test_unguided_operators_ignore_the_guide():
    x, g = _inputs()
    for name in ("bilinear", "tconv", "carafe"):
        torch.manual_seed(0)
        up = create_upsampler(name, 6, 4)
        assert torch.equal(up(x, output_size=(10, 14), guide=g), up(x, output_size=(10, 14)))


def test_check_upsampler_covers_the_guide():
    class IgnoresGuide(Upsampler):
        requires_guide = True

        def __init__(self, cin, cout, scale=2):
            super().__init__(cin, cout, scale)
            self.proj = torch.nn.Conv2d(cin, cout, 1)

        def upsample(self, x, guide):
            return F.interpolate(self.proj(x), scale_factor=self.scale)

    with pytest.raises(ConfigError, match="no gradient reaches the guide"):
        check_upsampler(IgnoresGuide, 6, 4, name="ignores_guide")
    check_upsampler(upsampler_factory("fade"), 6, 4, name="fade")


def test_unet_hands_the_skip_to_a_guided_upsampler_and_dcgan_refuses_one():
    torch.manual_seed(0)
    unet = UNet(upsampler_factory("sapa"), base_channels=4, depth=2, num_classes=3)
    seen = []
    for up in unet.upsampler_modules():
        up.register_forward_hook(lambda m, args, kwargs, out: seen.append(kwargs["guide"].shape), with_kwargs=True)
    assert unet(torch.randn(1, 3, 11, 9)).shape == (1, 3, 11, 9)
    assert seen == [(1, 8, 5, 4), (1, 4, 11, 9)]  # each skip, at its exact (odd) size
    with pytest.raises(ConfigError, match="FADE needs a guide .* DCGAN generator has none"):
        DCGAN(upsampler_factory("fade"), ngf=4, ndf=4)
