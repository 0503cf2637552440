"""Every bad input: the real CLI exits non-zero with one clear line, no traceback, nothing lost.

Each row of the "Bad input" table (docs/reliability.md) is one case here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from upsample_zoo.data.voc import voc_palette
from upsample_zoo.data.voc_synthetic import build_voc_synthetic

from ..helpers.cli import run_cli

NO_NETWORK = {"http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
              "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": ""}


def assert_one_line(proc, *needles: str, code: int = 1) -> str:
    assert proc.returncode == code, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("upsample-zoo: error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.mark.parametrize("group,options", [
    ("upsampler", ["tconv", "pixel_shuffle_icnr", "bilinear"]),
    ("task", ["segmentation", "gan"]),
    ("data", ["voc", "voc_synthetic", "cifar_synthetic"]),
    ("logger", ["csv", "wandb", "many"]),
])
def test_unknown_group_option_lists_choices(zoo_root, group, options):
    proc = run_cli([f"{group}=nope"], zoo_root)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert f"Could not find '{group}/nope'" in proc.stderr
    for opt in options:
        assert f"\t{opt}\n" in proc.stderr


@pytest.mark.parametrize("args,needles", [
    (["upsampler.scale=3"], ["scale=3 is not supported"]),
    (["upsampler=tconv", "upsampler.scale=0"], ["scale=0 is not supported"]),
    (["upsampler=tconv_k3", "upsampler.scale=4"], ["not scale=4"]),
    (["data.crop_size=-4"], ["data.crop_size=-4", "must be positive"]),
    (["model.base_channels=0"], ["model.base_channels must be a positive integer"]),
    (["model.depth=-1"], ["model.depth must be a positive integer"]),
    (["model.num_classes=5"], ["model.num_classes=5 does not match the data", "set model.num_classes=7"]),
    (["task=gan", "model.ngf=-8"], ["model.ngf must be a positive integer"]),
    (["trainer.max_epochs=-1"], ["trainer.max_epochs=-1 is not a training budget"]),
    (["seed=abc"], ["seed='abc' is not a seed"]),
    (["upsampler._target_=builtins.dict"], ["upsampler._target_=builtins.dict is a dict, not an nn.Module"]),
    (["task=gan", "trainer.max_epochs=0"], ["trainer.max_epochs=0 is not a training budget"]),
])
def test_invalid_hyperparameters(zoo_root, tmp_path, args, needles):
    proc = run_cli([*args, "debug=smoke", f"hydra.run.dir={tmp_path}"], zoo_root)
    line = assert_one_line(proc, *needles)
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["status"] == "failed" and res["error"] in line


def test_voc_missing_with_download_off(zoo_root, tmp_path):
    proc = run_cli(["data=voc", f"data.root={tmp_path / 'none'}", "data.download=false", "debug=smoke",
                    f"hydra.run.dir={tmp_path / 'run'}"], zoo_root)
    assert_one_line(proc, "data.root=", "data.download", "data=voc_synthetic")


def test_image_folder_empty(zoo_root, tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run_cli(["task=gan", "data=image_folder", f"data.root={tmp_path / 'empty'}", "debug=smoke",
                    f"hydra.run.dir={tmp_path / 'run'}"], zoo_root)
    assert_one_line(proc, "data.root=", "data=cifar_synthetic")


@pytest.mark.parametrize("args,needles", [
    (["data=voc"], ["could not download VOC", "data.download=false", "data=voc_synthetic"]),
    (["task=gan", "data=cifar10"], ["data.root=", "data.download", "data=cifar_synthetic"]),
])
def test_download_impossible_offline(zoo_root, tmp_path, args, needles):
    """No network (a proxy on a closed local port): the download fails at once, with one line."""
    proc = run_cli([*args, f"data.root={tmp_path / 'dl'}", "data.download=true", "debug=smoke",
                    f"hydra.run.dir={tmp_path / 'run'}"], zoo_root, env=NO_NETWORK)
    assert_one_line(proc, *needles)


@pytest.fixture(scope="module")
def small_voc(tmp_path_factory) -> Path:
    return build_voc_synthetic(tmp_path_factory.mktemp("voc") / "small", num_train=8, num_val=4, height=48,
                               width=64, seed=9)


def _copy(small_voc: Path, dest: Path) -> Path:
    shutil.copytree(small_voc, dest)
    return dest / "VOCdevkit" / "VOC2012"


VOC_SMOKE = ["data=voc", "data.download=false", "debug=smoke", "data.crop_size=32", "model.depth=2",
             "data.keep_classes=[aeroplane,bicycle,bird,car,cat,person]", "data.num_classes=7"]


def test_corrupt_jpeg_named_then_skipped(zoo_root, tmp_path, small_voc):
    voc = _copy(small_voc, tmp_path / "voc")
    bad = voc / "JPEGImages" / "synth_train_00003.jpg"
    bad.write_bytes(bad.read_bytes()[:40])  # a truncated JPEG
    proc = run_cli([*VOC_SMOKE, f"data.root={tmp_path / 'voc'}", f"hydra.run.dir={tmp_path / 'a'}"], zoo_root)
    assert_one_line(proc, "synth_train_00003.jpg")
    proc = run_cli([*VOC_SMOKE, f"data.root={tmp_path / 'voc'}", "data.skip_corrupt=true",
                    f"hydra.run.dir={tmp_path / 'b'}"], zoo_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((tmp_path / "b" / "results.json").read_text())
    assert res["status"] == "ok" and res["dataset"]["num_train"] == 7
    skipped = res["dataset"]["skipped_corrupt"]
    assert len(skipped) == 1 and "synth_train_00003.jpg" in skipped[0]
    assert "synth_train_00003.jpg" in proc.stdout + proc.stderr  # the warning


def test_corrupt_png_mask_named(zoo_root, tmp_path, small_voc):
    voc = _copy(small_voc, tmp_path / "voc")
    (voc / "SegmentationClass" / "synth_val_00001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    proc = run_cli([*VOC_SMOKE, f"data.root={tmp_path / 'voc'}", f"hydra.run.dir={tmp_path / 'a'}"], zoo_root)
    assert_one_line(proc, "synth_val_00001.png")


def test_mask_values_outside_voc_labels(zoo_root, tmp_path, small_voc):
    voc = _copy(small_voc, tmp_path / "voc")
    path = voc / "SegmentationClass" / "synth_train_00000.png"
    m = np.array(Image.open(path))
    m[0, :3] = [21, 77, 200]
    img = Image.fromarray(m, mode="P")
    img.putpalette(voc_palette())
    img.save(path)
    proc = run_cli([*VOC_SMOKE, f"data.root={tmp_path / 'voc'}", f"hydra.run.dir={tmp_path / 'a'}"], zoo_root)
    assert_one_line(proc, "synth_train_00000.png", "[21, 77, 200]")


def test_fid_weights_file_corrupt(zoo_root, tmp_path):
    junk = tmp_path / "weights.pth"
    junk.write_bytes(b"not a state dict")
    proc = run_cli(["task=gan", "debug=smoke", f"metrics.fid.weights_path={junk}",
                    f"hydra.run.dir={tmp_path / 'run'}"], zoo_root)
    assert_one_line(proc, "metrics.fid.weights_path=")


@pytest.mark.parametrize("args,needle", [
    (["task.optimizer.lr=1e30"], "non-finite training loss"),
    (["task=gan", "task.lr=1e30"], "GAN diverged"),
])
def test_non_finite_loss_stops_and_records(zoo_root, tmp_path, args, needle):
    proc = run_cli([*args, "debug=smoke", "trainer.limit_train_batches=4", f"hydra.run.dir={tmp_path}"], zoo_root)
    assert_one_line(proc, needle)
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["status"] == "failed" and needle in res["error"]


@pytest.mark.parametrize("where", ["run", "sweep"])
def test_output_dir_not_writable(zoo_root, tmp_path, where):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    key = "hydra.run.dir" if where == "run" else "hydra.sweep.dir"
    args = ["debug=smoke", f"{key}={blocker / 'run'}"] + (["-m"] if where == "sweep" else [])
    proc = run_cli(args, zoo_root)
    assert_one_line(proc, "is not writable", str(blocker / "run"), "hydra.run.dir")


@pytest.mark.parametrize("task", ["segmentation", "gan"])
def test_a_scale_the_model_cannot_use_stops_before_any_data(tmp_path, task):
    """Both models are built from 2x stages: upsampler.scale=4 is refused at build time, before any data."""
    root = tmp_path / "root"
    proc = run_cli([f"task={task}", "upsampler.scale=4", "debug=smoke", f"hydra.run.dir={tmp_path / 'run'}"], root)
    assert_one_line(proc, "upsampler.scale=4", "supports only upsampler.scale=2")
    assert not (root / "data").exists()


@pytest.mark.parametrize("args,line", [
    (["encoder=inception_v3", "encoder.weights=/no/such/weights.pt"],
     "encoder=inception_v3: weights file /no/such/weights.pt does not exist"),
    (["task=gan", "encoder=inception_v3"], "encoder=inception_v3: a pretrained encoder is for the U-Net"),
])
def test_encoder_misconfigurations_are_one_line_before_any_data(zoo_root, tmp_path, args, line):
    proc = run_cli([*args, "debug=smoke", f"hydra.run.dir={tmp_path / 'run'}", f"paths.data_dir={tmp_path / 'data'}"],
                   zoo_root, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"upsample-zoo: error: {line}" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "data").exists()  # refused at build time, before any data
