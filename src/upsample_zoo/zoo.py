"""The zoo as a library: ``list_upsamplers()``, ``create_upsampler()`` and ``check_upsampler()``.

The configs are the one source of truth: a name is a file ``configs/upsampler/<name>.yaml`` (shipped inside
the package as ``upsample_zoo.configs``), so an operator added there appears in the API, the tests, the
probe, the bench, the experiments and the report. ``check_upsampler`` is the contract every operator keeps
(the zoo's own, a user's ``nn.Module``, or a factory of either); the training build calls it on the
configured operator before any data is loaded.
"""

from __future__ import annotations

import copy
import importlib.resources
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from upsample_zoo.errors import ConfigError, flat
from upsample_zoo.upsamplers.base import needs_guide

# the user's own operator from the command line: upsampler=custom upsampler._target_=mypkg.MyUp
CUSTOM = "custom"


def config_dir() -> Path:
    """The config root (``train.yaml``, ``upsampler/``, ...), found through the package, never the repo."""
    return Path(str(importlib.resources.files("upsample_zoo.configs")))


def list_upsamplers(config_root: str | Path | None = None) -> list[str]:
    """The zoo's names: one per ``configs/upsampler/*.yaml``, sorted; ``custom``, the user's slot, left out.

    Args:
        config_root: a config root with the package's layout (``upsampler/*.yaml``); default: the
            package's own configs.

    Returns:
        The names, each usable as ``upsampler=<name>`` and in :func:`create_upsampler`.

    Example:
        >>> "tconv" in list_upsamplers()
        True
    """
    root = Path(config_root) if config_root is not None else config_dir()
    return sorted(p.stem for p in (root / "upsampler").glob("*.yaml") if p.stem != CUSTOM)


def upsampler_name(choice: str, target: str, stages: Any = None) -> str:
    """The name a run goes by (results.json, run dir, wandb, report rows): the config's name, unless the
    operator is not that config's class (``upsampler=custom upsampler._target_=mypkg.MyUp``, or a zoo name
    whose ``_target_`` was overridden): then its dotted class path. Per-stage operators
    (``model.stage_upsamplers``) follow it: ``tconv+last:bilinear``."""
    from upsample_zoo.models.stages import stages_label

    name = choice
    if choice == CUSTOM:
        name = target
    elif (config_dir() / "upsampler" / f"{choice}.yaml").is_file() and \
            upsampler_config(choice).get("_target_") != target:
        name = target
    label = stages_label(name, stages)
    if "/" in label or "\\" in label:
        raise ConfigError(f"upsampler name {label!r} holds a path separator, and the name is the run's folder: use a "
                          "zoo name or a dotted class path such as mypkg.MyUp")
    return label


def sweep_suffix(sweep_name: str | None) -> str:
    """``_<sweep_name>``, or nothing: a sweep folder is ``<time>_seg_ablation`` for an experiment that names
    itself, ``<time>`` for a plain multirun."""
    return f"_{sweep_name}" if sweep_name else ""


