"""The report's paired statistics: Holm-Bonferroni, the power floor of the tests used, the smallest |d_z| with
80% power, and the 95% CI and Cohen's d_z of each paired difference, against scipy/numpy, statsmodels,
simulation and hand computations on hand-built data."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import TTestPower

from upsample_zoo.report import compare
from upsample_zoo.report import stats as zstats
from upsample_zoo.report.stats import holm, p_floor, paired_test, pairs_needed, sign_flip_p

from ..helpers.runs import write_run

# ---- Holm-Bonferroni ------------------------------------------------------------------------------------------

def test_holm_matches_a_hand_computation():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.01, 0.01, 0.2]) == pytest.approx([0.03, 0.03, 0.2])  # ties: 0.01*3, max(0.03, 0.01*2), 0.2*1
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # capped at 1
    out = holm([0.02, float("nan"), 0.01])  # nan is not a test: m = 2
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)
    assert holm([0.3]) == [0.3] and holm([]) == []


def _holm_step_down_rejects(ps, alpha):
    """Holm's procedure as usually stated: sort ascending, reject H_(j) while p_(j) <= alpha / (m - j + 1)."""
    order = np.argsort(ps, kind="stable")
    rejected = set()
    for j, i in enumerate(order):
        if ps[i] > alpha / (len(ps) - j):
            break
        rejected.add(int(i))
    return rejected


def test_holm_rejects_what_the_step_down_procedure_rejects():
    rng = np.random.default_rng(17)
    for _ in range(200):
        ps = rng.uniform(0, 0.2, size=rng.integers(1, 8)).round(3)  # rounding makes ties
        adj = holm(ps)
        for alpha in (0.01, 0.05, 0.1):
            assert {i for i, q in enumerate(adj) if q <= alpha} == _holm_step_down_rejects(ps, alpha)


def test_holm_matches_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(3)
    for _ in range(50):
        ps = rng.uniform(0, 0.3, size=rng.integers(1, 9))
        assert holm(ps) == pytest.approx(multitest.multipletests(ps, method="holm")[1])


