"""Running the real entry points from tests: configs composed as `python train.py` would, one job in this
process, or the CLI in a subprocess."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from upsample_zoo.train import CONFIG_DIR, run

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
CIFAR_JPEG = SHARED_DATA / "cifar10-jpeg.tar.gz"


def compose_train(overrides: list[str], hydra_config: bool = True):
    """The `train` config with the overrides, as Hydra composes it for train.py (no HydraConfig set)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=hydra_config)


def compose_cfg(overrides: list[str], output_dir: Path):
    """Compose the real configs as `python train.py <overrides>` would, with HydraConfig set."""
    cfg = compose_train([*overrides, f"paths.output_dir={output_dir}"])
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]  # as @hydra.main hands it to the task function
    return cfg


def run_in_process(overrides: list[str], output_dir: Path) -> dict:
    """One job through upsample_zoo.train.run, in this process; returns its results.json."""
    cfg = compose_cfg(overrides, output_dir)
    try:
        run(cfg)
    except SystemExit:
        pass
    return json.loads((Path(output_dir) / "results.json").read_text())


def run_cli(args: list[str], root: Path, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real CLI in a subprocess: `python train.py <args>`, forked from a warm interpreter when the
    environment allows (see _WarmStart), else started cold."""
    full_env = {**os.environ, "UPSAMPLE_ZOO_ROOT": str(root), **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    cmd = [sys.executable, str(REPO / "train.py"), *args]
    warm, path = _WarmStart.get(full_env)
    if warm is not None:
        return warm.run(cmd, full_env, timeout, path)
    return subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)


class _WarmStart:
    """tests/helpers/cli_server.py, started once per test session: it imports torch & co. once and forks a child
    per CLI run, which then runs train.py as `python train.py` would, from the current source. It saves the ~4 s
    of imports of each of the suite's ~50 CLI runs. A run whose environment differs from the server's in a
    variable that a library may read at import time (OMP_NUM_THREADS, TORCH_HOME, ...) starts cold, as does one
    whose PYTHONPATH brings a sitecustomize or a module that the server has imported, and every run under
    UPSAMPLE_ZOO_TEST_COLD_CLI=1."""

    # read by the code at run time, never by the pre-imported libraries at import time
    LATE_ENV = re.compile(r"UPSAMPLE_ZOO_ROOT|PYTEST_CURRENT_TEST|HYDRA_FULL_ERROR|WANDB_\w+|(?i:(https?|no)_proxy)")
    _instance: _WarmStart | None = None
    _broken = False

    @classmethod
    def get(cls, env: dict) -> tuple[_WarmStart | None, list[str] | None]:
        """The server and the sys.path (after the script's folder) of a run with ``env``; (None, None): cold."""
        if cls._broken or os.environ.get("UPSAMPLE_ZOO_TEST_COLD_CLI") == "1":
            return None, None
        if cls._instance is None:
            try:
                cls._instance = cls()
            except (OSError, RuntimeError, ValueError):
                cls._broken = True
                return None, None
        server = cls._instance
        changed = {k for k in env.keys() | server.env.keys() if env.get(k) != server.env.get(k)}
        if not all(cls.LATE_ENV.fullmatch(k) or k == "PYTHONPATH" for k in changed):
            return None, None
        if "PYTHONPATH" not in changed:
            return server, server.path
        path = server.sys_path(env)
        return (server, path) if path is not None else (None, None)

    def sys_path(self, env: dict) -> list[str] | None:
        """sys.path[1:] of `python <script>` under env, as a cold interpreter sets it up (PYTHONPATH's entries
        before the server's own); None when an added folder holds a sitecustomize/usercustomize (run at start-up)
        or a module of the same name as one the server imported (a cold run would import that one)."""
        probe = subprocess.run([sys.executable, "-c", "import json, sys; print(json.dumps(sys.path[1:]))"], cwd=REPO,
                               env=env, capture_output=True, text=True, timeout=60)
        if probe.returncode != 0:
            return None
        path = json.loads(probe.stdout)
        taken = {*self.modules, "sitecustomize", "usercustomize"}
        for entry in (Path(p) for p in path if p not in self.path):
            names = {p.name.split(".")[0] for p in entry.iterdir()} if entry.is_dir() else {entry.stem}
            if names & taken:
                return None
        return path

    def __init__(self) -> None:
        self.env = {k: v for k, v in os.environ.items() if not self.LATE_ENV.fullmatch(k)}
        self.log = tempfile.NamedTemporaryFile(prefix="uz-cli-server-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("cli_server.py"))], cwd=REPO,
                                     env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self._buf = b""
        atexit.register(self.close)
        ready = self._read(time.monotonic() + 300)
        if ready is None:
            self.proc.kill()
            raise RuntimeError("the CLI server did not start")
        self.path, self.modules = ready["path"], set(ready["modules"])

    def _read(self, deadline: float | None) -> dict | None:
        """The server's next reply line; None when the deadline passed first."""
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], wait)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"the CLI server ended (log: {self.log.name})")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def run(self, cmd: list[str], env: dict, timeout: float, path: list[str]) -> subprocess.CompletedProcess:
        out = Path(tempfile.mkdtemp(prefix="uz-cli-"))
        try:
            req = {"script": cmd[1], "args": cmd[2:], "cwd": str(REPO), "env": env, "path": path,
                   "stdout": str(out / "stdout"), "stderr": str(out / "stderr")}
            self.proc.stdin.write((json.dumps(req) + "\n").encode())
            self.proc.stdin.flush()
            pid = self._read(time.monotonic() + 60)["pid"]
            try:
                reply = self._read(time.monotonic() + timeout)
                if reply is None:  # as subprocess.run(timeout=...): kill it, then raise TimeoutExpired
                    os.kill(pid, signal.SIGKILL)
                    self._read(None)
            except BaseException:  # an interrupted test or a dead server: the run must not outlive it
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                type(self)._broken = True
                self.close()
                raise
            stdout, stderr = ((out / name).read_text() if (out / name).exists() else ""
                              for name in ("stdout", "stderr"))
            if reply is None:
                raise subprocess.TimeoutExpired(cmd, timeout, output=stdout, stderr=stderr)
            return subprocess.CompletedProcess(cmd, reply["rc"], stdout, stderr)
        finally:
            shutil.rmtree(out, ignore_errors=True)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()  # EOF: the server exits
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)
