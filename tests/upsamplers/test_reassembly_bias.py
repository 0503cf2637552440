"""The reassembling operators (CARAFE, FADE, SAPA) add their width conv's bias after the reassembly.

Reassembly reads zeros outside the input, so a bias added before it is weighed by the kernel mass inside the
image: at a corner pixel a uniform 5x5 kernel keeps 9/25 of it. Added after, a constant is a constant everywhere.
"""

from __future__ import annotations

import pytest
import torch

from upsample_zoo.upsamplers import CARAFE, FADE, SAPA
from upsample_zoo.upsamplers.carafe import project_reassemble


def _naive_project_reassemble(x, weight, bias, kernels, k_up, s):
    """Output pixel (Y, X) = sum over the k_up x k_up window around input pixel (Y // s, X // s), inside the
    image only, of kernel weight * (W x), plus b: a loop, independent of unfold and matmul."""
    n, _, h, w = x.shape
    wx = torch.einsum("oc,nchw->nohw", weight, x)
    out = torch.zeros(n, weight.shape[0], s * h, s * w)
    r = k_up // 2
    for yy in range(s * h):
        for xx in range(s * w):
            for j in range(k_up * k_up):
                iy, ix = yy // s + j // k_up - r, xx // s + j % k_up - r
                if 0 <= iy < h and 0 <= ix < w:
                    out[:, :, yy, xx] += kernels[:, j, None, yy, xx] * wx[:, :, iy, ix]
    return out + bias.view(1, -1, 1, 1)


@pytest.mark.parametrize("cin, cout", [(6, 4), (4, 6), (5, 5)])
def test_project_reassemble_adds_the_bias_after_the_window_sum(cin, cout):
    """Both orders (conv first when it shrinks channels, reassembly first otherwise) against a naive loop."""
    torch.manual_seed(0)
    k_up, s, h, w = 3, 2, 4, 5
    conv = torch.nn.Conv2d(cin, cout, 1)
    with torch.no_grad():
        conv.bias.copy_(torch.linspace(-2.0, 3.0, cout))
    x = torch.randn(2, cin, h, w)
    kernels = torch.randn(2, k_up * k_up, s * h, s * w).softmax(1)
    with torch.no_grad():
        got = project_reassemble(x, conv, kernels, k_up, s)
    want = _naive_project_reassemble(x, conv.weight.detach().flatten(1), conv.bias.detach(), kernels, k_up, s)
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(got[..., 0, 0], want[..., 0, 0], atol=1e-5)  # the corner pixel


def _build(name, cin, cout):
    return {
        "carafe": lambda: CARAFE(cin, cout),
        "fade": lambda: FADE(cin, cout),
        "fade_lite": lambda: FADE(cin, cout, lite=True),
        "sapa": lambda: SAPA(cin, cout),
        "sapa_i": lambda: SAPA(cin, cout, identity=True),
    }[name]()


def _width_conv(up):
    """The 1x1 conv whose output the kernels reassemble (SAPA names it v, as SAPAExp.py; before, proj)."""
    return up.v if getattr(up, "v", None) is not None else up.proj


@pytest.mark.parametrize("cin, cout", [(6, 4), (4, 6)])
@pytest.mark.parametrize("name", ["carafe", "fade", "fade_lite", "sapa", "sapa_i"])
def test_a_zero_input_gives_the_bias_at_every_pixel_corners_included(name, cin, cout):
    """x = 0: the reassembled feature is W 0 = 0, so the output is exactly the width conv's bias at every pixel,
    the corners included, whatever the (content-dependent, far from init) kernels. FADE's gate is held at 0
    (the decoder side) and SAPA-B's LayerNorm shift at 0, so that LN(0) = 0. Before, FADE and SAPA reassembled
    W x + b and the corner kept only the kernel mass inside the image (0.36-0.51 of the bias at init)."""
    torch.manual_seed(1)
    up = _build(name, cin, cout)
    with torch.no_grad():
        for p in up.parameters():
            p.normal_(0, 0.5)
        bias = torch.linspace(-1.0, 2.0, cout)
        _width_conv(up).bias.copy_(bias)
        if name.startswith("fade"):
            up.gate.bias.fill_(-200.0)  # sigmoid -> exactly 0: the reassembled decoder feature only
        if name == "sapa":
            up.norm_x.bias.zero_()
        x, g = torch.zeros(2, cin, 5, 6), torch.randn(2, cout, 10, 12)
        y = up(x) if name == "carafe" else up(x, guide=g)
        kernels = up.kernels(x) if name == "carafe" else up.kernels(x, g)
    want = bias.view(1, -1, 1, 1).expand_as(y)
    assert torch.allclose(y, want, atol=1e-5)
    for corner in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert torch.allclose(y[..., corner[0], corner[1]], bias.expand(2, -1), atol=1e-5)
    # the test can tell: at the top-left corner, the kernel weights outside the image are not negligible
    outside = kernels.view(2, up.k_up, up.k_up, 10, 12)[:, : up.k_up // 2, :, 0, 0].sum((1, 2))
    outside = outside + kernels.view(2, up.k_up, up.k_up, 10, 12)[:, up.k_up // 2:, : up.k_up // 2, 0, 0].sum((1, 2))
    assert (outside > 0.01).all()  # an old-style faded bias would miss by outside * |b| >> 1e-5

