"""DCGAN (Radford et al. 2015) for 32x32 images, whose generator upsamples through the configured upsampler."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from upsample_zoo.errors import ConfigError
from upsample_zoo.models.stages import UpsamplerSpec, require_scale, stage_factories
from upsample_zoo.upsamplers.base import needs_guide, upsampler_modules


class Generator(nn.Module):
    """z -> 4x4 maps -> three up stages (upsampler, BN, ReLU) 4->8->16->32 -> to-RGB conv -> tanh.

    The to-RGB conv is there for fairness: every upsampler, learned or not, is followed by the same
    trainable layer, so no operator has to double as the output layer (a bare 1x1-conv
    interpolation or a tconv emitting RGB directly would compare different things).
    """

    def __init__(self, upsampler: UpsamplerSpec, z_dim: int = 128, ngf: int = 64, to_rgb_kernel: int = 3,
                 out_channels: int = 3, stage_upsamplers: Mapping[Any, UpsamplerSpec] | None = None) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.widths = widths = [4 * ngf, 2 * ngf, ngf, ngf]
        self.project = nn.Sequential(
            nn.Linear(z_dim, widths[0] * 4 * 4, bias=False),
            nn.Unflatten(1, (widths[0], 4, 4)),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        factories = stage_factories(upsampler, stage_upsamplers, len(widths) - 1)
        self.stages = nn.ModuleList(
            nn.ModuleDict({"up": factory(cin, cout), "bn": nn.BatchNorm2d(cout)})
            for factory, cin, cout in zip(factories, widths[:-1], widths[1:])
        )
        require_scale(self.upsampler_modules(), "DCGAN generator (model=dcgan)")
        for stage in self.stages:
            if needs_guide(stage["up"]):
                raise ConfigError(
                    f"upsampler {type(stage['up']).__name__} needs a guide (a high-resolution encoder feature, "
                    "such as a U-Net skip) and the DCGAN generator has none: use it with task=segmentation"
                )
        self.to_rgb = nn.Conv2d(widths[-1], out_channels, to_rgb_kernel, padding=to_rgb_kernel // 2)

    @property
    def total_scale(self) -> int:
        return 8

    def upsampler_modules(self) -> list[nn.Module]:
        """What the factory built, one per up stage."""
        return [stage["up"] for stage in self.stages]

    def upsampler_channels(self) -> list[tuple[int, int]]:
        """(in_channels, out_channels) of each of :meth:`upsampler_modules`."""
        return list(zip(self.widths[:-1], self.widths[1:]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z)
        for stage in self.stages:
            x = torch.relu(stage["bn"](stage["up"](x)))
        return torch.tanh(self.to_rgb(x))


class Discriminator(nn.Module):
    """Strided 4x4 convs 32->16->8->4, LeakyReLU 0.2, BatchNorm (not on the first layer), a 4x4 logit."""

    def __init__(self, ndf: int = 64, in_channels: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 4, 2, 1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * ndf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * ndf, 4 * ndf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(4 * ndf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * ndf, 1, 4, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's N(0, 0.02) init for the layers the paper owns; upsamplers keep their own init (ICNR!), whatever
    their class: the modules the factory built, as the generator lists them."""
    inside_upsamplers = {id(m) for up in upsampler_modules(module) for m in up.modules()}
    for m in module.modules():
        if id(m) in inside_upsamplers:
            continue
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGAN(nn.Module):
    def __init__(self, upsampler: UpsamplerSpec, z_dim: int = 128, ngf: int = 64, ndf: int = 64,
                 to_rgb_kernel: int = 3, image_size: int = 32,
                 stage_upsamplers: Mapping[Any, UpsamplerSpec] | None = None) -> None:
        super().__init__()
        for name, value in (("z_dim", z_dim), ("ngf", ngf), ("ndf", ndf), ("to_rgb_kernel", to_rgb_kernel)):
            if int(value) <= 0:
                raise ConfigError(f"DCGAN: model.{name} must be a positive integer, got {value}")
        if to_rgb_kernel % 2 == 0:
            raise ConfigError(f"DCGAN: model.to_rgb_kernel must be odd (same padding), got {to_rgb_kernel}")
        if image_size != 32:
            raise ConfigError(f"DCGAN: model.image_size={image_size}; this generator makes 32x32 images (4->8->16->32)")
        self.generator = Generator(upsampler, z_dim, ngf, to_rgb_kernel, stage_upsamplers=stage_upsamplers)
        self.discriminator = Discriminator(ndf)
        dcgan_init(self)

    @property
    def z_dim(self) -> int:
        return self.generator.z_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)


# How the generator's BatchNorm layers behave when samples are drawn for FID, the checkerboard score and the
# sample grids (docs/metrics.md, "GAN samples"):
#   precise: eval mode, with running statistics re-estimated over fresh z batches first (momentum=None, the
#            "precise BN" of Wu & Johnson 2021), then restored, so training never sees the re-estimate;
#   train:   batch statistics of each sampling batch, as most DCGAN code samples;
#   running: eval mode with the training-time running statistics (momentum 0.1), which lag a generator that
#            is still moving fast, by an amount that depends on the operator.
SAMPLE_BN_MODES = ("precise", "train", "running")


def _batchnorms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def precise_bn(generator: nn.Module, z_dim: int, num_batches: int, batch_size: int, seed: int,
               device: torch.device) -> None:
    """Re-estimate every BatchNorm's running statistics over ``num_batches`` seeded z batches: with
    momentum=None they become the average of the per-batch statistics (the same batch size each, so the
    mean is the exact mean over all samples)."""
    bns = _batchnorms(generator)
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    was_training = generator.training
    generator.train()
    gen = torch.Generator().manual_seed(seed)
    for _ in range(num_batches):
        generator(torch.randn(batch_size, z_dim, generator=gen).to(device))
    for bn, m in zip(bns, momenta):
        bn.momentum = m
    generator.train(was_training)
