"""upsample-zoo compare, one value per (operator, seed): copied folders, resumed sweeps and repeated seeds count
once; bad options, empty or corrupt runs are one line; NaN values and per-run standard errors get their own cells."""

from __future__ import annotations

import csv
import itertools
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from upsample_zoo import cli
from upsample_zoo.report import compare, load_runs, summarize

from ..helpers.runs import small_sweep, write_run


@pytest.fixture
def tree(tmp_path) -> Path:
    return small_sweep(tmp_path / "sweep")


STAT_COLUMNS = ["n_ok", "mean", "std", "ci95_low", "ci95_high", "seeds", "n_pairs", "diff_mean", "diff_ci95_low",
                "diff_ci95_high", "d_z", "p_value", "p_holm", "significant"]


def _rows(written) -> dict[tuple[str, str], dict[str, str]]:
    return {(r["upsampler"], r["metric"]): r for r in csv.DictReader(written["csv"].open())}


def _set_mtime(run_dir: Path, seconds: int) -> None:
    os.utime(run_dir / "results.json", ns=(seconds * 10**9, seconds * 10**9))


@pytest.mark.slow
def test_a_copied_run_folder_is_counted_once(tree, tmp_path):
    """A copy of a run folder (same operator and seed, same numbers) changes no statistic: it is listed as
    superseded, never counted (before, it was a 4th tconv sample and narrowed the CI)."""
    before = _rows(compare([tree], out=tmp_path / "before"))
    shutil.copytree(tree / "tconv_s0", tree / "tconv_s0_copy")  # copy2 keeps the mtime: the path decides
    written = compare([tree], out=tmp_path / "after")
    after = _rows(written)
    assert after.keys() == before.keys()
    for key, row in after.items():
        assert {c: row[c] for c in STAT_COLUMNS} == {c: before[key][c] for c in STAT_COLUMNS}, key
    tconv = after[("tconv", "test/miou")]
    assert (tconv["n_ok"], tconv["n_failed"], tconv["n_superseded"], tconv["n_runs"]) == ("3", "0", "1", "4")
    assert after[("bilinear", "test/miou")]["n_superseded"] == "0"
    md = written["md"].read_text()
    assert "| tconv | 3 | 0 |" in md
    line = f"superseded: {tree}/tconv_s0 (tconv, seed 0), replaced by a later run: {tree}/tconv_s0_copy"
    assert f"- {line}" in md
    assert "10 runs (8 ok, 1 superseded by a later run of the same seed, 1 failed or incomplete)" in md
    page = written["html"].read_text()
    assert f"<li>{line}</li>" in page and "<h3>Superseded runs</h3>" in page
    assert "10 runs (8 ok, 1 superseded by a later run of the same seed, 1 failed or incomplete)" in page


@pytest.mark.slow
def test_a_resumed_sweep_counts_the_latest_run_of_each_seed(tmp_path):
    """A sweep re-run with seeds 0-4 after one with seeds 0-2: 5 values per operator, the newer runs' for seeds
    0-2 (by results.json mtime, whatever the folder names), and the paired test pairs the same values."""
    first, resumed = tmp_path / "b_first", tmp_path / "a_resumed"  # path order would pick the older runs
    old = {"bilinear": [0.10, 0.90, 0.20], "tconv": [0.80, 0.15, 0.70]}
    new = {"bilinear": [0.50, 0.52, 0.47, 0.49, 0.51], "tconv": [0.55, 0.58, 0.51, 0.52, 0.57]}
    for up in ("bilinear", "tconv"):
        for s, v in enumerate(old[up]):
            _set_mtime(write_run(first, f"{up}_s{s}", upsampler=up, seed=s, metrics={"test/miou": v}), 1_000)
        for s, v in enumerate(new[up]):
            _set_mtime(write_run(resumed, f"{up}_s{s}", upsampler=up, seed=s, metrics={"test/miou": v}), 2_000)
    written = compare([first, resumed], out=tmp_path / "out")
    rows = _rows(written)
    x, b = new["tconv"], new["bilinear"]
    for up, xs in new.items():
        r = rows[(up, "test/miou")]
        lo, hi = stats.t.interval(0.95, 4, loc=np.mean(xs), scale=stats.sem(xs))
        assert (r["n_ok"], r["seeds"]) == ("5", "0 1 2 3 4")
        assert float(r["mean"]) == pytest.approx(np.mean(xs)) and float(r["std"]) == pytest.approx(np.std(xs, ddof=1))
        assert (float(r["ci95_low"]), float(r["ci95_high"])) == (pytest.approx(lo), pytest.approx(hi))
        assert (r["n_superseded"], r["n_runs"]) == ("3", "8")
    t = rows[("tconv", "test/miou")]
    # the summary and the paired test agree: same seeds, same values
    assert float(t["diff_mean"]) == pytest.approx(np.mean(x) - np.mean(b))
    assert float(t["p_value"]) == pytest.approx(stats.ttest_rel(x, b).pvalue) and t["n_pairs"] == "5"
    md = written["md"].read_text()
    assert "| bilinear | 5 | 0 |" in md and "| tconv | 5 | 0 |" in md
    for up, s in itertools.product(("bilinear", "tconv"), range(3)):
        assert (f"- superseded: {first}/{up}_s{s} ({up}, seed {s}), replaced by a later run: "
                f"{resumed}/{up}_s{s}") in md


