"""Hydra main: build the run from the config, fit, test, write results.json (atomically).

``python train.py upsampler=tconv`` and ``python train.py -m experiment=seg_ablation`` both land here.
A run that fails still writes ``results.json`` with ``status: "failed"`` and a one-line error, so a
sweep's report shows the hole; a single run then exits non-zero with that one line on stderr.
``resume=true`` skips or continues jobs that an earlier attempt finished or checkpointed (sweep_resume.py);
under DDP only global rank 0 writes, and the other ranks run this job, not the sweep (distributed.py).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from upsample_zoo import __version__, errors
from upsample_zoo.atomic import atomic_write_text
from upsample_zoo.data.extras import CachesEncoderFeatures, Describes
from upsample_zoo.errors import ConfigError
from upsample_zoo.results import RunResult
from upsample_zoo.zoo import config_dir

log = logging.getLogger("upsample_zoo")

CONFIG_DIR = str(config_dir())  # through the package (upsample_zoo.configs), in a wheel or a checkout


def _choices() -> dict[str, str]:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return {k: v for k, v in HydraConfig.get().runtime.choices.items() if isinstance(v, str)}
    return {}


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _sweep_dir() -> str | None:
    """The sweep's folder in a multirun (where ``resume=true`` continues it), else None."""
    from hydra.core.hydra_config import HydraConfig

    return str(HydraConfig.get().sweep.dir) if _is_multirun() else None


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    import lightning
    import torch
    import torchmetrics
    import torchvision

    return {"upsample_zoo": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "lightning": lightning.__version__, "torchmetrics": torchmetrics.__version__,
            "python": sys.version.split()[0]}


def one_line(exc: BaseException, sweep_dir: str | None = None) -> str:
    """The user-facing line: our errors carry a complete message; others get their type prefixed. A stop
    (SIGTERM, Ctrl-C) says how to resume: the run with ``ckpt_path=last``, or, in a sweep (``sweep_dir``),
    the whole sweep with ``resume=true``."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    how = (f"the sweep stops; resume it with the same command and resume=true hydra.sweep.dir={sweep_dir}"
           if sweep_dir else "resume with the same hydra.run.dir and ckpt_path=last")
    if isinstance(exc, SIGTERMException):
        return f"preempted (SIGTERM): a checkpoint was saved; {how}"
    if isinstance(exc, KeyboardInterrupt) or (isinstance(exc, SystemExit) and exc.__context__ is not None
                                              and isinstance(exc.__context__, KeyboardInterrupt)):
        return f"interrupted (Ctrl-C); {how}"
    return errors.one_line(exc)


def exit_code_for(exc: BaseException) -> int:
    """Shell conventions: 128 + signal for SIGTERM (143) and SIGINT (130), 1 otherwise."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    if isinstance(exc, SIGTERMException):
        return 143
    if isinstance(exc, KeyboardInterrupt) or isinstance(exc.__context__, KeyboardInterrupt):
        return 130
    return 1


def _upsampler_name(cfg: DictConfig, choices: dict[str, str]) -> str:
    """The run's operator name (configs/train.yaml ``upsampler_name``), also for a config composed without it."""
    try:
        return str(cfg.upsampler_name)
    except Exception:  # noqa: BLE001 - no hydra runtime (a bare compose): the plain choice, or the class path
        return choices.get("upsampler", str(cfg.upsampler.get("_target_")))


def check_model_upsamplers(model, name: str) -> None:
    """The zoo contract (upsample_zoo.check_upsampler) on every upsampler the model built, at its channels."""
    from upsample_zoo.upsamplers import upsampler_stages
    from upsample_zoo.zoo import check_upsampler

    for up, cin, cout in upsampler_stages(model):
        check_upsampler(up, in_channels=cin, out_channels=cout, name=name)


def check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed={seed!r} is not a seed: set an integer in [0, 2**32), such as seed=0")


def check_budget(trainer_cfg: Any) -> None:
    """The training budget, before anything is built: Lightning reads max_epochs=-1 as "forever" (and the
    cosine schedule's T_max follows it), and 0 trains nothing yet reports metrics."""
    value = trainer_cfg.get("max_epochs")
    if value is None and trainer_cfg.get("max_steps", -1) not in (None, -1):
        return  # a step budget instead
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"trainer.max_epochs={value} is not a training budget: set a positive number of epochs, "
                          "such as trainer.max_epochs=8")


