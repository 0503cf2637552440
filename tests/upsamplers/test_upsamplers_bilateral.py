"""Joint-bilateral upsampling (jbu, jbf): the kernel is a weighted mean, reduces to the spatial Gaussian under a
constant guide, lets across a step edge exactly the range kernel's share, and the module applies it as a loop
over the window does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from upsample_zoo.upsamplers import JBF, JBU

R = 3  # the 7x7 window


def _gaussian_numpy(sigma: float = 1.0) -> np.ndarray:
    t = np.linspace(-1, 1, 2 * R + 1)
    g = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * sigma**2))
    return (g / g.sum()).reshape(-1)


def _randomised(up):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in up.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return up.eval()


@pytest.mark.parametrize("cls", [JBU, JBF])
def test_the_kernel_is_non_negative_and_sums_to_one(cls):
    up = _randomised(cls(8, 4))
    k = up.kernel(torch.randn(2, 4, 9, 11) * 3)
    assert k.shape == (2, 49, 9, 11) and float(k.min()) >= 0
    torch.testing.assert_close(k.sum(1), torch.ones(2, 9, 11))


@pytest.mark.parametrize("cls", [JBU, JBF])
def test_with_a_constant_guide_the_kernel_is_the_spatial_gaussian(cls):
    up = cls(8, 4).eval()
    k = up.kernel(torch.full((1, 4, 8, 8), 0.3))
    want = torch.tensor(_gaussian_numpy(), dtype=torch.float32).view(1, 49, 1, 1).expand_as(k)
    torch.testing.assert_close(k, want, atol=1e-6, rtol=1e-5)


def _step(a: float, b: float) -> torch.Tensor:
    g = torch.full((1, 4, 10, 10), a)
    g[..., 5:] = b  # columns 5.. on the other side
    return g


def _cross_mass(k: torch.Tensor, y: int = 5, x: int = 4) -> float:
    """The kernel mass of pixel (y, x) (the last column before the edge) on the other side of it."""
    cols = torch.arange(-R, R + 1).repeat(2 * R + 1)  # window position p = (dy + R) * 7 + (dx + R)
    return float(k[0, :, y, x][x + cols >= 5].sum())


def _share(range_ratio: float) -> float:
    """The cross-edge share of a weighted mean whose cross-side range weight is range_ratio x the near side's,
    at pixel column 4 with the edge before column 5 (dx = 1..3 cross): from the spatial Gaussian in numpy."""
    s = _gaussian_numpy().reshape(7, 7)
    cross, near = s[:, R + 1:].sum(), s[:, :R + 1].sum()
    return cross * range_ratio / (near + cross * range_ratio)


def test_jbf_lets_across_a_step_exactly_its_range_weight_and_nothing_across_a_high_one():
    for a, b in [(0.0, 0.5), (0.0, 3.0)]:
        g = _step(a, b)
        var = float(g.var(unbiased=False))  # the guide's own spread: the range unit
        ratio = np.exp(-((a - b) ** 2) / var / 2)
        assert _cross_mass(JBF(8, 4).kernel(g)) == pytest.approx(_share(ratio), rel=1e-4)
    # the range is in units of the guide's spread (a half-half step is 2 of them high, whatever its height):
    # a narrower range kernel, sigma_range = 0.2, lets exp(-50) across, nothing
    assert _cross_mass(JBF(8, 4, sigma_range=0.2).kernel(_step(0.0, 3.0))) < 1e-6


def test_jbu_lets_across_a_step_exactly_its_learned_range_weight():
    """The range kernel is softmax(t <k_q, k_p>): across the step a neighbour weighs exp(t (<k_b, k_a> - <k_a,
    k_a>)) times a near one. With a sharpened temperature nothing crosses."""
    up = _randomised(JBU(8, 4))
    g = _step(-1.0, 1.0)
    with torch.no_grad():
        ka, kb = (up.range_proj(torch.full((1, 4, 1, 1), v)).flatten() for v in (-1.0, 1.0))
        t = float(up.range_temp.exp())
        ratio = float(torch.exp(t * (kb @ ka - ka @ ka)))
        assert _cross_mass(up.kernel(g)) == pytest.approx(_share(ratio), rel=1e-4)
        up.range_temp.fill_(np.log(1e3 / float(((ka - kb) ** 2).sum())))
        assert _cross_mass(up.kernel(g)) < 1e-6


@pytest.mark.parametrize("cls", [JBU, JBF])
def test_the_module_is_the_kernel_applied_window_by_window(cls):
    """Against a plain loop: out[y, x] = sum over the window of kernel * bicubic(x) at the replicate-clamped
    neighbour, then the 1x1 channel map (here widening, so applied after)."""
    up = _randomised(cls(2, 3))
    x, guide = torch.randn(1, 2, 4, 5), torch.randn(1, 3, 8, 10)
    with torch.no_grad():
        got = up(x, guide=guide).numpy()
        hr = F.interpolate(x, size=(8, 10), mode="bicubic", align_corners=False)[0].numpy()
        k = up.kernel(guide)[0].numpy()
        w, b = up.proj.weight[:, :, 0, 0].numpy(), up.proj.bias.numpy()
    filt = np.zeros_like(hr)
    for y in range(8):
        for xx in range(10):
            for p in range(49):
                dy, dx = p // 7 - R, p % 7 - R
                filt[:, y, xx] += k[p, y, xx] * hr[:, min(max(y + dy, 0), 7), min(max(xx + dx, 0), 9)]
    want = np.einsum("oc,chw->ohw", w, filt) + b[:, None, None]
    np.testing.assert_allclose(got[0], want, atol=1e-5)


def _unfold_window(x: torch.Tensor) -> torch.Tensor:
    """The reference the module replaced: each pixel's replicate-padded 7x7 neighbourhood, (N, C, 49, H, W)."""
    n, c, h, w = x.shape
    return F.unfold(F.pad(x, [R] * 4, mode="replicate"), 2 * R + 1).view(n, c, (2 * R + 1) ** 2, h, w)