def test_latest_run_of_a_seed_by_mtime_then_path(tmp_path):
    """Different numbers under one (operator, seed): the newest results.json wins, on a tie the later path; a
    failed run and a run without a seed are never superseded."""
    root = tmp_path / "runs"
    for name, v, t in [("r2", 0.2, 300), ("r1", 0.1, 100), ("r3", 0.3, 200)]:
        _set_mtime(write_run(root, name, upsampler="tconv", seed=0, metrics={"test/miou": v}), t)
    for name, v in [("tie_a", 0.4), ("tie_b", 0.6)]:
        _set_mtime(write_run(root, name, upsampler="tconv", seed=1, metrics={"test/miou": v}), 50)
    _set_mtime(write_run(root, "crash", upsampler="tconv", seed=0, status="failed", error="boom"), 999)
    cmp = summarize(load_runs([root]))
    (g,) = cmp.sections[0].groups
    assert g.by_seed("test/miou") == {0: 0.2, 1: 0.6} and g.values("test/miou") == [0.2, 0.6]
    assert g.n_ok == 2 and g.n_failed == 1
    assert sorted((old.run_dir.name, new.run_dir.name) for old, new in g.superseded) == \
        [("r1", "r2"), ("r3", "r2"), ("tie_a", "tie_b")]
    row = cmp.row(cmp.sections[0], "tconv", "test/miou")
    assert (row["n_ok"], row["n_superseded"], row["n_runs"]) == (2, 3, 6)
    assert row["mean"] == pytest.approx(0.4)


