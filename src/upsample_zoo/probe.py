"""The init-time probe: how checkerboarded is each zoo upsampler before any training? (no dataset needed)

Every ``configs/upsampler/*.yaml`` is built (so upsamplers added later appear on their own), at random
init and over several seeds, in two settings:

- **layer**: one upsampling layer (3 -> 3 channels) applied to 1/f natural-like 8-bit images
  (32x32 -> 64x64 at scale 2), scored with ``scale``;
- **decoder**: three x2 stages (3 -> 8 -> 8 -> 3 channels, ReLU between) from 4x4 uniform [0, 1) noise
  images to 32x32, DCGAN-sized, scored with s = 8. Non-negative inputs matter: an upsampler in a real
  decoder sees post-ReLU features (or images), whose mean is what a tconv turns into a checkerboard.
  With zero-mean Gaussian inputs and wide layers the same operators read about 8 dB lower.

Guided operators (FADE, SAPA) also get a guide, as a U-Net's skip would give them: in the layer setting a
1/f image set of the output size (another seed), in the decoder a uniform [0, 1) noise feature of each
stage's output size and width (seeded like the input). Unguided operators never see it.

Outputs are standardised per channel to the 1/f images' mean and std, then quantised to 8 bits (the
score is about the pattern relative to the content, not the arbitrary scale of a random-init layer).
Writes probe.md, probe.json and probe.png (bar chart) into ``--out``.

    python scripts/probe_init.py [--seeds 5] [--out logs/probe] [--quick]
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from upsample_zoo.data.noise import one_over_f_images
from upsample_zoo.metrics.checkerboard import checkerboard_score
from upsample_zoo.models.stages import UpsamplerFactory
from upsample_zoo.report.table_model import Cell, Row, Table, md_plain, md_table
from upsample_zoo.upsamplers.base import needs_guide
from upsample_zoo.zoo import config_dir, list_upsamplers, upsampler_config, upsampler_factory

CONFIG_DIR = config_dir()
METRICS = ("checkerboard_db", "checkerboard_amp", "blockiness_db")
SETTINGS = ("layer", "decoder")
NATURAL = "natural (1/f)"
IMAGE_STD = 0.15  # the 1/f images' std; outputs are brought to the same contrast
DECODER_WIDTHS = (3, 8, 8, 3)


def probeable_operators(config_dir: str | Path = CONFIG_DIR, scale: int = 2, extra: Sequence[str] = ()) -> tuple[
        dict[str, UpsamplerFactory], dict[str, str]]:
    """The operators the probe can run: {name: factory(in, out)} for every zoo name that builds at ``scale``
    (the zoo's own factory, ``zoo.upsampler_factory``: the probe loads nothing itself), plus the user's classes
    named in ``extra`` (dotted paths, e.g. ``mypkg.MyUp``), and {name: why not}. What is the probe's own: each
    must upsample 8x8 by ``scale`` and build the 3-8-8-3 decoder."""
    names = list_upsamplers(config_dir)
    if not names:
        raise FileNotFoundError(f"no upsampler configs in {Path(config_dir) / 'upsampler'}")
    factories: dict[str, UpsamplerFactory] = {}
    skipped: dict[str, str] = {}
    for name in [*names, *extra]:
        try:
            # a config's scale is set when it has one; a user's class gets one only when it is not the default
            has_scale = "scale" in upsampler_config(name, config_dir) if name in names else scale != 2
            factory = upsampler_factory(name, configs=config_dir, **({"scale": scale} if has_scale else {}))
            up = factory(3, 3)
            y = up(torch.zeros(1, 3, 8, 8), **_guide_kwargs(up, torch.zeros(1, 3, 8 * scale, 8 * scale)))
            if tuple(y.shape[-2:]) != (8 * scale, 8 * scale):
                raise ValueError(f"8x8 -> {tuple(y.shape[-2:])}, not x{scale}")
            Decoder(factory)  # the 3-8-8-3 decoder must build too (channel constraints: groups, multiples)
            factories[name] = factory
        except Exception as e:  # noqa: BLE001 - any config that cannot be probed is reported, not fatal
            skipped[name] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return factories, skipped


def standardised_uint8(y: torch.Tensor, std: float = IMAGE_STD) -> torch.Tensor:
    """Per-channel standardisation over batch and space to mean 0.5 and ``std``, then 8 bits."""
    y = y - y.mean(dim=(0, 2, 3), keepdim=True)
    y = y / y.std(dim=(0, 2, 3), keepdim=True).clamp(min=1e-12)
    return (0.5 + std * y).clamp(0, 1).mul(255).round().to(torch.uint8)


def _guide_kwargs(up: nn.Module, guide: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"guide": guide}`` for a guided operator, ``{}`` for the others."""
    return {"guide": guide} if needs_guide(up) else {}


class Decoder(nn.Module):
    """Three upsampling stages with ReLU between them, at PyTorch's default init. ``guides`` (one per stage,
    at its output size and width) reach the guided operators only."""

    def __init__(self, factory: UpsamplerFactory, widths: Sequence[int] = DECODER_WIDTHS) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.stages = nn.ModuleList(factory(cin, cout) for cin, cout in itertools.pairwise(widths))

    def forward(self, x: torch.Tensor, guides: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        for i, up in enumerate(self.stages):
            x = up(x, **(_guide_kwargs(up, guides[i]) if guides is not None else {}))
            if i < len(self.stages) - 1:
                x = torch.relu(x)
        return x


@torch.no_grad()
def probe_layer(factory: UpsamplerFactory | None, seed: int, batch: int, size: int, scale: int) -> dict[str, float]:
    """One layer on 1/f images of side ``size``; ``factory=None`` scores the 1/f images themselves
    at the output size (the natural reference)."""
    if factory is None:
        return checkerboard_score(one_over_f_images(batch, 3, size * scale, seed=10_000 + seed), scale)
    torch.manual_seed(seed)
    layer = factory(3, 3)
    x = one_over_f_images(batch, 3, size, seed=10_000 + seed).float() / 255
    guide = one_over_f_images(batch, 3, size * scale, seed=30_000 + seed).float() / 255
    return checkerboard_score(standardised_uint8(layer(x, **_guide_kwargs(layer, guide))), scale)


@torch.no_grad()
def probe_decoder(factory: UpsamplerFactory | None, seed: int, batch: int) -> dict[str, float]:
    """4x4 uniform noise images through three x2 stages to 32x32, scored at s = 8."""
    if factory is None:
        return checkerboard_score(one_over_f_images(batch, 3, 32, seed=20_000 + seed), 8)
    torch.manual_seed(seed)
    decoder = Decoder(factory)
    z = torch.rand(batch, DECODER_WIDTHS[0], 4, 4)
    guides = [torch.rand(batch, c, 4 * 2 ** (i + 1), 4 * 2 ** (i + 1)) for i, c in enumerate(DECODER_WIDTHS[1:])]
    return checkerboard_score(standardised_uint8(decoder(z, guides)), 8)


@dataclass
class ProbeResult:
    seeds: int
    scale: int
    # values[name][setting][metric] = one value per seed
    values: dict[str, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0

    def stat(self, name: str, setting: str, metric: str) -> tuple[float, float]:
        v = self.values[name][setting][metric]
        return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def run_probe(seeds: int = 5, quick: bool = False, scale: int = 2, config_dir: str | Path = CONFIG_DIR,
              only: Sequence[str] | None = None) -> ProbeResult:
    """Score every upsampler config (or those named in ``only``) and the 1/f reference over ``seeds``."""
    t0 = time.perf_counter()
    extra = [n for n in (only or ()) if "." in n]  # dotted class paths: the user's own operators
    factories, skipped = probeable_operators(config_dir, scale, extra)
    # the decoder is always three x2 stages
    zoo2, skipped2 = (factories, skipped) if scale == 2 else probeable_operators(config_dir, 2, extra)
    if only is not None:
        factories, zoo2 = ({k: v for k, v in z.items() if k in only} for z in (factories, zoo2))
    batch, dec_batch = (16, 32) if quick else (32, 64)
    result = ProbeResult(seeds=seeds, scale=scale, skipped={k: f"scale {scale}: {v}" for k, v in skipped.items()})
    result.skipped.update({k: f"decoder, scale 2: {v}" for k, v in skipped2.items() if k not in skipped})
    names: list[str | None] = [None, *sorted(set(factories) | set(zoo2))]
    for name in names:
        key = NATURAL if name is None else name
        result.values[key] = {s: {m: [] for m in METRICS} for s in SETTINGS}
        for seed in range(seeds):
            runs = {}
            if name is None or name in factories:
                runs["layer"] = probe_layer(None if name is None else factories[name], seed, batch,
                                            64 // scale, scale)
            if name is None or name in zoo2:
                runs["decoder"] = probe_decoder(None if name is None else zoo2[name], seed, dec_batch)
            for setting, scores in runs.items():
                for m in METRICS:
                    result.values[key][setting][m].append(scores[m])
    result.wall_s = time.perf_counter() - t0
    return result


def _cell(result: ProbeResult, name: str, setting: str, metric: str) -> str:
    if not result.values[name][setting][metric]:
        return "—"
    mean, std = result.stat(name, setting, metric)
    return f"{mean:+.1f} ± {std:.1f}" if metric.endswith("_db") else f"{mean:.1f} ± {std:.1f}"


HEADERS = ("upsampler", "layer checkerboard_db", "layer amp (8-bit)", "layer blockiness_db",
           "decoder checkerboard_db", "decoder amp (8-bit)", "decoder blockiness_db")


def table_rows(result: ProbeResult) -> list[list[str]]:
    return [[name, *(_cell(result, name, s, m) for s in SETTINGS for m in METRICS)] for name in result.values]


def render_markdown(result: ProbeResult) -> str:
    rows = table_rows(result)
    lines = [
        "# Init-time checkerboard probe",
        "",
        (f"Random init, mean ± std over {result.seeds} seeds. *layer*: one x{result.scale} layer (3 -> 3 ch) on "
         f"1/f natural-like 8-bit images, {64 // result.scale}x{64 // result.scale} -> 64x64, s={result.scale}. "
         "*decoder*: 4x4 uniform noise images, three x2 stages (3-8-8-3 ch, ReLU), 32x32, s=8. Outputs "
         "standardised per channel and quantised to 8 bits. dB values are comparable only at equal image size."),
        "",
        *md_table(Table(list(HEADERS), [Row([Cell(c) for c in r]) for r in rows]), md_plain)[:-1],
    ]
    if result.skipped:
        lines += ["", "Skipped:", *(f"- `{k}`: {v}" for k, v in result.skipped.items())]
    lines += ["", f"Regenerate: `python scripts/probe_init.py --seeds {result.seeds}` "
                  f"(computed in {result.wall_s:.0f} s on CPU, plus imports)."]
    return "\n".join(lines) + "\n"


def save_bar_chart(result: ProbeResult, path: str | Path) -> Path:
    from matplotlib.figure import Figure

    from upsample_zoo.figures import save_figure

    names = list(result.values)
    fig = Figure(figsize=(1.0 + 0.9 * len(names), 3.6))
    ax = fig.subplots()
    width = 0.4
    for k, setting in enumerate(SETTINGS):
        stats = [result.stat(n, setting, "checkerboard_db") if result.values[n][setting]["checkerboard_db"]
                 else (float("nan"), 0.0) for n in names]
        xs = [i + (k - 0.5) * width for i in range(len(names))]
        ax.bar(xs, [s[0] for s in stats], width, yerr=[s[1] for s in stats], capsize=2,
               label=f"{setting} (s={result.scale if setting == 'layer' else 8})")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("checkerboard_db (Nyquist contrast)")
    ax.set_title(f"Checkerboard at random init ({result.seeds} seeds)", fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def print_table(result: ProbeResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"checkerboard probe at random init ({result.seeds} seeds, {result.wall_s:.1f} s)")
    for i, h in enumerate(HEADERS):
        table.add_column(h, justify="left" if i == 0 else "right")
    for row in table_rows(result):
        table.add_row(*row)
    console = Console()
    console.print(table)
    for k, v in result.skipped.items():
        console.print(f"[yellow]skipped {k}[/yellow]: {v}")


def main(argv: Sequence[str] | None = None) -> int:
    from upsample_zoo.cli_args import OneLineParser, ensure_writable, positive_int, write_or_exit

    parser = OneLineParser(prog="upsample-zoo probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=positive_int, default=5, help="random inits per upsampler (default 5)")
    parser.add_argument("--out", type=Path, default=Path("logs/probe"), help="output folder (default logs/probe)")
    parser.add_argument("--quick", action="store_true", help="2 seeds and half batches (a smoke run)")
    parser.add_argument("--scale", type=int, choices=(2, 4), default=2, help="the single layer's scale (default 2)")
    parser.add_argument("--configs", type=Path, default=CONFIG_DIR, help="config root holding upsampler/*.yaml")
    parser.add_argument("--upsampler", action="append", default=None, metavar="NAME",
                        help="probe only this one (repeatable): a zoo name or your own class, e.g. mypkg.MyUp")
    args = parser.parse_args(argv)
    seeds = min(args.seeds, 2) if args.quick else args.seeds
    zoo = list_upsamplers(args.configs)
    unknown = [n for n in args.upsampler or () if n not in zoo and "." not in n]
    if unknown:
        parser.error(f"argument --upsampler: unknown upsampler {unknown[0]!r}; the zoo has {', '.join(zoo)} (or give "
                     "a dotted class path such as mypkg.MyUp)")

    from upsample_zoo.atomic import atomic_write_json, atomic_write_text

    ensure_writable(parser.prog, args.out)  # before the work, not after it
    result = run_probe(seeds=seeds, quick=args.quick, scale=args.scale, config_dir=args.configs,
                       only=args.upsampler)
    print_table(result)
    out = args.out

    def write() -> None:
        atomic_write_text(out / "probe.md", render_markdown(result))
        atomic_write_json(out / "probe.json", {
            "seeds": result.seeds, "scale": result.scale, "wall_s": result.wall_s,
            "values": result.values, "skipped": result.skipped,
        })
        save_bar_chart(result, out / "probe.png")

    write_or_exit(parser.prog, out, write)
    print(f"wrote {out / 'probe.md'}, {out / 'probe.json'}, {out / 'probe.png'}")
    if not any(k != NATURAL for k in result.values):  # nothing could be probed: the files say why
        print(f"{parser.prog}: error: no upsampler could be probed: "
              f"{'; '.join(f'{k}: {v}' for k, v in result.skipped.items()) or 'none given'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
