"""Row 6, scaling: U-Net training-epoch time (plain loop, in-memory data) against the number of images and the
image side, with the fitted log-log exponents (expect 1 and 2), the optimizer step's share and the FLOPs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from upsample_zoo.bench.measure import (
    Failed,
    Summary,
    count_flops,
    fit_exponent,
    fmt,
    fmt_spread,
    log,
    optional,
    summarize,
    time_calls,
)
from upsample_zoo.bench.settings import Settings
from upsample_zoo.bench.workloads import compose_config
from upsample_zoo.models.build import build_model
from upsample_zoo.report.table_model import Table, md_plain, md_table


@dataclass
class Point:
    images: int
    side: int
    epoch_s: Summary
    optimizer_share: float | None = optional()
    gflop: float | None = optional()
    gflops_per_s: float | None = optional()


@dataclass
class Scaling:
    model: str
    batch: int
    params: int
    optimizer: str
    optimizer_step_s: Summary
    by_images: list[Point]
    by_side: list[Point]
    exponent_images: float
    exponent_side: float
    exponent_side_without_optimizer: float | None


class Epochs:
    """Plain-loop training epochs of one U-Net on fixed in-memory batches, at any (images, side)."""

    def __init__(self, s: Settings, device: torch.device, work: Path) -> None:
        from hydra.utils import instantiate

        self.cfg = compose_config(["task=segmentation", *s.scale_overrides], work)
        torch.manual_seed(0)
        self.model = build_model(self.cfg).to(device).train()
        self.opt = instantiate(self.cfg.task.optimizer)(params=self.model.parameters())
        self.classes, self.s, self.device = int(self.cfg.data.num_classes), s, device

    def epoch_fn(self, n_images: int, side: int) -> Callable[[], None]:
        import torch.nn.functional as F

        g = torch.Generator().manual_seed(side)
        bs = self.s.scale_batch
        x = torch.randn(bs, 3, side, side, generator=g).to(self.device)
        y = torch.randint(0, self.classes, (bs, side, side), generator=g).to(self.device)
        model, opt = self.model, self.opt

        def run():
            for _ in range(max(1, n_images // bs)):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), y).backward()
                opt.step()
        return run

    def measure(self, points: list[tuple[int, int]]) -> list[Point]:
        """Interleaved (alternating order) epochs at each (images, side), after one warm-up step per shape."""
        fns = {p: self.epoch_fn(*p) for p in points}
        for p in points:  # warm-up: one step per shape (oneDNN primitives, allocator)
            self.epoch_fn(self.s.scale_batch, p[1])()
        times: dict[tuple[int, int], list[float]] = {p: [] for p in points}
        for r in range(self.s.scale_repeats):
            for p in (points if r % 2 == 0 else points[::-1]):
                times[p] += time_calls(fns[p], 1, 0, self.device)
        return [Point(images=p[0], side=p[1], epoch_s=summarize(times[p])) for p in points]


def run(s: Settings, device: torch.device, work: Path) -> Scaling:
    """U-Net training epoch (plain loop, in-memory data) against images per epoch and image side."""
    ep = Epochs(s, device, work)
    by_n = ep.measure([(n, s.scale_side_fixed) for n in s.scale_images])
    by_side = ep.measure([(s.scale_images_fixed, side) for side in s.scale_sides])
    # the optimizer step is paid once per step whatever the side: time it alone (gradients in place)
    ep.epoch_fn(s.scale_batch, s.scale_side_fixed)()
    opt_step = summarize(time_calls(ep.opt.step, max(3, s.scale_repeats), 1, device))
    k_n = fit_exponent([r.images for r in by_n], [r.epoch_s["median"] for r in by_n])
    k_side = fit_exponent([r.side for r in by_side], [r.epoch_s["median"] for r in by_side])
    steps = max(1, s.scale_images_fixed // s.scale_batch)
    rest = [r.epoch_s["median"] - steps * opt_step["median"] for r in by_side]
    k_side_rest = fit_exponent([r.side for r in by_side], rest) if min(rest) > 0 else None
    for r in by_side:
        r.optimizer_share = steps * opt_step["median"] / r.epoch_s["median"]
        # convolution FLOPs of the epoch grow exactly as side^2; the achieved rate says why time does not
        r.gflop = count_flops(ep.epoch_fn(s.scale_images_fixed, r.side)) / 1e9
        r.gflops_per_s = r.gflop / r.epoch_s["median"]
    log(f"scaling: epoch time ~ n^{k_n:.2f}, ~ side^{k_side:.2f} (without the optimizer step: "
        f"side^{fmt(k_side_rest)})")
    cfg = ep.cfg
    return Scaling(model=f"U-Net base {cfg.model.base_channels}, depth {cfg.model.depth}", batch=s.scale_batch,
                   params=sum(p.numel() for p in ep.model.parameters()), optimizer=type(ep.opt).__name__,
                   optimizer_step_s=opt_step, by_images=by_n, by_side=by_side, exponent_images=k_n,
                   exponent_side=k_side, exponent_side_without_optimizer=k_side_rest)


def render(sc: Scaling | Failed) -> list[str]:
    if isinstance(sc, Failed):
        return ["## 6. Scaling: U-Net training epoch (, batch , plain loop)\n", f"error: {sc.error}\n"]
    table = Table(["images", "side", "epoch s", "GFLOP", "GFLOP/s", "optimizer step share"], numeric_from=0)
    for r in sc.by_images + sc.by_side:
        share = r.optimizer_share
        table.add(r.images, r.side, fmt_spread(r.epoch_s), fmt(r.gflop), fmt(r.gflops_per_s),
                  fmt(share * 100) + "%" if share is not None else "")
    lines = [f"## 6. Scaling: U-Net training epoch ({sc.model}, batch {sc.batch}, plain loop)\n",
             *md_table(table, md_plain)[:-1]]
    lines.append(f"\nFitted exponents: epoch time ∝ images^**{sc.exponent_images:.2f}** (expect 1), "
                 f"∝ side^**{sc.exponent_side:.2f}** (expect 2). The {sc.optimizer} step over "
                 f"{sc.params:,} parameters ({fmt_spread(sc.optimizer_step_s, 1e3)} ms) is paid once per step "
                 f"whatever the side; without it: side^**{fmt(sc.exponent_side_without_optimizer)}**. The FLOPs "
                 "grow exactly as side²; small images run the convolutions at a lower GFLOP/s (less work per "
                 "call for the same fixed per-layer cost), so time grows more slowly than the work.\n")
    return lines
