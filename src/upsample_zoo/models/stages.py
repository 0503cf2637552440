"""Per-stage upsamplers: ``model.stage_upsamplers`` gives chosen decoder stages another operator.

Stages are numbered in the order the data flows: 0 is the first (lowest-resolution) up stage, and negative
numbers count from the end. ``first``, ``last`` and ``all`` are names for 0, -1 and every stage. So
``upsampler=tconv model.stage_upsamplers={last:bilinear}`` is "tconv everywhere except the last stage"
(Chandrasegaran et al. 2021 and Schwarz et al. 2021 trace most spectral artifacts to that last layer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from upsample_zoo.errors import ConfigError

UpsamplerFactory = Callable[[int, int], nn.Module]
UpsamplerSpec = UpsamplerFactory | str  # a factory, or a zoo name / dotted class path the model resolves
NAMED = {"first": 0, "last": -1}


def resolve_upsampler(spec: UpsamplerSpec, scale: int | None = None) -> UpsamplerFactory:
    """The factory a model builds its stages with, from what it was given (as timm's models call
    ``get_act_layer``): a factory passes through; a zoo name or a dotted class path (``"bilinear"``,
    ``"mypkg.MyUp"``) is resolved through the zoo's factory, at ``scale`` when one is given."""
    if isinstance(spec, str):
        from upsample_zoo.zoo import upsampler_factory

        return upsampler_factory(spec, **({"scale": scale} if scale is not None else {}))
    if not callable(spec):
        raise ConfigError(f"upsampler: expected a zoo name, a dotted class path or a factory "
                          f"(in_channels, out_channels) -> module, got {type(spec).__name__}")
    return spec


def factory_scale(factory: UpsamplerFactory) -> int | None:
    """The ``scale`` a factory (a ``functools.partial`` of hydra's ``_partial_``) was given, if any."""
    return (getattr(factory, "keywords", None) or {}).get("scale")


def stage_indices(selector: Any, n: int) -> list[int]:
    """The stages (0..n-1) one key of ``model.stage_upsamplers`` means."""
    if str(selector) == "all":
        return list(range(n))
    key = NAMED.get(str(selector), selector)
    try:
        i = int(key)
    except (TypeError, ValueError):
        i = None
    if i is None or not -n <= i < n:
        raise ConfigError(f"model.stage_upsamplers: stage {selector!r} does not exist; this decoder has {n} up "
                          f"stages: 0..{n - 1}, -{n}..-1, first, last or all")
    return [i % n]


def stage_factories(default: UpsamplerSpec, overrides: Mapping[Any, UpsamplerSpec] | None,
                    n: int) -> list[UpsamplerFactory]:
    """One factory per stage: ``default``, replaced where a key of ``overrides`` selects the stage ("all"
    first, then the other keys in order, so ``{all: bilinear, last: tconv}`` reads as written). Names are
    resolved by :func:`resolve_upsampler`; a stage's name is built at the main operator's scale."""
    main = resolve_upsampler(default)
    out = [main] * n
    items = sorted((overrides or {}).items(), key=lambda kv: str(kv[0]) != "all")
    for selector, spec in items:
        factory = resolve_upsampler(spec, factory_scale(main))
        for i in stage_indices(selector, n):
            out[i] = factory
    return out


def require_scale(upsamplers: list[nn.Module], model: str, scale: int = 2) -> None:
    """Refuse, at build time, an operator whose scale the model cannot use: its stages are ``scale`` x
    each (the U-Net's max-pool skips, the DCGAN's 4->8->16->32). A 4x operator there would be cropped to
    the skip's corner, or make images of the wrong size. A module without a ``scale`` is taken at its word."""
    for i, up in enumerate(upsamplers):
        got = getattr(up, "scale", scale)
        if got != scale:
            raise ConfigError(
                f"upsampler.scale={got}: the {model} is built from {scale}x stages (stage {i} of {len(upsamplers)}) "
                f"and supports only upsampler.scale={scale}; other scales are for the library API "
                "(create_upsampler, check_upsampler), the probe and the bench")


def stages_label(upsampler: str, overrides: Mapping[Any, str] | None) -> str:
    """The run's name for a mixed decoder: ``tconv+last:bilinear``. With ``all``, the main operator builds no
    stage, so the name starts from the ``all`` operator: ``{all: bilinear}`` is plain ``bilinear``."""
    items = [(str(k), str(v)) for k, v in (overrides or {}).items()]
    base = next((v for k, v in items if k == "all"), upsampler)
    return "+".join([base, *(f"{k}:{v}" for k, v in items if k != "all")])
