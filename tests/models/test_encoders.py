"""Pretrained encoders for the U-Net: where each tap's positions sit in the image, frozen behaviour, weights.

Golden values are independent of the encoder's own geometry arithmetic (TapGeometry):
- by mirror symmetry (every Inception layer pads symmetrically), a tap of n positions computed from an input
  of L rows that no strided layer truncates has its first centre at (L - 1 - s(n - 1)) / 2;
- an impulse through the encoder with positive constant weights spreads symmetrically about the pixel it
  started at; the half-maximum interval's midpoint, averaged over one period of impulse rows, is exactly the
  centre of position 0.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from upsample_zoo.constants import IMAGENET_MEAN, IMAGENET_STD
from upsample_zoo.errors import ConfigError
from upsample_zoo.models.encoders import InceptionV3Encoder, ResNetEncoder, parameter_counts
from upsample_zoo.models.unet import UNet
from upsample_zoo.zoo import upsampler_factory


@pytest.fixture(scope="module")
def inception() -> InceptionV3Encoder:
    return InceptionV3Encoder(weights=None)  # random init, frozen (BatchNorm folded)


def _untruncated_length(layers, lo: int = 300) -> int:
    """An input length that every strided layer reads to its last row (so the maps are mirror-symmetric)."""
    for n in range(lo, lo + 512):
        m, ok = n, True
        for k, s, p in layers:
            ok &= (m + 2 * p - k) % s == 0
            m = (m + 2 * p - k) // s + 1
        if ok:
            return n
    raise AssertionError("no untruncated length")


def test_inception_raw_tap_centres_follow_from_mirror_symmetry(inception):
    n_in = _untruncated_length(inception.geometry[-1].layers)
    x = torch.zeros(1, 3, n_in, n_in)
    with torch.no_grad():
        for stage, g in zip(inception.stages, inception.geometry):
            x = stage(x)
            n = x.shape[-1]
            assert g.offset == (n_in - 1 - g.stride * (n - 1)) / 2, g
    assert [g.stride for g in inception.geometry] == [2, 4, 8, 16, 32]
    assert [g.offset for g in inception.geometry] == [3, 9, 13, 21, 37]  # hand arithmetic, layer by layer


@pytest.mark.parametrize("side", [97, 128, 161, 224, 375])
def test_inception_skips_sit_on_the_decoder_grid_at_odd_and_even_sizes(inception, side):
    """Position j of a level of stride s: ceil(side / s) positions, centre within s/2 of s*j + (s-1)/2."""
    maps = inception(torch.zeros(1, 3, side, side + 1))
    for f, g, c in zip(maps, inception.geometry, inception.channels):
        assert f.shape[1:] == (c, math.ceil(side / g.stride), math.ceil((side + 1) / g.stride))
        top = inception.top_pad  # the image starts at input row `top`; kept position 0 is raw position `crop`
        centre_0 = g.offset - top + g.stride * g.crop(top)
        assert abs(centre_0 - (g.stride - 1) / 2) <= g.stride / 4  # at most a quarter stride, at every level


def _impulse_encoder() -> InceptionV3Encoder:
    enc = InceptionV3Encoder(weights=None)
    for m in enc.modules():
        if isinstance(m, nn.Conv2d):  # positive constant weights: every response spreads symmetrically
            m.weight.data.fill_(1.0 / m.weight[0].numel())
            m.bias.data.zero_()
    return enc


def test_inception_impulse_response_is_centred_where_the_geometry_says():
    enc = _impulse_encoder()
    rows = list(range(96, 104))  # one full period of every stride up to 8
    net_input = torch.zeros(len(rows), 3, 200, 40)  # the network's own scale: 0 is mid-grey
    for b, y0 in enumerate(rows):
        net_input[b, :, y0, 20] = 1.0
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    maps = enc(((net_input * 128 + 128) / 255 - mean) / std)
    for level in range(3):  # strides 2, 4, 8: receptive fields that fit in 200 rows
        s, profile = enc.strides[level], maps[level].sum(dim=(1, 3))  # (batch, rows)
        estimates = []
        for b, y0 in enumerate(rows):
            above = (profile[b] >= profile[b].max() / 2).nonzero().flatten().tolist()
            assert above == list(range(above[0], above[-1] + 1))
            estimates.append(y0 - s * (above[0] + above[-1]) / 2)
        centre_0 = sum(estimates) / len(estimates)  # exact: the rounding averages out over a period
        g = enc.geometry[level]
        top = enc.top_pad
        assert centre_0 == pytest.approx(g.offset - top + g.stride * g.crop(top), abs=1e-6)
        assert abs(centre_0 - (s - 1) / 2) <= s / 4


def test_resnet_weights_load_offline_from_a_state_dict_file(tmp_path):
    import torchvision

    ref = torchvision.models.resnet18(weights=None)
    torch.save(ref.state_dict(), tmp_path / "r18.pt")
    enc = ResNetEncoder("resnet18", weights=str(tmp_path / "r18.pt"))
    assert enc.frozen and not any(p.requires_grad for p in enc.parameters())
    assert torch.equal(enc.layers[3][1].conv2.weight, ref.layer4[1].conv2.weight)
    for side in (63, 64):
        maps = enc(torch.randn(1, 3, side, side))
        assert [f.shape[-1] for f in maps] == [math.ceil(side / s) for s in (2, 4, 8, 16, 32)]
        assert [f.shape[1] for f in maps] == [64, 64, 128, 256, 512]


@pytest.mark.parametrize("content", [None, b"not a torch file", "wrong-model"])
def test_missing_or_corrupt_weights_are_one_line(tmp_path, content):
    path = tmp_path / "w.pt"
    if content == "wrong-model":
        torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    elif content is not None:
        path.write_bytes(content)
    for build in (lambda: ResNetEncoder("resnet18", weights=str(path)),
                  lambda: InceptionV3Encoder(weights=str(path))):
        with pytest.raises(ConfigError) as e:
            build()
        assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_frozen_encoder_stays_in_eval_out_of_the_optimizer_and_out_of_checkpoints():
    enc = ResNetEncoder("resnet18", weights=None, freeze=True)
    model = UNet(upsampler_factory("bilinear"), num_classes=5, base_channels=4, depth=5, encoder=enc)
    model.train()
    assert not enc.training and all(not m.training for m in enc.modules())
    assert model.project[0].training  # the decoder does train
    assert not any(k.startswith("encoder.") for k in model.state_dict())
    model.load_state_dict(model.state_dict())  # strict: the frozen weights are kept, not missing
    counts = parameter_counts(model)
    assert counts["encoder"] == {"trainable": 0, "frozen": sum(p.numel() for p in enc.parameters())}
    assert counts["decoder"]["frozen"] == counts["upsamplers"]["frozen"] == 0
    total = sum(c["trainable"] + c["frozen"] for c in counts.values())
    assert total == sum(p.numel() for p in model.parameters())
    before = [p.clone() for p in enc.parameters()]
    bn = enc.stem[1].running_mean.clone()
    model(torch.randn(2, 3, 64, 64)).mean().backward()
    assert all(p.grad is None for p in enc.parameters())
    assert torch.equal(bn, enc.stem[1].running_mean)
    assert all(torch.equal(a, b) for a, b in zip(before, enc.parameters()))


def test_unfrozen_encoder_trains():
    enc = ResNetEncoder("resnet18", weights=None, freeze=False)
    model = UNet(upsampler_factory("bilinear"), num_classes=5, base_channels=4, depth=5, encoder=enc)
    model.train()
    assert enc.training and not enc.cache
    assert parameter_counts(model)["encoder"]["frozen"] == 0
    model(torch.randn(2, 3, 64, 64)).mean().backward()
    assert enc.stem[0].weight.grad is not None


def test_depth_must_match_the_encoder():
    with pytest.raises(ConfigError, match="model.depth=5"):
        UNet(upsampler_factory("bilinear"), depth=4, encoder=ResNetEncoder("resnet18", weights=None))


def test_fid_weights_give_torch_fidelity_features(tmp_path):
    """The encoder's stages with the FID weights are torch-fidelity's Inception: pooled 2048-d features agree."""
    from upsample_zoo.metrics.fid import build_fid_metric

    cache = tmp_path / "cache"
    enc = InceptionV3Encoder(weights="fid", cache_dir=str(cache))
    inception = build_fid_metric(cache, fast=False).inception
    img = torch.randint(0, 256, (2, 3, 299, 299), dtype=torch.uint8)
    x = (img.float() - 128) / 128
    with torch.no_grad():
        for stage in enc.stages:
            x = stage(x)
        ours = x.mean(dim=(2, 3))
        ref = inception(img)
        ref = ref[0] if isinstance(ref, (tuple, list)) else ref
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
