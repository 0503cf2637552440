"""FreqFusion held to the paper's equations and its properties (the official code carries no licence, so no copy
of it runs here): kernels that are weighted means, the high band that kills constants, a resampler whose zero
offsets are the identity, the cosine similarities, and the whole forward against a loop-by-loop reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from upsample_zoo.errors import ConfigError
from upsample_zoo.models.dcgan import DCGAN
from upsample_zoo.upsamplers import FreqFusion
from upsample_zoo.upsamplers.freqfusion import local_cosine_similarity
from upsample_zoo.zoo import upsampler_factory


def _randomised(up: FreqFusion, scale: float = 0.3) -> FreqFusion:
    """Logits of size 1, not the init's 0.001, so the kernels are far from uniform."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in up.parameters():
            p.add_(scale * torch.randn_like(p))
    return up.eval()


def _zero_(*convs) -> None:
    with torch.no_grad():
        for conv in convs:
            conv.weight.zero_()
            conv.bias.zero_()


@pytest.mark.parametrize("profile", ["paper", "code"])
@pytest.mark.parametrize("scale", [2, 4])
def test_both_filters_are_weighted_means(profile, scale):
    """The ALPF and the AHPF's low-pass are non-negative and sum to 1 at every pixel (softmax, then the Hamming
    window and a renormalisation in the code profile)."""
    up = _randomised(FreqFusion(8, 4, scale=scale, profile=profile))
    x, g = torch.randn(2, 8, 5, 6), torch.randn(2, 4, 5 * scale, 6 * scale)
    alpf, ahpf, _, _ = up.kernels(x, g)
    assert alpf.shape == (2, 25, 5 * scale, 6 * scale) and ahpf.shape == (2, 9, 5 * scale, 6 * scale)
    for k in (alpf, ahpf):
        assert k.dtype == torch.float32 and k.min() >= 0
        assert torch.allclose(k.sum(1), torch.ones(()), atol=1e-6)


def test_code_profile_kernels_at_zero_logits_are_the_normalised_hamming_window():
    up = FreqFusion(8, 4, profile="code")
    _zero_(up.encode_lp, up.encode_hp)
    alpf, ahpf, _, _ = up.kernels(torch.randn(1, 8, 4, 4), torch.randn(1, 4, 8, 8))
    for k, n in ((alpf, 5), (ahpf, 3)):
        want = np.outer(np.hamming(n), np.hamming(n)).reshape(-1)
        want = torch.from_numpy(want / want.sum()).float()
        assert torch.allclose(k[0, :, 3, 5], want, atol=1e-6)


def test_the_high_band_of_a_constant_skip_is_zero_inside_and_zero_padding_shows_at_the_corner():
    """x = 0: the decoder term is the width conv's bias (added after the reassembly, and resampled as a
    constant), so out = bias + skip + (skip - low-pass(skip)). A constant skip c has no high band inside the
    image; at a corner the zero-padded 3x3 low-pass sees only its in-image mass m, so the band is c (1 - m)."""
    up = _randomised(FreqFusion(8, 4))
    c = 1.7
    x, g = torch.zeros(1, 8, 5, 5), torch.full((1, 4, 10, 10), c)
    out = up(x, guide=g)
    bias = up.proj.bias.view(1, -1, 1, 1)
    assert torch.allclose(out[..., 1:-1, 1:-1], (bias + c).expand(1, 4, 8, 8), atol=1e-5)
    _, ahpf, _, _ = up.kernels(x, g)
    inside = ahpf[0].view(3, 3, 10, 10)[1:, 1:, 0, 0].sum()  # the corner pixel's taps that land in the image
    assert inside < 1 - 1e-3
    assert torch.allclose(out[0, :, 0, 0], bias.view(-1) + c + c * (1 - inside), atol=1e-5)


def test_zero_offsets_make_the_resampler_the_identity():
    """init_pos is bilinear upsampling's sub-pixel grid: with the offset convs at zero each output pixel is read
    at its own centre, so the paper profile equals the same operator without the resampler."""
    up = _randomised(FreqFusion(8, 4))
    _zero_(up.resampler.offset, up.resampler.hr_offset)
    x, g = torch.randn(2, 8, 5, 7), torch.randn(2, 4, 10, 14)
    with_resampler = up(x, guide=g)
    up.resampler = None
    assert torch.allclose(with_resampler, up(x, guide=g), atol=1e-5)


def test_the_resampler_moves_points_by_its_offsets():
    """An offset of +1 low-resolution pixel in x (scope conv at a large bias: sigmoid = 1) reads the feature two
    output pixels to the right, the border column repeated (border padding)."""
    up = FreqFusion(8, 4)
    r = up.resampler
    _zero_(r.offset, r.hr_offset, r.scope, r.hr_scope)
    with torch.no_grad():
        r.offset.bias.view(2, -1)[0].fill_(1.0)  # the x half of the (xy, group, sub-pixel) layout
        r.scope.bias.fill_(50.0)
    feature = torch.randn(1, 4, 8, 10)
    hr, lr = torch.randn(1, up.compressed_channels, 8, 10), torch.randn(1, up.compressed_channels, 4, 5)
    got = r(feature, hr, lr)
    want = torch.cat([feature[..., 2:], feature[..., -1:].expand(-1, -1, -1, 2)], dim=-1)
    assert torch.allclose(got, want, atol=1e-5)


