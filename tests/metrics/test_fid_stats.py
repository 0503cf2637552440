"""FID's formula and its real-statistics cache, on a tiny pixel-feature metric: the Frechet distance against scipy,
statistics computed once and reused, keyed by device, precision and versions, refused without a fingerprint,
safe under two writers; the protocol string and the image conversions."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance

from upsample_zoo.errors import ConfigError
from upsample_zoo.metrics import fid, fid_weights

from ..helpers.run_if import RunIf

pytestmark = [pytest.mark.slow,  # with test_fid.py, as before the split: `make test-fast` leaves both out
              pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")]


def scipy_frechet(mu1, s1, mu2, s2) -> float:
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


class PixelFeatures(nn.Module):
    """A cheap stand-in for Inception: the 12 pixel values of a 3x2x2 uint8 image."""

    num_features = 12

    def forward(self, x):
        return x.flatten(1).double()


def tiny_metric(digest: str = "tiny") -> FrechetInceptionDistance:
    metric = FrechetInceptionDistance(feature=PixelFeatures(), reset_real_features=False)
    metric.fid_weights = fid_weights.FIDWeights(Path("pixels"), digest, "test", "pixels")
    return metric


def pixel_batches(seed: int, n_batches: int = 3, b: int = 10, calls: list | None = None):
    def batches():
        if calls is not None:
            calls.append(1)
        g = torch.Generator().manual_seed(seed)
        for _ in range(n_batches):
            yield torch.randint(0, 256, (b, 3, 2, 2), generator=g, dtype=torch.uint8)
    return batches


PARTS = {"dataset": "pix", "split": "train", "n_real": 25, "resolution": 2, "fingerprint": "f0"}


@contextmanager
def patched(target, name, value):
    """monkeypatch.setattr that also undoes torch.backends' fp32_precision (served by __getattr__)."""
    old = getattr(target, name)
    setattr(target, name, value)
    try:
        yield {}
    finally:
        setattr(target, name, old)


@contextmanager
def other_device():
    settings = fid.compute_settings
    with patched(fid, "compute_settings", lambda metric: {**settings(metric), "device": "cuda"}):
        yield {}


def other_version(dist):
    real = fid.version
    return patched(fid, "version", lambda name: "0.0.1" if name == dist else real(name))


def backend_flag(module: str, name: str, value):
    target = torch.backends
    for part in module.split("."):
        target = getattr(target, part, None)
    if target is None:
        pytest.skip(f"torch.backends.{module} is not in torch {torch.__version__}")
    return patched(target, name, value)


KEY_CHANGES = {  # each changes one thing the real features depend on, and yields key_parts to merge
    "fingerprint": lambda: nullcontext({"fingerprint": "f1"}),
    "device": other_device,
    "torch": lambda: patched(torch, "__version__", "2.0.0+other"),
    "torchvision": lambda: other_version("torchvision"),
    "pillow": lambda: other_version("pillow"),
    "cudnn_tf32": lambda: backend_flag("cudnn", "allow_tf32", not torch.backends.cudnn.allow_tf32),
    "mkldnn_conv_bf16": lambda: backend_flag("mkldnn.conv", "fp32_precision", "bf16"),  # torch >= 2.9
}


def test_frechet_formula_matches_scipy():
    rng = np.random.default_rng(0)
    for d in (3, 16, 64):
        a, b = rng.normal(size=(d, 2 * d)), rng.normal(size=(d, 2 * d))
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = a @ a.T / (2 * d), b @ b.T / (2 * d) + 0.1 * np.eye(d)
        assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(scipy_frechet(mu1, s1, mu2, s2), rel=1e-6)


def test_real_stats_computed_once_then_reused(tmp_path):
    calls, fake = [], torch.randint(0, 256, (20, 3, 2, 2), generator=torch.Generator().manual_seed(9),
                                     dtype=torch.uint8)
    values = []
    for expect_cached in (False, True):
        metric = tiny_metric()
        stats = fid.load_or_compute_real_stats(metric, tmp_path, PARTS, pixel_batches(0, calls=calls))
        assert stats.cached is expect_cached and stats.n == 25 and stats.path.parent == tmp_path / "fid_stats"
        metric.update(fake, real=False)
        values.append(float(metric.compute()))
        metric.reset()  # the GAN task resets each epoch: the real statistics must survive
        metric.update(fake, real=False)
        assert float(metric.compute()) == values[-1]
    assert len(calls) == 1 and values[0] == values[1]
    # the same number as scipy on the first 25 real features (the truncated third batch) vs the fakes
    real = torch.cat(list(pixel_batches(0)()))[:25].flatten(1).double().numpy()
    fk = fake.flatten(1).double().numpy()
    expected = scipy_frechet(real.mean(0), np.cov(real, rowvar=False), fk.mean(0), np.cov(fk, rowvar=False))
    assert values[0] == pytest.approx(expected, rel=1e-6)


