"""Load runs: every results.json under the given paths becomes one typed ``Run``, failed ones included.

Run folders with a ``.hydra/`` but no ``results.json`` (a killed job) are ``incomplete``; unreadable files are
``unreadable``. Nothing here ever crashes on a bad run: it shows up as a hole in the report. Only results.json
and the files beside it are read (figures, ``.hydra/overrides.yaml``, and the sweep's ``multirun.yaml`` one
level up), so the report can be rebuilt from copied run folders.

A run's *variant* is the command-line overrides, other than upsampler/seed/tags/hydra/paths, that not every
run of the same (task, data) shares: a plain ablation has one empty variant, ``model.base_channels=8,0`` two.

One value per (operator, seed): when several ok runs share a seed (a re-run after a fix, a sweep resumed with
a longer seed list, a copied run folder), ``latest_per_seed`` keeps the latest and marks the others superseded.
results.json has no timestamp (``train.new_results``), so "latest" is the newest results.json mtime, ties
broken by the run folder's path (the later one in sort order wins).
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from upsample_zoo.errors import flat
from upsample_zoo.results import SCHEMA, RunResult

OK = "ok"
log = logging.getLogger("upsample_zoo")
# not variants: the upsampler and its per-stage operators are in the run's name (tconv+last:bilinear)
IGNORED_OVERRIDE_KEYS = {"upsampler", "model.stage_upsamplers", "seed", "tags", "ckpt_path", "resume"}
IGNORED_OVERRIDE_PREFIXES = ("hydra.", "hydra/", "paths.")


@dataclass
class Run:
    run_dir: Path
    status: str
    task: str = "?"
    data: str = "?"
    upsampler: str = "?"
    seed: int | None = None
    error: str | None = None
    tags: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    dataset: Any = None
    overrides: list[str] = field(default_factory=list)
    spectrum: dict[str, Any] | None = None
    declared: dict[str, Any] | None = None  # the task's declaration as the run recorded it (tasks/declarations.py)
    record: RunResult | None = field(default=None, repr=False)  # the whole results.json, as read
    variant: str = ""
    mtime_ns: int = 0  # of results.json: the newest ok run of a seed supersedes the others

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def command(self) -> str:
        return "python train.py " + " ".join(shlex.quote(o) for o in self.overrides)


def read_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None


def _overrides(run_dir: Path) -> list[str]:
    data = read_yaml(run_dir / ".hydra" / "overrides.yaml")
    return [str(o) for o in data] if isinstance(data, list) else []


def _flatten_numbers(d: Any, prefix: str) -> dict[str, float]:
    out: dict[str, float] = {}
    if not isinstance(d, dict):
        return out
    for k, v in d.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            out[f"{prefix}{k}"] = float(v)
    return out


def _run_from_results(path: Path, res: RunResult) -> Run:
    run_dir = path.parent
    metrics = _flatten_numbers(res.metrics, "")
    metrics |= _flatten_numbers(res.cost, "cost/")
    if "test/checkerboard_db" in metrics and "test/checkerboard_db_ref" in metrics:
        metrics["test/checkerboard_db_vs_ref"] = metrics["test/checkerboard_db"] - metrics["test/checkerboard_db_ref"]
    seed, tags = res.seed, res.tags or []
    return Run(
        run_dir=run_dir,
        status=str(res.status or "unknown"),
        task=str(res.task or "?"),
        data=str(res.data or "?"),
        upsampler=str(res.upsampler or "?"),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        error=None if res.error is None else str(res.error),
        tags=[str(t) for t in tags] if isinstance(tags, list) else [str(tags)],
        metrics=metrics,
        protocol=res.protocol if isinstance(res.protocol, dict) else {},
        dataset=res.dataset,
        overrides=_overrides(run_dir),
        spectrum=res.spectrum if isinstance(res.spectrum, dict) else None,
        declared=res.declared if isinstance(res.declared, dict) else None,
        record=res,
    )


def _run_from_hydra(run_dir: Path, status: str, error: str) -> Run:
    """A run known only by its ``.hydra/`` folder (no results.json, or one that cannot be read): its task, data,
    operator and seed from Hydra's record, so that its operator's row shows it as failed, not ``? · ?``."""
    hydra_cfg = read_yaml(run_dir / ".hydra" / "hydra.yaml") or {}
    choices = ((hydra_cfg.get("hydra") or {}).get("runtime") or {}).get("choices") or {} \
        if isinstance(hydra_cfg, dict) else {}
    cfg = read_yaml(run_dir / ".hydra" / "config.yaml")
    cfg = cfg if isinstance(cfg, dict) else {}
    seed, tags = cfg.get("seed"), cfg.get("tags")
    return Run(run_dir=run_dir, status=status, task=str(choices.get("task", "?")),
               data=str(choices.get("data", "?")), upsampler=str(choices.get("upsampler", "?")),
               seed=seed if isinstance(seed, int) else None, error=error,
               tags=[str(t) for t in tags] if isinstance(tags, list) else [], overrides=_overrides(run_dir))


def _incomplete_run(run_dir: Path) -> Run:
    """A run folder that has its .hydra/ but no results.json: killed, or still running."""
    return _run_from_hydra(run_dir, "incomplete", "no results.json (killed or still running)")


def _read_run(f: Path) -> Run:
    try:
        res = RunResult.read(f)
        if res.schema != SCHEMA:
            log.warning("%s: results.json schema %r, this report reads schema %d: its numbers may be misread; "
                        "re-run compare with the upsample-zoo version that wrote it", f, res.schema, SCHEMA)
        run = _run_from_results(f, res)
        run.mtime_ns = f.stat().st_mtime_ns
        return run
    except (OSError, ValueError) as exc:
        what = "unreadable" if isinstance(exc, OSError) else "corrupt"
        return _run_from_hydra(f.parent, "unreadable", f"{f.name} is {what}: {flat(exc)}")


def load_runs(paths: Sequence[str | os.PathLike]) -> list[Run]:
    """Every run under the paths (a results.json file or a folder searched recursively), sorted."""
    runs: dict[Path, Run] = {}
    for p in map(Path, paths):
        if p.is_file():
            files, hydra_dirs = [p], []
        else:
            files = sorted(p.rglob("results.json"))
            hydra_dirs = sorted(p.rglob(".hydra"))
        for f in files:
            if f.parent.resolve() not in runs:
                runs[f.parent.resolve()] = _read_run(f)
        for h in hydra_dirs:
            run_dir = h.parent
            if (h / "overrides.yaml").exists() and run_dir.resolve() not in runs \
                    and not (run_dir / "results.json").exists():
                runs[run_dir.resolve()] = _incomplete_run(run_dir)
    out = list(runs.values())
    _assign_variants(out)
    return sorted(out, key=lambda r: (r.task, r.data, r.variant, zoo_order(r.upsampler),
                                      r.seed if r.seed is not None else -1, str(r.run_dir)))


def latest_per_seed(runs: Sequence[Run]) -> tuple[list[Run], list[tuple[Run, Run]]]:
    """The runs of one operator (one group) with one ok run per seed: the latest (newest results.json, then the
    later path); every run that is not ok, and ok runs without a seed, stay. Returns the kept runs in their
    order, and (superseded, the run that replaced it) pairs in the runs' order."""
    latest: dict[int, Run] = {}
    for r in runs:
        if r.ok and r.seed is not None:
            cur = latest.get(r.seed)
            if cur is None or (r.mtime_ns, str(r.run_dir)) > (cur.mtime_ns, str(cur.run_dir)):
                latest[r.seed] = r
    kept = [r for r in runs if not (r.ok and r.seed is not None) or latest[r.seed] is r]
    superseded = [(r, latest[r.seed]) for r in runs if r.ok and r.seed is not None and latest[r.seed] is not r]
    return kept, superseded


