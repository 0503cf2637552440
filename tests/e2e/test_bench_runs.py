"""The bench end to end: interleaved Lightning and plain fits, and a quick micro run's reports."""

from __future__ import annotations

import json

import torch

from upsample_zoo import bench
from upsample_zoo.bench import overhead, settings, workloads


def test_interleaved_fit_gives_one_pair_per_step(tmp_path):
    w = workloads.build_workload("gan", overhead.tiny_overrides("gan"), tmp_path, torch.device("cpu"))
    plain, light = workloads.interleaved_fit(w, 2, torch.device("cpu"), tmp_path)
    assert len(plain) == len(light) == 2
    assert all(c.wall > 0 and c.thread >= 0 for c in plain)


def test_micro_run_writes_reports_and_ends_with_one_json_line(tmp_path, capsys):
    out = tmp_path / "bench"
    threads = torch.get_num_threads()
    rc = bench.main(["--quick", "--only", "upsamplers", "--upsamplers", "nearest,tconv", "--threads", "1",
                     "--out", str(out)])
    assert rc == 0
    assert torch.get_num_threads() == threads  # the caller's thread count (and float sum order) is kept
    lines = capsys.readouterr().out.strip().splitlines()
    head = json.loads(lines[-1])
    assert set(settings.headline_keys()) <= set(head)
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
