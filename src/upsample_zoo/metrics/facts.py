"""What a metric says about itself: which way is better, its column label and its protocol in one line.

Each metric class carries its own ``facts`` (``CheckerboardScore.facts``, ``CachedFID.facts``, ...), keyed by
the names it logs without their split prefix (``test/``, ``val/``, ``train/``). A task gathers the facts of the
metrics it logs into its declaration (tasks/declarations.py), and train.py writes them into every results.json
(``declared.facts``), which is all the report reads. Light on purpose (no torch): the report imports it.

Lookup rules, one place: a per-class metric (``test/iou/aeroplane``) takes its family's facts (``iou``); a
real-image reference (``fid_real_floor``, ``checkerboard_db_ref``) takes its metric's direction. A name with
no facts has no better direction (counts, periods, diagnostics), and the report shows no arrow for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

MAX, MIN = "max", "min"
SPLITS = ("test", "val", "train")
REFERENCE_SUFFIXES = ("_real_floor", "_ref")  # a metric scored on real images: the metric's own direction


@dataclass(frozen=True)
class MetricFact:
    direction: str | None  # max | min | None (no better or worse: an uncertainty, a count)
    label: str = ""  # the report's column label; "" = the metric's name
    protocol: str = ""  # how it is computed, in one line (the run's own parameters: results.json ``protocol``)

    def record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> MetricFact:
        return cls(rec.get("direction"), str(rec.get("label") or ""), str(rec.get("protocol") or ""))


def metric_key(metric: str) -> str:
    """'test/miou' -> 'miou'; 'cost/wall_s' stays (costs keep their prefix)."""
    split, _, rest = metric.partition("/")
    return rest if split in SPLITS and rest else metric


def lookup(facts: Mapping[str, MetricFact], metric: str) -> MetricFact | None:
    """The facts of a logged name ('test/iou/aeroplane', 'test/fid_real_floor', ...) by the rules above."""
    key = metric_key(metric)
    if key in facts:
        return facts[key]
    if key != metric and "/" in key:  # a per-class value: its family
        return facts.get(key.partition("/")[0])
    for suffix in REFERENCE_SUFFIXES:
        if key.endswith(suffix) and (own := facts.get(key.removesuffix(suffix))):
            return MetricFact(own.direction, "", own.protocol)
    return None


def gather(*owners: Any) -> dict[str, MetricFact]:
    """The facts of several metric classes (or plain mappings), merged; a name claimed twice must agree."""
    out: dict[str, MetricFact] = {}
    for owner in owners:
        for key, fact in (owner if isinstance(owner, Mapping) else owner.facts).items():
            if key in out and out[key].direction != fact.direction:
                raise ValueError(f"metric {key!r}: {owner} says {fact.direction}, another says {out[key].direction}")
            out.setdefault(key, fact)
    return out


def facts_record(facts: Mapping[str, MetricFact]) -> dict[str, dict[str, Any]]:
    return {k: f.record() for k, f in facts.items()}


def facts_from_record(rec: Mapping[str, Any] | None) -> dict[str, MetricFact]:
    return {k: MetricFact.from_record(v) for k, v in (rec or {}).items() if isinstance(v, Mapping)}

