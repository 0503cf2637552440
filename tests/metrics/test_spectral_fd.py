"""The spectral Fréchet distance in two parts: ``shape`` (the log azimuthal spectrum: blur) and ``artifact``
(the Nyquist and aliasing bins of every period of the upsampling: checkerboards). Features against numpy,
0 for identical sets, blind to contrast, and each kind of change in its own part, above the real-vs-real noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import linalg

from upsample_zoo.data.noise import one_over_f_images
from upsample_zoo.metrics.frechet import frechet_distance
from upsample_zoo.metrics.spectral_fd import (
    SpectralFD,
    artifact_bins,
    log_spectral_features,
    spectral_fd,
    spectral_feature_names,
)

Y, X = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
PATTERNS = {  # +-1 patterns, as ints
    "nyquist checkerboard": (-1) ** (X + Y), "(-1)^y stripes": (-1) ** Y, "(-1)^x stripes": (-1) ** X,
    "period-4 checkerboard": (-1) ** (X // 2 + Y // 2),  # a 16x16 stage's checkerboard, nearest-upsampled x2
    "period-8 checkerboard": (-1) ** (X // 4 + Y // 4),
}


def _u8(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _images(n: int, seed: int) -> torch.Tensor:
    return one_over_f_images(n, size=32, seed=seed, quantize=False)


def _profiles(n: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(32)
    spec = rng.standard_normal((n, 3, 32)) + 1j * rng.standard_normal((n, 3, 32))
    p = np.fft.ifft(spec / np.maximum(abs(f), 1 / 32)).real
    return torch.from_numpy(p / p.std(axis=-1, keepdims=True)).float()


def _photos(n: int, seed: int) -> torch.Tensor:
    """uint8 1/f textures with horizontal and vertical edges (a 1/f profile along each axis), as photos have:
    their axis bins hold more power than the rest of their ring, the diagonal ones less."""
    edges = _profiles(n, seed + 1)[..., :, None] + _profiles(n, seed + 2)[..., None, :]
    x = 0.25 + 0.5 * _images(n, seed) + 0.06 * edges
    return _u8(x)


def _add(x: torch.Tensor, kind: str, levels: int) -> torch.Tensor:
    return (x.short() + levels * torch.from_numpy(PATTERNS[kind])).clamp(0, 255).to(torch.uint8)


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    g = torch.exp(-torch.arange(-4.0, 5.0) ** 2 / (2 * sigma**2))
    g = g / g.sum()
    t = F.pad(x.float(), (4, 4, 4, 4), mode="reflect")
    t = F.conv2d(t, g.view(1, 1, 1, 9).repeat(3, 1, 1, 1), groups=3)
    return F.conv2d(t, g.view(1, 1, 9, 1).repeat(3, 1, 1, 1), groups=3).round().clamp(0, 255).to(torch.uint8)


# ---- the definition ------------------------------------------------------------------------------

def test_artifact_bins_are_every_period_of_the_scale_one_per_conjugate_pair():
    def by_period(scale: int) -> dict[int, set[tuple[int, int]]]:
        out: dict[int, set[tuple[int, int]]] = {}
        for p, r, c in artifact_bins(32, 32, scale):
            out.setdefault(p, set()).add((r, c))
        return out

    got = by_period(8)
    assert got[2] == {(0, 16), (16, 0), (16, 16)}
    assert got[4] == {(0, 8), (8, 0), (8, 8), (8, 16), (8, 24), (16, 8)}  # 12 bins of exactly period 4, halved
    # period 8: the 48 bins (4i, 4j) with i or j odd, each present once with or as its conjugate
    exact8 = {(4 * i, 4 * j) for i in range(8) for j in range(8) if i % 2 or j % 2}
    assert len(got[8]) == 24 and got[8] <= exact8
    assert got[8] | {((-r) % 32, (-c) % 32) for r, c in got[8]} == exact8
    assert set(by_period(2)) == {2} and set(by_period(4)) == {2, 4} and set(by_period(1)) == {2}
    names = spectral_feature_names(32, 32)
    assert names["shape"] == [*(f"ring {r}/32" for r in range(1, 17)), "corner ring"]
    assert len(names["artifact"]) == 33 and names["artifact"][:3] == [
        "period 2 (0, 16)", "period 2 (16, 0)", "period 2 (16, 16)"]


def _np_features(x: np.ndarray, bins: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The definition in numpy, float64: channel-mean power with a periodic Hann window; ring means without the
    artifact bins (and their conjugates); shape = log ring means minus their mean; artifact = log(1 + P / ring)."""
    h, w = x.shape[-2:]
    win = np.outer(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(h) / h), 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(w) / w))
    a = x - x.mean(axis=(-2, -1), keepdims=True)
    p = (np.abs(np.fft.fft2(a * win)) ** 2).mean(axis=1) / (win**2).sum()
    ring = np.minimum(np.round(np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]) * 32), 17)
    keep = np.ones((h, w), bool)
    for r, c in bins:
        keep[r, c] = keep[(-r) % h, (-c) % w] = False
    shape = np.log(np.stack([p[:, (ring == k) & keep].mean(1) for k in range(1, 18)], 1))
    artifact = np.stack([np.log1p(p[:, r, c] / p[:, (ring == ring[r, c]) & keep].mean(1)) for r, c in bins], 1)
    return shape - shape.mean(1, keepdims=True), artifact


