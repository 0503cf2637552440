"""upsample-zoo compare on synthetic results.json trees: statistics, grouping, holes, escaping, CLI, wandb."""

from __future__ import annotations

import csv
import itertools
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from upsample_zoo.report import compare, load_runs, summarize
from upsample_zoo.report.stats import describe, paired_test, sign_flip_p

from ..helpers.runs import SMALL_SWEEP_MIOU as MIOU
from ..helpers.runs import small_sweep, write_run


@pytest.fixture
def tree(tmp_path) -> Path:
    return small_sweep(tmp_path / "sweep")


def test_describe_matches_numpy_scipy():
    xs = [0.31, 0.35, 0.29, 0.40]
    d = describe(xs)
    lo, hi = stats.t.interval(0.95, len(xs) - 1, loc=np.mean(xs), scale=stats.sem(xs))
    assert d["n"] == 4 and d["mean"] == pytest.approx(np.mean(xs))
    assert d["std"] == pytest.approx(np.std(xs, ddof=1))
    assert (d["ci_low"], d["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    two = describe([1.0, 3.0])  # n=2: t(0.975, 1) = 12.706
    assert two["ci_high"] - 2.0 == pytest.approx(12.7062047 * math.sqrt(2) / math.sqrt(2))
    one = describe([5.0, float("nan"), None])
    assert one["n"] == 1 and one["mean"] == 5.0 and math.isnan(one["std"]) and math.isnan(one["ci_low"])
    assert describe([])["n"] == 0


def _brute_sign_flip(d):
    d = np.asarray(d, dtype=float)
    obs = abs(d.sum())
    sums = [abs(np.dot(s, d)) for s in itertools.product((1, -1), repeat=len(d))]
    return np.mean([s >= obs - 1e-12 for s in sums])


def test_paired_tests_match_independent_computation():
    x, y = [0.55, 0.58, 0.51], [0.50, 0.52, 0.47]
    t = paired_test(x, y)
    assert t["test"].startswith("paired t-test") and t["n_pairs"] == 3
    assert t["p"] == pytest.approx(stats.ttest_rel(x, y).pvalue)
    assert t["diff"] == pytest.approx(np.mean(np.subtract(x, y)))
    # fewer than 3 pairs: exact sign-flip permutation
    t2 = paired_test([0.55, 0.58], [0.50, 0.52])
    assert "sign-flip" in t2["test"] and t2["p"] == pytest.approx(0.5) == _brute_sign_flip([0.05, 0.06])
    assert paired_test([1.0], [0.0])["p"] == 1.0
    for d in ([0.3, -0.1, 0.2, 0.25, 0.4], [1, 2, 3, 4, 5, 6], [0.1, -0.1]):
        assert sign_flip_p(d) == pytest.approx(_brute_sign_flip(d))
    assert sign_flip_p([1, 2, 3, 4, 5, 6]) == pytest.approx(2 / 64)
    assert paired_test([], [])["n_pairs"] == 0
    assert paired_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])["p"] == 1.0  # zero variance, no difference


