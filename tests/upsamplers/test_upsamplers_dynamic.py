"""CARAFE, DySample and bilinear additive upsampling: a property from each paper, plus their edge cases.

The shared contract (shapes, odd sizes, gradients, parameter counts) is covered by tests/upsamplers/test_upsamplers.py,
parametrized over ZOO.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from upsample_zoo.errors import ConfigError
from upsample_zoo.upsamplers import CARAFE, BilinearAdditive, DySample, carafe_reassemble

from ..helpers.run_if import RunIf

# ---- CARAFE --------------------------------------------------------------------------------------


def _randomise_encoder(up: CARAFE) -> None:
    """Far from the near-uniform init, so the kernels are genuinely content-dependent."""
    with torch.no_grad():
        up.encoder.weight.normal_(0, 0.5)
        up.encoder.bias.normal_(0, 0.5)


@pytest.mark.parametrize("scale,k_up", [(2, 5), (4, 3), (2, 1)])
def test_carafe_kernels_sum_to_one(scale, k_up):
    torch.manual_seed(0)
    up = CARAFE(6, 4, scale=scale, k_up=k_up, compressed_channels=8)
    _randomise_encoder(up)
    k = up.kernels(torch.randn(2, 6, 5, 7))
    assert k.shape == (2, k_up * k_up, 5 * scale, 7 * scale)
    assert (k >= 0).all()
    assert torch.allclose(k.sum(dim=1), torch.ones(2, 5 * scale, 7 * scale), atol=1e-5)
    if k_up > 1:
        assert k.std(dim=1).mean() > 1e-2  # not the uniform kernel


def test_carafe_reassembly_matches_a_naive_loop():
    torch.manual_seed(1)
    n, c, h, w, s, ku = 2, 3, 4, 5, 2, 3
    x = torch.randn(n, c, h, w)
    kernels = torch.randn(n, ku * ku, s * h, s * w).softmax(1)
    got = carafe_reassemble(x, kernels, ku, s)
    xp = F.pad(x, (ku // 2,) * 4)  # outside the input reads zero
    want = torch.zeros(n, c, s * h, s * w)
    for yy in range(s * h):
        for xx in range(s * w):
            patch = xp[:, :, yy // s: yy // s + ku, xx // s: xx // s + ku].reshape(n, c, ku * ku)
            want[:, :, yy, xx] = (patch * kernels[:, None, :, yy, xx]).sum(-1)
    assert torch.allclose(got, want, atol=1e-5)


def test_carafe_uniform_kernels_are_box_filter_then_nearest():
    """With a zero content encoder the softmax is uniform: a k_up x k_up mean (zero padded), then nearest."""
    up = CARAFE(4, 4, k_up=3)
    with torch.no_grad():
        up.encoder.weight.zero_()
        up.encoder.bias.zero_()
    x = torch.randn(1, 4, 6, 5)
    box = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True)
    want = up.proj(F.interpolate(box, scale_factor=2, mode="nearest"))
    assert torch.allclose(up(x), want, atol=1e-5)


def test_carafe_projecting_first_is_exact():
    """out < in projects before reassembly (bias after, as zero padding would read b): exact."""
    torch.manual_seed(2)
    up = CARAFE(8, 3)
    _randomise_encoder(up)
    x = torch.randn(2, 8, 5, 6)
    want = up.proj(carafe_reassemble(x, up.kernels(x), up.k_up, up.scale))
    assert torch.allclose(up(x), want, atol=1e-5)
    assert up(x, output_size=(9, 11)).shape == (2, 3, 9, 11)


def test_carafe_kernels_stay_float32_under_bf16_autocast():
    """bf16 softmax weights sum to 1 only within ~1%: a brightness error only CARAFE would carry."""
    torch.manual_seed(0)
    up = CARAFE(16, 8, k_up=5, compressed_channels=16)
    _randomise_encoder(up)
    x = torch.randn(1, 16, 32, 32).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        k = up.kernels(x)
        y = up(x)
    assert k.dtype == torch.float32
    assert (k.sum(dim=1) - 1).abs().max() < 1e-5
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("bad", [dict(k_up=4), dict(k_enc=0), dict(compressed_channels=0), dict(scale=3)])
def test_carafe_bad_hyperparameters(bad):
    with pytest.raises(ConfigError):
        CARAFE(8, 4, **bad)


# ---- DySample ------------------------------------------------------------------------------------


def test_dysample_init_pos_is_bilinear_subpixel_grid():
    up = DySample(8, 8, scale=2, groups=2)
    pos = up.init_pos.view(2, 2, 2, 2)  # (xy, group, i, j)
    assert torch.equal(pos[0, 0], torch.tensor([[-0.25, 0.25], [-0.25, 0.25]]))  # x varies along j
    assert torch.equal(pos[1, 0], torch.tensor([[-0.25, -0.25], [0.25, 0.25]]))  # y varies along i
    assert torch.equal(pos[:, 0], pos[:, 1])
    assert "init_pos" not in dict(up.named_parameters())


@pytest.mark.parametrize("scale,groups,dyscope", [(2, 4, False), (4, 2, False), (2, 1, True), (4, 8, True)])
def test_dysample_zero_offsets_reproduce_bilinear(scale, groups, dyscope):
    """The paper's starting point: offsets 0 leave only init_pos, which is bilinear upsampling's grid."""
    torch.manual_seed(3)
    up = DySample(8, 5, scale=scale, groups=groups, dyscope=dyscope)
    with torch.no_grad():
        up.offset.weight.zero_()
        up.offset.bias.zero_()
    x = torch.randn(2, 8, 5, 7)
    bilinear = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    assert torch.allclose(up.sample(x, up.offsets(x)), bilinear, atol=1e-5)
    assert torch.allclose(up(x), up.proj(bilinear), atol=1e-5)


def test_dysample_offsets_move_the_samples():
    """A constant offset of +1 input pixel in x (all groups) reads the next column."""
    up = DySample(4, 4, scale=2, groups=2)
    x = torch.randn(1, 4, 6, 6)
    shift = torch.zeros_like(up.init_pos).view(2, -1)
    shift[0] = 1.0
    got = up.sample(x, (up.init_pos + shift.view_as(up.init_pos)).expand(1, -1, 6, 6))
    x_shifted = torch.cat([x[..., 1:], x[..., -1:]], dim=-1)
    want = F.interpolate(x_shifted, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(got[..., 1:], want[..., 1:], atol=1e-5)  # column 0: border clamping differs


@pytest.mark.parametrize("dyscope", [False, True])
def test_dysample_sampling_positions_stay_float32_under_bf16_autocast(dyscope):
    """At 256 px, bf16 coordinates are off by up to 0.75 px; they must equal the float32 ones to 1e-4 px,
    and the samples must be those of a float32 grid_sample (finite, to bf16 rounding of the values)."""
    torch.manual_seed(0)
    up = DySample(8, 4, groups=4, dyscope=dyscope)
    with torch.no_grad():
        up.offset.weight.normal_(0, 0.05)
        if dyscope:
            up.scope.weight.normal_(0, 0.05)
    x = torch.randn(1, 8, 256, 256).bfloat16()
    ref_pos = up.positions(x.float())
    ref_samples = up.sample(x.float(), up.offsets(x.float()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pos = up.positions(x)
        samples = up.sample(x, up.offsets(x))
        y = up(x)
    assert pos.dtype == torch.float32
    assert (pos - ref_pos).abs().max() < 1e-4
    assert (ref_pos - ref_pos.round(decimals=0)).abs().max() > 0.1  # genuinely sub-pixel positions
    assert torch.isfinite(samples.float()).all() and torch.isfinite(y.float()).all()
    assert (samples.float() - ref_samples).abs().max() < 0.05  # bf16 rounding of values ~4, not 0.4 px moves


def test_dysample_dynamic_scope_starts_as_static():
    torch.manual_seed(4)
    static, dynamic = DySample(8, 4), DySample(8, 4, dyscope=True)
    dynamic.load_state_dict(static.state_dict(), strict=False)
    x = torch.randn(2, 8, 5, 5)
    assert torch.allclose(static(x), dynamic(x), atol=1e-6)  # 0.5 sigmoid(0) = 0.25
    assert dynamic.num_parameters() == static.num_parameters() + 8 * 2 * 4 * 4


def test_dysample_groups_must_divide_in_channels():
    with pytest.raises(ConfigError, match="in_channels=6 must be a positive multiple of groups=4"):
        DySample(6, 4)
    with pytest.raises(ConfigError):
        DySample(8, 4, groups=0)
    DySample(6, 4, groups=3)


# ---- bilinear additive ---------------------------------------------------------------------------


def test_bilinear_additive_is_parameter_free_before_its_conv():
    up = BilinearAdditive(12, 4)
    conv_params = sum(p.numel() for p in up.conv.parameters())
    assert up.num_parameters() == conv_params == 4 * 4 * 9 + 4
    x = torch.randn(2, 12, 5, 6)
    pre = up.resample(x, (10, 12))
    # bilinear x2, then the sum of every 3 consecutive channels
    want = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False).view(2, 4, 3, 10, 12).sum(2)
    assert torch.allclose(pre, want, atol=1e-5)
    assert torch.allclose(up(x), up.conv(want), atol=1e-5)
    assert up(x, output_size=(9, 13)).shape == (2, 4, 9, 13)


def test_bilinear_additive_needs_divisible_channels():
    with pytest.raises(ConfigError, match="in_channels=6 must be a multiple of out_channels=4"):
        BilinearAdditive(6, 4)
    with pytest.raises(ConfigError):
        BilinearAdditive(8, 4, kernel_size=2)


@pytest.mark.parametrize("cls", [CARAFE, DySample, BilinearAdditive])
@pytest.mark.parametrize("bad", [dict(scale=3), dict(in_channels=0), dict(out_channels=-2)])
def test_invalid_hyperparameters_raise_config_error(cls, bad):
    kw = dict(in_channels=8, out_channels=4, scale=2) | bad
    with pytest.raises(ConfigError):
        cls(**kw)


@RunIf(gpu=True)
@pytest.mark.parametrize("cls", [CARAFE, DySample, BilinearAdditive])
def test_runs_on_gpu_like_on_cpu(cls):
    torch.manual_seed(5)
    up = cls(8, 4)
    x = torch.randn(2, 8, 7, 5)
    want = up(x, output_size=(13, 10))
    got = up.cuda()(x.cuda(), output_size=(13, 10)).cpu()
    assert torch.allclose(got, want, atol=1e-4)
