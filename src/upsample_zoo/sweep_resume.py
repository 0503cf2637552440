"""``resume=true``: re-run a sweep into the same sweep dir and do only what is left.

Per job (its run dir is ``<hydra.sweep.dir>/<num>_<upsampler>_s<seed>``, the same on a re-run of the same command):

- ``skip``: ``results.json`` says ``status: ok`` for the same config. Nothing in the run dir is written (its
  ``results.json`` stays byte-identical) and the sweeper gets the stored optimized metric back; the sweep's
  comparison report reads the job's files as before.
- ``resume``: the newest ``checkpoints/last*.ckpt`` written for the same config exists (the hash is stored in the
  checkpoint by :class:`ConfigHashCallback`): training continues from it (``trainer.fit(ckpt_path=...)``).
- ``run``: anything else (missing, failed without a usable checkpoint, or finished with another config): the job
  runs from scratch. A previous ``results.json`` / ``error.log`` is kept as ``results.previous.json`` /
  ``error.previous.log`` (the report reads only ``results.json``), and its checkpoints (other than the one a
  resumed job continues) in ``checkpoints.previous/``: one stale generation at most.

"The same config" is :func:`config_hash`: a hash of the resolved config without ``resume``, ``ckpt_path`` and
the ``paths`` group, where any value under one of the ``paths.*`` folders counts by its place relative to it
(``${paths.output_dir}/checkpoints``), so a sweep dir that moved, or another ``UPSAMPLE_ZOO_ROOT``, still
matches, while another epoch count, seed, data subset or tag does not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L

from upsample_zoo.results import RunResult

log = logging.getLogger("upsample_zoo")

IGNORED_KEYS = ("resume", "ckpt_path", "paths", "sweep_name")
PREVIOUS = {"results.json": "results.previous.json", "error.log": "error.previous.log"}


def _relative_to_paths(value: Any, roots: list[tuple[str, str]]) -> Any:
    if isinstance(value, dict):
        return {k: _relative_to_paths(v, roots) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative_to_paths(v, roots) for v in value]
    if isinstance(value, str):
        for name, root in roots:
            if value == root or value.startswith(root.rstrip(os.sep) + os.sep):
                return "${paths." + name + "}" + value[len(root):]
    return value


def config_hash(resolved: dict[str, Any]) -> str:
    """16 hex digits of sha256 over the resolved config, minus ``resume``, ``ckpt_path`` and ``paths`` (see the
    module doc). ``resolved`` is ``OmegaConf.to_container(cfg, resolve=True)`` or the ``config`` of a
    results.json (the same thing after a JSON round trip)."""
    paths = resolved.get("paths") if isinstance(resolved.get("paths"), dict) else {}
    roots = sorted(((k, v) for k, v in paths.items() if isinstance(v, str) and v), key=lambda kv: -len(kv[1]))
    body = {k: v for k, v in resolved.items() if k not in IGNORED_KEYS}
    text = json.dumps(_relative_to_paths(body, roots), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class ConfigHashCallback(L.Callback):
    """Stores the run's config hash in every checkpoint (``checkpoint["callbacks"]``), so that ``resume=true``
    continues a checkpoint only under the config that wrote it."""

    def __init__(self, config_hash: str) -> None:
        self.config_hash = config_hash

    def state_dict(self) -> dict[str, Any]:
        return {"config_hash": self.config_hash}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass  # the hash is this run's own; a resumed checkpoint was checked before loading


def checkpoint_config_hash(path: Path) -> str | None:
    """The config hash stored in a checkpoint by :class:`ConfigHashCallback`, None if absent or unreadable."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file is simply not resumable
        log.warning("resume: %s is not a readable checkpoint (%s: %s)", path, type(exc).__name__, exc)
        return None
    for state in (ckpt.get("callbacks") or {}).values() if isinstance(ckpt, dict) else ():
        if isinstance(state, dict) and isinstance(state.get("config_hash"), str):
            return state["config_hash"]
    return None


@dataclass(frozen=True)
class Plan:
    action: str                     # "skip" | "resume" | "run"
    reason: str
    config_hash: str
    ckpt_path: str | None = None    # resume: the checkpoint to continue
    previous: RunResult | None = None    # skip: the job's results.json


def plan_job(resolved: dict[str, Any], run_dir: Path) -> Plan:
    """What ``resume=true`` does with the job whose run dir is ``run_dir``; reads files, writes nothing."""
    h = config_hash(resolved)
    prev = RunResult.read_if_any(run_dir)
    why = "no results.json" if prev is None else f"status {prev.status!r}"
    if prev is not None and prev.ok:
        if isinstance(prev.config, dict) and config_hash(prev.config) == h:
            return Plan("skip", "finished (status ok) with the same config", h, previous=prev)
        why = "finished with another config"
    lasts = last_checkpoints(run_dir)
    for last in lasts:
        if checkpoint_config_hash(last) == h:
            return Plan("resume", f"{why}; {last.name} of the same config", h, ckpt_path=str(last))
    if lasts:
        why += f"; no last*.ckpt of the same config ({', '.join(p.name for p in lasts)})"
    return Plan("run", why, h)


def last_checkpoints(run_dir: Path) -> list[Path]:
    """The job's ``last*.ckpt`` files, newest first: Lightning writes ``last-v1.ckpt`` when a ``last.ckpt`` of an
    earlier attempt is in the way, so the newest, not ``last.ckpt``, is the latest attempt's."""
    found = [p for p in (run_dir / "checkpoints").glob("last*.ckpt") if p.is_file()]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def set_aside_previous(run_dir: Path, plan: Plan | None = None) -> list[str]:
    """Before a resumed or re-run job: keep the last attempt's results.json / error.log under .previous names,
    and its checkpoints in ``checkpoints.previous/`` (one stale generation at most: an older one is deleted).
    A resumed job keeps the checkpoints of its own config where they are; a re-run job starts an empty folder, so
    Lightning writes ``last.ckpt`` again instead of piling up ``last-v1.ckpt``, ``last-v2.ckpt``, ..."""
    import shutil

    moved = []
    for name, new in PREVIOUS.items():
        if (run_dir / name).is_file():
            os.replace(run_dir / name, run_dir / new)
            moved.append(new)
    ckpts, stale = run_dir / "checkpoints", run_dir / "checkpoints.previous"
    old = sorted(p for p in ckpts.glob("*.ckpt") if p.is_file()) if ckpts.is_dir() else []
    if plan is not None and plan.action == "resume":  # the attempt it continues keeps its own (last and best)
        old = [p for p in old if checkpoint_config_hash(p) != plan.config_hash]
    if old:
        shutil.rmtree(stale, ignore_errors=True)
        stale.mkdir()
        for p in old:
            os.replace(p, stale / p.name)
        moved.append(stale.name)
    return moved
