"""model.stage_upsamplers: which stages a selector means, the models that honour it, and the run's name."""

from __future__ import annotations

import pytest
import torch

from upsample_zoo.errors import ConfigError
from upsample_zoo.models.stages import stage_factories, stage_indices, stages_label
from upsample_zoo.models.unet import UNet
from upsample_zoo.upsamplers import InterpConv, TransposedConv
from upsample_zoo.zoo import upsampler_factory, upsampler_name


@pytest.mark.parametrize("selector,want", [("first", [0]), ("last", [3]), (0, [0]), (2, [2]), (-1, [3]),
                                           (-4, [0]), ("1", [1]), ("all", [0, 1, 2, 3])])
def test_stage_selectors(selector, want):
    assert stage_indices(selector, 4) == want


@pytest.mark.parametrize("selector", [4, -5, "middle", None])
def test_unknown_stage_is_one_clear_line(selector):
    with pytest.raises(ConfigError, match=r"does not exist; this decoder has 4 up stages: 0\.\.3") as e:
        stage_indices(selector, 4)
    assert "\n" not in str(e.value)


def test_all_first_then_the_named_stages():
    a, b, c = object(), object(), object()
    assert stage_factories(a, {"last": c, "all": b}, 3) == [b, b, c]
    assert stage_factories(a, None, 2) == [a, a]


def test_unet_stage_zero_is_the_lowest_resolution():
    unet = UNet(upsampler_factory("tconv"), base_channels=4, depth=3,
                stage_upsamplers={"last": upsampler_factory("bilinear")})
    ups = unet.upsampler_modules()
    assert [type(u) for u in ups] == [TransposedConv, TransposedConv, InterpConv]
    assert unet.upsampler_channels() == [(32, 16), (16, 8), (8, 4)]
    assert unet(torch.randn(1, 3, 17, 13)).shape == (1, 21, 17, 13)


def test_run_names():
    assert stages_label("tconv", {"last": "bilinear"}) == "tconv+last:bilinear"
    assert stages_label("tconv", {0: "nearest", -1: "bilinear"}) == "tconv+0:nearest+-1:bilinear"
    assert stages_label("tconv", {"all": "bilinear"}) == "bilinear"
    assert stages_label("tconv", None) == stages_label("tconv", {}) == "tconv"
    assert upsampler_name("tconv", "upsample_zoo.upsamplers.TransposedConv", {"last": "bilinear"}) == \
        "tconv+last:bilinear"
