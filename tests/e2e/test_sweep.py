"""Real multiruns end with the comparison report in the sweep dir (the Hydra callback), holes included."""

from __future__ import annotations

import csv
import json
import re

import joblib
import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob

from upsample_zoo.zoo import CUSTOM

from ..helpers.cli import compose_train, run_cli
from ..helpers.runs import EVIL_TAG
from ..helpers.zoo import GUIDED, SMOKE_UPSAMPLERS, UNGUIDED, ZOO

# the CPU ablations leave out only the operators that are too slow per step on a 2-core CPU (they say so)
GPU_ONLY = {"carafe", "dysample", "bilinear_additive", *GUIDED}
ABLATION = [n for n in ZOO if n not in GPU_ONLY]


def _table_rows(md: str) -> dict[str, list[str]]:
    rows = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in ZOO and cells[0] not in rows:
            rows[cells[0]] = cells
    return rows


def test_multirun_ends_with_the_comparison(smoke_sweep):
    results = sorted(smoke_sweep.rglob("results.json"))
    assert len(results) == 6 and all(json.loads(p.read_text())["status"] == "ok" for p in results)
    md = (smoke_sweep / "comparison.md").read_text()
    header = next(ln for ln in md.splitlines() if ln.startswith("| upsampler"))
    assert [c.strip() for c in header.strip("|").split("|")][:4] == ["upsampler", "n ok", "n failed", "mIoU ↑"]
    rows = _table_rows(md)
    assert sorted(rows) == sorted(SMOKE_UPSAMPLERS)  # 3 upsampler rows
    for cells in rows.values():
        assert cells[1:3] == ["2", "0"]  # n ok = 2 seeds, none failed
        assert re.fullmatch(r"\d\.\d+ ± \d\.\d+", cells[3]), cells  # mIoU mean ± std over the 2 seeds
    # the numbers are the runs' own
    miou = {}
    for p in results:
        r = json.loads(p.read_text())
        miou.setdefault(r["upsampler"], []).append(r["metrics"]["test/miou"])
    rows_csv = list(csv.DictReader((smoke_sweep / "comparison.csv").open()))
    for up, vals in miou.items():
        row = next(r for r in rows_csv if r["upsampler"] == up and r["metric"] == "test/miou")
        assert float(row["mean"]) == pytest.approx(sum(vals) / 2) and row["seeds"] == "0 1"
    assert (smoke_sweep / "comparison.html").stat().st_size > 20_000  # figures embedded


def test_report_escapes_the_run_tag(smoke_sweep):
    assert json.loads(next(smoke_sweep.rglob("results.json")).read_text())["tags"] == [EVIL_TAG]
    page = (smoke_sweep / "comparison.html").read_text()
    assert EVIL_TAG not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 1  # the report's own sorting script, pinned by the CSP hash
    assert "python train.py -m" in page and "debug=smoke" in page  # the sweep's exact command


def test_failed_job_does_not_stop_the_sweep(tmp_path):
    """Also the default sweep dir (no hydra.sweep.dir): it resolves before any job, under UPSAMPLE_ZOO_ROOT. The
    other jobs and the report go on; then the sweep exits 1 with one line (it used to exit 0 over the hole)."""
    proc = run_cli(["-m", "upsampler=nearest", "model.base_channels=8,0", "debug=smoke"], tmp_path, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    last = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1]
    assert last.startswith("upsample-zoo: error: 1 of 2 jobs of the sweep in ") and "1_nearest_s0" in last
    sweeps = list((tmp_path / "logs" / "segmentation" / "multiruns").iterdir())
    assert len(sweeps) == 1
    tmp_path = sweeps[0]
    status = {json.loads(p.read_text())["config"]["model"]["base_channels"]: json.loads(p.read_text())["status"]
              for p in tmp_path.rglob("results.json")}
    assert status == {8: "ok", 0: "failed"}
    rows = list(csv.DictReader((tmp_path / "comparison.csv").open()))
    failed = [r for r in rows if r["variant"] == "model.base_channels=0"]
    assert failed and all(r["n_failed"] == "1" and r["n_ok"] == "0" for r in failed)
    ok = next(r for r in rows if r["variant"] == "model.base_channels=8" and r["metric"] == "test/miou")
    assert ok["n_ok"] == "1" and ok["n_failed"] == "0"
    md = (tmp_path / "comparison.md").read_text()
    assert "| nearest | 0 | 1 |" in md and "base_channels" in md.split("Failed or incomplete runs")[1]
    assert "failed" in (tmp_path / "comparison.html").read_text()