def test_features_match_numpy_and_ignore_gain_and_offset():
    x = _images(4, seed=0)
    f = log_spectral_features(x)
    bins = [(r, c) for _, r, c in artifact_bins(32, 32, 8)]
    shape, artifact = _np_features(x.double().numpy(), bins)
    assert f["shape"].shape == (4, 17) and f["artifact"].shape == (4, 33)
    np.testing.assert_allclose(f["shape"].numpy(), shape, atol=1e-4)
    np.testing.assert_allclose(f["artifact"].numpy(), artifact, atol=1e-4)
    # any gain and offset leave every feature as it is; uint8 reads as [0, 1]
    for other in (3.0 * x - 7.0, 0.5 + 0.5 * (x - 0.5)):
        g = log_spectral_features(other)
        assert all(torch.allclose(g[k], f[k], atol=1e-5) for k in f)
    assert torch.allclose(log_spectral_features(_u8(x))["shape"], f["shape"], atol=0.1)


def test_frechet_distance_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 6)), rng.standard_normal((40, 6)) * 1.5 + 0.3
    mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    want = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean)
    got = frechet_distance(*(torch.from_numpy(t) for t in (mu1, s1, mu2, s2)))
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_each_part_is_the_frechet_distance_of_its_own_features():
    real, fake = _photos(60, seed=1), _photos(50, seed=2)
    got = spectral_fd(real, fake)
    fr, ff = log_spectral_features(real), log_spectral_features(fake)
    for part in ("shape", "artifact"):
        a, b = fr[part].numpy(), ff[part].numpy()
        s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        want = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real)
        assert got[part] == pytest.approx(want, rel=1e-5), part


def test_identical_sets_give_zero():
    x = _images(64, seed=1)
    assert spectral_fd(x, x) == pytest.approx({"shape": 0.0, "artifact": 0.0}, abs=1e-6)
    # and as small rank-deficient sets (16 images, 33 artifact features), as in the smoke runs
    assert spectral_fd(x[:16], x[:16]) == pytest.approx({"shape": 0.0, "artifact": 0.0}, abs=1e-6)


def test_metric_accumulates_like_one_batch_and_checks_sizes():
    real, fake = _images(40, seed=4), _images(30, seed=5)
    m = SpectralFD()
    for chunk in real.split(7):
        m.update(chunk, real=True)
    for chunk in fake.split(9):
        m.update(chunk, real=False)
    got = {k: v.item() for k, v in m.compute().items()}
    assert got == pytest.approx(spectral_fd(real, fake), rel=1e-6)
    with pytest.raises(ValueError, match="share a size"):
        m.update(_images(2, seed=6)[..., :16, :16], real=False)
    with pytest.raises(RuntimeError, match="at least 2 fake"):
        lone = SpectralFD()
        lone.update(real, real=True)
        lone.update(fake[:1], real=False)
        lone.compute()