def register_resolvers() -> None:
    """``${uz.upsampler_name:...}`` and ``${uz.sweep_suffix:${sweep_name}}`` in the configs."""
    from omegaconf import OmegaConf

    for name, fn in (("uz.upsampler_name", upsampler_name), ("uz.sweep_suffix", sweep_suffix)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register_resolvers()  # before any config that names them is composed


def upsampler_config(name: str, configs: str | Path | None = None) -> dict[str, Any]:
    """The yaml of one zoo name, as a plain dict (``_target_``, ``_partial_``, ``scale``, its options);
    ``configs``: another config root than the package's (the probe's ``--configs``)."""
    import yaml

    root = Path(configs) if configs is not None else config_dir()
    path = root / "upsampler" / f"{name}.yaml"
    if name == CUSTOM or not path.is_file():
        raise ConfigError(f"unknown upsampler {name!r}; the zoo has {', '.join(list_upsamplers(root))} (or give a "
                          "dotted class path such as mypkg.MyUp)")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def upsampler_factory(name: str, *, configs: str | Path | None = None,
                      **options: Any) -> Callable[[int, int], nn.Module]:
    """``factory(in_channels, out_channels)`` for a zoo name, or for a dotted class path (``mypkg.MyUp``),
    with ``options`` (``scale=4``, ``k_up=3``, ...) overriding the config's; ``configs``: another config root
    than the package's."""
    from hydra.utils import instantiate

    if name in list_upsamplers(configs):
        cfg = upsampler_config(name, configs)
    elif "." in name:
        cfg = {"_target_": name}
    else:
        upsampler_config(name, configs)  # raises the error that lists the zoo
    cfg = {**cfg, **options, "_partial_": True}
    try:
        return instantiate(cfg)
    except Exception as exc:  # hydra's InstantiationException: say which name could not be built
        raise ConfigError(f"upsampler {name!r} cannot be built: {flat(exc)}") from exc


def create_upsampler(name: str, in_channels: int, out_channels: int, scale: int = 2, **options: Any) -> nn.Module:
    """Build one operator, as the models do.

    Args:
        name: a zoo name (:func:`list_upsamplers`) or a dotted class path such as ``mypkg.MyUp``.
        in_channels: channels of the low-resolution input.
        out_channels: channels of the output.
        scale: the upsampling factor (2 or 4 for the zoo's operators).
        **options: the operator's own options, over its config's (``k_up=3`` for CARAFE).

    Returns:
        The module: ``up(x)`` is ``(N, out_channels, scale*H, scale*W)``; a guided operator also takes
        ``guide=`` (the high-resolution feature).

    Raises:
        ConfigError: an unknown name, a class that cannot be imported, or options the operator refuses.

    Example:
        >>> up = create_upsampler("carafe", 64, 32)
        >>> tuple(up(torch.zeros(1, 64, 8, 8)).shape)
        (1, 32, 16, 16)
    """
    return upsampler_factory(name, scale=scale, **options)(in_channels, out_channels)


def _label(obj: Any) -> str:
    """A readable name for a module, a class or a factory (``functools.partial`` from hydra's _partial_)."""
    fn = getattr(obj, "func", obj)
    fn = type(fn) if isinstance(fn, nn.Module) else fn
    return getattr(fn, "__qualname__", type(fn).__name__)


def _forward(up: nn.Module, x: torch.Tensor, output_size: tuple[int, int] | None = None,
             guide: torch.Tensor | None = None) -> torch.Tensor:
    kwargs = {} if output_size is None else {"output_size": output_size}
    if guide is not None:
        kwargs["guide"] = guide[..., : output_size[0], : output_size[1]] if output_size else guide
    return up(x, **kwargs)


def check_upsampler(upsampler: nn.Module | Callable[[int, int], nn.Module], in_channels: int | None = None,
                    out_channels: int | None = None, scale: int | None = None, name: str | None = None) -> None:
    """Check the zoo's contract; raise one ``ConfigError`` naming what broke.

    Checked on a small random input (5 x 7, and odd output sizes):

    - the output is exactly ``(N, out_channels, scale*H, scale*W)``;
    - ``output_size`` is honoured, odd sizes included, with the alignment rule:
      ``up(x, output_size=(scale*H + r, scale*W + r))[..., :scale*H, :scale*W] == up(x)`` for 0 < r < scale;
    - gradients reach the input and every trainable parameter;
    - the output is finite.

    A guided operator (``requires_guide``) gets a random guide at each output size (the same guide,
    cropped), so the alignment rule reads ``up(x, size, guide=g)[..., :sH, :sW] == up(x, guide=g[..., :sH, :sW])``,
    and the gradient must reach the guide as well.

    A module is checked on a copy, under a forked RNG: calling this changes no state and no random stream.

    Args:
        upsampler: a module, or a factory ``(in_channels, out_channels) -> module`` (a zoo or user class,
            a ``functools.partial``).
        in_channels: input channels; default: the module's ``in_channels``, or 8 for a factory.
        out_channels: output channels; default: the module's ``out_channels``, or 4 for a factory.
        scale: the factor to expect; default: the module's ``scale``, else 2.
        name: the name to use in the message; default: the class's.

    Raises:
        ConfigError: the first broken rule, in one line (``... breaks the zoo contract: ignores output_size:
            asked for (11, 15), got (10, 14)``).

    Example:
        >>> check_upsampler(create_upsampler("bilinear", 8, 4))  # returns None: the contract holds
    """
    label = name or _label(upsampler)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if isinstance(upsampler, nn.Module):
            up = copy.deepcopy(upsampler)
            cin = in_channels or getattr(up, "in_channels", None)
            cout = out_channels or getattr(up, "out_channels", None)
            if cin is None or cout is None:
                raise ConfigError(f"check_upsampler({label}): pass in_channels and out_channels (the module does "
                                  "not store them)")
        else:
            cin, cout = in_channels or 8, out_channels or 4
            try:
                up = upsampler(cin, cout)
            except ConfigError:
                raise
            except Exception as exc:
                raise ConfigError(f"upsampler {label} cannot be built as ({cin}, {cout}): "
                                  f"{type(exc).__name__}: {flat(exc)}") from exc
        if not isinstance(up, nn.Module):
            raise ConfigError(f"upsampler {label}: the factory returned {type(up).__name__}, not an nn.Module")
        s = int(scale or getattr(up, "scale", 2))
        _check_module(up, label, int(cin), int(cout), s)


def _check_module(up: nn.Module, label: str, cin: int, cout: int, s: int) -> None:
    def fail(what: str) -> ConfigError:
        return ConfigError(f"upsampler {label} breaks the zoo contract: {what}")

    h, w = 5, 7
    x = torch.randn(2, cin, h, w)
    guided = needs_guide(up)
    g = torch.randn(2, int(getattr(up, "guide_channels", cout)), s * h + s - 1, s * w + s - 1) if guided else None
    try:
        with torch.no_grad():
            y = _forward(up, x, (s * h, s * w) if guided else None, g)
    except Exception as exc:
        raise fail(f"forward on {tuple(x.shape)} raised {type(exc).__name__}: {flat(exc)}") from exc
    if tuple(y.shape) != (2, cout, s * h, s * w):
        raise fail(f"{tuple(x.shape)} -> {tuple(y.shape)}, expected exactly {(2, cout, s * h, s * w)} "
                   f"(scale={s} x, out_channels={cout})")
    if not torch.isfinite(y).all():
        raise fail("the output is not finite (NaN or inf)")
    for r in sorted({1, s - 1}):
        size = (s * h + r, s * w + r)
        try:
            with torch.no_grad():
                z = _forward(up, x, size, g)
        except Exception as exc:
            raise fail(f"forward(x, output_size={size}) raised {type(exc).__name__}: "
                       f"{flat(exc)}") from exc
        if tuple(z.shape[-2:]) != size:
            raise fail(f"ignores output_size: asked for {size}, got {tuple(z.shape[-2:])} (the U-Net asks for "
                       "its skip's exact size, odd sides included)")
        if not torch.allclose(z[..., : s * h, : s * w], y, atol=1e-5, rtol=1e-4):
            raise fail(f"output_size={size} is not up(x) extended at the bottom/right: the alignment rule says "
                       "upsample by exactly scale, then crop or pad (upsample_zoo.upsamplers.fit_to_size)")
    with torch.enable_grad():
        xg = x.clone().requires_grad_(True)
        gg = g.clone().requires_grad_(True) if guided else None
        _forward(up, xg, (s * h + 1, s * w + 1), gg).square().mean().backward()
    for what, t in (("the input", xg), ("the guide", gg)):
        if t is not None and (t.grad is None or not torch.isfinite(t.grad).all() or t.grad.abs().sum() == 0):
            raise fail(f"no gradient reaches {what}")
    dead = [n for n, p in up.named_parameters() if p.requires_grad and p.grad is None]
    if dead:
        raise fail(f"no gradient reaches parameter(s) {', '.join(dead[:5])}")
