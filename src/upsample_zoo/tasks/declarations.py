"""What each task declares to the report and the bench: the headline metrics of its summary table, in order,
with their labels and better directions; the reference row under it (each headline metric's real-image
counterpart, scored by the run's own code); whether its runs record spectra; and how the bench measures it.

Light on purpose (no Lightning, no torch): the report imports it. A task's class carries its declaration
(``ZooTask.declaration``), with the facts of the metrics it logs (metrics/facts.py), and ``train.py`` writes it
into every results.json (``declared``), so the report reads a task, a user's included, from its runs alone;
``declared(name)`` covers runs written before that, by importing the package's task classes then.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any

from upsample_zoo.metrics.facts import MetricFact, facts_from_record, facts_record, gather, lookup


@dataclass(frozen=True)
class BenchData:
    """One data set the bench's loader row (row 3) measures: its config, with {root} (a folder of the bench's
    own), {images} (``images`` of the full or quick bench) and {val_images} (row 5's test images) filled in."""

    label: str
    overrides: tuple[str, ...]
    images: tuple[int, int] = (400, 32)  # training images in the full and the quick bench
    writes_jpeg_folder: bool = False  # the bench writes the 32x32 JPEG folder the config reads


@dataclass(frozen=True)
class BenchFacts:
    """How the bench measures a task: a copy with next to no compute (the framework's own per-step cost, row
    2), its data sets (row 3), and how its test epoch's checkerboard share is measured (row 5):
    ``test_epoch`` times a real test epoch with the score's own work inside it; ``composed`` adds measured
    parts of a sampled test epoch (the task's ``sample``)."""

    tiny_overrides: tuple[str, ...] = ()
    quick_overrides: tuple[str, ...] = ()  # the workload in the quick bench (the full one: the config defaults)
    quick_threads: bool = True  # the quick bench compares threads on it too (row 2)
    data: dict[str, BenchData] = field(default_factory=dict)  # kind (synthetic | image_folder) -> data set
    checkerboard: str | None = None  # test_epoch | composed | None (not measured)
    checkerboard_data: tuple[str, ...] = ("synthetic",)  # test_epoch: the data sets (kinds) it is measured on


@dataclass(frozen=True)
class TaskDeclaration:
    name: str  # results.json's ``task`` (the ``task=`` config choice)
    headline: tuple[str, ...]  # the summary table's metrics, in this order
    references: dict[str, str | None] = field(default_factory=dict)  # headline metric -> its real-image metric
    records_spectra: bool = False  # runs carry azimuthal spectra (results.json ``spectrum``)
    labels: dict[str, str] = field(default_factory=dict)  # metric -> its column label, over the metrics' own
    directions: dict[str, str] = field(default_factory=dict)  # metric -> max | min, over the metrics' own
    bench: BenchFacts = field(default_factory=BenchFacts)
    facts: dict[str, MetricFact] = field(default_factory=dict)  # what the task's metrics say of themselves

    def with_facts(self, *owners: Any) -> TaskDeclaration:
        """This declaration with the facts of the metrics the task logs (metric classes, or mappings)."""
        return replace(self, facts=gather(*owners))

    def fact(self, metric: str) -> MetricFact | None:
        return lookup(self.facts, metric)

    def label(self, metric: str) -> str:
        fact = self.fact(metric)
        return self.labels.get(metric) or (fact.label if fact else "") or metric

    def direction(self, metric: str) -> str | None:
        """'max', 'min' or None: the task's own word first, then the metric's."""
        fact = self.fact(metric)
        return self.directions.get(metric) or (fact.direction if fact else None)

    def record(self) -> dict[str, Any]:
        """What results.json carries (``declared``): enough for the report to read the task without its code."""
        return {"headline": list(self.headline), "references": dict(self.references),
                "records_spectra": self.records_spectra,
                "labels": {m: self.label(m) for m in self.headline},
                "directions": {m: d for m in self.headline if (d := self.direction(m))},
                "facts": facts_record(self.facts)}

    @classmethod
    def from_record(cls, name: str, rec: dict[str, Any]) -> TaskDeclaration:
        return cls(name, tuple(rec.get("headline") or ()), dict(rec.get("references") or {}),
                   bool(rec.get("records_spectra")), dict(rec.get("labels") or {}), dict(rec.get("directions") or {}),
                   facts=facts_from_record(rec.get("facts")))


def package_declarations() -> dict[str, TaskDeclaration]:
    """The package's tasks, one per ``configs/task/*.yaml`` (a ``task=`` choice), as each task class declares
    itself, the default task (train.yaml's) first; the classes are imported here, on demand (the report needs
    them only for runs that recorded no declaration)."""
    return dict(_package_declarations())


@functools.cache
def _package_declarations() -> tuple[tuple[str, TaskDeclaration], ...]:
    import yaml
    from hydra.utils import get_class

    from upsample_zoo.zoo import config_dir

    defaults = yaml.safe_load((config_dir() / "train.yaml").read_text(encoding="utf-8")).get("defaults") or []
    default = next((d["task"] for d in defaults if isinstance(d, dict) and "task" in d), None)
    out = []
    for path in sorted((config_dir() / "task").glob("*.yaml"), key=lambda p: (p.stem != default, p.stem)):
        target = (yaml.safe_load(path.read_text(encoding="utf-8")).get("task") or {}).get("_target_")
        if target:
            out.append((path.stem, get_class(target).declaration))
    return tuple(out)


def declared(task: str, record: dict[str, Any] | None = None) -> TaskDeclaration:
    """The task's declaration: the one its run recorded (``record``, results.json ``declared``), else this
    package's; a record without facts (written before the metrics carried them) takes the package's facts;
    an unknown task without a record gets an empty one (the report then shows its first test metrics)."""
    own = package_declarations().get(task) if not record or not record.get("facts") else None
    if record:
        decl = TaskDeclaration.from_record(task, record)
        return replace(decl, facts=own.facts) if own and not decl.facts else decl
    return own or TaskDeclaration(task, ())
