"""Running the real entry points from tests: configs composed as `python train.py` would, one job in this
process, or the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from upsample_zoo.train import CONFIG_DIR, run

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
CIFAR_JPEG = SHARED_DATA / "cifar10-jpeg.tar.gz"


def compose_train(overrides: list[str], hydra_config: bool = True):
    """The `train` config with the overrides, as Hydra composes it for train.py (no HydraConfig set)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=hydra_config)


def compose_cfg(overrides: list[str], output_dir: Path):
    """Compose the real configs as `python train.py <overrides>` would, with HydraConfig set."""
    cfg = compose_train([*overrides, f"paths.output_dir={output_dir}"])
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as @hydra.main hands it to the task function
    return cfg


def run_in_process(overrides: list[str], output_dir: Path) -> dict:
    """One job through upsample_zoo.train.run, in this process; returns its results.json."""
    cfg = compose_cfg(overrides, output_dir)
    try:
        run(cfg)
    except SystemExit:
        pass
    return json.loads((Path(output_dir) / "results.json").read_text())


def run_cli(args: list[str], root: Path, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess."""
    full_env = {**os.environ, "UPSAMPLE_ZOO_ROOT": str(root), **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