def swept_upsamplers(value: str) -> list[str]:
    """The operators a sweeper value selects, as Hydra reads it: a list, or a glob over configs/upsampler/."""
    choice = OverridesParser.create().parse_override(f"upsampler={value}").value()
    return choice.filter([*ZOO, CUSTOM]) if isinstance(choice, Glob) else list(choice.list)


def test_a_plain_multirun_folder_is_the_time_and_an_experiment_adds_its_name(zoo_root):
    HydraConfig.instance().cfg = None  # as when the sweeper resolves it: before any job, no HydraConfig
    plain = str(compose_train(["upsampler=tconv"]).hydra.sweep.dir)
    named = str(compose_train(["sweep_name=mine"]).hydra.sweep.dir)
    assert re.fullmatch(r".*/multiruns/\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", plain), plain
    assert re.fullmatch(r".*/multiruns/\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_mine", named), named


def test_a_new_operator_file_reaches_the_full_sweeps():
    """The _full experiments select by glob, so the zoo's next yaml joins them (the GAN's: unless guided)."""
    seg = swept_upsamplers(compose_train(["experiment=seg_ablation_full"]).hydra.sweeper.params.upsampler)
    gan = swept_upsamplers(compose_train(["experiment=gan_ablation_full"]).hydra.sweeper.params.upsampler)
    assert "my_new_op" in OverridesParser.create().parse_override(
        "upsampler=glob(*,exclude=custom)").value().filter([*ZOO, "my_new_op", CUSTOM])
    assert set(seg) == set(ZOO) and CUSTOM not in seg
    assert set(gan) == set(UNGUIDED) and not set(gan) & set(GUIDED)


@pytest.mark.parametrize("name,task,model", [("seg_ablation", "segmentation", "UNet"),
                                             ("gan_ablation", "gan", "DCGAN"),
                                             ("seg_ablation_full", "segmentation", "UNet"),
                                             ("gan_ablation_full", "gan", "DCGAN")])
def test_experiments_sweep_the_whole_zoo(zoo_root, name, task, model):
    cfg = compose_train([f"experiment={name}"])
    HydraConfig.instance().cfg = None  # as when the sweeper resolves it: before any job, no HydraConfig
    sweep_dir = str(cfg.hydra.sweep.dir)
    assert sweep_dir.startswith(str(zoo_root / "logs" / task / "multiruns")) and sweep_dir.endswith(name)
    params = cfg.hydra.sweeper.params
    swept = swept_upsamplers(params.upsampler)
    assert set(ABLATION) <= set(swept) and set(swept) <= set(ZOO)  # every classic operator, only real configs
    assert len(params.seed.split(",")) >= 2
    assert cfg.hydra.runtime.choices.task == task and cfg.model._target_.endswith(model)
    assert cfg.hydra.callbacks.compare._target_ == "upsample_zoo.hydra_callbacks.CompareOnMultirunEnd"
    if not name.endswith("_full"):  # CPU-sized: one job per core, 1 torch thread each
        assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    if name == "seg_ablation":  # content-aware operators at the cost of a convolution fit the CPU sweep
        assert {"carafe", "dysample", "fade", "sapa"} <= set(swept)
    if name.endswith("_full"):
        # on a GPU the content-aware upsamplers are affordable: all of them (the guided ones need the U-Net's skip)
        assert set(swept) == set(ZOO if task == "segmentation" else UNGUIDED)
        assert cfg.trainer.accelerator == "gpu"
        if task == "gan":
            assert cfg.metrics.fid.num_fake == 10_000


@pytest.mark.parametrize("launcher,target", [("joblib", "JoblibLauncher"), ("submitit_slurm", "SlurmLauncher"),
                                             ("submitit_local", "LocalLauncher")])
def test_launchers_are_configs(zoo_root, launcher, target):
    cfg = compose_train([f"hydra/launcher={launcher}", "experiment=seg_ablation"])
    assert cfg.hydra.launcher._target_.endswith(target)


def test_joblib_launcher_runs_jobs_with_dataloader_workers(zoo_root, tmp_path):
    """hydra/launcher=joblib: parallel jobs whose DataLoaders start workers (loky's start method is restored)."""
    proc = run_cli(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "upsampler=nearest,tconv",
                    "debug=smoke", "data.num_workers=1", f"hydra.sweep.dir={tmp_path}"], zoo_root, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = [json.loads(p.read_text()) for p in tmp_path.rglob("results.json")]
    assert len(res) == 2 and all(r["status"] == "ok" for r in res), [r.get("error") for r in res]
    assert "| tconv | 1 | 0 |" in (tmp_path / "comparison.md").read_text()
    # loky caps each worker's thread pools at cores // n_jobs: one torch thread per job on 2 cores
    assert {r["torch_threads"] for r in res} == {max(1, joblib.cpu_count() // 2)}
