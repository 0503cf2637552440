"""No secrets in results, logs or reports; nothing from a data folder is unpickled."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from upsample_zoo.data.cifar_synthetic import SyntheticImageDataModule

from ..helpers.cli import run_cli

FAKE_KEY = "sk-upsample-zoo-FAKE-0123456789abcdef0123456789abcdef"


def _text_files(root: Path):
    for p in root.rglob("*"):
        if p.is_file() and p.suffix in {".json", ".log", ".csv", ".yaml", ".md", ".html", ".txt", ".wandb"}:
            yield p


def test_api_key_never_written(zoo_root, tmp_path):
    run_dir = tmp_path / "run"
    env = {"WANDB_API_KEY": FAKE_KEY, "WANDB_BASE_URL": "http://127.0.0.1:9"}
    proc = run_cli(["logger=many", "logger.wandb.offline=true", "debug=smoke", f"hydra.run.dir={run_dir}"],
                   zoo_root, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    files = list(_text_files(run_dir))
    assert any(p.name == "results.json" for p in files) and any(p.suffix == ".wandb" for p in files)
    for p in files:
        assert FAKE_KEY.encode() not in p.read_bytes(), p
    assert FAKE_KEY not in proc.stdout + proc.stderr


def test_data_folders_are_never_unpickled(zoo_root, tmp_path, monkeypatch):
    """A pickle bomb disguised as an image is rejected as an image; pickle/torch.load are never called."""
    root = tmp_path / "synth"
    dm = SyntheticImageDataModule(str(root), num_train=16, num_test=4, batch_size=4, num_workers=0,
                                  skip_corrupt=True)

    class Bomb:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled!')",))

    calls = []
    monkeypatch.setattr(pickle, "load", lambda *a, **k: calls.append("pickle.load"))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: calls.append("pickle.loads"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append("torch.load"))
    dm.prepare_data()
    (root / "train" / "zz_evil.png").write_bytes(pickle.dumps(Bomb()))
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch.shape[0] == 4
    assert calls == []
    assert any("zz_evil.png" in s for s in dm.describe()["skipped_corrupt"])
