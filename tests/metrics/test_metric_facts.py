"""Each metric class carries its own facts (direction, label, protocol: metrics/facts.py); they agree with what
the torchmetrics classes declare, a task gathers them into its declaration, and the report shows them."""

from __future__ import annotations

import pytest
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex
from torchmetrics.image.fid import FrechetInceptionDistance

from upsample_zoo.metrics.boundary import BoundaryIoU, GridErrorMap
from upsample_zoo.metrics.checkerboard import CheckerboardScore
from upsample_zoo.metrics.facts import MetricFact, gather, lookup
from upsample_zoo.metrics.fid import CachedFID
from upsample_zoo.metrics.segmentation import SegmentationConfusion
from upsample_zoo.metrics.spectral_fd import SpectralFD
from upsample_zoo.report.comparison import Section
from upsample_zoo.tasks import GANTask, SegmentationTask
from upsample_zoo.tasks.declarations import TaskDeclaration, declared


@pytest.mark.parametrize("key, owner, reference", [
    ("miou", SegmentationConfusion, MulticlassJaccardIndex), ("pixel_acc", SegmentationConfusion, MulticlassAccuracy),
    ("fid", CachedFID, FrechetInceptionDistance), ("checkerboard_db", CheckerboardScore, CheckerboardScore),
    ("spectral_fd_shape", SpectralFD, SpectralFD), ("boundary_iou", BoundaryIoU, BoundaryIoU),
    ("grid_error_contrast", GridErrorMap, GridErrorMap)])
def test_a_metric_class_states_the_direction_torchmetrics_declares(key, owner, reference):
    fact = owner.facts[key]
    assert fact.direction == ("max" if reference.higher_is_better else "min")
    assert fact.label and fact.protocol  # every headline metric says what it is and how it is computed


def test_lookup_rules_families_references_and_unknown_names():
    facts = gather(SegmentationConfusion, CachedFID, CheckerboardScore)
    assert lookup(facts, "test/miou") is lookup(facts, "val/miou") is facts["miou"]
    assert lookup(facts, "test/iou/aeroplane") is facts["iou"]  # a per-class value: its family
    assert lookup(facts, "test/fid_real_floor").direction == "min"  # a real-image reference: its metric's side
    assert lookup(facts, "test/checkerboard_db_ref").direction == "min"
    # counts and diagnostics have no facts, and a name is never guessed from its substrings
    for name in ("test/checkerboard_grid_period", "test/my_fid_like_score", "test/fid_like"):
        assert lookup(facts, name) is None


def test_two_metrics_claiming_one_name_must_agree():
    with pytest.raises(ValueError, match="'miou'"):
        gather(SegmentationConfusion, {"miou": MetricFact("min", "mIoU")})


def test_tasks_gather_the_facts_of_the_metrics_they_log():
    seg, gan = SegmentationTask.declaration, GANTask.declaration
    assert seg.fact("test/boundary_iou") is BoundaryIoU.facts["boundary_iou"]
    assert (seg.label("test/miou"), seg.direction("test/miou")) == ("mIoU", "max")
    assert (gan.label("test/fid"), gan.direction("test/fid")) == ("FID", "min")
    assert gan.direction("test/kid_se") is None and gan.label("test/kid") == "KID ×10³"
    assert seg.direction("train/loss") == gan.direction("train/loss_d") == "min"
    assert seg.fact("test/fid") is None  # a task states only its own metrics


def test_the_record_carries_every_fact_and_older_records_take_the_package_ones():
    rec = SegmentationTask.declaration.record()
    assert rec["facts"]["grid_error_contrast"]["direction"] == "min"
    back = TaskDeclaration.from_record("segmentation", rec)
    assert back.facts == SegmentationTask.declaration.facts
    older = {k: v for k, v in rec.items() if k != "facts"}  # written before the metrics carried their facts
    assert declared("segmentation", older).direction("test/iou/cat") == "max"
    assert declared("segmentation").label("test/pixel_acc") == "pixel acc"  # no record at all


def test_the_report_shows_labels_with_directions_and_costs():
    section = Section("segmentation", "voc", "", [], [], [], SegmentationTask.declaration)
    assert section.label_dir("test/miou") == "mIoU ↑" and section.label_dir("test/checkerboard_db") == \
        "checkerboard dB ↓"
    assert section.label_dir("cost/train_img_per_s") == "train img/s ↑"
    assert section.label_dir("cost/params_total") == "params (total)"  # a count: no better side
    bare = Section("toy", "d", "", [], [], [], None)
    assert bare.label_dir("test/whatever") == "test/whatever" and bare.direction("cost/wall_s") == "min"