def _unfold_forward(up, x, guide):
    """JBU/JBF as they were written on unfold: the range kernel from the unfolded guide, the weighted mean of the
    unfolded bicubic upsampling."""
    if isinstance(up, JBU):
        keys = up.range_proj(guide)
        rng = F.softmax(up.range_temp.exp().clamp(1e-4, 1e4)
                        * torch.einsum("ncphw,nchw->nphw", _unfold_window(keys), keys), dim=1)
    else:
        var = guide.var(dim=(1, 2, 3), keepdim=True, unbiased=False).clamp_min(1e-12)
        d2 = (_unfold_window(guide) - guide.unsqueeze(2)).square().mean(1) / var
        rng = torch.exp(-d2 / (2 * up.sigma_range**2))
    k = rng * up.spatial().to(guide.dtype).view(1, -1, 1, 1)
    k = k / k.sum(1, keepdim=True).clamp_min(1e-12)
    hr = F.interpolate(x, scale_factor=up.scale, mode="bicubic", align_corners=False)
    return up.proj((_unfold_window(hr) * k.unsqueeze(1)).sum(2))


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("cls", [JBU, JBF])
def test_the_streamed_windows_equal_the_unfold_reference_in_output_and_every_gradient(cls, scale):
    up = _randomised(cls(3, 4, scale=scale)).double()
    x = torch.randn(2, 3, 3, 5, dtype=torch.float64, requires_grad=True)
    guide = torch.randn(2, 4, 3 * scale, 5 * scale, dtype=torch.float64, requires_grad=True)
    leaves = [x, guide, *up.parameters()]
    got, want = up(x, guide=guide), _unfold_forward(up, x, guide)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    g = torch.randn_like(got)
    for a, b in zip(torch.autograd.grad(got, leaves, g), torch.autograd.grad(want, leaves, g)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)
