"""The streaming window ops equal the ``F.unfold`` references they replaced: alone (outputs and gradients, float64
to rounding, gradcheck), and inside every operator that uses them (output and the gradient of the input, the
guide and every parameter, fp32 to 1e-5, at odd sizes and scale 4; bf16 autocast against the fp32 reference)."""

from __future__ import annotations

import sys

import pytest
import torch

from tests.helpers.unfold_window_ops import unfold_reassemble, unfold_window_similarity
from upsample_zoo.upsamplers.carafe import carafe_reassemble
from upsample_zoo.upsamplers.sapa import window_similarity
from upsample_zoo.upsamplers.window_ops import reassemble, window_dot
from upsample_zoo.zoo import create_upsampler

CASES = [(5, 2, 5, 7), (3, 4, 3, 4), (3, 1, 6, 5), (5, 2, 1, 1), (5, 4, 2, 3)]  # (k, scale, h, w)
WINDOWED = ["carafe", "fade", "fade_lite", "sapa", "sapa_i", "freqfusion"]


@pytest.mark.parametrize("k,s,h,w", CASES)
def test_reassemble_and_window_dot_equal_the_unfold_references(k, s, h, w):
    torch.manual_seed(k * 100 + s * 10 + h)
    x = torch.randn(2, 3, h, w, dtype=torch.float64, requires_grad=True)
    kern = torch.randn(2, k * k, s * h, s * w, dtype=torch.float64, requires_grad=True)
    q = torch.randn(2, 3, s * h, s * w, dtype=torch.float64, requires_grad=True)
    for fast, ref, args, grad_shape in ((reassemble, unfold_reassemble, (x, kern), (2, 3, s * h, s * w)),
                                        (window_dot, unfold_window_similarity, (q, x), (2, k * k, s * h, s * w))):
        g = torch.randn(grad_shape, dtype=torch.float64)
        got, want = fast(*args, k, s), ref(*args, k, s)
        assert torch.allclose(got, want, atol=1e-12)
        for a, b in zip(torch.autograd.grad(got, args, g), torch.autograd.grad(want, args, g)):
            assert torch.allclose(a, b, atol=1e-12)


def test_gradcheck_both_ops():
    torch.manual_seed(0)
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    kern = torch.randn(1, 9, 6, 8, dtype=torch.float64, requires_grad=True)
    q = torch.randn(1, 2, 6, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: reassemble(a, b, 3, 2), (x, kern))
    assert torch.autograd.gradcheck(lambda a, b: window_dot(a, b, 3, 2), (q, x))


@pytest.fixture
def unfold_ops(monkeypatch):
    """A context that swaps the unfold references in wherever an upsampler module holds the fast ops."""

    class Swap:
        def __enter__(self):
            for name, module in list(sys.modules.items()):
                if name.startswith("upsample_zoo.upsamplers"):
                    for attr, value in list(vars(module).items()):
                        if value is carafe_reassemble or value is reassemble:
                            monkeypatch.setattr(module, attr, unfold_reassemble)
                        elif value is window_similarity or value is window_dot:
                            monkeypatch.setattr(module, attr, unfold_window_similarity)

        def __exit__(self, *exc):
            monkeypatch.undo()

    return Swap()


def _outputs_and_grads(up, x, guide, size):
    up.zero_grad()
    x, guide = x.clone().requires_grad_(), guide.clone().requires_grad_()
    y = up(x, output_size=size, guide=guide)
    y.backward(torch.linspace(-1, 1, y.numel()).view_as(y))
    grads = {"x": x.grad}
    if guide.grad is not None:
        grads["guide"] = guide.grad
    grads.update({n: p.grad.clone() for n, p in up.named_parameters() if p.grad is not None})
    return y.detach(), grads


def _randomised(name, scale):
    torch.manual_seed(0)
    up = create_upsampler(name, 8, 4, scale=scale)
    with torch.no_grad():
        for p in up.parameters():
            p.add_(0.3 * torch.randn_like(p))  # logits of size 1: kernels far from uniform
    return up


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("name", WINDOWED)
def test_every_windowed_operator_equals_its_unfold_reference(name, scale, unfold_ops):
    up = _randomised(name, scale)
    x = torch.randn(2, 8, 5, 3)
    size = (5 * scale + 1, 3 * scale - 1)  # odd: the guide is fitted to the exact grid, the output cropped/padded
    guide = torch.randn(2, 4, *size)
    y, grads = _outputs_and_grads(up, x, guide, size)
    with unfold_ops:
        y_ref, grads_ref = _outputs_and_grads(up, x, guide, size)
    # 1e-5 of each tensor's largest magnitude: both are fp32 roundings of the same sums in other orders
    # (against a float64 run both stay within 4e-6 of it, FreqFusion's chained kernels at scale 4 the worst)
    assert (y - y_ref).abs().max() <= 1e-5 * y_ref.abs().max()
    assert grads.keys() == grads_ref.keys() and len(grads) > 3
    for key in grads:
        assert (grads[key] - grads_ref[key]).abs().max() <= 1e-5 * grads_ref[key].abs().max(), (name, key)


@pytest.mark.parametrize("name", WINDOWED)
def test_bf16_autocast_stays_within_bf16_rounding_of_the_fp32_reference(name, unfold_ops):
    """Under bf16 autocast the ops accumulate in float32, so the optimised operator is as close to the fp32
    reference as the unfold reference itself is under bf16 (both keep the convs' bf16 rounding): within 1.25x
    its error, plus 0.1% of the output's scale, and within 5% of the output's largest value."""
    up = _randomised(name, 2)
    x, guide = torch.randn(2, 8, 6, 5), torch.randn(2, 4, 12, 10)
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = up(x, guide=guide).float()
        with unfold_ops:
            y_ref = up(x, guide=guide)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                y_ref_bf16 = up(x, guide=guide).float()
    scale = y_ref.abs().max()
    err, err_ref = (y - y_ref).abs().max(), (y_ref_bf16 - y_ref).abs().max()
    assert err <= 1.25 * err_ref + 1e-3 * scale and err <= 0.05 * scale, (float(err), float(err_ref))