# ---- what each part reads, against the real-vs-real noise of two independent sets of 256 ------------

@pytest.fixture(scope="module")
def sets() -> dict[str, torch.Tensor]:
    real, fake = _photos(256, seed=12), _photos(256, seed=13)
    return {"real": real, "fake": fake, "floor": spectral_fd(real, fake)}


def test_blur_moves_the_shape_part_and_contrast_moves_neither(sets):
    real, fake, floor = sets["real"], sets["fake"], sets["floor"]
    blurred = spectral_fd(real, _blur(fake, 1.0))
    assert blurred["shape"] > 100 * floor["shape"] and blurred["shape"] > 20 * blurred["artifact"], (blurred, floor)
    low = spectral_fd(real, _u8(0.5 + 0.5 * (fake.float() / 255 - 0.5)))
    assert low["shape"] <= 2 * floor["shape"] and low["artifact"] <= 2 * floor["artifact"], (low, floor)


@pytest.mark.parametrize("kind,levels", [("nyquist checkerboard", 1), ("nyquist checkerboard", 2),
                                         ("(-1)^y stripes", 2), ("(-1)^x stripes", 2)])
def test_nyquist_patterns_move_the_artifact_part(sets, kind, levels):
    real, fake, floor = sets["real"], sets["fake"], sets["floor"]
    got = spectral_fd(real, _add(fake, kind, levels))
    assert got["artifact"] > 10 * floor["artifact"] and got["artifact"] > 20 * got["shape"], (got, floor)


@pytest.mark.parametrize("kind,levels,period", [("period-4 checkerboard", 2, 4), ("period-8 checkerboard", 4, 8)])
def test_period_4_and_8_patterns_register_on_their_own_bins(sets, kind, levels, period):
    """The old feature, the largest bin-over-ring contrast of a period, was always won by an axis bin of these
    photo-like images (more power there) and read a diagonal period-4 checkerboard at 1.3x the noise, a period-8
    one at 1.4x. One feature per bin: each pattern moves its own bins, and the part well above the noise."""
    real, fake, floor = sets["real"], sets["fake"], sets["floor"]
    patterned = _add(fake, kind, levels)
    got = spectral_fd(real, patterned)
    assert got["artifact"] > 4 * floor["artifact"] and got["artifact"] > 10 * got["shape"], (got, floor)
    fr, fp = log_spectral_features(real)["artifact"], log_spectral_features(patterned)["artifact"]
    z = (fp.mean(0) - fr.mean(0)) / fr.std(0)
    names = spectral_feature_names(32, 32)["artifact"]
    assert names[int(z.argmax())].startswith(f"period {period} ") and z.max() > 0.5, z


def test_bad_input_is_rejected():
    m = SpectralFD()
    x = _images(4, seed=7)
    x[0, 1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="SpectralFD: 1 of 12288 values in the generated images .* not finite"):
        m.update(x, real=False)
    with pytest.raises(ValueError, match="empty batch of real images"):
        m.update(x[:0], real=True)
    with pytest.raises(ValueError, match="scale must be >= 1"):
        SpectralFD(scale=0)
    # sizes that leave a part without features: an error, not a clean-looking 0
    with pytest.raises(ValueError, match="31x33 images have no Nyquist or aliasing bin .* even"):
        SpectralFD(scale=2).update(torch.rand(2, 3, 31, 33), real=True)
    with pytest.raises(ValueError, match="8x8 images at scale 8 have no spectrum ring outside the artifact bins"):
        SpectralFD(scale=8).update(torch.rand(2, 3, 8, 8), real=True)
