"""Synthetic run folders for the comparison report: results.json, .hydra/overrides.yaml, figures."""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path

EVIL_TAG = "<script>alert(1)</script>"  # a hostile tag: the report must show it as text
PNG_1PX = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c49444154"
                        "789c63f8cfc0000003010100c9fe92ef0000000049454e44ae426082")


def write_run(root: Path, name: str, *, upsampler: str, seed: int, metrics: dict | None = None,
              status: str = "ok", task: str = "segmentation", data: str = "voc_synthetic", tags=(),
              overrides: list[str] | None = None, cost: dict | None = None, error: str | None = None,
              figure: str | None = None, extra: dict | None = None) -> Path:
    d = root / name
    (d / ".hydra").mkdir(parents=True, exist_ok=True)
    res = {"schema": 1, "status": status, "error": error, "task": task, "upsampler": upsampler, "data": data,
           "seed": seed, "tags": list(tags), "metrics": metrics or {},
           "cost": cost or {"params_total": 1000, "params_upsamplers": 100, "train_img_per_s": 10.0, "wall_s": 5.0},
           "protocol": {"miou": "confusion matrix over the split"}, "run_dir": str(d), **(extra or {})}
    (d / "results.json").write_text(json.dumps(res))
    ov = overrides if overrides is not None else [f"upsampler={upsampler}", f"seed={seed}"]
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {json.dumps(o)}\n" for o in ov))
    if figure:
        (d / figure).write_bytes(PNG_1PX)
    return d


# a small segmentation sweep: three operators x up to three seeds, nearest's seed 2 failed
SMALL_SWEEP_MIOU = {("bilinear", 0): 0.50, ("bilinear", 1): 0.52, ("bilinear", 2): 0.47,
                    ("tconv", 0): 0.55, ("tconv", 1): 0.58, ("tconv", 2): 0.51,
                    ("nearest", 0): 0.49, ("nearest", 1): 0.53}


def small_sweep(root: Path) -> Path:
    for (up, seed), v in SMALL_SWEEP_MIOU.items():
        write_run(root, f"{up}_s{seed}", upsampler=up, seed=seed, figure="predictions.png",
                  metrics={"test/miou": v, "test/checkerboard_db": 10 * v, "val/miou": v - 0.01})
    write_run(root, "nearest_s2", upsampler="nearest", seed=2, status="failed", error="RuntimeError: boom")
    return root


