"""The zoo as a library: list_upsamplers(), create_upsampler(), check_upsampler(), and plain nn.Module
operators treated like zoo classes by the models."""

from __future__ import annotations

import functools
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import upsample_zoo as uz
from upsample_zoo.errors import ConfigError
from upsample_zoo.models.dcgan import DCGAN
from upsample_zoo.models.unet import UNet
from upsample_zoo.upsamplers import CARAFE, fit_to_size, upsampler_parameters
from upsample_zoo.zoo import config_dir, upsampler_factory


class PlainUp(nn.Module):
    """A user's operator that keeps the contract without subclassing Upsampler."""

    def __init__(self, in_channels: int, out_channels: int, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x, output_size=None):
        y = self.conv(F.interpolate(x, scale_factor=self.scale, mode="nearest"))
        return y if output_size is None else fit_to_size(y, tuple(output_size)[-2:])


class IgnoresOutputSize(PlainUp):
    def forward(self, x, output_size=None):
        return super().forward(x)


class Stretches(PlainUp):
    """Resamples straight to the odd size: the shape is right, the grid is not."""

    def forward(self, x, output_size=None):
        size = tuple(output_size)[-2:] if output_size is not None else (2 * x.shape[-2], 2 * x.shape[-1])
        return self.conv(F.interpolate(x, size=size, mode="bilinear", align_corners=False))


class WrongChannels(PlainUp):
    def forward(self, x, output_size=None):
        return super().forward(x, output_size)[:, :1]


class NonFinite(PlainUp):
    def forward(self, x, output_size=None):
        return super().forward(x, output_size) * float("inf")


class DeadParameter(PlainUp):
    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.unused = nn.Parameter(torch.zeros(3))


def test_list_upsamplers_is_the_config_folder():
    names = uz.list_upsamplers()
    assert names == sorted(p.stem for p in (config_dir() / "upsampler").glob("*.yaml") if p.stem != "custom")
    assert "custom" not in names and {"bilinear", "tconv", "carafe"} <= set(names)


def test_create_upsampler_builds_the_config_with_options():
    up = uz.create_upsampler("carafe", 64, 32)
    assert isinstance(up, CARAFE) and up.num_parameters() == (64 * 64 + 64) + (64 * 100 * 9 + 100) + (64 * 32 + 32)
    small = uz.create_upsampler("carafe", 64, 32, scale=4, k_up=3)
    assert (small.scale, small.k_up) == (4, 3)
    assert uz.create_upsampler("bilinear", 8, 4)(torch.randn(1, 8, 3, 5)).shape == (1, 4, 6, 10)


def test_create_upsampler_from_a_dotted_class_path():
    up = uz.create_upsampler(f"{__name__}.PlainUp", 8, 4)
    assert isinstance(up, PlainUp)


@pytest.mark.parametrize("name,match", [("nope", "unknown upsampler 'nope'; the zoo has bicubic, bilinear"),
                                        ("custom", "unknown upsampler 'custom'"),
                                        ("nopkg.NoSuchUp", "upsampler 'nopkg.NoSuchUp' cannot be built")])
def test_unknown_names_are_one_clear_error(name, match):
    with pytest.raises(ConfigError, match=match):
        uz.create_upsampler(name, 8, 4)


@pytest.mark.parametrize("name,scale", [(n, s) for n in uz.list_upsamplers() for s in (2, 4)
                                        if not (n == "tconv_k3" and s == 4)])  # k3 s2: a x2 layer by design
def test_every_zoo_operator_keeps_the_contract(name, scale):
    """The contract, tested once for the whole zoo at both scales (check_upsampler: shapes, odd output sizes and
    the alignment rule, gradients, finite values), in the factory and the module forms."""
    uz.check_upsampler(upsampler_factory(name, scale=scale), scale=scale, name=name)  # factory form
    uz.check_upsampler(uz.create_upsampler(name, 8, 4, scale=scale))  # module form


def test_a_plain_module_that_keeps_the_contract_passes():
    uz.check_upsampler(PlainUp)
    uz.check_upsampler(PlainUp(6, 3, scale=4), in_channels=6, out_channels=3)
    with pytest.raises(ConfigError, match="pass in_channels and out_channels"):
        uz.check_upsampler(PlainUp(6, 3))  # a module that does not store its channels
    uz.check_upsampler(functools.partial(PlainUp, scale=4))