@pytest.mark.slow
def test_report_stats_and_files(tree, tmp_path):
    out = tmp_path / "report"
    written = compare([tree], baseline="bilinear", out=out)
    assert {p.name for p in written.values()} == {"comparison.md", "comparison.csv", "comparison.html",
                                                  "predictions_by_upsampler.png"}  # the tree's runs drew grids
    rows = list(csv.DictReader((out / "comparison.csv").open()))
    # one row per group x metric: 3 groups x (3 metrics + 4 cost entries)
    assert len(rows) == 3 * 7
    assert not list(out.glob(".comparison*"))  # atomic writes left no temp file
    by = {(r["upsampler"], r["metric"]): r for r in rows}
    t = by[("tconv", "test/miou")]
    xs = [MIOU[("tconv", s)] for s in range(3)]
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(xs), scale=stats.sem(xs))
    assert int(t["n_ok"]) == 3 and int(t["n_failed"]) == 0
    assert float(t["mean"]) == pytest.approx(np.mean(xs)) and float(t["std"]) == pytest.approx(np.std(xs, ddof=1))
    assert float(t["ci95_low"]) == pytest.approx(lo) and float(t["ci95_high"]) == pytest.approx(hi)
    base = [MIOU[("bilinear", s)] for s in range(3)]
    assert float(t["p_value"]) == pytest.approx(stats.ttest_rel(xs, base).pvalue)
    assert float(t["diff_mean"]) == pytest.approx(np.mean(np.subtract(xs, base)))
    # Holm over the 2 operators tested against bilinear: tconv's p is the smaller one, so it is doubled
    p_holm = min(1.0, 2 * stats.ttest_rel(xs, base).pvalue)
    assert float(t["p_holm"]) == pytest.approx(p_holm) and t["significant"] == ("yes" if p_holm < 0.05 else "no")
    n = by[("nearest", "test/miou")]  # seeds 0, 1 ok and seed 2 failed: 2 pairs -> sign-flip
    assert int(n["n_ok"]) == 2 and int(n["n_failed"]) == 1 and int(n["n_pairs"]) == 2
    assert "sign-flip" in n["test"] and float(n["p_value"]) == pytest.approx(_brute_sign_flip([-0.01, 0.01]))
    assert n["significant"] == "no"
    assert by[("bilinear", "test/miou")]["test"] == ""  # the baseline is not tested against itself

    md = (out / "comparison.md").read_text()
    table = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert table[0].startswith("| upsampler | n ok | n failed | mIoU ↑")
    row = next(ln for ln in table if ln.startswith("| tconv |"))
    assert f"{np.mean(xs):.4f} ± {np.std(xs, ddof=1):.4f}" in row
    assert "| nearest | 2 | 1 |" in md and "RuntimeError: boom" in md
    assert "sign-flip" in md and "ttest_rel" in md
    assert "Holm–Bonferroni over the k = 2 operators of this table, per metric" in md
    assert "No test can reach α = 0.05 with 2 pairs (nearest)" in md  # nearest has 2 pairs: p >= 0.5

    page = (out / "comparison.html").read_text()
    assert page.count("<table") >= 4 and "data:image/png;base64," in page
    assert 'alt="bar chart"' in page and 'alt="quality vs cost"' in page
    assert page.count('alt="tconv predictions.png"') == 1
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\(""", page), "external reference"
    assert "python train.py upsampler=tconv seed=0" in page


@pytest.mark.slow
def test_default_out_is_the_single_folder(tree):
    compare([tree])
    assert (tree / "comparison.html").exists()


@pytest.mark.slow
def test_holes_never_crash_the_report(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "ok", upsampler="tconv", seed=0, metrics={"test/miou": 0.4, "test/fid": float("nan")})
    write_run(root, "weird", upsampler="tconv", seed=1, metrics={"test/miou": "n/a", "x": [1]}, cost={})
    write_run(root, "failed", upsampler="bilinear", seed=0, status="failed", error="ConfigError: base_channels")
    (root / "corrupt").mkdir()
    (root / "corrupt" / "results.json").write_text('{"status": "ok", "metr')  # a torn copy
    (root / "list").mkdir()
    (root / "list" / "results.json").write_text("[]")
    killed = root / "killed" / ".hydra"  # a job killed before it wrote results.json
    killed.mkdir(parents=True)
    (killed / "overrides.yaml").write_text("- upsampler=nearest\n- seed=3\n")
    (killed / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n      task: segmentation\n"
                                       "      upsampler: nearest\n      data: voc_synthetic\n")
    (killed / "config.yaml").write_text("seed: 3\ntags: []\n")
    runs = {r.run_dir.name: r for r in load_runs([root])}
    assert runs["killed"].status == "incomplete" and runs["killed"].upsampler == "nearest" and runs["killed"].seed == 3
    assert runs["corrupt"].status == runs["list"].status == "unreadable"
    written = compare([root], out=tmp_path / "out")
    md = written["md"].read_text()
    assert "| nearest | 0 | 1 |" in md and "incomplete" in md and "| bilinear | 0 | 1 |" in md
    assert "unreadable" in md
    rows = list(csv.DictReader(written["csv"].open()))
    tconv = next(r for r in rows if r["upsampler"] == "tconv" and r["metric"] == "test/miou")
    assert tconv["n_ok"] == "1" and tconv["std"] == ""
    # nothing at all: still a report
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "No runs found" in compare([empty])["html"].read_text()


def test_variants_keep_different_configs_apart(tmp_path):
    root = tmp_path / "sweep"
    write_run(root, "a", upsampler="nearest", seed=0, metrics={"test/miou": 0.3},
              overrides=["debug=smoke", "model.base_channels=8", "upsampler=nearest"])
    write_run(root, "b", upsampler="nearest", seed=0, status="failed", error="ConfigError: model.base_channels=0",
              overrides=["debug=smoke", "model.base_channels=0", "upsampler=nearest"])
    cmp = summarize(load_runs([root]))
    titles = {s.title: (s.groups[0].n_ok, s.groups[0].n_failed) for s in cmp.sections}
    assert titles == {"segmentation · voc_synthetic · model.base_channels=8": (1, 0),
                      "segmentation · voc_synthetic · model.base_channels=0": (0, 1)}


@pytest.mark.slow
def test_gan_report_with_spectra_and_reference_difference(tmp_path):
    root = tmp_path / "gan"
    freqs = [i / 32 for i in range(17)]
    for up, s in itertools.product(["bilinear", "tconv"], [0, 1, 2]):
        bump = 30.0 if up == "tconv" else 1.0
        write_run(root, f"{up}{s}", upsampler=up, seed=s, task="gan", data="cifar_synthetic", figure="samples.png",
                  metrics={"test/fid": 200 + 10 * s + (20 if up == "tconv" else 0), "test/checkerboard_db": 3.0 + s,
                           "test/checkerboard_db_ref": -7.0},
                  extra={"spectrum": {"freqs": freqs, "power": [1 / (f + 0.05) ** 2 for f in freqs[:-1]] + [bump],
                                      "real": [1 / (f + 0.05) ** 2 for f in freqs]}})
    written = compare([root], out=tmp_path / "out")
    page = written["html"].read_text()
    assert 'alt="azimuthal spectra"' in page and 'alt="tconv samples.png"' in page
    rows = list(csv.DictReader(written["csv"].open()))
    ref = next(r for r in rows if r["upsampler"] == "tconv" and r["metric"] == "test/checkerboard_db_vs_ref")
    assert float(ref["mean"]) == pytest.approx(11.0)
    fid = next(r for r in rows if r["upsampler"] == "tconv" and r["metric"] == "test/fid")
    assert float(fid["diff_mean"]) == pytest.approx(20.0) and fid["direction"] == "min"
    assert "FID" in written["md"].read_text()


@pytest.mark.slow
def test_gan_report_has_the_real_reference_row(tmp_path):
    """The reference row reads the runs' real-image metrics (floor FID and the two spectral FD parts, real
    checkerboard), 0 for the difference to real, and a spread only when the runs disagree; the note gives the n
    the floor was scored at, and says when the split gave fewer than were generated; without them, no row."""
    root = tmp_path / "gan"
    floor_n = {"protocol": {"real_floor_n": 250, "real_floor_n_requested": 300}}
    for up, s in itertools.product(["bilinear", "tconv"], [0, 1, 2]):
        write_run(root, f"{up}{s}", upsampler=up, seed=s, task="gan", data="image_folder", extra=floor_n,
                  metrics={"test/fid": 200.0 + s, "test/spectral_fd_shape": 9.0 + s,
                           "test/spectral_fd_artifact": 3.5 + s, "test/checkerboard_db": 3.0 + s,
                           "test/checkerboard_db_ref": -7.25, "test/fid_real_floor": 12.5 if s else 14.5,
                           "test/spectral_fd_shape_real_floor": 0.75, "test/spectral_fd_artifact_real_floor": 0.125})
    written = compare([root], out=tmp_path / "out")
    text = written["md"].read_text()
    row = next(line for line in text.splitlines() if line.startswith("| real (reference)"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # upsampler, n ok, n failed, FID, spectral FD shape, artifact, checkerboard dB, checkerboard dB − real,
    # then 4 cost columns
    header = next(line for line in text.splitlines() if line.startswith("| upsampler"))
    assert "spectral FD shape (blur) ↓ | spectral FD artifact ↓ | checkerboard dB ↓" in header
    mean, sd = np.mean([14.5, 12.5, 12.5] * 2), np.std([14.5, 12.5, 12.5] * 2, ddof=1)
    # each column keeps its own number format: FID ~200 -> 1 decimal, spectral FD ~10 -> 2,
    # checkerboard ~4 -> 3, its difference to real ~11 -> 2
    assert cells[3] == f"{mean:.1f} ± {sd:.1f}"
    assert cells[4:8] == ["0.75", "0.125", "-7.250", "0.00"] and cells[8:] == ["–"] * 4
    assert "real-vs-real floor" in text
    assert "n = 250 real images (FEWER than the 300 generated" in text  # the floor's actual n, not "as many"
    assert '<tr class="reference">' in written["html"].read_text()
    plain = tmp_path / "plain"
    write_run(plain, "b0", upsampler="bilinear", seed=0, task="gan", data="image_folder", metrics={"test/fid": 1.0})
    assert "real (reference)" not in compare([plain], out=tmp_path / "out2")["md"].read_text()


@pytest.mark.slow
def test_every_string_is_html_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    img = '<img src=x onerror="alert(2)">'
    root = tmp_path / "run<b>dir</b>"
    write_run(root, "r0", upsampler=evil, seed=0, tags=[evil, img], metrics={"test/miou": 0.2, f"test/{img}": 1.0},
              overrides=[f"++tags=['{evil}']", f"upsampler={evil}"], error=None)
    write_run(root, "r1", upsampler="bilinear", seed=0, status="failed", error=img, data=img,
              extra={"protocol": {img: evil}})
    written = compare([root], out=tmp_path / "out", baseline=evil)
    page = written["html"].read_text()
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>dir" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page
    assert page.count("<script>") == 1  # only the report's own (hash-pinned) sorting script
    assert "script-src 'sha256-" in page
    md = written["md"].read_text()
    assert "<script>" not in md and "&lt;script&gt;" in md