def test_real_stats_key_and_corrupt_file(tmp_path):
    paths = {fid.load_or_compute_real_stats(tiny_metric(d), tmp_path, {**PARTS, "n_real": n}, pixel_batches(0)).path
             for d, n in [("w1", 25), ("w1", 20), ("w2", 25)]}
    assert len(paths) == 3
    path = fid.load_or_compute_real_stats(tiny_metric("w1"), tmp_path, PARTS, pixel_batches(0)).path
    path.write_bytes(b"garbage")
    stats = fid.load_or_compute_real_stats(tiny_metric("w1"), tmp_path, PARTS, pixel_batches(0))
    assert stats.cached is False and stats.n == 25
    with pytest.raises(ConfigError, match="missing"):
        fid.load_or_compute_real_stats(tiny_metric(), tmp_path, {"dataset": "pix"}, pixel_batches(0))


@pytest.mark.parametrize("change", list(KEY_CHANGES))
def test_real_stats_recomputed_when_the_key_changes(tmp_path, change):
    """Same everything: a hit. One change (data, device, library, precision): the real pass runs again."""
    calls = []

    def load(parts=PARTS):
        return fid.load_or_compute_real_stats(tiny_metric(), tmp_path, parts, pixel_batches(0, calls=calls))

    first = load()
    assert load().cached and len(calls) == 1
    with KEY_CHANGES[change]() as changed_parts:
        parts = {**PARTS, **changed_parts}
        changed = load(parts)
        assert not changed.cached and len(calls) == 2 and changed.path != first.path
        assert load(parts).cached and len(calls) == 2
    assert load().cached and len(calls) == 2  # back as before: the first file is still there, and a hit


def test_stats_key_records_device_precision_and_versions():
    import PIL

    key = fid.stats_key(tiny_metric(), PARTS)
    assert key["fingerprint"] == "f0" and key["device"] == "cpu"
    assert key["torch"] == torch.__version__ and key["pillow"] == PIL.__version__
    assert key["torchvision"] == fid.version("torchvision")
    p = key["precision"]
    assert p["cudnn.allow_tf32"] is torch.backends.cudnn.allow_tf32
    assert p["cuda.matmul.allow_tf32"] is torch.backends.cuda.matmul.allow_tf32
    assert p["float32_matmul_precision"] == torch.get_float32_matmul_precision()
    assert p["state_dtype"] == "torch.float64" and p["extractor_dtype"] is None  # PixelFeatures has no weights
    assert fid.stats_key(tiny_metric().to("meta"), PARTS)["device"] == "meta"  # the metric's own device


def test_stats_key_survives_mixed_tf32_apis():
    """torch >= 2.9 refuses to read cudnn.allow_tf32 when conv and rnn flags differ: the key still builds."""
    before = fid.stats_key(tiny_metric(), PARTS)
    with backend_flag("cudnn.conv", "fp32_precision", "ieee"):
        after = fid.stats_key(tiny_metric(), PARTS)
    assert after["precision"]["cudnn.conv.fp32_precision"] == "ieee" and after != before
    assert fid.stats_key(tiny_metric(), PARTS) == before


@pytest.mark.parametrize("fingerprint", [None, ""])
def test_real_stats_refuse_a_missing_fingerprint(tmp_path, fingerprint):
    calls = []
    with pytest.raises(ConfigError, match="fingerprint") as err:
        fid.load_or_compute_real_stats(tiny_metric(), tmp_path, {**PARTS, "fingerprint": fingerprint},
                                       pixel_batches(0, calls=calls))
    assert "\n" not in str(err.value) and "ref_fingerprint" in str(err.value)
    without = {k: v for k, v in PARTS.items() if k != "fingerprint"}
    with pytest.raises(ConfigError, match=r"missing \['fingerprint'\]"):
        fid.load_or_compute_real_stats(tiny_metric(), tmp_path, without, pixel_batches(0, calls=calls))
    assert not calls and not (tmp_path / "fid_stats").exists()