@pytest.mark.parametrize("cls,match", [
    (IgnoresOutputSize, r"IgnoresOutputSize breaks the zoo contract: ignores output_size: asked for \(11, 15\), "
                        r"got \(10, 14\)"),
    (Stretches, r"Stretches breaks the zoo contract: output_size=\(11, 15\) is not up\(x\) extended"),
    (WrongChannels, r"WrongChannels breaks the zoo contract: \(2, 8, 5, 7\) -> \(2, 1, 10, 14\), expected exactly "
                    r"\(2, 4, 10, 14\)"),
    (NonFinite, "NonFinite breaks the zoo contract: the output is not finite"),
    (DeadParameter, "no gradient reaches parameter.s. unused"),
])
def test_contract_violations_name_what_broke(cls, match):
    with pytest.raises(ConfigError, match=match) as info:
        uz.check_upsampler(cls)
    assert "\n" not in str(info.value)


def test_a_factory_that_cannot_build_is_named():
    def broken(cin, cout):
        raise TypeError("__init__() missing 1 required positional argument: 'k'")

    with pytest.raises(ConfigError, match=r"upsampler .*broken cannot be built as \(8, 4\): TypeError"):
        uz.check_upsampler(broken)


def test_check_changes_no_state_and_no_random_stream():
    up = uz.create_upsampler("pixel_shuffle", 8, 4)
    before = {k: v.clone() for k, v in up.state_dict().items()}
    rng = torch.get_rng_state()
    uz.check_upsampler(up)
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(before[k], v) for k, v in up.state_dict().items())
    assert all(p.grad is None for p in up.parameters())


def test_models_count_a_plain_module_as_upsampler_cost():
    unet = UNet(PlainUp, base_channels=4, depth=2)  # widths 4, 8, 16: decoder stages 16->8 and 8->4
    assert len(unet.upsampler_modules()) == 2
    assert upsampler_parameters(unet) == (16 * 8 * 9 + 8) + (8 * 4 * 9 + 4)  # 3x3 conv + bias each


def test_dcgan_init_leaves_a_plain_module_upsampler_alone():
    torch.manual_seed(0)
    gan = DCGAN(PlainUp, ngf=8, ndf=8)  # widths 32, 16, 8, 8
    w = gan.generator.upsampler_modules()[0].conv.weight  # 32 -> 16, 3x3
    # PyTorch's default conv init (uniform, bound 1/sqrt(fan_in)), not DCGAN's N(0, 0.02)
    bound = 1 / (32 * 9) ** 0.5
    assert w.abs().max() <= bound
    assert w.std().item() == pytest.approx(bound / 3**0.5, rel=0.1)
    assert upsampler_parameters(gan) == (32 * 16 * 9 + 16) + (16 * 8 * 9 + 8) + (8 * 8 * 9 + 8)


@pytest.mark.parametrize("name, option", [("carafe", "k_up"), ("carafe", "k_enc"), ("fade", "k_up"), ("fade", "k_enc"),
                                          ("sapa", "k_up"), ("pixel_shuffle", "kernel_size"),
                                          ("bilinear_additive", "kernel_size"), ("resize_conv", "kernel_size")])
@pytest.mark.parametrize("size", [4, 0, -3])
def test_centred_kernels_refuse_even_or_non_positive_sizes(name, option, size):
    """Every centred kernel option has one rule and one message that names the option to fix."""
    with pytest.raises(ConfigError, match=rf": {option} must be odd and positive, got {size} \(upsampler\.{option}\)$"):
        uz.create_upsampler(name, 16, 8, **{option: size})


@pytest.mark.parametrize("kwargs,needle", [
    ({"in_channels": 64.0}, "in_channels must be an int, got float 64.0"),
    ({"out_channels": "32"}, "out_channels must be an int, got str '32'"),
    ({"in_channels": True}, "in_channels must be an int, got bool True"),
    ({"scale": 2.0}, "scale must be an int, got float 2.0"),
])
def test_api_channel_types_are_one_config_error(kwargs, needle):
    """Floats, strings and bools used to reach torch and fail there with its own message."""
    args = {"in_channels": 64, "out_channels": 32, **kwargs}
    with pytest.raises(ConfigError, match=re.escape(needle)):
        uz.create_upsampler("carafe", args.pop("in_channels"), args.pop("out_channels"), **args)
