"""``results.json``, one run's record: its typed shape, how a run starts, finishes or fails it, and the one way
it is written (atomically) and read. ``train.py`` writes it; the report, ``resume=true``, ``rescore`` and the
bench read runs through ``RunResult.read``.

Schema 1, in the file's order: what the run is (task, upsampler, data, seed, tags), its numbers (metrics,
cost), how they were made (protocol, the resolved config, versions, git revision), where (run_dir, pid,
resumed_from), then what a run adds as it goes (torch_threads, config_hash, world_size, machine, dataset,
spectrum, declared, error) and what ``upsample-zoo rescore`` adds (previous_metrics, rescored). A field that is None is
left out of the file unless it is one of the first sixteen. Keys this version does not know (a newer
writer's) are kept in ``extra`` and written back as they were.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upsample_zoo.metrics.facts import MAX, MIN, MetricFact

# what the report knows of a run's ``cost`` (flattened as cost/<key>): label, better direction, protocol
COST_FACTS = {
    "cost/params_upsamplers": MetricFact(None, "params (upsamplers)", "parameters inside the upsampling operators"),
    "cost/params_total": MetricFact(None, "params (total)", "parameters of the whole model"),
    "cost/train_img_per_s": MetricFact(MAX, "train img/s", "training images per second, all ranks together"),
    "cost/wall_s": MetricFact(MIN, "wall s", "the run's wall-clock seconds"),
    "cost/fit_s": MetricFact(MIN, "fit s", "seconds inside trainer.fit"),
}

SCHEMA = 1
FILENAME = "results.json"
RUNNING, OK, FAILED = "running", "ok", "failed"


def _later() -> Any:
    return field(default=None, metadata={"omit_none": True})


@dataclass
class RunResult:
    schema: int = SCHEMA
    status: str = RUNNING  # running | ok | failed
    task: str | None = None
    upsampler: str | None = None
    data: str | None = None
    seed: int | None = None
    tags: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    cost: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    git: str | None = None
    run_dir: str | None = None
    pid: int | None = None
    resumed_from: str | None = None
    torch_threads: int | None = _later()
    config_hash: str | None = _later()
    world_size: int | None = _later()
    machine: dict[str, Any] | None = _later()  # cpu, cpus_usable, gpu (upsample_zoo.machine)
    dataset: Any = _later()
    spectrum: dict[str, Any] | None = _later()
    declared: dict[str, Any] | None = _later()  # the task's declaration (tasks/declarations.py)
    error: str | None = _later()  # the one-line reason of a failed run
    previous_metrics: dict[str, float] | None = _later()  # rescore: the metrics before the first rescore
    rescored: dict[str, Any] | None = _later()
    extra: dict[str, Any] = field(default_factory=dict, metadata={"extra": True})

    @property
    def ok(self) -> bool:
        return self.status == OK

    @classmethod
    def started(cls, **fields: Any) -> RunResult:
        """The record of a run that has just started (status running)."""
        return cls(status=RUNNING, **fields)

    def finished(self, **fields: Any) -> RunResult:
        """The record of the run finished: status ok, with its results (metrics, cost, protocol, ...)."""
        return dataclasses.replace(self, status=OK, error=None, **fields)

    def failed(self, error: str) -> RunResult:
        """The record of the run failed: status failed with its one-line error; what it had is kept."""
        return dataclasses.replace(self, status=FAILED, error=error)

    def with_cost(self, **cost: Any) -> RunResult:
        return dataclasses.replace(self, cost={**self.cost, **cost})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("extra") or (f.metadata.get("omit_none") and value is None):
                continue
            out[f.name] = value
        return {**out, **self.extra}

    def write(self, run_dir: str | Path) -> Path:
        """Atomically (a temp file, then a rename): a reader never sees half a file."""
        from upsample_zoo.atomic import atomic_write_json

        path = Path(run_dir) / FILENAME
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResult:
        names = {f.name for f in dataclasses.fields(cls) if not f.metadata.get("extra")}
        return cls(**{k: v for k, v in d.items() if k in names}, extra={k: v for k, v in d.items() if k not in names})

    @classmethod
    def read(cls, path: str | Path) -> RunResult:
        """The record in ``path`` (a results.json, or the run folder that holds one). Raises OSError when it
        cannot be read and ValueError when it is not a results.json object."""
        path = Path(path)
        if path.is_dir():
            path = path / FILENAME
        d = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(d, dict):
            raise ValueError("not a JSON object")
        return cls.from_dict(d)

    @classmethod
    def read_if_any(cls, path: str | Path) -> RunResult | None:
        """``read``, or None when there is no readable record."""
        try:
            return cls.read(path)
        except (OSError, ValueError, TypeError):
            return None
