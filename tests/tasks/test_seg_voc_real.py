"""The encoder config group and the real-VOC experiments: what they compose to, and that they run."""

from __future__ import annotations

import pytest

from upsample_zoo.errors import ConfigError
from upsample_zoo.models.build import build_model
from upsample_zoo.sweep_resume import config_hash
from upsample_zoo.upsamplers.base import accepts_guide
from upsample_zoo.zoo import create_upsampler

from ..helpers.cli import compose_cfg, compose_train


def _resolved(overrides, tmp_path):
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose_cfg(overrides, tmp_path), resolve=True)


def test_scratch_is_the_default_and_sets_nothing(zoo_root, tmp_path):
    """encoder=scratch adds no key: every earlier run's config, and so its config hash, stays the same."""
    default, explicit = _resolved([], tmp_path), _resolved(["encoder=scratch"], tmp_path)
    assert "encoder" not in default["model"] and "augment" not in default["data"]
    assert config_hash(default) == config_hash(explicit)
    assert config_hash(default) != config_hash(_resolved(["encoder=inception_v3"], tmp_path))


def test_seg_voc_cpu_gives_every_operator_the_same_budget(zoo_root):
    cfg = compose_train(["experiment=seg_voc_cpu"])
    ops = str(cfg.hydra.sweeper.params.upsampler).split(",")
    assert len(ops) >= 12 and sum(accepts_guide(create_upsampler(o, 8, 8)) for o in ops) >= 2
    assert str(cfg.hydra.sweeper.params.seed).split(",") == ["0", "1", "2"]
    assert cfg.model.encoder.freeze and cfg.data.augment == "grid_crop" and cfg.data.crop_size % cfg.data.grid == 0
    assert cfg.data.max_train is None and cfg.data.max_val is None  # every image of both splits


def test_an_encoder_is_refused_outside_the_unet(zoo_root, tmp_path):
    cfg = compose_cfg(["task=gan", "encoder=inception_v3"], tmp_path)
    with pytest.raises(ConfigError, match="encoder=inception_v3: a pretrained encoder is for the U-Net"):
        build_model(cfg)


def _solid_png(path, rgb) -> None:
    from PIL import Image

    Image.new("RGB", (60, 40), rgb).save(path)


def test_compare_stacks_each_operators_first_ok_prediction_grid(tmp_path):
    import numpy as np
    from PIL import Image

    from upsample_zoo.report import compare

    from ..helpers.runs import write_run

    colours = {("bilinear", 0, "ok"): (250, 0, 0), ("bilinear", 1, "ok"): (0, 0, 250),
               ("fade", 0, "failed"): (0, 250, 250), ("fade", 2, "ok"): (0, 250, 0)}
    for (op, seed, status), rgb in colours.items():
        d = write_run(tmp_path / "sweep", f"{op}_{seed}", upsampler=op, seed=seed, status=status,
                      metrics={"test/miou": 0.5} if status == "ok" else {})
        _solid_png(d / "predictions.png", rgb)
    written = compare([tmp_path / "sweep"])
    pixels = {tuple(p) for p in np.asarray(Image.open(written["predictions"]).convert("RGB")).reshape(-1, 3)}
    assert (250, 0, 0) in pixels and (0, 250, 0) in pixels  # bilinear seed 0, fade's first ok seed (2)
    assert (0, 0, 250) not in pixels and (0, 250, 250) not in pixels  # a later seed, a failed run
