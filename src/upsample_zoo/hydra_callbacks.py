"""Hydra callbacks (configs/hydra/default.yaml, `callbacks:`): the comparison report at the end of a sweep, and
checks before a sweep starts (writable output dir, `resume=true` pointed at an earlier sweep)."""

from __future__ import annotations

import atexit
import logging
import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from upsample_zoo.errors import UpsampleZooError, flat

log = logging.getLogger("upsample_zoo")


class CompareOnMultirunEnd(Callback):
    """Write comparison.{md,csv,html} into the sweep dir when a multirun ends.

    Never raises: a broken report must not turn a finished sweep into a failure. If the sweep itself
    aborts (Hydra stops at a job it cannot even compose), the report is still written at exit from
    whatever the finished jobs left.
    """

    def __init__(self, enabled: bool = True, baseline: str | None = "bilinear", alpha: float = 0.05,
                 wandb: bool = False) -> None:
        self.enabled = enabled
        self.baseline = baseline
        self.alpha = alpha
        self.wandb = wandb
        self._sweep_dir: Path | None = None
        self._done = False

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        self._sweep_dir = Path(str(config.hydra.sweep.dir))
        atexit.register(self._at_exit)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        sweep_dir = self._sweep_dir or Path(str(config.hydra.sweep.dir))
        self.report(sweep_dir)

    def _at_exit(self) -> None:
        if not self._done and self._sweep_dir is not None and self._sweep_dir.is_dir() \
                and any(self._sweep_dir.rglob("results.json")):
            log.warning("the sweep stopped early; writing the comparison of the finished jobs")
            self.report(self._sweep_dir)

    def report(self, sweep_dir: Path) -> Path | None:
        self._done = True
        try:
            from upsample_zoo.report import compare

            written = compare([sweep_dir], baseline=self.baseline, out=sweep_dir, alpha=self.alpha,
                              use_wandb=self.wandb)
        except Exception as exc:  # noqa: BLE001 - the sweep's results are on disk; the report is a bonus
            log.error("upsample-zoo: comparison of %s failed: %s: %s", sweep_dir, type(exc).__name__, exc)
            print(f"upsample-zoo: error: comparison of {sweep_dir} failed: {type(exc).__name__}: {exc}", flush=True)
            return None
        print(f"upsample-zoo: comparison written to {written['md']} (and .csv, .html)", flush=True)
        return written["html"]


