"""``upsample-zoo rescore <sweep or run dirs>``: the test phase again, with the metric code as it is now.

Metric definitions change and metrics are added; retraining a sweep to read a new one is the wrong price. For
each ok job found under the given folders (every ``results.json``), rescore rebuilds the run from the resolved
config it recorded, loads its ``checkpoints/last.ckpt`` (the weights its own test scored) and runs
``trainer.test`` at the thread count the job had (CPU results are bit-identical only at the same count). Then:

- ``metrics``: the ``test/`` values are replaced by the new ones; everything else (``val/``, ``train/``, costs) is
  the training run's and stays as it was;
- ``previous_metrics``: the metrics as the training run wrote them (kept across repeated rescoring, so an
  interrupted or repeated rescore never loses the originals);
- ``rescored``: the code version, git revision, date and checkpoint of this rescore; ``protocol`` is updated.

Jobs run in parallel like the sweep's joblib launcher (loky, one torch thread each unless the job had more),
each ``results.json`` is written atomically, so an interrupted rescore is simply run again. A job whose
checkpoint is missing, unreadable or from another config is one line, and the others go on. At the end each
folder's report (comparison.{md,csv,html}) is re-rendered.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from upsample_zoo.results import RunResult

log = logging.getLogger(__name__)

CHECKPOINT = Path("checkpoints") / "last.ckpt"


def find_jobs(paths: Sequence[Path]) -> list[Path]:
    """The results.json files of ok jobs under ``paths`` (run dirs, sweep dirs or results.json files), sorted;
    failed and unfinished jobs have no test phase to repeat."""

    found: set[Path] = set()
    for p in paths:
        found |= {p} if p.is_file() else set(p.rglob("results.json"))
    ok = []
    for f in sorted(found):
        try:
            if RunResult.read(f).ok:
                ok.append(f)
        except (OSError, ValueError):
            log.warning("rescore: %s is not readable JSON: skipped", f)
    return ok


def _checkpoint(results: RunResult, results_path: Path) -> Path:
    from upsample_zoo.errors import ConfigError
    from upsample_zoo.sweep_resume import checkpoint_config_hash

    ckpt = results_path.parent / CHECKPOINT
    if not ckpt.is_file():
        raise ConfigError(f"no checkpoint at {ckpt}: rescoring needs the job's last weights (it was removed, or "
                          "the job never finished an epoch); re-run the job instead")
    stored = checkpoint_config_hash(ckpt)
    if stored is None:
        raise ConfigError(f"{ckpt} is not a readable checkpoint: re-run the job instead")
    if stored != results.config_hash:
        raise ConfigError(f"{ckpt} was written under another config (hash {stored}, results.json says "
                          f"{results.config_hash}): re-run the job instead")
    return ckpt


def rescore_job(results_path: Path, revision: str | None) -> str | None:
    """Rescore one job in place; returns None when done, else the one-line reason it was not."""
    import dataclasses

    import lightning as L
    import torch
    from omegaconf import OmegaConf

    from upsample_zoo import __version__
    from upsample_zoo.errors import UpsampleZooError
    from upsample_zoo.sweep_resume import ConfigHashCallback
    from upsample_zoo.train import build, one_line

    try:
        results = RunResult.read(results_path)
        ckpt = _checkpoint(results, results_path)
        cfg = OmegaConf.create(results.config)
        cfg.logger = None  # the training run's logs stay as they are
        cfg.callbacks = {k: v for k, v in (cfg.get("callbacks") or {}).items()
                         if k not in ("model_checkpoint", "preemption")}  # test writes no checkpoint
        torch.set_num_threads(int(results.torch_threads or torch.get_num_threads()))
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        parts = build(cfg, extra_callbacks=(ConfigHashCallback(results.config_hash),))
        trainer, task, dm = parts["trainer"], parts["task"], parts["datamodule"]
        trainer.test(task, datamodule=dm, ckpt_path=str(ckpt), verbose=False, weights_only=True)
        new = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    except (UpsampleZooError, OSError, ValueError, KeyError, RuntimeError) as exc:
        return one_line(exc)
    dataclasses.replace(
        results,
        previous_metrics=results.previous_metrics or dict(results.metrics),  # the metrics before the first rescore
        metrics={**{k: v for k, v in results.metrics.items() if not k.startswith("test/")}, **new},
        protocol=task.protocol() if hasattr(task, "protocol") else results.protocol,
        rescored={"version": __version__, "git": revision, "checkpoint": str(ckpt),
                  "torch_threads": torch.get_num_threads(),
                  "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
    ).write(results_path.parent)
    return None


def rescore(paths: Sequence[str | Path], jobs: int = -1, report: bool = True) -> dict[Path, str | None]:
    """Rescore every job under ``paths`` (``jobs`` at a time, -1: one per core); re-render each folder's report.
    Returns {results.json: None if rescored, else the one-line reason}."""
    from joblib import Parallel, delayed
    from tqdm import tqdm

    from upsample_zoo.train import git_revision

    roots = [Path(p) for p in paths]
    missing = [str(p) for p in roots if not p.exists()]
    if missing:
        raise FileNotFoundError(f"no such file or folder: {', '.join(missing)}")
    found = find_jobs(roots)
    if not found:
        raise FileNotFoundError(f"no ok job's results.json under {', '.join(map(str, roots))}: give sweep or run "
                                "folders")
    revision = git_revision()
    calls = (delayed(rescore_job)(p, revision) for p in found)
    if jobs == 1:
        outcomes = (rescore_job(p, revision) for p in found)
    else:
        outcomes = Parallel(n_jobs=jobs, backend="loky", return_as="generator")(calls)
    done: dict[Path, str | None] = {}
    for path, why in tqdm(zip(found, outcomes), total=len(found), desc="rescore", unit="job", file=sys.stderr):
        done[path] = why
        if why is not None:
            tqdm.write(f"upsample-zoo rescore: {path.parent}: {why}", file=sys.stderr)
    if report:
        from upsample_zoo.report import compare

        for root in (r for r in roots if (r / "comparison.md").is_file() or (r / "multirun.yaml").is_file()):
            compare([root], out=root)  # a sweep's report, where the sweep wrote it
    return done


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("paths", nargs="+", metavar="DIR", help="sweep or run folders (every results.json below)")
    parser.add_argument("--jobs", type=int, default=-1, help="jobs at a time (default -1: one per core, as the "
                        "sweeps' joblib launcher)")
    parser.add_argument("--no-report", action="store_true", help="do not re-render comparison.* afterwards")
    return parser


def run_from_args(args: argparse.Namespace) -> int:
    try:
        done = rescore(args.paths, jobs=args.jobs, report=not args.no_report)
    except FileNotFoundError as exc:
        print(f"upsample-zoo rescore: error: {exc}", file=sys.stderr)
        return 2
    failed = sum(why is not None for why in done.values())
    print(f"upsample-zoo rescore: {len(done) - failed} of {len(done)} jobs rescored"
          + (f", {failed} not (one line each above)" if failed else ""))
    return 1 if failed else 0