def golden_tree(root: Path) -> Path:
    """Every feature the report has, from fixed numbers: two tasks, a variant with 2 seeds (untestable), a
    failed, an incomplete and an unreadable run, an older run of a seed that a later one supersedes, an operator
    outside the zoo, per-class IoU, costs, spectra, the real reference row, figures, a sweep command and a
    hostile string."""
    seg = root / "seg"
    seg.mkdir(parents=True)
    (seg / "multirun.yaml").write_text("hydra:\n  overrides:\n    task:\n    - upsampler=nearest,bilinear,tconv\n"
                                       "    - seed=0,1,2\n")
    for (i, up), s in itertools.product(enumerate(["nearest", "bilinear", "tconv", "myup"]), range(3)):
        v = 0.41 + 0.037 * i + 0.013 * ((s * 7 + i * 3) % 5)
        write_run(seg, f"{up}_s{s}", upsampler=up, seed=s, figure="predictions.png" if s == 0 else None,
                  metrics={"test/miou": v, "test/pixel_acc": 0.5 + v / 2, "test/boundary_iou": v - 0.2,
                           "test/iou/aeroplane": v + 0.05, "test/checkerboard_db": 12.0 - 3 * i + 0.7 * s,
                           "test/grid_error_contrast": 0.1 * (4 - i) + 0.01 * s, "val/miou": v - 0.01,
                           "val/loss": 1.5 - v},
                  cost={"params_total": 31000 + 1000 * i, "params_upsamplers": 100 * i, "epochs": 2,
                        "train_img_per_s": 40.0 - 3 * i + s, "wall_s": 60.0 + 5 * i - s, "fit_s": 50.0 + i},
                  extra={"protocol": {"miou": "confusion matrix over the split", "boundary": {"ratio": 0.02}},
                         "dataset": {"name": "voc_synthetic", "n_train": 64}})
    for up, s in itertools.product(["bilinear", "tconv"], range(2)):
        write_run(seg, f"wide_{up}_s{s}", upsampler=up, seed=s, overrides=[f"upsampler={up}", f"seed={s}",
                                                                            "model.base_channels=16"],
                  metrics={"test/miou": 0.55 + 0.02 * s + (0.03 if up == "tconv" else 0.0)})
    # tconv seed 1 run before a fix, with other numbers: older than tconv_s1 (its path sorts after it), so it is
    # listed as superseded and counted nowhere
    old = write_run(seg, "tconv_s1_before_fix", upsampler="tconv", seed=1,
                    metrics={"test/miou": 0.05, "test/pixel_acc": 0.1, "test/boundary_iou": 0.01,
                             "test/checkerboard_db": 40.0, "test/grid_error_contrast": 2.0})
    os.utime(old / "results.json", (1_577_836_800, 1_577_836_800))  # 2020-01-01
    write_run(seg, "nearest_s3", upsampler="nearest", seed=3, status="failed",
              error="RuntimeError: boom <script>alert(1)</script>")
    (seg / "killed" / ".hydra").mkdir(parents=True)
    (seg / "killed" / ".hydra" / "overrides.yaml").write_text("- upsampler=tconv\n- seed=9\n")
    (seg / "killed" / ".hydra" / "config.yaml").write_text("seed: 9\ntags: [killed]\n")
    (seg / "broken").mkdir()
    (seg / "broken" / "results.json").write_text("{not json")

    gan = root / "gan"
    freqs = [i / 32 for i in range(17)]
    for (i, up), s in itertools.product(enumerate(["bilinear", "tconv", "pixel_shuffle", "tconv+last:bilinear"]),
                                        range(3)):
        bump = 1.0 + 15.0 * i
        write_run(gan, f"g{i}_s{s}", upsampler=up, seed=s, task="gan", data="cifar10",
                  figure="samples.png" if s == 1 else None,
                  metrics={"test/fid": 210.0 + 17.5 * i + 6.25 * s + 3.0 * ((s * 5 + i * 2) % 3),
                           "test/spectral_fd_shape": 3.0 + i + 0.5 * s * (1 + i % 2),
                           "test/spectral_fd_artifact": 0.5 + 2.0 * i - 0.125 * s,
                           "test/checkerboard_db": 2.0 + i - 0.25 * s, "test/checkerboard_db_ref": -4.0,
                           "test/fid_real_floor": 38.375 + 0.125 * (s == 2), "test/spectral_fd_shape_real_floor": 0.5,
                           "test/spectral_fd_artifact_real_floor": 0.125,
                           "test/spectral_hf_gap_db": -1.0 * i, "test/checkerboard_grid_max_db": 5.0 + i,
                           "test/blockiness_db": 0.5 * i},
                  extra={"spectrum": {"freqs": freqs, "power": [1 / (f + 0.05) ** 2 for f in freqs[:-1]] + [bump],
                                      "real": [1 / (f + 0.05) ** 2 for f in freqs]},
                         "protocol": {"fid": "1000 fake vs 2000 real", "samples": "precise",
                                      "real_floor_n": 1000, "real_floor_n_requested": 1000}})
    return root


_GENERATED = re.compile(r"generated [^<]*<br>")
_PNG = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


def normalised_report(text: str, root: Path) -> str:
    """A report with its run root, timestamp and chart pixels replaced by placeholders: what the golden
    files hold. Charts are compared by count and position, not bytes (fonts differ between machines)."""
    text = text.replace(str(root.resolve()), "ROOT").replace(str(root), "ROOT")
    text = _GENERATED.sub("generated TIME<br>", text)
    return _PNG.sub("data:image/png;base64,PNG", text)