def build(cfg: DictConfig, extra_callbacks: tuple = ()) -> dict[str, Any]:
    """Instantiate model (with its upsampler, whose contract is checked before any data is loaded), datamodule,
    task (whose evaluation tools, e.g. the FID weights, are resolved now, not after training), callbacks
    (+ ``extra_callbacks``), loggers and trainer."""
    import lightning as L
    from hydra.utils import instantiate

    from upsample_zoo.models.build import build_model

    check_budget(cfg.trainer)
    model = build_model(cfg)
    check_model_upsamplers(model, _upsampler_name(cfg, _choices()))
    datamodule = instantiate(cfg.data)
    if getattr(getattr(model, "encoder", None), "cache", False) and isinstance(datamodule, CachesEncoderFeatures):
        datamodule.use_encoder_cache(model.encoder, cfg.paths.cache_dir)  # a frozen encoder runs once per image
    data_classes = getattr(datamodule, "num_classes", None)
    model_classes = getattr(model, "num_classes", None)
    if data_classes is not None and model_classes is not None and data_classes != model_classes:
        raise ConfigError(
            f"model.num_classes={model_classes} does not match the data ({data_classes} classes: "
            f"{', '.join(datamodule.class_names)}); set model.num_classes={data_classes}"
        )
    # plain containers (not ListConfig) so checkpoints load with torch.load(weights_only=True)
    task = instantiate(cfg.task, model=model, _convert_="all")
    if hasattr(task, "prepare_evaluation"):
        task.prepare_evaluation(datamodule)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    callbacks += list(extra_callbacks)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for lg in loggers:  # the whole resolved run config, not just the LightningModule's hparams
        lg.log_hyperparams(resolved)
    return {"datamodule": datamodule, "model": model, "task": task, "trainer": trainer}


