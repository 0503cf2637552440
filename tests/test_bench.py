"""The bench computes what it claims (on tiny sizes): FLOP counts against hand arithmetic, the statistics
helpers, the exponent fit, the BatchNorm folding of the FID path, and the shape of a micro run's output.
No test asserts a timing."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from upsample_zoo import bench
from upsample_zoo.bench import data as bench_data
from upsample_zoo.bench import environment, measure, overhead, report, settings, sweep, upsamplers, workloads
from upsample_zoo.upsamplers import InterpConv, TransposedConv

from .helpers.cli import compose_cfg

# ---------------------------------------------------------------------------------------------- FLOPs

def conv_flops(n, cin, cout, k, hout, wout):
    """2 FLOPs per multiply-add; every output pixel of every output channel reads cin * k * k inputs."""
    return 2 * n * hout * wout * cout * cin * k * k


@pytest.mark.parametrize("stride,padding,side,hout", [(1, 1, 10, 10), (2, 1, 9, 5), (1, 0, 7, 5)])
def test_conv2d_flops_match_hand_arithmetic(stride, padding, side, hout):
    conv = nn.Conv2d(3, 8, 3, stride=stride, padding=padding)
    x = torch.randn(2, 3, side, side)
    assert conv(x).shape[-1] == hout
    fwd = conv_flops(2, 3, 8, 3, hout, hout)
    assert measure.count_flops(lambda: conv(x)) == fwd
    # backward: the weight gradient costs one forward; the input gradient another, only when it is needed
    assert measure.count_flops(lambda: conv(x).sum().backward()) == 2 * fwd
    x.requires_grad_(True)
    assert measure.count_flops(lambda: measure.forward_backward(conv, x)) == 3 * fwd


def test_conv_transpose2d_flops_match_hand_arithmetic():
    # k4 s2 p1 (the zoo's tconv): every input pixel scatters a k x k patch into every output channel
    tconv = nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1)
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    assert tconv(x).shape == (2, 6, 10, 10)
    fwd = 2 * 2 * (5 * 5) * 4 * 6 * (4 * 4)
    assert fwd == 38_400
    # the same count seen from the output: each output pixel gathers (k/s)^2 taps per input channel
    assert fwd == conv_flops(2, 4, 6, 2, 10, 10)
    assert measure.count_flops(lambda: tconv(x)) == fwd
    assert measure.count_flops(lambda: measure.forward_backward(tconv, x)) == 3 * fwd
    # k3 s2 p1 op1 (tconv_k3): 9 taps per input pixel
    k3 = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)
    assert measure.count_flops(lambda: k3(x)) == 2 * 2 * 25 * 4 * 6 * 9


@pytest.mark.slow
def test_upsampler_rows_count_what_the_zoo_does():
    s = dataclasses.replace(settings.QUICK, up_batch=1, up_side=8, up_channels=(8, 4), repeats=1, warmup=0)
    res = measure.to_json(upsamplers.run(s, torch.device("cpu"), peak=100.0, only=["tconv", "nearest"]))
    rows = res["rows"]
    assert set(rows) == {"tconv", "nearest"} and res["input"] == [1, 8, 8, 8]
    tconv = rows["tconv"]
    assert tconv["flops_fwd"] == 2 * 1 * 64 * 8 * 4 * 16 and tconv["flops_fwd_bwd"] == 3 * tconv["flops_fwd"]
    assert tconv["params"] == TransposedConv(8, 4).num_parameters() == 8 * 4 * 16 + 4
    assert tconv["output"] == [1, 4, 16, 16]
    # nearest: the 1x1 projection runs first, at the input resolution (it shrinks channels)
    near = rows["nearest"]
    assert near["flops_fwd"] == 2 * 1 * 64 * 8 * 4 and near["params"] == InterpConv(8, 4).num_parameters()
    for r in rows.values():
        assert r["gflops_per_s"] == pytest.approx(r["flops_fwd_bwd"] / r["time_s"]["median"] / 1e9)
        assert r["peak_ratio"] == pytest.approx(r["gflops_per_s"] / 100.0)


@pytest.mark.slow
def test_guided_upsampler_rows_get_a_guide():
    """FADE and SAPA read a skip-sized guide in row 1 (without one they would be an error row)."""
    from upsample_zoo.zoo import create_upsampler

    s = dataclasses.replace(settings.QUICK, up_batch=1, up_side=8, up_channels=(8, 4), repeats=1, warmup=0)
    rows = measure.to_json(upsamplers.run(s, torch.device("cpu"), peak=100.0, only=["fade", "sapa_i"]))["rows"]
    for name in ("fade", "sapa_i"):
        assert "error" not in rows[name], rows[name]
        assert rows[name]["output"] == [1, 4, 16, 16]
        assert rows[name]["params"] == create_upsampler(name, 8, 4).num_parameters()
        assert rows[name]["flops_fwd_bwd"] > rows[name]["flops_fwd"] > 0


def test_peak_bytes_counts_the_tensors_alive_at_once():
    """y = exp(2x) on a 4 MiB x: the temporary 2x is freed once exp has run (exp saves its output, not its
    input); then y, the incoming gradient, exp's gradient g * y and mul's gradient (x.grad) are alive together:
    4 x 4 MiB. A few bytes of scalars may ride along, nothing more."""
    x = torch.randn(4, 64, 64, 64, requires_grad=True)

    def fwd_bwd() -> None:
        y = (x * 2).exp()
        y.backward(torch.ones_like(y))

    peak = measure.peak_bytes(fwd_bwd, torch.device("cpu"))
    assert 16 * 2**20 <= peak < 16 * 2**20 + 1024


def test_conv_share_tells_convolutions_from_resampling():
    x = torch.randn(2, 16, 32, 32, requires_grad=True)
    conv = nn.Conv2d(16, 16, 3, padding=1)
    assert measure.conv_share(lambda: measure.forward_backward(conv, x)) > 0.8
    up = nn.Upsample(scale_factor=2, mode="bilinear")
    assert measure.conv_share(lambda: measure.forward_backward(up, x)) == 0.0


@pytest.mark.slow
def test_unet_stage_shapes_are_the_real_voc_decoder_steps(tmp_path):
    """seg_voc_cpu: base_channels 8, depth 5 (one stage per Inception tap), crop 160, batch 8 -> decoder widths
    256 -> 128 -> ... -> 8 and input sides 160 / 32, / 16, ..., / 2 (the U-Net's arithmetic, independent of the
    hooks that read them)."""
    shapes = upsamplers.unet_stage_shapes(settings.FULL, tmp_path)
    widths = [8 * 2**i for i in range(6)]
    assert [(st.in_channels, st.out_channels, st.side) for st in shapes] == [
        (widths[i + 1], widths[i], 160 // 2 ** (i + 1)) for i in reversed(range(5))]
    assert {st.batch for st in shapes} == {8}
    assert {st.batch for st in upsamplers.unet_stage_shapes(settings.QUICK, tmp_path)} == {settings.QUICK.unet_batch}


def test_row_1_ratios_and_the_unet_table_read_the_baseline_of_the_same_run():
    s = measure.summarize([0.2, 0.2])
    rows = {"resize_conv": upsamplers.UpsamplerRow(10, [1, 4, 16, 16], 30, 10, measure.summarize([0.1]), 1.0, 0.1,
                                                   peak_mib=8.0),
            "carafe": upsamplers.UpsamplerRow(10, [1, 4, 16, 16], 30, 10, s, 1.0, 0.1, peak_mib=12.0,
                                              conv_share=0.25)}
    stages = [upsamplers.StageShape(2, 16, 8, 10), upsamplers.StageShape(2, 8, 4, 20)]
    unet = upsamplers.UNetStages(["experiment=x"], stages, {
        "resize_conv": upsamplers.StageRow([1.0, 3.0], 4.0, 2.0, 10**9),
        "carafe": upsamplers.StageRow([2.0, 8.0], 10.0, 5.0, 3 * 10**9),
        "sapa": measure.Failed("boom")})
    md = "\n".join(upsamplers.render(upsamplers.Upsamplers([1, 8, 8, 8], [8, 4], rows, unet)))
    assert "| carafe | 10 | 0.0000000300 | 200 (200–200) | 2.00 | 25% | 1.00 | 0.100 | 12.0 | 1.50 |" in md
    assert "| 16→8, 10→20 | 8→4, 20→40 | total ms |" in md
    assert "| carafe | 2.00 | 8.00 | 10.0 | 2.50 | 3.00 | 5.00 | 2.50 |" in md
    assert "| sapa | error: boom |" in md


def test_every_upsampler_config_is_benched():
    names = set(upsamplers.load_upsampler_configs())
    assert {"tconv", "bilinear", "pixel_shuffle"} <= names
    assert names == {p.stem for p in (settings.CONFIG_DIR / "upsampler").glob("*.yaml")} - {"custom"}
    # a user's class by its dotted path, next to the zoo
    assert "torch.nn.Identity" in upsamplers.load_upsampler_configs(extra=["torch.nn.Identity"])


# --------------------------------------------------------------------------------------- statistics

def test_summarize_median_quartiles_range():
    s = measure.summarize([5, 1, 4, 2, 3])
    assert (s["median"], s["q1"], s["q3"], s["min"], s["max"], s["n"]) == (3, 2, 4, 1, 5, 5)
    one = measure.summarize([0.5])
    assert one["median"] == one["q1"] == one["q3"] == one["min"] == one["max"] == 0.5
    with pytest.raises(ValueError):
        measure.summarize([])


def test_ratio_summary_is_ratio_of_medians_with_pair_spread():
    r = measure.ratio_summary([2.0, 4.0, 9.0], [1.0, 2.0, 3.0])
    assert r["median"] == pytest.approx(4.0 / 2.0)
    assert (r["min"], r["max"], r["median_of_pairs"]) == (2.0, 3.0, 2.0)


@pytest.mark.parametrize("k", [1.0, 2.0, 0.5])
def test_fit_exponent_recovers_power_laws(k):
    x = [16, 32, 64, 128]
    assert measure.fit_exponent(x, [3.7 * v**k for v in x]) == pytest.approx(k, abs=1e-12)


def test_fit_exponent_linear_and_quadratic_epoch_times():
    images, sides = [8, 16, 32], [48, 64, 96, 128]
    assert measure.fit_exponent(images, [0.25 * n for n in images]) == pytest.approx(1.0)
    assert measure.fit_exponent(sides, [1e-4 * s * s for s in sides]) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        measure.fit_exponent([4], [1.0])
    with pytest.raises(ValueError):
        measure.fit_exponent([4, 4], [1.0, 2.0])


def test_format_helpers():
    assert measure.fmt(None) == "n/a" and measure.fmt(float("nan")) == "n/a"
    assert measure.fmt(0.12345) == "0.123" and measure.fmt(12345.6) == "12,346"
    assert measure.fmt_spread({"median": 0.5, "min": 0.25, "max": 1.0}, 1e3) == "500 (250–1,000)"


def test_loader_throughput_counts_images_not_time():
    loader = DataLoader(TensorDataset(torch.zeros(20, 3, 4, 4)), batch_size=4)
    r = bench_data.loader_throughput(loader, epochs=2)
    assert r["batches_per_epoch"] == 5 and r["steady_img_s"]["n"] == 2
    assert all(v > 0 for v in r["steady_img_s"]["samples"] + r["cold_img_s"]["samples"])


# ---------------------------------------------------------------------------------------- FID path

def test_fold_batchnorm_keeps_the_function_and_channels_last():
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    from upsample_zoo.metrics.fid import fold_batchnorm, speed_up_inception

    torch.manual_seed(0)
    net = nn.Sequential(BasicConv2d(3, 8, kernel_size=3, padding=1), BasicConv2d(8, 5, kernel_size=1))
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    x = torch.randn(2, 3, 9, 9)
    with pytest.raises(ValueError, match="eval"):
        fold_batchnorm(nn.Sequential(BasicConv2d(3, 4, kernel_size=1)))  # training mode: no running stats to fold
    net.eval()
    ref = net(x)
    speed_up_inception(net)
    assert not [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert net[0].conv.weight.is_contiguous(memory_format=torch.channels_last) and net[0].conv.bias is not None
    assert (net(x) - ref).abs().max().item() < 1e-5


# ------------------------------------------------------------------------------------ Lightning pairs

@pytest.mark.slow
def test_interleaved_fit_gives_one_pair_per_step(tmp_path):
    w = workloads.build_workload("gan", overhead.tiny_overrides("gan"), tmp_path, torch.device("cpu"))
    plain, light = workloads.interleaved_fit(w, 2, torch.device("cpu"), tmp_path)
    assert len(plain) == len(light) == 2
    assert all(c.wall > 0 and c.thread >= 0 for c in plain)


# ----------------------------------------------------------------------------------------- micro run

@pytest.mark.slow
def test_micro_run_writes_reports_and_ends_with_one_json_line(tmp_path, capsys):
    out = tmp_path / "bench"
    threads = torch.get_num_threads()
    rc = bench.main(["--quick", "--only", "upsamplers", "--upsamplers", "nearest,tconv", "--threads", "1",
                     "--out", str(out)])
    assert rc == 0
    assert torch.get_num_threads() == threads  # the caller's thread count (and float sum order) is kept
    lines = capsys.readouterr().out.strip().splitlines()
    head = json.loads(lines[-1])
    assert set(settings.HEADLINE_KEYS) <= set(head)
    assert head["matmul_peak_gflops"] > 0 and head["overhead_gan"] is None and head["mode"] == "quick"
    report = json.loads((out / "bench.json").read_text())
    assert set(report["upsamplers"]["rows"]) == {"nearest", "tconv"}
    unet = report["upsamplers"]["unet"]  # table 1b: the same operators at the real-VOC U-Net's 5 decoder steps
    assert set(unet["rows"]) == {"nearest", "tconv"} and len(unet["stages"]) == 5
    assert all(len(r["time_ms"]) == 5 and r["peak_mib"] > 0 for r in unet["rows"].values())
    # tconv k4 s2: 16 taps per input pixel, forward + input and weight gradients; every stage has
    # c_in * c_out * side^2 = 256 * 128 * 5^2 (the widths halve as the sides double), batch 2 in quick mode
    assert unet["rows"]["tconv"]["flops_fwd_bwd"] == 5 * 3 * 2 * 2 * 16 * 256 * 128 * 5**2
    assert report["device"]["torch_threads"] >= 1 and report["device"]["cpu"]
    md = (out / "bench.md").read_text()
    assert "| tconv |" in md and "matmul peak" in md
    assert sorted(p.name for p in out.iterdir()) == ["bench.json", "bench.md"]  # atomic: no temp files left


def test_unknown_section_is_a_usage_error(tmp_path, capsys):
    assert bench.main(["--only", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown bench sections" in capsys.readouterr().err


def _only(cls, **fields):
    """A result dataclass with just ``fields`` set and its other required fields None: what headline() reads."""
    required = [f.name for f in dataclasses.fields(cls)
                if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    return cls(**{name: None for name in required} | fields)


def test_headline_reads_nested_results():
    from upsample_zoo.bench import fid_speed as fid
    from upsample_zoo.bench.environment import MatmulPeak

    res = report.BenchResult(
        mode="quick", overhead={"segmentation": _only(overhead.Overhead, ratio={"median": 0.98}, ratio_implied=0.99),
                                "gan": _only(overhead.Overhead, ratio={"median": 0.97})},
        fid=_only(fid.Fid, speedup={"median": 1.5}, cache=_only(fid.FidCache, ratio=0.6), features_max_abs_diff=1e-5),
        matmul=_only(MatmulPeak, gflops={"median": 80.0}), sweep=sweep.Skipped("not installed"))
    h = report.headline(res)
    assert (h["overhead_segmentation"], h["overhead_gan"], h["fid_speedup"], h["fid_cache_ratio"],
            h["matmul_peak_gflops"]) == (0.98, 0.97, 1.5, 0.6, 80.0)
    assert h["sweep_speedup"] is None and h["overhead_segmentation_implied"] == 0.99
    assert json.loads(json.dumps(h)) == h
    assert not math.isnan(h["fid_features_max_abs_diff"])


def test_joblib_probe_says_why_when_missing(monkeypatch):
    assert sweep.joblib_available() in (None,) or isinstance(sweep.joblib_available(), str)
    monkeypatch.setattr(sweep, "find_spec", lambda name: None)
    assert "hydra-joblib-launcher" in sweep.joblib_available()


def test_config_dir_is_the_repo_configs():
    config_dir = settings.CONFIG_DIR
    assert (config_dir / "train.yaml").is_file() and config_dir == Path(__file__).parents[1] / "configs"


def test_threads_option():
    assert environment.choose_threads("3") == (3, "--threads")
    assert environment.choose_threads("0")[0] is None and environment.choose_threads("many")[0] is None
    busy, why = environment.choose_threads("auto", load=[99.0, 99.0, 99.0])
    idle, _ = environment.choose_threads("auto", load=[0.0, 0.0, 0.0])
    assert idle == settings.TORCH_DEFAULT_THREADS and busy == 1
    if settings.TORCH_DEFAULT_THREADS > 1:
        assert "free" in why
    cpus = environment.usable_cpus()
    half, _ = environment.choose_threads("auto", load=[cpus - 1.0, 0.0, 0.0])  # one core left
    assert half == 1


# ------------------------------------------------------------------- plain loop = Lightning step

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


# ------------------------------------------------------------------------ bench.json and bench.md shape

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
