"""A Lightning callback that tests add to real CLI runs (``+callbacks.probe._target_=tests.ddp_probe.CountScored``):
how many images each test metric received, summed over all DDP ranks, written by rank 0 to
``<run dir>/scored.json``. It counts what reached the metrics, so a rank that scores the whole sample set
(twice in total) or only its share without syncing shows up in the numbers."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch


class CountScored(L.Callback):
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.counts = {"checkerboard_fake": 0, "checkerboard_real": 0, "test_batches": 0}
        metric = pl_module.test_checkerboard
        update = metric.update

        def counting_update(x, real: bool = False, **kwargs):
            self.counts["checkerboard_real" if real else "checkerboard_fake"] += int(x.shape[0])
            return update(x, real=real, **kwargs)

        metric.update = counting_update

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.counts["test_batches"] += 1

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        counts = dict(self.counts)
        fid = pl_module._eval.fid if hasattr(pl_module, "_eval") else None
        if fid is not None:  # after compute() the metric holds this rank's own (unsynced) states again
            counts["fid_fake"] = int(fid.fake_features_num_samples)
            counts["fid_real"] = int(fid.real_features_num_samples)
        totals = {k: int(trainer.strategy.reduce(torch.tensor(float(v)), reduce_op="sum").item())
                  for k, v in sorted(counts.items())}
        if trainer.is_global_zero:
            totals["world_size"] = trainer.world_size
            Path(trainer.default_root_dir, "scored.json").write_text(json.dumps(totals))
