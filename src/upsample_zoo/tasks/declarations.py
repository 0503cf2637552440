"""What each task declares to the report and the bench: the headline metrics of its summary table, in order,
with their labels and better directions; the reference row under it (each headline metric's real-image
counterpart, scored by the run's own code); whether its runs record spectra; and how the bench measures it.

Light on purpose (no Lightning, no torch): the report imports it. A task's class carries its declaration
(``ZooTask.declaration``), and ``train.py`` writes it into every results.json (``declared``), so the report
reads a task, a user's included, from its runs alone; ``declared(name)`` covers runs written before that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from upsample_zoo.metrics.directions import direction


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
    labels: dict[str, str] = field(default_factory=dict)  # metric -> its column label ("mIoU")
    directions: dict[str, str] = field(default_factory=dict)  # metric -> max | min, beyond metrics/directions.py
    bench: BenchFacts = field(default_factory=BenchFacts)

    def label(self, metric: str) -> str:
        return self.labels.get(metric, metric)

    def direction(self, metric: str) -> str | None:
        """'max', 'min' or None: the task's own word first, then the shared table."""
        return self.directions.get(metric) or direction(metric)

    def record(self) -> dict[str, Any]:
        """What results.json carries (``declared``): enough for the report to read the task without its code."""
        return {"headline": list(self.headline), "references": dict(self.references),
                "records_spectra": self.records_spectra,
                "labels": {m: self.label(m) for m in self.headline},
                "directions": {m: d for m in self.headline if (d := self.direction(m))}}

    @classmethod
    def from_record(cls, name: str, rec: dict[str, Any]) -> TaskDeclaration:
        return cls(name, tuple(rec.get("headline") or ()), dict(rec.get("references") or {}),
                   bool(rec.get("records_spectra")), dict(rec.get("labels") or {}), dict(rec.get("directions") or {}))


COMMON_LABELS = {"test/checkerboard_db": "checkerboard dB", "test/checkerboard_db_vs_ref": "checkerboard dB − real"}

SEGMENTATION = TaskDeclaration(
    "segmentation",
    ("test/miou", "test/boundary_iou", "test/pixel_acc", "test/checkerboard_db", "test/grid_error_contrast"),
    labels={"test/miou": "mIoU", "test/pixel_acc": "pixel acc", "test/boundary_iou": "boundary IoU",
            "test/grid_error_contrast": "grid error contrast", **COMMON_LABELS},
    bench=BenchFacts(
        tiny_overrides=("model.base_channels=2", "model.depth=2", "data.crop_size=16", "data.batch_size=2"),
        data={"synthetic": BenchData("voc_synthetic (VOC layout, 160x120 JPEG+PNG)",
                                     ("data=voc_synthetic", "data.root={root}", "data.num_train={images}",
                                      "data.num_val={val_images}"), images=(400, 32)),
              "image_folder": BenchData("VOC-layout folder at VOC size (500x375 JPEG+PNG)",
                                        ("data=voc_synthetic", "data.root={root}", "data.num_train={images}",
                                         "data.num_val={val_images}", "data.height=375", "data.width=500"),
                                        images=(48, 12))},
        quick_overrides=("data.batch_size=2",), quick_threads=False, checkerboard="test_epoch",
        checkerboard_data=("synthetic", "image_folder")),
)
# the GAN's real-vs-real floors (tasks/gan.py): the same value in every run of a sweep
GAN = TaskDeclaration(
    "gan",
    ("test/fid", "test/kid", "test/precision", "test/recall", "test/density", "test/coverage",
     "test/spectral_fd_shape", "test/spectral_fd_artifact", "test/checkerboard_db", "test/checkerboard_db_vs_ref",
     "test/spectral_fd"),  # the one-number spectral FD of runs made before it was split in two parts
    references={"test/fid": "test/fid_real_floor", "test/kid": "test/kid_real_floor",
                **{f"test/{k}": f"test/{k}_real_floor" for k in ("precision", "recall", "density", "coverage")},
                "test/spectral_fd_shape": "test/spectral_fd_shape_real_floor",
                "test/spectral_fd_artifact": "test/spectral_fd_artifact_real_floor",
                "test/spectral_fd": "test/spectral_fd_real_floor",
                "test/checkerboard_db": "test/checkerboard_db_ref", "test/checkerboard_db_vs_ref": None},
    records_spectra=True,
    labels={"test/fid": "FID", "test/kid": "KID ×10³", "test/spectral_fd_shape": "spectral FD shape (blur)",
            "test/spectral_fd_artifact": "spectral FD artifact",
            "test/spectral_fd": "spectral FD (one number, older runs)",
            **{f"test/{k}": k for k in ("precision", "recall", "density", "coverage")}, **COMMON_LABELS},
    bench=BenchFacts(
        tiny_overrides=("model.ngf=2", "model.ndf=2", "model.z_dim=8", "data.batch_size=2"),
        data={"synthetic": BenchData("cifar_synthetic (32x32 PNG folder)",
                                     ("data=cifar_synthetic", "data.root={root}", "data.num_train={images}",
                                      "data.num_test=64", "data.max_ref_images=64"), images=(2048, 256)),
              "image_folder": BenchData("image_folder (32x32 JPEG, class subfolders)",
                                        ("data=image_folder", "data.root={root}", "data.max_ref_images=64"),
                                        images=(2048, 256), writes_jpeg_folder=True)},
        checkerboard="composed"),
)
DECLARED = {t.name: t for t in (SEGMENTATION, GAN)}  # the tasks in this package, in the bench's order


def declared(task: str, record: dict[str, Any] | None = None) -> TaskDeclaration:
    """The task's declaration: the one its run recorded (``record``, results.json ``declared``), else this
    package's; an unknown task without a record gets an empty one (the report then shows its first test
    metrics)."""
    if record:
        return TaskDeclaration.from_record(task, record)
    return DECLARED.get(task, TaskDeclaration(task, ()))
