"""The checkerboard score: a numpy re-implementation as the golden reference, generated images with known
patterns, batch-split invariance, its batched spectra held to the float64 definition, logits in."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from upsample_zoo.data.noise import one_over_f_images
from upsample_zoo.metrics.checkerboard import CheckerboardScore, checkerboard_score

from ..helpers.spectra import np_radial as _np_radial
from ..helpers.spectra import np_spectrum as _np_spectrum

KEYS = {"checkerboard_db", "checkerboard_grid_max_db", "checkerboard_grid_period", "checkerboard_amp",
        "blockiness_db"}


# ---- golden reference: the definition written out in numpy, loop by loop ----------------


def _np_peak_bg(p: np.ndarray, ky: int, kx: int) -> tuple[float, float]:
    h, w = p.shape

    def v(dy: int, dx: int) -> float:
        return p[(ky + dy) % h, (kx + dx) % w]

    near, far = (-1, 0, 1), (-4, -3, -2, 2, 3, 4)
    peak = np.mean([v(i, j) for i in near for j in near])
    strips = [
        [v(0, k) for k in far],  # horizontal
        [v(k, 0) for k in far],  # vertical
        [v(k, k) for k in far],  # diagonal
        [v(k, -k) for k in far],  # anti-diagonal
    ]
    return float(peak), float(max(np.median(s) for s in strips))


def _np_amp(p: np.ndarray, bins: list[tuple[int, int]]) -> float:
    """RMS amplitude (8-bit levels) of the pattern at the Nyquist bins: the 3x3 block's mean power above
    what a least-squares fit log P = a + b|dy| + c|dx| + d|dy||dx| over the bins 2..4 away predicts there."""
    h, w = p.shape
    ring = [(i, j) for i in range(-4, 5) for j in range(-4, 5) if max(abs(i), abs(j)) >= 2]
    near = [(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)]
    excess = 0.0
    for ky, kx in bins:
        a = np.array([[1, abs(i), abs(j), abs(i * j)] for i, j in ring], dtype=float)
        y = np.log([p[(ky + i) % h, (kx + j) % w] + 1e-20 for i, j in ring])
        coef = np.linalg.lstsq(a, y, rcond=None)[0]
        bg = np.mean([np.exp(coef @ [1, abs(i), abs(j), abs(i * j)]) for i, j in near])
        peak = np.mean([p[(ky + i) % h, (kx + j) % w] for i, j in near])
        excess += max(peak - bg, 0.0)
    return 255 * np.sqrt(9 * excess / (h * w))


def _np_db(p: np.ndarray, bins: list[tuple[int, int]]) -> float:
    return max(10 * np.log10(pk / bg) for pk, bg in (_np_peak_bg(p, *b) for b in bins))


def np_checkerboard(x: np.ndarray, s: int, ref: np.ndarray | None = None) -> dict[str, float]:
    _, _, H, W = x.shape
    c = min(max(4, s), min(H, W) // 16)
    m = int(np.lcm(s, 2))
    h, w = (H - 2 * c) // m * m, (W - 2 * c) // m * m
    grad = np.abs(np.diff(x, axis=-1))[..., :-1, :] + np.abs(np.diff(x, axis=-2))[..., :, :-1]
    p, g = _np_spectrum(x[..., c:c + h, c:c + w]), _np_spectrum(grad[..., c:c + h, c:c + w])
    nyq = [(h // 2, 0), (0, w // 2), (h // 2, w // 2)]
    period = 2
    for q in range(2, s + 1):
        if s % q == 0 and min(h, w) / q >= 8:
            period = q
    grid = [(i * h // period, j * w // period) for i in range(period) for j in range(period) if i or j]
    out = {
        "checkerboard_db": _np_db(p, nyq),
        "checkerboard_grid_max_db": _np_db(p, grid),
        "checkerboard_grid_period": float(period),
        "checkerboard_amp": _np_amp(p, nyq),
        "blockiness_db": _np_db(g, nyq),
    }
    if ref is not None:
        pr = _np_spectrum(ref[..., c:c + h, c:c + w])
        out["checkerboard_db_ref"] = _np_db(pr, nyq)
        f, sg = _np_radial(p)
        _, sr = _np_radial(pr)
        d = 10 * np.log10(sg / sr)
        out["spectral_hf_gap_db"] = d[(f >= 0.375) & (f <= 0.5)].mean() - d[(f >= 0.05) & (f <= 0.2)].mean()
    return out


def checker(h: int, w: int) -> torch.Tensor:
    i, j = torch.arange(h)[:, None], torch.arange(w)[None, :]
    return ((-1.0) ** (i + j)).expand(h, w)


@pytest.fixture(scope="module")
def natural() -> torch.Tensor:
    return one_over_f_images(16, 3, 64, seed=3).float() / 255


# ---- the definition ------------------------------------------------------------------------------

@pytest.mark.parametrize("scale,shape", [(2, (40, 52)), (4, (64, 64)), (8, (32, 32))])
def test_matches_numpy_reference(scale, shape):
    """Every output against an independent float64 numpy implementation, on non-trivial inputs."""
    x = one_over_f_images(6, 3, shape, seed=scale).float() / 255
    x = x + 2 / 255 * checker(*shape) + 1 / 255 * torch.cos(torch.arange(shape[1]) * torch.pi / 2)
    ref = one_over_f_images(5, 3, shape, seed=99).float() / 255
    got = checkerboard_score(x, scale=scale, ref=ref)
    want = np_checkerboard(x.double().numpy(), scale, ref.double().numpy())
    assert set(got) == KEYS | {"checkerboard_db_ref", "spectral_hf_gap_db"}
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-3, abs=1e-2), k


def test_natural_images_read_near_zero(natural):
    r = checkerboard_score(natural, scale=2)
    assert set(r) == KEYS
    assert abs(r["checkerboard_db"]) < 2
    assert abs(r["checkerboard_grid_max_db"]) < 2
    assert r["checkerboard_amp"] < 0.5


@pytest.mark.parametrize("as_uint8", [False, True])
def test_checkerboard_detected_and_amplitude_recovered(natural, as_uint8):
    x = natural + 5 / 255 * checker(64, 64)
    if as_uint8:
        x = (x * 255).round().clamp(0, 255).to(torch.uint8)
    r = checkerboard_score(x, scale=2)
    assert r["checkerboard_db"] > 10
    assert r["checkerboard_amp"] == pytest.approx(5.0, rel=0.2)


def test_vertical_stripes_caught_by_grid_max(natural):
    stripes = (-1.0) ** torch.arange(64)  # (-1)^j: varies along x
    r = checkerboard_score(natural + 5 / 255 * stripes, scale=2)
    assert r["checkerboard_grid_max_db"] > 10
    assert r["checkerboard_amp"] == pytest.approx(5.0, rel=0.2)


def _horizontal_edges(n: int, size: int, seed: int) -> torch.Tensor:
    """Images made only of horizontal edges: a random profile along y (power 1/f^2, Gaussian-blurred with
    sigma 0.5 px), the same in every column. Photos' horizontal edges draw this bright line on the fy axis of
    the spectrum, falling steeply towards the Nyquist bin (H/2, 0), where a (-1)^y stripe pattern sits."""
    rng = np.random.default_rng(seed)
    f = np.fft.fftfreq(size)
    spec = (rng.standard_normal((n, 3, size)) + 1j * rng.standard_normal((n, 3, size))) / np.maximum(abs(f), 1 / size)
    prof = np.fft.ifft(spec * np.exp(-2 * np.pi**2 * 0.5**2 * f**2)).real
    prof = 0.5 + 0.1 * prof / prof.std(axis=-1, keepdims=True)
    return torch.from_numpy(np.repeat(prof[..., None], size, axis=-1)).clamp(0, 1).float()


@pytest.mark.filterwarnings("ignore:checkerboard score. the gradient-energy maps:UserWarning")  # flat, on purpose
@pytest.mark.parametrize("kind", ["(-1)^y stripes", "(-1)^x stripes", "(-1)^(x+y) checkerboard"])
def test_amplitude_reads_stripes_and_checkerboards_alike(kind):
    """checkerboard_amp is the RMS amplitude of the whole pattern at the Nyquist bins. A +-2-level square
    wave has RMS 2 levels, whichever Nyquist bin it sits on; it adds its power to the images' own Nyquist
    content, so the pattern's share is sqrt(amp^2 - amp_clean^2). On these edge images (and on CIFAR-10)
    the old strip background read the (-1)^y stripes as 0."""
    x = _horizontal_edges(64, 32, seed=0)
    y, xx = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    pattern = {"(-1)^y stripes": (-1.0) ** y, "(-1)^x stripes": (-1.0) ** xx,
               "(-1)^(x+y) checkerboard": (-1.0) ** (xx + y)}[kind]
    assert np.sqrt(np.mean((2 * pattern) ** 2)) == 2.0  # the hand value: a +-2 square wave
    clean = checkerboard_score(x, scale=8)["checkerboard_amp"]
    amp = checkerboard_score(x + torch.from_numpy(2 / 255 * pattern).float(), scale=8)["checkerboard_amp"]
    assert np.sqrt(amp**2 - clean**2) == pytest.approx(2.0, rel=0.05), (amp, clean)
    # on a flat grey image nothing else is at the Nyquist bins: exactly 2
    flat = checkerboard_score(torch.full((2, 3, 32, 32), 0.5) + torch.from_numpy(2 / 255 * pattern).float(), scale=8)
    assert flat["checkerboard_amp"] == pytest.approx(2.0, rel=1e-3)


def test_period_four_pattern_only_on_the_grid(natural):
    """At s=4 and 64 px the grid has period 4: a period-4 pattern is caught there, not at Nyquist.
    (It sits at a quarter of the sampling rate, where 1/f images have 4x the power of the corner.)"""
    base = checkerboard_score(natural, scale=4)
    r = checkerboard_score(natural + 12 / 255 * torch.cos(torch.arange(64) * torch.pi / 2), scale=4)
    assert r["checkerboard_grid_period"] == 4
    assert r["checkerboard_grid_max_db"] - base["checkerboard_grid_max_db"] > 8
    assert r["checkerboard_db"] == pytest.approx(base["checkerboard_db"], abs=0.5)


def _edges(h: int, w: int) -> dict[str, torch.Tensor]:
    i, j = torch.arange(h)[:, None].float(), torch.arange(w)[None, :].float()
    return {
        "horizontal edge": 0.3 * (i >= h // 2).float().expand(h, w),
        "vertical edge": 0.3 * (j >= w // 2).float().expand(h, w),
        "diagonal edge": 0.3 * (i > j).float(),
        "ramp": 0.3 * (j / w).expand(h, w),
        "vertical ramp": 0.3 * (i / h).expand(h, w),
    }


@pytest.mark.parametrize("kind", list(_edges(64, 64)))
def test_edges_and_ramps_do_not_raise_the_score(natural, kind):
    base = checkerboard_score(natural, scale=2)
    # the edge lifts the images up to 1.3: declare that range (the dB scores do not depend on it)
    r = checkerboard_score(natural + _edges(64, 64)[kind], scale=2, value_range=(0.0, 1.3))
    assert r["checkerboard_db"] - base["checkerboard_db"] < 2
    assert r["checkerboard_grid_max_db"] - base["checkerboard_grid_max_db"] < 2


def test_nearest_blockiness_is_not_a_checkerboard():
    """Nearest x2 upsampling makes 2x2 blocks: blockiness fires, the checkerboard does not."""
    x = F.interpolate(one_over_f_images(16, 3, 32, seed=5).float() / 255, scale_factor=2, mode="nearest")
    r = checkerboard_score(x, scale=2)
    assert r["blockiness_db"] > 10
    assert r["checkerboard_db"] < 2


def test_uint8_and_float_agree(natural):
    u = (natural * 255).round().to(torch.uint8)
    a, b = checkerboard_score(u), checkerboard_score(u.float() / 255)
    for k in a:
        assert a[k] == pytest.approx(b[k], abs=1e-4)


def test_too_small_and_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="at least"):
        checkerboard_score(torch.rand(2, 3, 10, 10))
    with pytest.raises(ValueError, match="B, C, H, W"):
        checkerboard_score(torch.rand(3, 32, 32))
    with pytest.raises(TypeError):
        checkerboard_score(torch.zeros(1, 1, 32, 32, dtype=torch.int32))


# ---- bad or degenerate input: a clear error or NaN with a warning, never a clean-looking number ---

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_rejected_with_a_count(natural, bad):
    x = natural.clone()
    x[1, 2, 10, 20] = x[3, 0, 5, 5] = bad
    with pytest.raises(ValueError, match=r"^checkerboard score: 2 of 196608 values in the images are not finite"):
        checkerboard_score(x)
    with pytest.raises(ValueError, match=r"2 of 196608 values in the reference images \(real=True\) are not finite"):
        checkerboard_score(natural, ref=x)


def test_empty_batch_is_rejected():
    with pytest.raises(ValueError, match="empty batch of images, shape \\(0, 3, 32, 32\\)"):
        checkerboard_score(torch.zeros(0, 3, 32, 32))
    m = CheckerboardScore(scale=2)
    with pytest.raises(ValueError, match="empty batch of reference images"):
        m.update(torch.zeros(0, 3, 32, 32, dtype=torch.uint8), real=True)


def _nan_keys(r: dict) -> set[str]:
    return {k for k, v in r.items() if np.isnan(v)}


@pytest.mark.parametrize("level", [0.0, 0.7, 1.0])
def test_constant_images_give_nan_and_a_warning(natural, level):
    """A collapsed generator's constant images have no spectrum to compare: not the 0 dB of a clean set."""
    flat = torch.full((4, 3, 32, 32), level)
    with pytest.warns(UserWarning, match="images are constant .*no variance"):
        r = checkerboard_score(flat, scale=8)
    assert _nan_keys(r) == KEYS - {"checkerboard_grid_period"}
    assert r["checkerboard_grid_period"] == 2
    m = CheckerboardScore(scale=8)  # the Metric, fed in chunks, uint8
    for chunk in (flat * 255).round().to(torch.uint8).split(2):
        m.update(chunk)
    m.update(one_over_f_images(4, 3, 32, seed=1), real=True)
    with pytest.warns(UserWarning, match="constant"):
        out = {k: v.item() for k, v in m.compute().items()}
    assert _nan_keys(out) == KEYS - {"checkerboard_grid_period"} | {"spectral_hf_gap_db"}
    assert np.isfinite(out["checkerboard_db_ref"])  # the reference set is fine


