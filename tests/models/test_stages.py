"""model.stage_upsamplers: which stages a selector means, the models that honour it, and the run's name."""

from __future__ import annotations

import functools

import pytest
import torch

from upsample_zoo.errors import ConfigError
from upsample_zoo.models.dcgan import DCGAN
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
    a, b, c = (functools.partial(InterpConv, mode=m) for m in ("nearest", "bilinear", "bicubic"))
    assert stage_factories(a, {"last": c, "all": b}, 3) == [b, b, c]
    assert stage_factories(a, None, 2) == [a, a]


def test_models_resolve_zoo_names_themselves():
    """As timm's models call get_act_layer: a zoo name is as good as a factory, for the main operator and for
    a stage, and the stage's name is built at the main operator's scale."""
    unet = UNet("tconv", base_channels=4, depth=3, stage_upsamplers={"last": "bilinear"})
    assert [type(u) for u in unet.upsampler_modules()] == [TransposedConv, TransposedConv, InterpConv]
    assert [u.scale for u in unet.upsampler_modules()] == [2, 2, 2]
    with pytest.raises(ConfigError, match=r"upsampler\.scale=4: the U-Net"):  # "nearest" resolved at scale 4
        UNet(upsampler_factory("bilinear", scale=4), base_channels=4, depth=2, stage_upsamplers={0: "nearest"})
    with pytest.raises(ConfigError, match=r"unknown upsampler 'nope'; the zoo has .*bilinear"):
        DCGAN("tconv", ngf=4, ndf=4, stage_upsamplers={"last": "nope"})
    with pytest.raises(ConfigError, match="expected a zoo name, a dotted class path or a factory"):
        UNet(3, base_channels=4, depth=2)


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


@pytest.mark.parametrize("model", ["unet", "dcgan"])
def test_a_scale_the_model_cannot_use_is_refused_at_build_time(model):
    """Both models are built from 2x stages: a 4x operator would be cropped to the skip's top-left quarter
    (U-Net) or make 256-px images (DCGAN). One line naming the key, the model and what it supports."""
    factory = upsampler_factory("bilinear", scale=4)
    with pytest.raises(ConfigError, match=r"upsampler\.scale=4: the .* supports only upsampler\.scale=2") as e:
        UNet(factory, base_channels=4, depth=2) if model == "unet" else DCGAN(factory, ngf=4, ndf=4)
    assert "\n" not in str(e.value)
    # a stage operator inherits the main scale, and is checked like it
    with pytest.raises(ConfigError, match=r"upsampler\.scale=4"):
        UNet(upsampler_factory("bilinear"), base_channels=4, depth=2,
             stage_upsamplers={"last": upsampler_factory("nearest", scale=4)})


def _built_k_up(overrides: list[str], tmp_path) -> list[int]:
    from upsample_zoo.models.build import build_model

    from ..helpers.cli import compose_cfg

    cfg = compose_cfg([*overrides, "debug=smoke"], tmp_path)
    return [getattr(up, "k_up", None) for up in build_model(cfg).upsampler_modules()]


def test_a_stage_naming_the_main_operator_builds_it_with_its_options(tmp_path):
    """upsampler=carafe upsampler.k_up=3 {last: carafe} used to build k_up [3, 3, 3, 5] under the name
    carafe+last:carafe; the stage is the main operator, options included."""
    main = ["upsampler=carafe", "upsampler.k_up=3"]
    assert _built_k_up(main, tmp_path) == [3, 3, 3, 3]
    assert _built_k_up([*main, "model.stage_upsamplers={last: carafe}"], tmp_path) == [3, 3, 3, 3]
    assert _built_k_up([*main, "model.stage_upsamplers={all: carafe}"], tmp_path) == [3, 3, 3, 3]
    # another operator builds its own defaults (FADE's k_up is 5), whatever the main operator's options
    assert _built_k_up([*main, "model.stage_upsamplers={last: fade}"], tmp_path) == [3, 3, 3, 5]


def test_a_stage_naming_the_config_does_not_inherit_a_replaced_class(tmp_path):
    """upsampler=carafe upsampler._target_=<another class> is named after that class, so a stage that names
    carafe is the zoo's carafe, not the replaced main operator."""
    overrides = ["upsampler=carafe", "upsampler._target_=upsample_zoo.upsamplers.InterpConv",
                 "~upsampler.k_up", "~upsampler.k_enc", "~upsampler.compressed_channels", "+upsampler.mode=bilinear",
                 "model.stage_upsamplers={last: carafe}"]
    assert _built_k_up(overrides, tmp_path) == [None, None, None, 5]


def test_the_model_config_holds_the_run_operator(tmp_path):
    """configs/model/*.yaml: ``upsampler: ${upsampler}``, so the model config alone describes the model."""
    from omegaconf import OmegaConf

    from ..helpers.cli import compose_cfg

    for task in ("segmentation", "gan"):
        cfg = compose_cfg([f"task={task}", "upsampler=carafe", "upsampler.k_up=3", "debug=smoke"], tmp_path)
        assert OmegaConf.to_container(cfg.model.upsampler, resolve=True) == \
            OmegaConf.to_container(cfg.upsampler, resolve=True)
        assert cfg.model.upsampler.k_up == 3


def test_a_model_config_without_its_upsampler_is_one_line(tmp_path):
    from upsample_zoo.models.build import build_model

    from ..helpers.cli import compose_cfg

    cfg = compose_cfg(["upsampler=tconv", "debug=smoke", "~model.upsampler"], tmp_path)
    with pytest.raises(ConfigError, match=r"has no upsampler: add `upsampler: \$\{upsampler\}`") as e:
        build_model(cfg)
    assert "\n" not in str(e.value)
