"""The one way a model is built from a run config, for ``train.py``, the bench and the tests alike: the model
config instantiated, which holds its upsampler (``upsampler: ${upsampler}``, ``configs/upsampler/``) and any
per-stage operators (``model.stage_upsamplers``: zoo names the model resolves through the zoo's factory).
``model.compile`` is not the model's: the task compiles in ``setup()`` (tasks/base.py), so everything built
here runs eager."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from upsample_zoo import errors
from upsample_zoo.errors import ConfigError

BUILDER_KEYS = ("compile",)  # model config keys that are not the model's (the task compiles: tasks/base.py)


def _choice(group: str, default: str | None = None) -> str | None:
    """The config group's choice in a Hydra run (``upsampler=carafe`` -> carafe); ``default`` without one."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        value = HydraConfig.get().runtime.choices.get(group)
        if isinstance(value, str):
            return value
    return default


def upsampler_factory_of(upsampler_cfg: Any):
    """``factory(in_channels, out_channels)`` from an upsampler config (``model.upsampler``, i.e. the run's
    ``upsampler``); a config that cannot build is one line."""
    from hydra.utils import instantiate
    from torch import nn

    target = upsampler_cfg.get("_target_")
    try:
        factory = instantiate(upsampler_cfg)
    except Exception as exc:  # e.g. a _target_ that cannot be imported: one line naming it
        cause = exc.__cause__ or exc
        if isinstance(cause, ConfigError):
            raise cause from exc
        raise ConfigError(f"upsampler {target} cannot be built: {type(cause).__name__}: {errors.flat(cause)}") from exc
    target_cls = getattr(factory, "func", None)
    if isinstance(target_cls, type) and not issubclass(target_cls, nn.Module):
        raise ConfigError(f"upsampler._target_={target} is a {target_cls.__name__}, not an nn.Module: point it at "
                          "an upsampler class (a zoo name, or mypkg.MyUp)")
    return factory


def build_model(cfg: DictConfig) -> Any:
    """``instantiate(cfg.model)``, eager: the model config holds ``upsampler: ${upsampler}`` (built here, once,
    into the run's factory) and ``stage_upsamplers`` (names the model resolves, ``models/stages.py``)."""
    from hydra.utils import instantiate

    from upsample_zoo.zoo import upsampler_name

    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    if model_cfg.get("encoder") and "UNet" not in str(model_cfg.get("_target_")):
        raise ConfigError(f"encoder={_choice('encoder')}: a pretrained encoder is for the U-Net "
                          "(task=segmentation); the other models have their own")
    for key in BUILDER_KEYS:
        model_cfg.pop(key, None)
    if "upsampler" not in model_cfg:
        raise ConfigError(f"model config {model_cfg.get('_target_')} has no upsampler: add `upsampler: ${{upsampler}}` "
                          "to it (the run's operator; configs/model/unet.yaml does)")
    upsampler_cfg = model_cfg.pop("upsampler")
    factory = upsampler_factory_of(upsampler_cfg)  # a config that cannot build is refused in one line
    # model.stage_upsamplers={last: bilinear}: zoo names (or class paths) the model resolves at the main
    # operator's scale. A stage that names the main operator builds exactly the main operator, its overridden
    # options included (upsampler=carafe upsampler.k_up=3 {last: carafe} is k_up=3 everywhere).
    target = str(upsampler_cfg.get("_target_"))
    main = upsampler_name(_choice("upsampler", target), target)  # the name the run gives the main operator
    stages = model_cfg.pop("stage_upsamplers", None) or {}
    stages = {k: factory if str(v) == main else v for k, v in stages.items()}
    try:
        return instantiate(model_cfg, upsampler=factory, **({"stage_upsamplers": stages} if stages else {}))
    except Exception as exc:  # hydra wraps the model's own ConfigError (a guided upsampler in the DCGAN, ...)
        if isinstance(exc.__cause__, ConfigError):
            raise exc.__cause__ from exc
        raise