# ---- effect sizes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("x,y", [
    ([0.55, 0.58, 0.51], [0.50, 0.52, 0.47]),
    ([0.31, 0.35, 0.29, 0.40, 0.33], [0.30, 0.36, 0.25, 0.38, 0.34]),
    ([0.55, 0.58], [0.50, 0.52]),  # 2 pairs: sign-flip p, but the t interval and d_z are still defined
])
def test_paired_ci_and_d_z_match_scipy_and_numpy(x, y):
    t = paired_test(x, y)
    ci = stats.ttest_rel(x, y).confidence_interval(0.95)
    assert (t["ci_low"], t["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    d = np.subtract(x, y)
    assert t["d_z"] == pytest.approx(d.mean() / d.std(ddof=1))
    # the interval by hand: mean ± t(0.975, n-1) * sd / sqrt(n)
    half = stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    assert t["ci_high"] - t["diff"] == pytest.approx(half)


def test_paired_ci_and_d_z_when_undefined():
    one = paired_test([1.0], [0.5])
    assert one["diff"] == 0.5 and math.isnan(one["ci_low"]) and math.isnan(one["d_z"])
    const = paired_test([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])  # every difference is 0.5: no spread
    assert const["ci_low"] == const["ci_high"] == pytest.approx(0.5) and math.isnan(const["d_z"])
    assert const["p"] == 0.0


# ---- power -----------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_power_floor_is_the_smallest_p_the_test_can_give():
    for n in range(1, 9):  # same-sign differences reach the sign-flip floor 2/2^n exactly
        assert sign_flip_p([1.0 + 0.1 * i for i in range(n)]) == pytest.approx(2 / 2**n)
    assert p_floor(1) == 1.0 and p_floor(2) == 0.5 and p_floor(3) == 0.0 and math.isnan(p_floor(0))
    assert paired_test([1.0], [0.0])["p_min"] == 1.0 == paired_test([1.0], [0.0])["p"]
    assert paired_test([2.0, 3.0], [0.0, 0.0])["p_min"] == 0.5 == paired_test([2.0, 3.0], [0.0, 0.0])["p"]
    # from 3 pairs the t-test is used and any p is reachable
    assert paired_test([1.0, 1.000001, 0.999999], [0.0, 0.0, 0.0])["p"] < 1e-6
    # the seeds needed: 3 under this rule; the exact sign-flip test alone: the smallest n with 2/2^n <= alpha
    assert pairs_needed(0.05) == 3
    assert pairs_needed(0.05, sign_flip_only=True) == 6
    assert min(n for n in range(1, 20) if sign_flip_p([1.0] * n) <= 0.05) == 6
    assert pairs_needed(0.01, sign_flip_only=True) == 8  # 2/2^8 = 0.0078
    assert pairs_needed(0.5) == 2


# ---- the smallest |d_z| with 80% power ------------------------------------------------------------------------

def test_detectable_d_z_gives_the_issues_numbers():
    # 3 seeds, Holm over 6 operators: Holm's first step is Bonferroni, 0.05 / 6 -> d_z ~ 8; uncorrected ~ 3.3
    assert zstats.detectable_d_z(3, 0.05 / 6) == pytest.approx(8.02, abs=0.005)
    assert zstats.detectable_d_z(3, 0.05) == pytest.approx(3.26, abs=0.005)
    # below 2 pairs there is no t-test and no d_z
    assert math.isnan(zstats.detectable_d_z(1, 0.05)) and math.isnan(zstats.detectable_d_z(0, 0.05))
    # more seeds detect smaller effects, a larger Holm family needs larger ones
    ds = [zstats.detectable_d_z(n, 0.05) for n in range(2, 30)]
    assert all(a > b for a, b in zip(ds, ds[1:]))
    assert zstats.detectable_d_z(3, 0.05 / 6) > zstats.detectable_d_z(3, 0.05 / 3) > zstats.detectable_d_z(3, 0.05)


@pytest.mark.parametrize("n,m", [(2, 1), (2, 6), (3, 1), (4, 3), (5, 3), (10, 6), (20, 1), (100, 1)])
def test_detectable_d_z_matches_statsmodels_solve_power(n, m):
    sm = TTestPower().solve_power(effect_size=None, nobs=n, alpha=0.05 / m, power=0.8, alternative="two-sided")
    assert zstats.detectable_d_z(n, 0.05 / m) == pytest.approx(sm, rel=1e-5)


def _statsmodels_two_sided_power(d, n, alpha):
    """statsmodels' two-sided power as its two one-sided tails at alpha / 2: its own two-sided formula turns nan
    where scipy's nct cdf far in the lower tail does (n = 3, alpha = 0.05 / 3, for one)."""
    tp = TTestPower()
    return sum(tp.power(effect_size=e, nobs=n, alpha=alpha / 2, alternative="larger") for e in (d, -d))


@pytest.mark.parametrize("n,m", [(2, 1), (3, 1), (3, 3), (3, 6), (3, 12), (4, 6), (8, 6)])
def test_the_detectable_d_z_has_80_percent_power_by_statsmodels(n, m):
    # statsmodels' solve_power stops short at 3 seeds and small alpha (at n=3, m=6 it returns 6.85, where its own
    # power() gives 0.69), so here the oracle is its power function at our answer
    d = zstats.detectable_d_z(n, 0.05 / m)
    assert _statsmodels_two_sided_power(d, n, 0.05 / m) == pytest.approx(0.8, abs=1e-6)
    two_sided = TTestPower().power(effect_size=d, nobs=n, alpha=0.05 / m, alternative="two-sided")
    assert math.isnan(two_sided) or two_sided == pytest.approx(0.8, abs=1e-6)


@pytest.mark.parametrize("m", [1, 6])
def test_the_detectable_d_z_has_80_percent_power_by_simulation(m):
    # 3 seeds: normal differences with mean d_z and sd 1, paired (one-sample) t-test at 0.05 / m
    d = zstats.detectable_d_z(3, 0.05 / m)
    x = np.random.default_rng(2024).normal(d, 1.0, size=(200_000, 3))
    hit = (stats.ttest_1samp(x, 0.0, axis=1).pvalue < 0.05 / m).mean()
    assert hit == pytest.approx(0.8, abs=0.005)  # 5 standard errors of the simulated rate


def _sweep(root, diffs: dict[str, list[float]], base=(0.50, 0.52, 0.47, 0.49)):
    """bilinear plus one operator per entry of diffs, the operator's mIoU = bilinear's + its difference, per seed."""
    n = len(next(iter(diffs.values())))
    for s in range(n):
        write_run(root, f"bilinear_s{s}", upsampler="bilinear", seed=s, metrics={"test/miou": base[s]})
        for up, d in diffs.items():
            write_run(root, f"{up}_s{s}", upsampler=up, seed=s, metrics={"test/miou": base[s] + d[s]})
    return root


@pytest.mark.slow
def test_two_seed_sweep_says_no_test_can_reach_alpha(tmp_path):
    # big, consistent improvements: still p = 0.5 with 2 seeds
    root = _sweep(tmp_path / "sweep", {"opa": [0.10, 0.11], "opb": [0.05, 0.06]})
    written = compare([root], out=tmp_path / "out")
    md = written["md"].read_text()
    assert "No test can reach α = 0.05 with 2 pairs (opa, opb)" in md  # the Must-show
    assert "2/2^2 = 0.500" in md and "run at least 3 matching seeds" in md and "would need 6" in md
    paired = [ln for ln in md.splitlines() if ln.startswith(("| opa | 2 |", "| opb | 2 |")) and "(p=" in ln]
    assert len(paired) == 2 and all("(p=0.500, untestable)" in ln and " *" not in ln for ln in paired)
    page = written["html"].read_text()
    assert "No test can reach α = 0.05 with 2 pairs (opa, opb)" in page and "untestable" in page
    assert 'class="sig' not in page
    rows = {r["upsampler"]: r for r in csv.DictReader(written["csv"].open()) if r["metric"] == "test/miou"}
    for up in ("opa", "opb"):
        assert float(rows[up]["p_value"]) == 0.5 and float(rows[up]["p_min"]) == 0.5
        assert float(rows[up]["p_holm"]) == 1.0 and rows[up]["significant"] == "no"


@pytest.mark.slow
def test_three_seed_sweep_holm_ci_and_d_z(tmp_path):
    diffs = {"opa": [0.10, 0.11, 0.12], "opb": [0.02, 0.05, 0.03], "opc": [0.05, 0.07, 0.04]}
    base = [0.50, 0.52, 0.47]
    written = compare([_sweep(tmp_path / "sweep", diffs)], out=tmp_path / "out")
    p = {up: stats.ttest_rel(np.add(base, d), base).pvalue for up, d in diffs.items()}
    # Holm by hand, m = 3: sorted opa < opc < opb, multipliers 3, 2, 1, running max
    assert p["opa"] < p["opc"] < p["opb"]
    p_holm = {"opa": 3 * p["opa"]}
    p_holm["opc"] = max(p_holm["opa"], 2 * p["opc"])
    p_holm["opb"] = max(p_holm["opc"], p["opb"])
    assert p["opc"] < 0.05 < p_holm["opc"]  # significant uncorrected, not after Holm
    rows = {r["upsampler"]: r for r in csv.DictReader(written["csv"].open()) if r["metric"] == "test/miou"}
    md = written["md"].read_text()
    assert "No test can reach" not in md and "Holm–Bonferroni over the k = 3 operators of this table" in md
    for up, d in diffs.items():
        r = rows[up]
        ci = stats.ttest_rel(np.add(base, d), base).confidence_interval()
        dz = np.mean(d) / np.std(d, ddof=1)
        assert float(r["p_value"]) == pytest.approx(p[up]) and float(r["p_holm"]) == pytest.approx(p_holm[up])
        assert float(r["diff_ci95_low"]) == pytest.approx(ci.low)
        assert float(r["diff_ci95_high"]) == pytest.approx(ci.high)
        assert float(r["d_z"]) == pytest.approx(dz) and float(r["p_min"]) == 0.0
        assert r["significant"] == ("yes" if p_holm[up] < 0.05 else "no")
        # the markdown cell, exactly
        cell = (f"{np.mean(d):+.4f} [{ci.low:+.4f}, {ci.high:+.4f}] d={dz:.2f} "
                f"(p={p[up]:.3f}, Holm {p_holm[up]:.3f})" + (" *" if p_holm[up] < 0.05 else ""))
        assert f"| {up} | 3 | {cell} |" in md
    assert rows["opa"]["significant"] == "yes" and rows["opc"]["significant"] == "no"
    page = written["html"].read_text()
    assert page.count('class="sig better"') == 1  # opa only (the summary table has no such class)


@pytest.mark.slow
def test_power_note_prints_the_detectable_d_z(tmp_path):
    """The issue's case: 3 seeds, 6 operators tested against bilinear; the note and the CSV say |d_z| >= 8.0 at
    80% power after Holm, 3.3 uncorrected; a difference of d_z ~ 5 is then 'not significant' with a number."""
    rng = np.random.default_rng(5)
    diffs = {f"op{i}": list(0.02 + 0.01 * rng.standard_normal(3)) for i in range(6)}
    written = compare([_sweep(tmp_path / "sweep", diffs)], out=tmp_path / "out")
    note = "Power: with 3 matching seeds and Holm over 6 operators, 80% power needs |d_z| ≥ 8.0 (≥ 3.3 uncorrected)."
    assert note in written["md"].read_text()
    assert note in written["html"].read_text()
    rows = [r for r in csv.DictReader(written["csv"].open()) if r["metric"] == "test/miou" and r["n_pairs"]]
    assert len(rows) == 6
    for r in rows:
        assert float(r["d_z_80_holm"]) == pytest.approx(_d_for_80(3, 0.05 / 6), rel=1e-4)
        assert float(r["d_z_80_raw"]) == pytest.approx(TTestPower().solve_power(
            effect_size=None, nobs=3, alpha=0.05, power=0.8, alternative="two-sided"), rel=1e-5)
    base = next(r for r in csv.DictReader(written["csv"].open()) if r["upsampler"] == "bilinear")
    assert base["d_z_80_holm"] == base["d_z_80_raw"] == ""  # the baseline is not tested


def _d_for_80(n, alpha):
    """The d_z with 80% power by bisection on statsmodels' power (independent of the report's brentq)."""
    lo, hi = 0.0, 100.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _statsmodels_two_sided_power(mid, n, alpha) < 0.8 else (lo, mid)
    return (lo + hi) / 2


@pytest.mark.slow
def test_power_note_with_one_operator_two_seeds_and_one_seed(tmp_path):
    three = compare([_sweep(tmp_path / "three", {"opa": [0.1, 0.2, 0.1]})], out=tmp_path / "o3")["md"].read_text()
    assert "Power: with 3 matching seeds and 1 operator tested, 80% power needs |d_z| ≥ 3.3." in three
    two = compare([_sweep(tmp_path / "two", {"opa": [0.1, 0.2]})], out=tmp_path / "o2")["md"].read_text()
    assert "Power: with 2 matching seeds no |d_z|, however large, can reach α (see below)." in two
    one = compare([_sweep(tmp_path / "one", {"opa": [0.1]})], out=tmp_path / "o1")["md"].read_text()
    assert ("Power: with 1 matching seed d_z and the t-test are undefined (they need the spread of 2 or more "
            "differences).") in one