class CheckOutputDir(Callback):
    """Before Hydra creates the run (or sweep) dir: if it cannot be created or written, stop with one
    line instead of a traceback from deep inside pathlib, and write nothing."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        # the default run dir names ${hydra:runtime.choices.upsampler}, which resolves only once HydraConfig is
        # set; Hydra sets it from this same config just after the callbacks, so setting it now changes nothing
        HydraConfig.instance().set_config(config)
        self._check_run_name(config)
        self._check(str(config.hydra.run.dir))

    @staticmethod
    def _check_run_name(config: DictConfig) -> None:
        """The run's name is its folder's: a refused name (a path separator in it) is one line, before the
        resolver inside hydra.run.dir would raise it wrapped in a traceback."""
        import sys

        from omegaconf import OmegaConf

        from upsample_zoo.zoo import upsampler_name

        try:
            upsampler_name(str(config.hydra.runtime.choices.get("upsampler")),
                           str(OmegaConf.select(config, "upsampler._target_", default=None)),
                           OmegaConf.select(config, "model.stage_upsamplers", default=None))
        except UpsampleZooError as exc:
            print(f"upsample-zoo: error: {flat(exc)}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
        except Exception:  # noqa: BLE001 - anything else is Hydra's to report, as before
            return

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(str(config.hydra.sweep.dir))

    @staticmethod
    def _check(path: str) -> None:
        import shutil
        import sys
        import tempfile

        target = Path(path).absolute()
        missing = next((p for p in [*reversed(target.parents), target] if not p.exists()), None)
        try:
            target.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=target, prefix=".write-test-"):
                pass
            if missing is not None:  # leave no folder behind: Hydra makes the run dir, maybe a second later
                shutil.rmtree(missing, ignore_errors=True)
        except OSError as e:
            print(f"upsample-zoo: error: output dir {path} is not writable ({e.strerror or e}); choose another "
                  "hydra.run.dir (or hydra.sweep.dir), or fix its permissions", file=sys.stderr, flush=True)
            raise SystemExit(1) from None


class SweepLock(Callback):
    """One live sweep per sweep folder. A second sweep (or a second ``resume=true``) into a folder that a
    running sweep holds would train every job twice and interleave their files: it is refused with one line
    naming the holder. The lock is ``flock`` on ``<sweep dir>/.sweep.lock``: the kernel releases it when the
    holder exits, however it dies, so a stale lock is simply taken over. The file stays (empty) after the sweep:
    deleting it would let two sweeps lock two different files of one name."""

    NAME = ".sweep.lock"

    def __init__(self) -> None:
        self._fd: int | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        import fcntl
        import socket
        import sys
        import time

        sweep = Path(str(config.hydra.sweep.dir))
        sweep.mkdir(parents=True, exist_ok=True)
        fd = os.open(sweep / self.NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = " ".join(os.pread(fd, 200, 0).decode("utf-8", "replace").split()) or "another process"
            os.close(fd)
            print(f"upsample-zoo: error: sweep folder {sweep} is in use by a running sweep ({holder}); wait for it "
                  "to finish, or choose another hydra.sweep.dir", file=sys.stderr, flush=True)
            raise SystemExit(1) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
                  .encode(), 0)
        self._fd = fd
        atexit.register(self.release)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self.release()

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


class SweepExitCode(Callback):
    """A sweep whose jobs failed, all or some, exits 1 after its report, with one line counting them: a script
    or CI that runs a sweep must not read a hole in the grid as success. (Listed first among the callbacks, so
    Hydra, which ends them in reverse order, runs it after the report.)"""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        import json
        import sys

        sweep = Path(str(config.hydra.sweep.dir))
        status = {}
        for path in sorted(sweep.glob("*/results.json")):
            try:
                status[path.parent.name] = json.loads(path.read_text(encoding="utf-8")).get("status")
            except (OSError, ValueError, AttributeError):
                status[path.parent.name] = "unreadable"
        failed = [name for name, st in status.items() if st != "ok"]
        if failed:
            print(f"upsample-zoo: error: {len(failed)} of {len(status)} jobs of the sweep in {sweep} did not finish "
                  f"ok ({', '.join(failed[:5])}{', ...' if len(failed) > 5 else ''}); each job's results.json and "
                  "error.log say why, and resume=true re-runs them", file=sys.stderr, flush=True)
            raise SystemExit(1)


class ResumeNeedsTheSweepDir(Callback):
    """``resume=true`` continues the jobs found in ``hydra.sweep.dir``; the default sweep dir is a new
    timestamped folder, where there is nothing to continue. Say so (a warning; the sweep then simply runs)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not config.get("resume"):
            return
        sweep = Path(str(config.hydra.sweep.dir))
        found = sweep.is_dir() and any(p.is_dir() and (p / ".hydra").is_dir() for p in sweep.iterdir())
        if not found:
            msg = (f"upsample-zoo: warning: resume=true, but {sweep} holds no jobs of an earlier sweep: every job "
                   "runs; to resume a sweep, pass its folder: hydra.sweep.dir=<the earlier sweep dir>")
            log.warning(msg)
            print(msg, flush=True)


class DataLoaderWorkersInJoblib(Callback):
    """Let jobs run by `hydra/launcher=joblib` start DataLoader workers.

    Joblib's loky workers make "loky" the default multiprocessing start method, and a plain
    ``multiprocessing.Process`` (what a DataLoader with ``num_workers > 0`` starts) cannot be launched
    through it (``'Process' object has no attribute 'env'``). In such a worker this restores the
    platform's own default (fork on Linux, spawn elsewhere) before the job runs; anywhere else it does
    nothing.
    """

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        import multiprocessing as mp
        import sys

        if mp.get_start_method(allow_none=True) == "loky":
            mp.set_start_method("fork" if sys.platform.startswith("linux") else "spawn", force=True)
