"""Bring your own upsampler: a package made in a temp dir (not in src/), used through the real CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ..helpers.cli import run_cli

MYPKG = '''
import torch.nn.functional as F
from torch import nn

from upsample_zoo.upsamplers import fit_to_size


class MyUp(nn.Module):
    """Bilinear x scale, then a 3x3 conv: keeps the contract without subclassing Upsampler."""

    def __init__(self, in_channels, out_channels, scale=2, width=3):
        super().__init__()
        self.scale = scale
        self.conv = nn.Conv2d(in_channels, out_channels, width, padding=width // 2)

    def forward(self, x, output_size=None):
        y = self.conv(F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False))
        return y if output_size is None else fit_to_size(y, tuple(output_size)[-2:])


class IgnoresOutputSize(MyUp):
    def forward(self, x, output_size=None):
        return super().forward(x)
'''


@pytest.fixture(scope="module")
def user_project(tmp_path_factory) -> Path:
    """A user's package (mypkg) and a config dir of theirs holding upsampler/myup.yaml."""
    root = tmp_path_factory.mktemp("user_project")
    (root / "mypkg").mkdir()
    (root / "mypkg" / "__init__.py").write_text(MYPKG)
    (root / "conf" / "upsampler").mkdir(parents=True)
    (root / "conf" / "upsampler" / "myup.yaml").write_text(
        "_target_: mypkg.MyUp\n_partial_: true\nscale: 2\nwidth: 3\n")
    return root


def _env(user_project: Path) -> dict:
    return {"PYTHONPATH": os.pathsep.join([str(user_project), os.environ.get("PYTHONPATH", "")])}


def test_one_liner_runs_and_is_named_after_the_users_class(user_project, tmp_path):
    out = tmp_path / "run"
    proc = run_cli(["upsampler=custom", "upsampler._target_=mypkg.MyUp", "+upsampler.width=5", "debug=smoke",
                    f"hydra.run.dir={out}"], tmp_path / "root", env=_env(user_project))
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["status"] == "ok" and res["upsampler"] == "mypkg.MyUp"
    assert res["config"]["upsampler"] == {"_target_": "mypkg.MyUp", "_partial_": True, "width": 5}
    # its own parameters are counted as upsampler cost: 4 decoder stages of a 5x5 conv (U-Net base 32, depth 4)
    want = sum(cin * cout * 25 + cout for cin, cout in ((512, 256), (256, 128), (128, 64), (64, 32)))
    assert res["cost"]["params_upsamplers"] == want
    # the default run dir is named after it too
    default = run_cli(["upsampler=custom", "upsampler._target_=mypkg.MyUp", "debug=smoke", "trainer.max_epochs=0"],
                      tmp_path / "root2", env=_env(user_project))
    runs = list((tmp_path / "root2" / "logs" / "segmentation" / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.endswith("_mypkg.MyUp_s0"), (runs, default.stderr[-1000:])


def test_users_config_dir_in_a_sweep_next_to_bilinear(user_project, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_cli(["-m", f"hydra.searchpath=[file://{user_project / 'conf'}]", "upsampler=bilinear,myup",
                    "seed=0,1", "debug=smoke", "hydra/launcher=basic", f"hydra.sweep.dir={sweep}"],
                   tmp_path / "root", env=_env(user_project), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = [json.loads(p.read_text()) for p in sweep.glob("*/results.json")]
    assert sorted((r["upsampler"], r["seed"], r["status"]) for r in results) == [
        ("bilinear", 0, "ok"), ("bilinear", 1, "ok"), ("myup", 0, "ok"), ("myup", 1, "ok")]
    assert sorted(p.name for p in sweep.glob("*_myup_s*")) == ["2_myup_s0", "3_myup_s1"]
    report = (sweep / "comparison.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| myup |")]
    assert rows and rows[0].split("|")[2].strip() == "2"  # the summary row: 2 runs ok
    paired = [r for r in rows if "(p=" in r]  # the table of paired differences against the baseline
    assert "Against the baseline `bilinear`" in report and len(paired) == 1
    assert paired[0].split("|")[2].strip() == "2"  # 2 seed pairs


@pytest.mark.parametrize("target,match", [
    ("mypkg.IgnoresOutputSize", "upsampler mypkg.IgnoresOutputSize breaks the zoo contract: ignores output_size"),
    ("mypkg.NoSuchUp", "mypkg.NoSuchUp"),
])
def test_a_broken_operator_stops_at_build_time_before_any_data(user_project, tmp_path, target, match):
    root = tmp_path / "root"
    proc = run_cli(["upsampler=custom", f"upsampler._target_={target}", "debug=smoke"], root,
                   env=_env(user_project))
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith("upsample-zoo: error:") and match in err[-1], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not (root / "data").exists()  # stopped before the data module was even built