@pytest.mark.parametrize("args,code,needle", [
    (["--alpha", "5"], 2, "argument --alpha: 5 is outside (0, 1)"),
    (["--alpha", "0"], 2, "argument --alpha: 0 is outside (0, 1)"),
    (["--alpha", "nan"], 2, "argument --alpha: nan is outside (0, 1)"),
    (["--out", "{file}"], 1, "cannot write under --out {file}"),
    (["--out", "{file}/sub"], 1, "cannot write under --out {file}/sub"),
])
def test_compare_bad_options_and_unwritable_output_are_one_line(tree, tmp_path, capsys, args, code, needle):
    """--alpha 5 used to mark every cell significant, p = 1.000 included; an --out that cannot be written used to
    end in a traceback. Both are one line and a non-zero exit, and nothing is written."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    args = [a.replace("{file}", str(blocker)) for a in args]
    try:
        rc = cli.main(["compare", str(tree), *args])
    except SystemExit as e:
        rc = e.code
    assert rc == code
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("upsample-zoo compare: error: ")
    assert needle.replace("{file}", str(blocker)) in err[0]
    assert blocker.read_text() == "not a folder" and not list(tree.rglob("comparison.*"))


def test_compare_with_no_runs_is_one_line_and_exit_1(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["compare", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no results.json under" in err[0]
    with pytest.raises(ValueError, match=r"alpha=1.5 is not a significance level"):  # the library call too
        compare([tmp_path / "empty"], alpha=1.5)


def test_a_corrupt_results_json_is_filed_under_its_operator_and_an_unknown_schema_warns(tmp_path, caplog):
    """A torn results.json in a job folder used to be filed under '? · ?' and called unreadable; Hydra's record
    beside it names the operator, so its row shows the run as failed, and the file is called corrupt. A
    results.json of another schema is read with a warning, never silently."""
    root = tmp_path / "sweep"
    for s in range(2):
        write_run(root, f"bilinear_s{s}", upsampler="bilinear", seed=s, metrics={"test/miou": 0.5 + s / 10})
    torn = write_run(root, "tconv_s0", upsampler="tconv", seed=0, metrics={"test/miou": 0.4})
    (torn / ".hydra" / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n      task: segmentation\n"
                                                "      upsampler: tconv\n      data: voc_synthetic\n")
    (torn / ".hydra" / "config.yaml").write_text("seed: 0\ntags: []\n")
    (torn / "results.json").write_text('{"status": "ok", "metr')
    runs = {r.run_dir.name: r for r in load_runs([root])}
    torn_run = runs["tconv_s0"]
    assert (torn_run.status, torn_run.task, torn_run.data, torn_run.upsampler, torn_run.seed) == \
        ("unreadable", "segmentation", "voc_synthetic", "tconv", 0)
    assert torn_run.error.startswith("results.json is corrupt: ")
    md = compare([root], out=tmp_path / "out")["md"].read_text()
    assert "| tconv | 0 | 1 |" in md and "? · ?" not in md
    future = write_run(tmp_path / "future", "b", upsampler="bilinear", seed=0, extra={"schema": 2})
    with caplog.at_level("WARNING", logger="upsample_zoo"):
        load_runs([future])
    assert any("results.json schema 2, this report reads schema 1" in r.getMessage() for r in caplog.records)


def test_a_metric_with_nan_values_shows_its_own_n(tmp_path):
    """An ok run whose checkerboard score is NaN (a collapsed generator) is left out of that metric's mean while
    "n ok" counts the run: the cell says on how many runs it stands."""
    root = tmp_path / "sweep"
    for s, db in enumerate([1.0, float("nan"), 3.0]):
        write_run(root, f"tconv_s{s}", upsampler="tconv", seed=s,
                  metrics={"test/miou": 0.5, "test/checkerboard_db": db})
    md = compare([root], out=tmp_path / "out", baseline=None)["md"].read_text()
    row = next(line for line in md.splitlines() if line.startswith("| tconv |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "3"  # n ok
    assert f"2.000 ± {np.std([1.0, 3.0], ddof=1):.3f} (n=2)" in cells  # mean and std of the two finite values
    assert "0.5000 ± 0.0000" in cells  # a complete metric: no n


def test_a_sweep_of_the_baseline_alone_says_so_instead_of_an_empty_paired_table(tmp_path):
    """Three seeds of bilinear only: no operator to test against it. The report used to print the paired
    section anyway (Holm over k = 0 operators, test: none, a header-only table)."""
    root = tmp_path / "sweep"
    for seed, v in enumerate((0.30, 0.31, 0.32)):
        write_run(root, f"bilinear_s{seed}", upsampler="bilinear", seed=seed, metrics={"test/miou": v})
    written = compare([root], out=tmp_path / "out")
    text = written["md"].read_text()
    assert "Only `bilinear` here: no other operator to test against it." in text
    assert "Against the baseline" not in text and "k = 0" not in text and "| pairs |" not in text
    html = written["html"].read_text()
    assert "Only bilinear here" in html and "Against the baseline" not in html


def test_a_metric_with_its_own_standard_error_gets_a_per_run_table(tmp_path):
    """KID reports each run's jackknife SE (test/kid_se): the report lists 'value ± SE' per operator and seed, a
    missing seed as '–', in markdown and HTML; a metric without an _se (FID) gets no such table."""
    kid = {("bilinear", 0): (1.5, 0.25), ("bilinear", 1): (2.0, 0.5), ("tconv", 0): (3.25, 0.75)}
    for (up, seed), (v, se) in kid.items():
        write_run(tmp_path, f"{up}_s{seed}", upsampler=up, seed=seed, task="gan", data="image_folder",
                  metrics={"test/fid": 100 + v, "test/kid": v, "test/kid_se": se, "test/precision": v / 10,
                           "test/kid_real_floor": 0.01, "test/precision_real_floor": 0.7})
    compare([tmp_path], out=tmp_path)
    text = (tmp_path / "comparison.md").read_text()
    table = text[text.index("KID ×10³, per run:"):].split("\n\n")[1].splitlines()
    assert table[0] == "| upsampler | seed 0 | seed 1 |"
    assert "| bilinear | 1.500 ± 0.250 | 2.000 ± 0.500 |" in table  # the column's decimals, as the summary's
    assert "| tconv | 3.250 ± 0.750 | – |" in table
    assert "FID, per run" not in text
    assert "| precision ↑ |" in text  # the k-NN metrics by their names, with their directions
    assert "by the same code: FID, KID, precision, recall, density, coverage and spectral FD of" in text
    assert "KID ×10³, per run</h3>" in (tmp_path / "comparison.html").read_text()
