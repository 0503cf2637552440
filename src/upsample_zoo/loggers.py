"""Logger factories for what Lightning's loggers cannot decide from static config alone."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch.loggers import WandbLogger


def wandb_logger(save_dir: str, project: str = "upsample-zoo", offline: bool | None = None,
                 group: str | None = None, job_type: str | None = None, tags: Sequence[str] = (),
                 name: str | None = None, upsampler: str | None = None, data: str | None = None,
                 **kwargs) -> WandbLogger:
    """WandbLogger that works with no account and no network.

    ``offline=None`` means offline unless ``WANDB_API_KEY`` is set; runs of one sweep share a
    ``group`` (the sweep dir's name) so that they are compared side by side, not merged.
    """
    if offline is None:
        offline = not os.environ.get("WANDB_API_KEY")
    if group is None:
        group = _sweep_name()
    if offline:
        os.environ.setdefault("WANDB_MODE", "offline")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    return WandbLogger(save_dir=save_dir, project=project, offline=offline, group=group, job_type=job_type,
                       tags=[str(t) for t in (*tags, upsampler, data) if t], name=name, **kwargs)


def _sweep_name() -> str | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir).name
    return None