def test_local_cosine_similarity_matches_a_loop():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, 7)
    got = local_cosine_similarity(x, dilation=2).numpy()
    a = x.numpy()
    want = np.zeros((2, 8, 6, 7), np.float32)
    offsets = [(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2) if (dy, dx) != (0, 0)]
    for n in range(2):
        for y in range(6):
            for xx in range(7):
                for i, (dy, dx) in enumerate(offsets):
                    yy, xq = y + dy, xx + dx
                    if 0 <= yy < 6 and 0 <= xq < 7:
                        u, v = a[n, :, y, xx], a[n, :, yy, xq]
                        want[n, i, y, xx] = u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_local_cosine_similarity_equals_the_unfold_reference_with_its_gradients():
    """The shifted-view form against the F.unfold + F.cosine_similarity form it replaced: outputs and input
    gradients to 1e-5 in fp32, at an odd size, dilation 1 and 2."""
    from ..helpers.unfold_window_ops import unfold_local_cosine_similarity

    torch.manual_seed(0)
    for dilation in (1, 2):
        x = torch.randn(2, 6, 7, 9, requires_grad=True)
        g = torch.randn(2, 8, 7, 9)
        got = local_cosine_similarity(x, dilation)
        (dx,) = torch.autograd.grad(got, x, g)
        want = unfold_local_cosine_similarity(x, dilation)
        (dx_ref,) = torch.autograd.grad(want, x, g)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        torch.testing.assert_close(dx, dx_ref, atol=1e-5, rtol=0)


def _reassemble_loop(x: np.ndarray, k: np.ndarray, size: int, scale: int) -> np.ndarray:
    """out[c, Y, X] = sum_ij k[i*size + j, Y, X] x[c, Y//s + i - r, X//s + j - r], zero outside (mmcv's CARAFE)."""
    c, h, w = x.shape
    r = size // 2
    out = np.zeros((c, h * scale, w * scale))
    for yy in range(h * scale):
        for xx in range(w * scale):
            for i in range(size):
                for j in range(size):
                    sy, sx = yy // scale + i - r, xx // scale + j - r
                    if 0 <= sy < h and 0 <= sx < w:
                        out[:, yy, xx] += k[i * size + j, yy, xx] * x[:, sy, sx]
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(0, keepdims=True))
    return e / e.sum(0, keepdims=True)


@torch.no_grad()
def test_the_forward_is_the_papers_equations_loop_by_loop():
    """The code profile's whole forward (no resampler: its points are tested above) rebuilt from the equations in
    numpy, reassembly by explicit loops; only the convolutions are the module's own."""
    up = _randomised(FreqFusion(6, 3, profile="code"))
    x, g = torch.randn(1, 6, 3, 4), torch.randn(1, 3, 6, 8)

    def norm(z, n):
        win = np.outer(np.hamming(n), np.hamming(n)).reshape(-1, 1, 1)
        k = _softmax(z) * win
        return k / k.sum(0, keepdims=True)

    conv = {name: (lambda m: (lambda t: m(torch.from_numpy(t[None]).float())[0].double().numpy()))(getattr(up, name))
            for name in ("compress_hr", "compress_lr", "encode_lp", "encode_hp")}
    hr, lr = conv["compress_hr"](g[0].double().numpy()), conv["compress_lr"](x[0].double().numpy())
    a0 = conv["encode_hp"](hr)
    hr = 2 * hr - _reassemble_loop(hr, norm(a0, 3), 3, 1)
    l_hr = conv["encode_lp"](hr)
    low = l_hr + _reassemble_loop(conv["encode_lp"](lr), norm(l_hr, 5), 5, 2)
    alpf = norm(low, 5)
    ahpf = norm(a0 + _reassemble_loop(conv["encode_hp"](lr), alpf, 5, 2), 3)
    w, b = up.proj.weight[:, :, 0, 0].double().numpy(), up.proj.bias.double().numpy()
    decoder = np.einsum("oc,chw->ohw", w, _reassemble_loop(x[0].double().numpy(), alpf, 5, 2)) + b[:, None, None]
    skip = g[0].double().numpy()
    want = decoder + skip + (skip - _reassemble_loop(skip, ahpf, 3, 1))
    np.testing.assert_allclose(up(x, guide=g)[0].numpy(), want, atol=1e-4)


def test_bad_options_and_the_dcgan_are_refused_with_one_line():
    with pytest.raises(ConfigError, match="profile must be one of"):
        FreqFusion(8, 4, profile="segnext")
    with pytest.raises(ConfigError, match="resample_groups=4.*upsampler.resample_groups=1"):
        FreqFusion(8, 6)
    assert FreqFusion(8, 6, profile="code").resampler is None  # no resampler: no group constraint
    with pytest.raises(ConfigError, match="FreqFusion needs a guide .* DCGAN generator has none"):
        DCGAN(upsampler_factory("freqfusion"), ngf=4, ndf=4)


def test_kernels_stay_float32_under_bf16_autocast():
    up = _randomised(FreqFusion(8, 4))
    x, g = torch.randn(1, 8, 6, 6), torch.randn(1, 4, 12, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        alpf, ahpf, _, _ = up.kernels(x, g)
        out = up(x, guide=g)
    assert alpf.dtype == ahpf.dtype == torch.float32
    assert torch.allclose(alpf.sum(1), torch.ones(()), atol=1e-6)
    # bf16 has 8 mantissa bits: the output within a few percent of its scale
    assert (out.float() - up(x, guide=g)).abs().max() < 0.05 * up(x, guide=g).abs().max()