def fit_and_test(cfg: DictConfig, parts: dict[str, Any], ckpt_path: str | None = None) -> dict[str, Any]:
    """Fit (from ``ckpt_path`` if given, else ``cfg.ckpt_path``), then test the final weights."""
    from upsample_zoo.models.encoders import parameter_counts
    from upsample_zoo.upsamplers import upsampler_parameters

    trainer, task, dm, model = parts["trainer"], parts["task"], parts["datamodule"], parts["model"]
    t0 = time.perf_counter()
    trainer.fit(task, datamodule=dm, ckpt_path=ckpt_path or cfg.get("ckpt_path"), weights_only=True)
    fit_s = time.perf_counter() - t0
    # trainer.test() replaces callback_metrics: keep the last validation epoch's values first
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    trainer.test(task, datamodule=dm, verbose=False)
    metrics |= {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    throughput = next((c for c in trainer.callbacks if hasattr(c, "images_per_second")), None)
    ips = throughput.images_per_second if throughput else None
    cost = {
        "params_total": sum(p.numel() for p in model.parameters()),
        "params_upsamplers": upsampler_parameters(model),
        "params": parameter_counts(model),  # encoder / decoder / upsamplers, trainable and frozen
        # DDP ranks step in lockstep (the gradient all-reduce), each on its own batches: all ranks together
        "train_img_per_s": round(ips * trainer.world_size, 3) if ips is not None else None,
        "fit_s": round(fit_s, 3),
        "epochs": trainer.current_epoch,
    }
    extra = {
        "protocol": task.protocol() if hasattr(task, "protocol") else {},
        "dataset": dm.describe() if isinstance(dm, Describes) else {},
        "spectrum": task.spectrum() if hasattr(task, "spectrum") else None,
        "declared": task.declaration.record() if hasattr(task, "declaration") else None,  # tasks/declarations.py
    }
    return {"metrics": metrics, "cost": cost, **extra}


def _finish_wandb() -> None:
    """Close the wandb run of this job, so that multirun jobs never merge into one run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def print_summary(record: RunResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{record.task} · {record.upsampler} · {record.data} · seed {record.seed}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in record.metrics.items():
        if k.startswith("test/") and k.count("/") == 1:
            table.add_row(k, f"{v:.4f}")
    for k in ("params_total", "params_upsamplers", "train_img_per_s", "wall_s"):
        v = record.cost.get(k)
        if v is not None:
            table.add_row(k, f"{v:,.1f}" if isinstance(v, float) else f"{v:,}")
    Console(stderr=False).print(table)


def resume_plan(cfg: DictConfig, out_dir: Path):
    """``resume=true``: what to do with this job (sweep_resume.plan_job); None when resume is off, or when the
    config does not even resolve (the run then fails the ordinary way and records why)."""
    if not cfg.get("resume"):
        return None
    from upsample_zoo.sweep_resume import plan_job

    try:
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001
        return None
    return plan_job(resolved, out_dir)


def new_results(cfg: DictConfig, out_dir: Path, ckpt_path: str | None) -> RunResult:
    """The record of a job that has just started: what it is, where, and with which code."""
    choices = _choices()
    return RunResult.started(
        task=choices.get("task", cfg.get("task_name")), upsampler=_upsampler_name(cfg, choices),
        data=choices.get("data", str(cfg.data.get("_target_"))), seed=cfg.get("seed"),
        tags=list(cfg.get("tags") or []), config=OmegaConf.to_container(cfg, resolve=False), versions=versions(),
        git=git_revision(), run_dir=str(out_dir), pid=os.getpid(), resumed_from=ckpt_path)


def resolved(cfg: DictConfig, record: RunResult) -> RunResult:
    """The record with the resolved config, its hash, the machine and the thread count (CPU results are
    bit-identical only at the same thread count: it sets the float summation order)."""
    import torch

    from upsample_zoo.machine import describe_machine
    from upsample_zoo.sweep_resume import config_hash

    config = OmegaConf.to_container(cfg, resolve=True)
    return dataclasses.replace(record, torch_threads=torch.get_num_threads(), config=config,
                               config_hash=config_hash(config), machine=describe_machine())


def train_and_test(cfg: DictConfig, record: RunResult, ckpt_path: str | None) -> RunResult:
    """Build, fit and test: the finished record (metrics, cost, protocol, ...)."""
    import lightning as L

    from upsample_zoo.sweep_resume import ConfigHashCallback

    # under DDP the tasks' test/ and val/ values (val/loss aside) come from torchmetrics states, which
    # compute() sums over ranks: Lightning's advice to add sync_dist=True does not apply to them
    warnings.filterwarnings("ignore", message=r"It is recommended to use `self\.log\('(test/|val/(?!loss))")
    warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")  # a frozen encoder, by design
    check_seed(cfg.get("seed"))
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    parts = build(cfg, extra_callbacks=(ConfigHashCallback(record.config_hash),))
    return record.finished(world_size=parts["trainer"].world_size, **fit_and_test(cfg, parts, ckpt_path))


def run(cfg: DictConfig) -> float | None:
    """One job. Returns the optimized metric for the sweeper (None when the run failed)."""
    from upsample_zoo.distributed import global_rank, job_scope, quote
    from upsample_zoo.sweep_resume import set_aside_previous

    out_dir = Path(cfg.paths.output_dir)
    plan = resume_plan(cfg, out_dir)
    if plan is not None and plan.action == "skip":  # nothing in out_dir is written: results.json stays as it is
        log.info("resume: skipped %s: %s", out_dir, plan.reason)  # to the console and the job's train.log
        value = plan.previous.metrics.get(cfg.get("optimized_metric"))
        return float(value) if isinstance(value, (int, float)) else None
    ckpt_path = cfg.get("ckpt_path") or (plan.ckpt_path if plan is not None else None)
    if plan is not None and global_rank() == 0:
        set_aside_previous(out_dir, plan)
        log.info("resume: %s: %s; %s", out_dir, plan.reason,
                 f"continuing from {ckpt_path}" if plan.action == "resume" else "running it from the start")
    record = new_results(cfg, out_dir, ckpt_path)
    t0 = time.perf_counter()
    exit_code = 0
    # DDP: the other ranks run this same job, continuing from the checkpoint that rank 0 chose
    child_overrides = ["resume=false", f"ckpt_path={quote(str(ckpt_path)) if ckpt_path else 'null'}"]
    with job_scope(child_overrides) as job:
        try:
            record = resolved(cfg, record)
            record = train_and_test(cfg, record, ckpt_path)
        except BaseException as exc:  # the whole point: record the failure (even a preemption), never lose it
            job.failed = True
            job.stop_observing()  # the other ranks fail too, or hang: either way this one records it
            exit_code = exit_code_for(exc)
            record = record.failed(one_line(exc, _sweep_dir() if exit_code != 1 else None))
            if global_rank() == 0:
                atomic_write_text(out_dir / "error.log", traceback.format_exc())
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                traceback.print_exc()
        finally:
            _finish_wandb()
    record = record.with_cost(wall_s=round(time.perf_counter() - t0, 3))
    if global_rank() != 0:  # another DDP rank: rank 0 writes results.json and reports
        if not record.ok:
            raise SystemExit(exit_code)
        return None
    record.write(out_dir)
    if not record.ok:
        print(f"upsample-zoo: error: {record.error}", file=sys.stderr, flush=True)
        if not _is_multirun() or exit_code != 1:  # a stop (Ctrl-C, SIGTERM) stops the whole sweep
            raise SystemExit(exit_code)
        return None
    print_summary(record)
    value = record.metrics.get(cfg.get("optimized_metric"))
    return float(value) if value is not None else None


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run(cfg)


if __name__ == "__main__":
    main()