def test_constant_reference_gives_nan_reference_scores(natural):
    with pytest.warns(UserWarning, match="reference images are constant"):
        r = checkerboard_score(natural, ref=torch.full((2, 3, 64, 64), 0.5))
    assert _nan_keys(r) == {"checkerboard_db_ref", "spectral_hf_gap_db"}


def test_a_few_constant_images_in_a_set_do_not_make_it_nan(natural):
    """The rule reads the pooled set: constant images add no power, so the dB scores stay as they are."""
    x = torch.cat([natural + 5 / 255 * checker(64, 64), torch.full((4, 3, 64, 64), 0.5)])
    r = checkerboard_score(x)
    assert not _nan_keys(r) and r["checkerboard_db"] > 10


def test_values_outside_the_declared_range_are_rejected(natural):
    """checkerboard_amp is in 8-bit levels of the declared range: a [-1, 1] or 0..255 float batch read
    as [0, 1] would be off by 2x or 255x, so it is an error, with the range to pass."""
    x = natural + 5 / 255 * checker(64, 64)
    with pytest.raises(ValueError, match=r"span \[-1.04, 1.04\], outside value_range \(0, 1\).*=\(-1, 1\)"):
        checkerboard_score(x * 2 - 1)
    with pytest.raises(ValueError, match=r"outside value_range \(0, 1\).*uint8 or value_range=\(0, 255\)"):
        checkerboard_score(x * 255)
    with pytest.raises(ValueError, match=r"reference images \(real=True\) span"):
        checkerboard_score(x, ref=natural * 2 - 1)
    with pytest.raises(ValueError, match="lo < hi"):
        CheckerboardScore(value_range=(1.0, 0.0))
    # declared, the same images give the same scores; amp in 8-bit levels of the declared range
    want = checkerboard_score(x)
    for lo, hi in ((-1.0, 1.0), (0.0, 255.0)):
        got = checkerboard_score(lo + (hi - lo) * x, value_range=(lo, hi))
        for k in want:
            assert got[k] == pytest.approx(want[k], rel=1e-4, abs=1e-3), (lo, hi, k)
    assert want["checkerboard_amp"] == pytest.approx(5.0, rel=0.2)