@RunIf(gpu=True)
def test_real_stats_not_shared_between_cpu_and_gpu(tmp_path):
    calls = []
    for device in ("cpu", "cuda", "cpu", "cuda"):
        fid.load_or_compute_real_stats(tiny_metric().to(device), tmp_path, PARTS, pixel_batches(0, calls=calls))
    assert len(calls) == 2


def test_real_stats_two_writers_at_once(tmp_path):
    calls, results, barrier = [], [], threading.Barrier(2)

    def slow_batches():
        calls.append(1)
        time.sleep(0.3)  # hold the lock while the other job arrives
        yield from pixel_batches(0)()

    def job():
        barrier.wait()
        results.append(fid.load_or_compute_real_stats(tiny_metric(), tmp_path, PARTS, slow_batches))

    threads = [threading.Thread(target=job) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and sorted(r.cached for r in results) == [False, True]
    assert np.array_equal(results[0].sigma, results[1].sigma)
    assert not list((tmp_path / "fid_stats").glob("*.tmp"))


def test_protocol_string():
    s = fid.fid_protocol(1000, 500, "train", fid_weights.TF_WEIGHTS_LABEL)
    assert s == ("torchmetrics FID, InceptionV3 (TF 2015-12-05 weights), 2048-d, resize 299 bilinear "
                 "TF1-compatible (torch-fidelity), n_real=1000, n_fake=500, ref=train")


def test_to_uint8():
    """One conversion for the data, the GAN task and the metrics (upsample_zoo.conversions)."""
    from upsample_zoo.conversions import to_uint8

    x = torch.tensor([-1.0, 0.0, 1.0, 3.0]).view(1, 4, 1, 1)[:, :3]
    assert to_uint8(x).flatten().tolist() == [0, 128, 255]
    assert to_uint8(torch.tensor([2.0, 0.5]).view(1, 2, 1, 1), (0, 1)).flatten().tolist() == [255, 128]


def test_compute_fid_rejects_non_uint8():
    with pytest.raises(ConfigError, match="uint8"):
        fid.compute_fid(torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8))


def test_real_features_are_cached_and_an_entry_without_them_is_rebuilt(tmp_path):
    """KID and precision/recall read the real features from the cache: the stored rows are the real images'
    features, in order; an entry in the old layout (mean and covariance only) at the same key is recomputed."""
    calls = []
    stats = fid.load_or_compute_real_stats(tiny_metric(), tmp_path, PARTS, pixel_batches(0, calls=calls))
    real = torch.cat(list(pixel_batches(0)()))[:25].flatten(1).double().numpy()
    np.testing.assert_array_equal(stats.features, real.astype(np.float32))
    with np.load(stats.path) as z:  # rewrite it as a format-1 entry: the same key, no features
        old = {k: z[k] for k in ("mu", "sigma", "n", "key")}
    np.savez(stats.path.with_suffix(".tmp.npz"), **old)
    stats.path.with_suffix(".tmp.npz").replace(stats.path)
    rebuilt = fid.load_or_compute_real_stats(tiny_metric(), tmp_path, PARTS, pixel_batches(0, calls=calls))
    assert not rebuilt.cached and len(calls) == 2
    np.testing.assert_array_equal(rebuilt.features, real.astype(np.float32))
    assert fid.load_or_compute_real_stats(tiny_metric(), tmp_path, PARTS, pixel_batches(0, calls=calls)).cached


def test_one_default_cache_dir_follows_the_project_root(monkeypatch, tmp_path):
    """The FID metric, the GAN task, the encoders and the bench default to one place: the configs'
    ${paths.cache_dir} ($UPSAMPLE_ZOO_ROOT/.cache, else ./.cache)."""
    from upsample_zoo.metrics.fid_weights import default_cache_dir

    monkeypatch.setenv("UPSAMPLE_ZOO_ROOT", str(tmp_path / "root"))
    assert default_cache_dir() == tmp_path / "root" / ".cache"
    monkeypatch.delenv("UPSAMPLE_ZOO_ROOT")
    monkeypatch.chdir(tmp_path)
    assert default_cache_dir() == tmp_path / ".cache"
