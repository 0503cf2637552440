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
from upsample_zoo.bench import environment, measure, overhead, report, settings, sweep, upsamplers
from upsample_zoo.upsamplers import InterpConv, TransposedConv

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

# ----------------------------------------------------------------------------------------- micro run

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
    assert (config_dir / "train.yaml").is_file() and config_dir == Path(__file__).parents[2] / "configs"


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
