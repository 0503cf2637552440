"""The bench's results: the plain loop trains exactly as the Lightning step it is compared with, bench.json keeps
its keys, bench.md has every heading and table, --out is checked first, and row 5 times the work the task does."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from upsample_zoo.bench import data as bench_data
from upsample_zoo.bench import measure, overhead, report, settings, sweep, upsamplers, workloads

from ..helpers.cli import compose_cfg


def _lightning_step(task, batch, seed: int, root: Path) -> None:
    torch.manual_seed(seed)
    with workloads.quiet_lightning():
        workloads.bare_trainer(torch.device("cpu"), root, [], max_steps=1, limit_val_batches=0).fit(
            task, train_dataloaders=workloads.InMemory([batch]))


def _plain_step(w, task, batch, seed: int) -> None:
    step = task.plain_step()
    task.train()
    torch.manual_seed(seed)
    step(batch)


def _same_state(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _full_result() -> report.BenchResult:
    """A hand-made result with every row (full mode: FID ideas, the threads row), and one failed row each."""
    from upsample_zoo.bench import checkerboard, scaling
    from upsample_zoo.bench import fid_speed as fid
    from upsample_zoo.bench.environment import MatmulPeak

    s, r = measure.summarize([1.0, 2.0]), measure.ratio_summary([1.0, 2.0], [2.0, 2.0])
    fw = overhead.Framework("tiny", 3, s, s, s)
    ov = overhead.Overhead("w", 2, 3, 1, s, s, r, overhead.Threads(2, s, s, r), fw, 0.5, 0.9)
    run = fid.FidRun(1.0, 0.1, 0.5, 0.3, 0.1, False, 12.0)
    cache = fid.FidCache(8, 8, run, run, 1.0, 0.5, 0.5, fid.Projected(1000, 1000, 10.0, 6.0, 0.6))
    ideas = fid.Ideas(16, 2, {fid.DEFAULT_VARIANT: fid.Idea(s, r), "+ channels_last only": fid.Idea(s, r)})
    row = bench_data.LoaderRow("cifar", 0, 8, s, s, 4, 100.0, 3.0)
    sweep_row = sweep.SweepRow(s, [4], [1], s, s, s, s)
    return report.BenchResult(
        mode="full", command="upsample-zoo bench", settings=settings.FULL, device={"cpu": "x", "cpus_usable": 2,
        "torch": "2", "device": "cpu", "gpu": None, "torch_threads": 1}, load_avg_start=[0.1, 0.1, 0.1],
        errors={"overhead/gan": "RuntimeError: no"}, matmul=MatmulPeak(64, "float32", s),
        upsamplers=upsamplers.Upsamplers([1, 8, 8, 8], [8, 4], {
            "tconv": upsamplers.UpsamplerRow(10, [1, 4, 16, 16], 30, 10, s, 1.0, 0.1, 2.0, 0.5),
            "carafe": measure.Failed("x")}, upsamplers.UNetStages(
                ["experiment=x"], [upsamplers.StageShape(2, 16, 8, 10)],
                {"tconv": upsamplers.StageRow([1.0], 1.0, 2.0, 7)})),
        overhead={"segmentation": ov, "gan": measure.Failed("RuntimeError: no")},
        data=bench_data.Data({"segmentation/synthetic": row, "gan/synthetic": bench_data.LoaderFailed("c", "e")}),
        fid=fid.Fid(8, 1e-6, True, s, s, r, r, 5.7, 10.0, 0.1, ideas=ideas, cache=cache),
        checkerboard={"segmentation": checkerboard.TestEpochCost("voc_synthetic", 8, s, s, r),
                      "gan": checkerboard.ComposedCost(16, 16, 0.1, 0.2, 1.0, 1.3, {"median": 0.08})},
        scaling=scaling.Scaling("U-Net", 2, 100, "AdamW", s, [scaling.Point(2, 64, s)],
                                [scaling.Point(2, 48, s, 0.1, 0.2, 0.3), scaling.Point(2, 96, s, 0.1, 0.2, 0.3)],
                                1.0, 1.5, 1.7),
        sweep=sweep.Sweep(4, "python train.py -m x", {"sequential, 2 torch threads": sweep_row,
                                                       sweep.PARALLEL: sweep_row}, r, "sequential, 2 torch threads",
                          None, r, r),
        wall_s=60.0, load_avg_end=[0.2, 0.2, 0.2], threads={"used": 1, "why": "--threads", "torch_default": 2})


# bench.json's objects and their keys, in order (rows.* = every row of a table): what readers of bench.json use
BENCH_JSON_KEYS = {
    "": "schema mode command settings device load_avg_start errors matmul upsamplers overhead data fid checkerboard "
        "scaling sweep wall_s load_avg_end threads headline",
    "matmul": "n dtype gflops",
    "upsamplers": "input channels rows unet",
    "upsamplers.rows.tconv": "params output flops_fwd_bwd flops_fwd time_s gflops_per_s peak_ratio peak_mib "
                             "conv_share",
    "upsamplers.unet": "overrides stages rows",
    "upsamplers.unet.rows.tconv": "time_ms total_ms peak_mib flops_fwd_bwd",
    "upsamplers.rows.carafe": "error",
    "overhead.segmentation": "workload batch_size pairs torch_threads plain_step_s lightning_step_s ratio threads "
                             "framework overhead_ms_per_step ratio_implied",
    "overhead.segmentation.threads": "default_threads default_step_s one_thread_step_s one_thread_speedup",
    "overhead.segmentation.framework": "workload pairs plain_step_cpu_s lightning_step_cpu_s overhead_cpu_s",
    "overhead.gan": "error",
    "data": "rows",
    "data.rows.segmentation/synthetic": "data num_workers batch_size steady_img_s cold_img_s batches_per_epoch "
                                        "train_img_s ratio",
    "data.rows.gan/synthetic": "data error",
    "fid": "batch features_max_abs_diff features_equal_1e-4 torchmetrics_img_s project_img_s speedup "
           "speedup_cpu_time inception_gflop_per_image inception_gflops_per_s inception_peak_ratio project_path "
           "baseline_path ideas cache",
    "fid.ideas": "batch rounds rows",
    "fid.ideas.rows.+ channels_last only": "img_s vs_default",
    "fid.cache": "n_real n_fake first second first_s second_s ratio projected note",
    "fid.cache.first": "total_s build_s real_stats_s fake_s compute_s cached fid",
    "fid.cache.projected": "n_real n_fake first_s second_s ratio",
    "checkerboard": "segmentation gan",
    "checkerboard.segmentation": "data images test_epoch_s checkerboard_s fraction how",
    "checkerboard.gan": "n_fake n_real checkerboard_s sampling_s fid_extraction_s test_epoch_s fraction how",
    "scaling": "model batch params optimizer optimizer_step_s by_images by_side exponent_images exponent_side "
               "exponent_side_without_optimizer",
    "scaling.by_images.0": "images side epoch_s",
    "scaling.by_side.0": "images side epoch_s optimizer_share gflop gflops_per_s",
    "sweep": "jobs command rows speedup sequential speedup_vs_sequential_1thread speedup_jobs_only "
             "job_slowdown_1thread",
    "sweep.rows.sequential, 2 torch threads": "wall_s jobs_ok threads job_wall_s job_fit_s jobs_wall_s "
                                              "outside_jobs_s",
    "threads": "used why torch_default",
    "headline": "overhead_segmentation overhead_gan overhead_segmentation_implied overhead_gan_implied "
                "framework_ms_per_step fid_speedup fid_cache_ratio fid_cache_ratio_at_config_n matmul_peak_gflops "
                "fid_features_max_abs_diff inception_peak_ratio data_ratio_min checkerboard_fraction_segmentation "
                "checkerboard_fraction_gan scaling_exponent_images scaling_exponent_side sweep_speedup mode "
                "torch_threads wall_s load_avg errors",
}


def _at(obj, path: str):
    for part in path.split(".") if path else []:
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


@pytest.mark.slow
@pytest.mark.parametrize("task_name,extra", [("segmentation", ()), ("gan", ()),
                                             ("gan", ("task.spectral_reg_weight=0.5",))])
def test_plain_step_trains_exactly_as_the_lightning_step(tmp_path, task_name, extra):
    """The overhead row's baseline is the same training: one plain step and one Lightning step from copies of
    the same model, with the same random draws, leave bit-identical weights (and BatchNorm statistics)."""
    import copy

    w = workloads.build_workload(task_name, (*overhead.tiny_overrides(task_name), *extra), tmp_path,
                                 torch.device("cpu"))
    plain, light = copy.deepcopy(w.task), copy.deepcopy(w.task)
    _plain_step(w, plain, w.batches[0], seed=3)
    _lightning_step(light, w.batches[0], seed=3, root=tmp_path)
    assert not _same_state(plain.model, w.task.model)  # a step was taken
    assert _same_state(plain.model, light.model)


@pytest.mark.slow
def test_plain_gan_step_honours_the_spectral_regulariser(tmp_path):
    """spectral_reg_weight changes the plain loop's generator update (not the discriminator's)."""
    import copy

    w = workloads.build_workload("gan", overhead.tiny_overrides("gan"), tmp_path, torch.device("cpu"))
    off, on = copy.deepcopy(w.task), copy.deepcopy(w.task)
    on.hparams.spectral_reg_weight = 0.5
    real = w.batches[0]
    for task in (off, on):
        _plain_step(w, task, real, seed=5)
    assert _same_state(off.model.discriminator, on.model.discriminator)
    assert not _same_state(off.model.generator, on.model.generator)
    fake = on.fake_batch(real.shape[0], real.device)
    assert on.generator_loss(real, fake) > off.generator_loss(real, fake)


def test_bench_json_keeps_its_keys():
    res = _full_result()
    res.headline = report.headline(res)
    js = json.loads(json.dumps(measure.to_json(res)))
    for path, keys in BENCH_JSON_KEYS.items():
        assert list(_at(js, path)) == keys.split(), path
    assert list(js["settings"]) == [f.name for f in dataclasses.fields(settings.Settings)]
    assert set(js["matmul"]["gflops"]) == {"median", "q1", "q3", "min", "max", "n", "samples"}
    assert set(js["overhead"]["segmentation"]["ratio"]) == {"median", "q1", "q3", "min", "max", "n", "samples",
                                                            "median_of_pairs"}
    # a key only some runs have is left out, not written as null
    res.overhead["segmentation"].threads, res.fid.ideas = None, None
    js = measure.to_json(res)
    assert "threads" not in js["overhead"]["segmentation"] and "ideas" not in js["fid"]
    assert "upsamplers" not in measure.to_json(report.BenchResult(mode="quick"))


def test_bench_md_has_every_heading_and_table():
    md = report.render_markdown(_full_result()).splitlines()
    headings = [line for line in md if line.startswith("#")]
    assert headings == [
        "# upsample-zoo bench (full)",
        "## 1. Upsamplers: forward+backward, 8→4 channels, 8x8 input (16x16 output), batch 1, fp32",
        "### 1b. At the U-Net's shapes: one decoder step per stage of `experiment=x`, batch 2, forward+backward ms "
        "(median)",
        "## 2. Framework overhead: Lightning training-step throughput ÷ plain PyTorch loop",
        "## 3. Data pipeline: train-loader throughput ÷ training-step consumption",
        "## 4. FID",
        "## 5. Checkerboard metric: cost as a fraction of the test epoch (target < 1%)",
        "## 6. Scaling: U-Net training epoch (U-Net, batch 2, plain loop)",
        "## 7. Sweep throughput: 4 jobs, joblib (n_jobs=2) vs sequential, wall time of the whole command",
        "## Errors"]
    headers = [md[i - 1] for i, line in enumerate(md) if line.startswith("|---")]
    assert headers == [
        "| upsampler | params | GFLOP fwd+bwd | time ms | ÷ resize_conv | convs | GFLOP/s | ÷ matmul peak | "
        "peak MiB | ÷ resize_conv |",
        "| upsampler | 16→8, 10→20 | total ms | ÷ resize_conv | GFLOP fwd+bwd | peak MiB | ÷ resize_conv |",
        "| task | workload | pairs | plain ms/step | Lightning ms/step | **ratio (direct, wall)** | "
        "framework ms/step (CPU) | ratio (implied) |",
        "| task | default threads | ms/step | 1 thread ms/step | 1 thread ÷ default, speed |",
        "| task | data | workers | batch | loader img/s | cold img/s | training img/s | ratio |",
        "| figure | value (spread) | note |",
        "| variant | img/s | ÷ default |",
        "| task | checkerboard s | test epoch s | fraction | how |",
        "| images | side | epoch s | GFLOP | GFLOP/s | optimizer step share |",
        "| launcher | wall s | jobs ok | torch threads per job | s per job | of which fit | outside the jobs s |"]
    first_cells = [line.split(" | ")[0] for line in md if line.startswith("| ")]  # overhead, threads, data, cb
    assert first_cells.count("| segmentation") == 4 and "| carafe" in first_cells and "| gan" in first_cells
    assert "- overhead/gan: RuntimeError: no" in md and "| gan | error: RuntimeError: no |  |  |  |  |  |  |" in md
    assert any(line.startswith("| second FID run (real stats cached) ÷ first | 0.500 |") for line in md)


def test_unwritable_out_is_one_line_before_any_measurement(tmp_path, capsys):
    """--out under a file: one line and exit 1 before the bench runs (it used to fail with a traceback at the end)."""
    from upsample_zoo.bench import main

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(SystemExit) as e:
        main(["--quick", "--only", "upsamplers", "--out", str(blocker / "bench")])
    assert e.value.code == 1
    out = capsys.readouterr()
    err = [ln for ln in out.err.splitlines() if ln.startswith("upsample-zoo bench: error:")]
    assert len(err) == 1 and f"cannot write under --out {blocker / 'bench'}" in err[0]
    assert "--- upsamplers" not in out.err + out.out  # no section ran


def test_row5_times_the_checkerboard_work_the_segmentation_task_really_does(tmp_path):
    """The timed task wraps the method the test step calls: a renamed hook once left row 5 timing only the
    score's compute (its override of the old name was never called)."""
    from upsample_zoo.bench.checkerboard import timed_test_task
    from upsample_zoo.bench.measure import Accumulator
    from upsample_zoo.models.build import build_model

    cfg = compose_cfg(["model.base_channels=4", "model.depth=2"], tmp_path)
    spent = Accumulator(torch.device("cpu"))
    task = timed_test_task(cfg, build_model(cfg), spent)
    task.checkerboard_window = 32
    x, y = torch.rand(2, 3, 40, 36), torch.zeros(2, 40, 36, dtype=torch.long)
    sizes = torch.tensor([[40, 36], [38, 33]])  # each image's true size inside the padded batch
    with torch.no_grad():
        task.test_step((x, y, sizes), 1)
    assert task.test_checkerboard.count.item() == 2 * cfg.data.num_classes  # both windows, all class maps
    assert spent.seconds > 0
