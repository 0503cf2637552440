"""Shared fixtures: a throw-away project root, composed configs, and in-process runs of the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from upsample_zoo.train import CONFIG_DIR, run
from upsample_zoo.zoo import list_upsamplers, upsampler_factory

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
ZOO = list_upsamplers()  # configs/upsampler/*.yaml: a name added there is tested everywhere
# guided operators (FADE, SAPA) need a high-resolution guide: the U-Net has one (its skips), the DCGAN none
GUIDED = [n for n in ZOO if getattr(upsampler_factory(n).func, "requires_guide", False)]
UNGUIDED = [n for n in ZOO if n not in GUIDED]


@pytest.fixture(scope="session")
def zoo_root(tmp_path_factory) -> Path:
    """UPSAMPLE_ZOO_ROOT for the whole session: data, caches and logs never touch the repo."""
    root = tmp_path_factory.mktemp("zoo_root")
    os.environ["UPSAMPLE_ZOO_ROOT"] = str(root)
    return root


def compose_cfg(overrides: list[str], output_dir: Path):
    """Compose the real configs as `python train.py <overrides>` would, with HydraConfig set."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[*overrides, f"paths.output_dir={output_dir}"], return_hydra_config=True)
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
