"""Hydra main: build the run from the config, fit, test, write results.json (atomically).

``python train.py upsampler=tconv`` and ``python train.py -m experiment=seg_ablation`` both land here.
A run that fails still writes ``results.json`` with ``status: "failed"`` and a one-line error, so a
sweep's report shows the hole; a single run then exits non-zero with that one line on stderr.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from upsample_zoo import __version__
from upsample_zoo.atomic import atomic_write_json, atomic_write_text
from upsample_zoo.errors import ConfigError, UpsampleZooError

log = logging.getLogger("upsample_zoo")

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")
RESULTS_SCHEMA = 1


def _choices() -> dict[str, str]:
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return {k: v for k, v in HydraConfig.get().runtime.choices.items() if isinstance(v, str)}
    return {}


def _is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


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


def one_line(exc: BaseException) -> str:
    """The user-facing line: our errors carry a complete message; others get their type prefixed."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    if isinstance(exc, SIGTERMException):
        return ("preempted (SIGTERM): a checkpoint was saved; resume with the same hydra.run.dir and "
                "ckpt_path=last")
    if isinstance(exc, KeyboardInterrupt) or (isinstance(exc, SystemExit) and exc.__context__ is not None
                                              and isinstance(exc.__context__, KeyboardInterrupt)):
        return "interrupted (Ctrl-C); resume with the same hydra.run.dir and ckpt_path=last"
    cause: BaseException | None = exc
    while cause is not None:  # hydra wraps constructor errors in InstantiationException: report ours
        if isinstance(cause, UpsampleZooError):
            return " ".join(str(cause).split())
        cause = cause.__cause__
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {msg}"


def exit_code_for(exc: BaseException) -> int:
    """Shell conventions: 128 + signal for SIGTERM (143) and SIGINT (130), 1 otherwise."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    if isinstance(exc, SIGTERMException):
        return 143
    if isinstance(exc, KeyboardInterrupt) or isinstance(exc.__context__, KeyboardInterrupt):
        return 130
    return 1


def build_model(cfg: DictConfig):
    """The model with its upsampler: ``instantiate(cfg.model, upsampler=instantiate(cfg.upsampler))``,
    plus the opt-in ``model.compile`` (in place, so tasks still see model.generator etc.)."""
    from hydra.utils import instantiate

    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    compile_model = bool(model_cfg.pop("compile", False))
    model = instantiate(model_cfg, upsampler=instantiate(cfg.upsampler))
    if compile_model:
        # tasks call the GAN's generator/discriminator directly, never DCGAN.forward: compile those
        parts = [getattr(model, n) for n in ("generator", "discriminator") if hasattr(model, n)]
        for m in parts or [model]:
            m.compile()
    return model


def build(cfg: DictConfig) -> dict[str, Any]:
    """Instantiate datamodule, model (with its upsampler), task, callbacks, loggers and trainer."""
    import lightning as L
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    model = build_model(cfg)
    data_classes = getattr(datamodule, "num_classes", None)
    model_classes = getattr(model, "num_classes", None)
    if data_classes is not None and model_classes is not None and data_classes != model_classes:
        raise ConfigError(
            f"model.num_classes={model_classes} does not match the data ({data_classes} classes: "
            f"{', '.join(datamodule.class_names)}); set model.num_classes={data_classes}"
        )
    # plain containers (not ListConfig) so checkpoints load with torch.load(weights_only=True)
    task = instantiate(cfg.task, model=model, _convert_="all")
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    for lg in loggers:  # the whole resolved run config, not just the LightningModule's hparams
        lg.log_hyperparams(resolved)
    return {"datamodule": datamodule, "model": model, "task": task, "trainer": trainer}


def fit_and_test(cfg: DictConfig, parts: dict[str, Any]) -> dict[str, Any]:
    from upsample_zoo.upsamplers import upsampler_parameters

    trainer, task, dm, model = parts["trainer"], parts["task"], parts["datamodule"], parts["model"]
    t0 = time.perf_counter()
    trainer.fit(task, datamodule=dm, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    fit_s = time.perf_counter() - t0
    # trainer.test() replaces callback_metrics: keep the last validation epoch's values first
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
    trainer.test(task, datamodule=dm, verbose=False)
    metrics |= {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    throughput = next((c for c in trainer.callbacks if hasattr(c, "images_per_second")), None)
    cost = {
        "params_total": sum(p.numel() for p in model.parameters()),
        "params_upsamplers": upsampler_parameters(model),
        "train_img_per_s": throughput.images_per_second if throughput else None,
        "fit_s": round(fit_s, 3),
        "epochs": trainer.current_epoch,
    }
    extra = {
        "protocol": task.protocol() if hasattr(task, "protocol") else {},
        "dataset": dm.describe() if hasattr(dm, "describe") else {},
        "spectrum": task.spectrum() if hasattr(task, "spectrum") else None,
    }
    return {"metrics": metrics, "cost": cost, **extra}


def _finish_wandb() -> None:
    """Close the wandb run of this job, so that multirun jobs never merge into one run."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


def print_summary(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{results['task']} · {results['upsampler']} · {results['data']} · seed {results['seed']}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in results["metrics"].items():
        if k.startswith("test/") and k.count("/") == 1:
            table.add_row(k, f"{v:.4f}")
    for k in ("params_total", "params_upsamplers", "train_img_per_s", "wall_s"):
        v = results["cost"].get(k)
        if v is not None:
            table.add_row(k, f"{v:,.1f}" if isinstance(v, float) else f"{v:,}")
    Console(stderr=False).print(table)


def run(cfg: DictConfig) -> float | None:
    """One job. Returns the optimized metric for the sweeper (None when the run failed)."""
    out_dir = Path(cfg.paths.output_dir)
    choices = _choices()
    results: dict[str, Any] = {
        "schema": RESULTS_SCHEMA,
        "status": "running",
        "task": choices.get("task", cfg.get("task_name")),
        "upsampler": choices.get("upsampler", str(cfg.upsampler.get("_target_"))),
        "data": choices.get("data", str(cfg.data.get("_target_"))),
        "seed": cfg.get("seed"),
        "tags": list(cfg.get("tags") or []),
        "metrics": {},
        "cost": {},
        "protocol": {},
        "config": OmegaConf.to_container(cfg, resolve=False),
        "versions": versions(),
        "git": git_revision(),
        "run_dir": str(out_dir),
        "pid": os.getpid(),
    }
    t0 = time.perf_counter()
    exit_code = 0
    try:
        import lightning as L
        import torch

        # CPU results are bit-identical only at the same thread count: it sets the float summation order
        results["torch_threads"] = torch.get_num_threads()
        results["config"] = OmegaConf.to_container(cfg, resolve=True)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        parts = build(cfg)
        results.update(fit_and_test(cfg, parts))
        results["status"] = "ok"
    except BaseException as exc:  # the whole point: record the failure (even a preemption), never lose it
        results["status"] = "failed"
        results["error"] = one_line(exc)
        exit_code = exit_code_for(exc)
        atomic_write_text(out_dir / "error.log", traceback.format_exc())
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            traceback.print_exc()
    finally:
        _finish_wandb()
    results["cost"]["wall_s"] = round(time.perf_counter() - t0, 3)
    atomic_write_json(out_dir / "results.json", results)

    if results["status"] != "ok":
        print(f"upsample-zoo: error: {results['error']}", file=sys.stderr, flush=True)
        if not _is_multirun():
            raise SystemExit(exit_code)
        return None
    print_summary(results)
    value = results["metrics"].get(cfg.get("optimized_metric"))
    return float(value) if value is not None else None


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run(cfg)


if __name__ == "__main__":
    main()
