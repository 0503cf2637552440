"""FADE and SAPA, the guided operators: a property from each paper, SAPA against the official experiment module
(SAPAExp.py, transcribed channels-last with forward_check.py's sim/atn), the guide contract, and where they may run.

The shared contract (shapes, odd sizes, alignment, gradients, parameter counts) is in upsamplers/test_upsamplers.py,
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
    """out = gate * guide + (1 - gate) * (reassemble(W x) + b) (the official FADE_L2H.py order): a gate held at 1
    returns the encoder feature, held at 0 the reassembled decoder feature, the width conv's bias added after
    the zero-padded reassembly (not faded at the border)."""
    torch.manual_seed(1)
    up = FADE(6, 4, lite=lite)
    _randomise(up)
    x, g = _inputs(seed=1)
    with torch.no_grad():
        up.gate.weight.zero_()
        up.gate.bias.fill_(100.0)  # sigmoid -> exactly 1.0 in float32
        assert torch.equal(up(x, guide=g), g)
        up.gate.bias.fill_(-200.0)  # sigmoid -> exactly 0.0
        want = carafe_reassemble(F.conv2d(x, up.proj.weight), up.kernels(x, g), up.k_up, up.scale)
        want = want + up.proj.bias.view(1, -1, 1, 1)
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
    """A constant guide has no similarity to offer (LayerNorm makes the query 0, q's bias starts at 0): every
    window weight is 1/k^2, so SAPA is a k x k mean (zero padded, as the official op) of the value W x_, then
    nearest, plus v's bias (added after the reassembly, so not faded at the border)."""
    torch.manual_seed(4)
    up = SAPA(6, 4, identity=identity)
    x, _ = _inputs(seed=4)
    g = torch.full((2, 4, 10, 14), 0.7)
    with torch.no_grad():
        up.v.bias.copy_(torch.tensor([0.5, -1.0, 2.0, 0.25]))
        got = up(x, guide=g)
        b = up.v.bias.view(1, -1, 1, 1)
        mean = F.avg_pool2d(up.value(x) - b, 5, stride=1, padding=2, count_include_pad=True)
        want = F.interpolate(mean, scale_factor=2, mode="nearest") + b
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
        value = up.value(x)  # equal widths: the decoder feature itself
        g = torch.randn(1, 4, 8, 8)
        g[:, :, 3, 4] = 10 * F.layer_norm(value.permute(0, 2, 3, 1), (4,))[0, 2, 1]  # the key at (2, 1)
        k = up.kernels(x, g)[0, :, 3, 4]  # pixel (3, 4) sits over (1, 2); its 3x3 window holds (2, 1)
    assert int(k.argmax()) == 2 * 3 + 0  # window row +1, column -1 -> index (1+1)*3 + (-1+1)


# ---- SAPA against the official experiment module (github.com/poppinace/sapa SAPAExp.py) ----------------


def _sim_ref(q, k, ks, s):
    """forward_check.py's pure-PyTorch ``sim``, channels last: q (B, sH, sW, C), k (B, H, W, C) -> (B, sH, sW, ks^2)."""
    b, h, w, c = k.shape
    keys = F.unfold(k.permute(0, 3, 1, 2), ks, padding=ks // 2).view(b, c, ks * ks, h, w)
    return torch.einsum("byiwjc,bckyw->byiwjk", q.view(b, h, s, w, s, c), keys).reshape(b, s * h, s * w, ks * ks)


def _atn_ref(attn, v, ks, s):
    """forward_check.py's pure-PyTorch ``atn``, channels last: (B, sH, sW, ks^2), (B, H, W, C) -> (B, sH, sW, C)."""
    b, h, w, c = v.shape
    vals = F.unfold(v.permute(0, 3, 1, 2), ks, padding=ks // 2).view(b, c, ks * ks, h, w)
    return torch.einsum("byiwjk,bckyw->byiwjc", attn.view(b, h, s, w, s, ks * ks), vals).reshape(b, s * h, s * w, c)


def _sapa_exp_ref(up, x, y, v_bias_after=True):
    """SAPAExp(dim_y=out, dim_x=in, out_dim=out, q_mode='encoder_only').forward(y, x), channels last with
    up's parameters: y_ = norm_y(y), x_ = norm_x(x), q = q(y_), k = k(x_), value v(x_) when the widths
    differ (else x), softmax(sim(q, k)) reassembles the value. ``v_bias_after=False`` is the official
    order (v's bias inside the zero-padded reassembly). Identity (SAPA-I, no released code): q = LN(y),
    k = LN(value), LayerNorms without affine."""
    lin = lambda t, conv, bias=True: F.linear(t, conv.weight.flatten(1), conv.bias if bias else None)
    yl, xl = y.permute(0, 2, 3, 1), x.permute(0, 2, 3, 1)
    if up.identity:
        y_, x_ = F.layer_norm(yl, yl.shape[-1:]), F.layer_norm(xl, xl.shape[-1:])
    else:
        y_ = F.layer_norm(yl, yl.shape[-1:], up.norm_y.weight, up.norm_y.bias)
        x_ = F.layer_norm(xl, xl.shape[-1:], up.norm_x.weight, up.norm_x.bias)
    value = xl if up.v is None else lin(x_, up.v)
    q, k = (y_, F.layer_norm(value, value.shape[-1:])) if up.identity else (lin(y_, up.q), lin(x_, up.k))
    attn = _sim_ref(q, k, up.k_up, up.scale).softmax(-1)
    if up.v is None or not v_bias_after:
        out = _atn_ref(attn, value, up.k_up, up.scale)
    else:
        out = _atn_ref(attn, lin(x_, up.v, bias=False), up.k_up, up.scale) + up.v.bias
    return out.permute(0, 3, 1, 2)


@pytest.mark.parametrize("identity", [False, True])
@pytest.mark.parametrize("cin, cout", [(6, 4), (4, 4)])
def test_sapa_is_the_official_experiment_module(identity, cin, cout):
    """Far from init, SAPA equals SAPAExp's forward: the value is v(LayerNorm(x)) where the widths differ and the
    raw x where they are equal; v's bias is added after the reassembly (ours), so it equals the official order
    exactly where v's bias is 0 (its init) and inside the image, and differs at the border otherwise."""
    torch.manual_seed(7)
    up = SAPA(cin, cout, identity=identity)
    _randomise(up)
    x, g = _inputs(cin=cin, cout=cout, h=5, w=7, seed=7)
    with torch.no_grad():
        got = up(x, guide=g)
        assert torch.allclose(got, _sapa_exp_ref(up, x, g), atol=1e-5)
        if up.v is None:
            assert up.num_parameters() == (0 if identity else 2 * (cin + cout) + (cout + cin + 2) * up.embedding_dim)
            return
        official = _sapa_exp_ref(up, x, g, v_bias_after=False)
        # the official order weighs v's bias by the kernel mass inside the image: 1 wherever the window is
        # inside the 5 x 7 input, below 1 at the border
        inside = _atn_ref(up.kernels(x, g).permute(0, 2, 3, 1), torch.ones(2, 5, 7, 1), up.k_up, up.scale)
        assert torch.allclose(got - official, (1 - inside.permute(0, 3, 1, 2)) * up.v.bias.view(1, -1, 1, 1),
                              atol=1e-5)
        assert torch.allclose(inside[:, 4:6, 4:10], torch.ones(1), atol=1e-6) and inside.min() < 0.9
        up.v.bias.zero_()  # SAPAExp's init
        assert torch.allclose(up(x, guide=g), _sapa_exp_ref(up, x, g, v_bias_after=False), atol=1e-5)


@pytest.mark.parametrize("identity", [False, True])
def test_sapa_init_is_the_official_experiment_modules(identity):
    """SAPAExp._init_weights: trunc-normal(0.02) weights, zero biases for q, k and v; LayerNorms at 1 and 0.
    At 64 -> 32 the value projection has 2048 weights: their std is 0.02 within sampling error (not PyTorch's
    default conv init, whose std is 1/sqrt(3 * 64) = 0.072)."""
    torch.manual_seed(8)
    up = SAPA(64, 32, identity=identity)
    convs = [up.v] if identity else [up.q, up.k, up.v]
    for conv in convs:
        w = conv.weight.detach()
        assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002 and w.abs().max() < 0.02 * 5
        assert torch.equal(conv.bias, torch.zeros_like(conv.bias))
    if identity:
        assert up.norm_x is None and up.norm_y is None and up.q is None and up.k is None
    else:
        for norm in (up.norm_x, up.norm_y):
            assert torch.equal(norm.weight, torch.ones_like(norm.weight))
            assert torch.equal(norm.bias, torch.zeros_like(norm.bias))


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


def test_one_place_asks_whether_an_operator_needs_a_guide():
    from torch import nn

    from upsample_zoo.upsamplers import needs_guide

    class UserGuided(nn.Module):
        requires_guide = True

    assert all(needs_guide(create_upsampler(n, 8, 4)) for n in ("fade", "sapa", "jbu", "freqfusion"))
    assert not any(needs_guide(create_upsampler(n, 8, 4)) for n in ("bilinear", "carafe", "dysample"))
    assert needs_guide(UserGuided()) and not needs_guide(nn.Identity())