def _override_items(overrides: Sequence[str]) -> list[tuple[str, str]]:
    items = []
    for o in overrides:
        key, sep, value = o.partition("=")
        if not sep:
            continue
        key = key.lstrip("+~")
        if key in IGNORED_OVERRIDE_KEYS or key.startswith(IGNORED_OVERRIDE_PREFIXES) or key == "hydra":
            continue
        items.append((key, value))
    return items


def _assign_variants(runs: list[Run]) -> None:
    """variant = the overrides that not every run of the same (task, data) shares."""
    by_td: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        by_td.setdefault((r.task, r.data), []).append(r)
    for group in by_td.values():
        sets = [set(_override_items(r.overrides)) for r in group]
        common = set.intersection(*sets) if sets else set()
        for r, s in zip(group, sets):
            r.variant = " ".join(f"{k}={v}" for k, v in sorted(s - common))


@functools.lru_cache(maxsize=1)
def zoo_names() -> list[str]:
    """Table order: the zoo's names (configs/upsampler, sorted), then any other operator, sorted."""
    from upsample_zoo.zoo import list_upsamplers

    return list_upsamplers()


def zoo_order(name: str) -> tuple[int, str]:
    zoo = zoo_names()
    return (zoo.index(name), name) if name in zoo else (len(zoo), name)


def sweep_commands(runs: Sequence[Run]) -> list[str]:
    """`python train.py -m ...` for every sweep dir (multirun.yaml) the runs came from."""
    out: list[str] = []
    seen: set[Path] = set()
    for r in runs:
        for d in (r.run_dir.parent, r.run_dir.parent.parent):
            f = d / "multirun.yaml"
            if d in seen or not f.is_file():
                continue
            seen.add(d)
            cfg = read_yaml(f)
            task = (((cfg or {}).get("hydra") or {}).get("overrides") or {}).get("task") if isinstance(cfg, dict) \
                else None
            if isinstance(task, list):
                out.append("python train.py -m " + " ".join(shlex.quote(str(o)) for o in task))
            break
    return out
