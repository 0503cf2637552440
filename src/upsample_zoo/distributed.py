"""Hydra + Lightning DDP, one job at a time: the other ranks run this job (not the sweep); rank 0 alone writes.

Lightning's DDP strategy (``trainer=ddp``, ``trainer=ddp_cpu``) starts ranks 1..N-1 by re-running the command
line (``_SubprocessScriptLauncher``). Under Hydra it builds that command from ``sys.argv`` plus
``hydra.run.dir=<hydra.run.dir>``: in a multirun, argv still holds ``-m`` and the swept values, so every child
would launch the whole sweep again (the classic Hydra/Lightning trap), and ``hydra.run.dir`` is not the job's
folder. For the duration of one job, :func:`job_scope` swaps in :func:`child_command`: ``python -m
upsample_zoo.train`` with this job's own overrides (``hydra.overrides.task``), in RUN mode, into this job's run
dir, with no ``.hydra/`` and no log file of its own. Afterwards it waits for the child ranks and puts back what
the job changed in this process (the DDP environment variables Lightning sets, the process group, the torch
thread count), so that the next job of a sequential sweep starts ranks of its own.

A rank that fails on its own still ends the whole process group: Lightning's observer kills rank 0 (and with it
a sweep that runs in the same process) rather than leave it waiting in a collective; ``resume=true`` re-runs
what is left.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("upsample_zoo")

# what Lightning's subprocess launcher writes into os.environ (and _set_num_threads_if_needed: OMP_NUM_THREADS)
DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "OMP_NUM_THREADS")
# hydra overrides that still mean something to a child rank, which runs one job in RUN mode (the search path: a
# user's own config dir, e.g. for upsampler=<their config>)
CHILD_HYDRA_KEYS = ("hydra.searchpath", "hydra.job.chdir", "hydra.job.env_set", "hydra.job.env_copy",
                    "hydra.verbose")
CHILD_WAIT_S = 120.0        # after a job that ended normally: its child ranks end within seconds
CHILD_WAIT_FAILED_S = 5.0   # after a failed one they may wait in a collective forever: then they are killed


def global_rank() -> int:
    """This process's global rank: Lightning's (set from RANK / LOCAL_RANK / SLURM_PROCID at import, then by
    the strategy), 0 outside distributed runs."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def override_key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def quote(value: str) -> str:
    """A Hydra override value, single-quoted (paths may hold ``,`` ``=`` spaces or brackets)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def child_command(local_rank: int, extra: Sequence[str] = ()) -> tuple[list[str], str]:
    """The command of child rank ``local_rank`` for the current Hydra job, and its cwd (Lightning's
    ``_hydra_subprocess_cmd`` contract). ``extra`` overrides replace the job's own for the same keys."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    replaced = {override_key(o) for o in extra}
    cmd = [sys.executable, "-m", "upsample_zoo.train", "--config-name", str(hc.job.config_name)]
    for src in hc.runtime.config_sources:
        if src.provider == "command-line" and src.schema == "file":
            cmd += ["--config-dir", str(src.path)]
    cmd += [o for o in hc.overrides.hydra if override_key(o).startswith(CHILD_HYDRA_KEYS)]
    cmd += [o for o in hc.overrides.task if override_key(o) not in replaced]
    cmd += [*extra, f"hydra.run.dir={quote(str(hc.runtime.output_dir))}", "hydra.output_subdir=null",
            f"hydra.job.name={hc.job.name}_rank{local_rank}", "hydra/job_logging=stdout"]
    return cmd, str(hc.runtime.cwd)


class Job:
    """What :func:`job_scope` tracks of one job: the child ranks Lightning started, and their observer."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []
        self.observer: Any = None
        self.failed = False

    def observe(self, procs: list[subprocess.Popen]) -> None:
        """Stands in for Lightning's ``_launch_process_observer``: the same observer, but one that this job can
        stop once rank 0 itself has finished (or failed), before the children are waited for or killed."""
        from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver

        class JobObserver(_ChildProcessObserver):
            stopped = False

            def _run(self) -> bool:
                return True if self.stopped else super()._run()

        self.procs = procs
        self.observer = JobObserver(main_pid=os.getpid(), child_processes=procs)
        self.observer.start()

    def stop_observing(self) -> None:
        """Rank 0 has ended (or failed): a child rank that exits non-zero now must not take this process down."""
        if self.observer is not None:
            self.observer.stopped = True

    def end(self) -> None:
        """Rank 0's job is over: stop the observer, wait for the child ranks (kill them if they hang)."""
        self.stop_observing()
        wait = CHILD_WAIT_FAILED_S if self.failed else CHILD_WAIT_S
        for p in self.procs:
            try:
                p.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                log.warning("DDP child rank (pid %d) still running %.0f s after rank 0 ended; killing it", p.pid, wait)
                p.kill()
                p.wait()
        self.procs = []


@contextmanager
def job_scope(child_overrides: Sequence[str] = ()) -> Iterator[Job]:
    """One job's DDP scope: child ranks run this job (:func:`child_command` with ``child_overrides``), and
    afterwards this process is as before (environment, process group, torch threads)."""
    import torch
    from lightning.pytorch.strategies.launchers import subprocess_script as launcher_module

    job = Job()
    saved_env = {k: os.environ.get(k) for k in DDP_ENV}
    threads = torch.get_num_threads()
    had_group = torch.distributed.is_available() and torch.distributed.is_initialized()
    patches = {"_hydra_subprocess_cmd": lambda local_rank: child_command(local_rank, child_overrides),
               "_launch_process_observer": job.observe}
    originals = {}
    for name, fn in patches.items():
        if hasattr(launcher_module, name):
            originals[name] = getattr(launcher_module, name)
            setattr(launcher_module, name, fn)
        else:  # a Lightning that renamed it: DDP under a multirun would re-launch the sweep (tests/e2e/test_ddp.py)
            log.warning("lightning has no %s.%s: DDP child ranks keep Lightning's own command",
                        launcher_module.__name__, name)
    try:
        yield job
    finally:
        for name, fn in originals.items():
            setattr(launcher_module, name, fn)
        job.end()
        if not had_group and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        torch.set_num_threads(threads)
