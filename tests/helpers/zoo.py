"""The zoo as the tests see it: every name in configs/upsampler, so a name added there is tested everywhere."""

from __future__ import annotations

from upsample_zoo.zoo import list_upsamplers, upsampler_factory

ZOO = list_upsamplers()
# guided operators (FADE, SAPA) need a high-resolution guide: the U-Net has one (its skips), the DCGAN none
GUIDED = [n for n in ZOO if getattr(upsampler_factory(n).func, "requires_guide", False)]
UNGUIDED = [n for n in ZOO if n not in GUIDED]
SMOKE_UPSAMPLERS = ["nearest", "tconv", "pixel_shuffle"]  # the session's smoke sweep (conftest.smoke_sweep)