# ---- the Metric ----------------------------------------------------------------------------------

def test_metric_is_batch_split_invariant():
    a = one_over_f_images(5, 3, 48, seed=1).float() / 255 + 3 / 255 * checker(48, 48)
    b = one_over_f_images(7, 3, 48, seed=2).float() / 255
    r1, r2 = one_over_f_images(4, 3, 48, seed=7), one_over_f_images(3, 3, 48, seed=8)
    split, whole = CheckerboardScore(scale=2), CheckerboardScore(scale=2)
    split.update(a)
    split.update(r1, real=True)
    split.update(b)
    split.update(r2, real=True)
    whole.update(torch.cat([a, b]))
    whole.update(torch.cat([r1, r2]), real=True)
    s, w = split.compute(), whole.compute()
    assert set(s) == KEYS | {"checkerboard_db_ref", "spectral_hf_gap_db"}
    for k in s:
        assert s[k].item() == pytest.approx(w[k].item(), abs=1e-4), k
    assert w["checkerboard_db"].item() == pytest.approx(checkerboard_score(torch.cat([a, b]))["checkerboard_db"],
                                                        abs=1e-4)


def test_metric_forward_reset_and_empty():
    m = CheckerboardScore(scale=2)
    with pytest.raises(RuntimeError, match="no"), pytest.warns(UserWarning, match="before the ``update``"):
        m.compute()
    x = one_over_f_images(4, 3, 32, seed=1)
    batch = m(x)  # forward: this batch's value, and the running state keeps it
    assert batch["checkerboard_db"].item() == pytest.approx(checkerboard_score(x)["checkerboard_db"], abs=1e-4)
    assert m.count.item() == 12
    with pytest.raises(ValueError, match="share a size"):
        m.update(one_over_f_images(2, 3, 48, seed=1))
    m.reset()
    assert m.count.item() == 0


def test_reference_outputs_and_hf_gap():
    real = one_over_f_images(16, 3, 64, seed=11).float() / 255
    same = one_over_f_images(16, 3, 64, seed=12).float() / 255
    r = checkerboard_score(same, ref=real)
    assert abs(r["spectral_hf_gap_db"]) < 1
    assert abs(r["checkerboard_db_ref"]) < 2
    blurred = F.avg_pool2d(F.pad(same, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
    assert checkerboard_score(blurred, ref=real)["spectral_hf_gap_db"] < -3
    noisy = same + 24 / 255 * torch.randn(same.shape, generator=torch.Generator().manual_seed(0))
    # the noise leaves [0, 1] by up to 0.44; a wider declared range maps both sets alike: same dB gap
    assert checkerboard_score(noisy, ref=real, value_range=(-0.5, 1.5))["spectral_hf_gap_db"] > 2
    cb = checkerboard_score(same + 5 / 255 * checker(64, 64), ref=real)
    assert cb["checkerboard_db"] - cb["checkerboard_db_ref"] > 10
