"""What each task declares to the report (and to anyone reading its runs): the headline metrics of its summary
table, in order; the reference row under it (each headline metric's real-image counterpart, scored by the run's
own code); and whether its runs record spectra. Light on purpose (no Lightning, no torch): the report imports
it, and so reads no task by name. A new task adds its ``TaskDeclaration`` here, beside its LightningModule."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaskDeclaration:
    name: str  # results.json's ``task`` (the ``task=`` config choice)
    headline: tuple[str, ...]  # the summary table's metrics, in this order
    references: dict[str, str | None] = field(default_factory=dict)  # headline metric -> its real-image metric
    records_spectra: bool = False  # runs carry azimuthal spectra (results.json ``spectrum``)


SEGMENTATION = TaskDeclaration(
    "segmentation",
    ("test/miou", "test/boundary_iou", "test/pixel_acc", "test/checkerboard_db", "test/grid_error_contrast"),
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
)
DECLARED = {t.name: t for t in (SEGMENTATION, GAN)}


def declared(task: str) -> TaskDeclaration:
    """The task's declaration; an undeclared task (a user's) gets an empty one, and the report then shows
    its first test metrics."""
    return DECLARED.get(task, TaskDeclaration(task, ()))
