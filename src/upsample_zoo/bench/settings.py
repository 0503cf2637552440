"""What the bench measures and at which sizes: the full and the quick settings, the sections, the configs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from upsample_zoo.tasks.declarations import package_declarations
from upsample_zoo.zoo import config_dir

CONFIG_DIR = config_dir()
TORCH_DEFAULT_THREADS = torch.get_num_threads()  # before --threads changes it
SECTIONS = ("upsamplers", "overhead", "data", "fid", "checkerboard", "scaling", "sweep")


def headline_keys() -> tuple[str, ...]:
    """The bench report's headline: each task's overhead, then the FID and matmul figures."""
    return (*(f"overhead_{t}" for t in package_declarations()), "fid_speedup", "fid_cache_ratio",
            "matmul_peak_gflops")

SWEEP_UPSAMPLERS = ("nearest", "bilinear", "tconv", "pixel_shuffle")


@dataclass(frozen=True)
class Settings:
    mode: str
    repeats: int = 5                 # timed repeats per figure (after `warmup` untimed ones)
    warmup: int = 1
    matmul_n: int = 2048
    up_batch: int = 16
    up_side: int = 64
    up_channels: tuple[int, int] = (64, 32)
    # row 1b: the decoder steps of the real-VOC U-Net (read off the model the experiment builds), at the
    # config's batch unless set here
    unet_overrides: tuple[str, ...] = ("experiment=seg_voc_cpu",)
    unet_batch: int | None = None
    quick: bool = False              # each task's workload with its declared quick overrides (BenchFacts)
    overhead_steps: int = 12         # (Lightning, plain) step pairs per fit, after one warm-up pair
    overhead_fits: int = 2
    threads_blocks: int = 2          # interleaved blocks of 1 plain step at torch's default threads vs 1 thread
    overhead_tiny_steps: int = 30    # pairs for the framework's own per-step cost
    loader_epochs: int = 3
    fid_batch: int = 32
    fid_rounds: int = 3
    fid_ideas: tuple[str, ...] = ("inference_mode", "channels_last", "fold", "project", "half_batch", "threads")
    fid_ideas_batch: int = 16
    fid_cache_n: int = 64
    cb_val_images: int = 80
    cb_repeats: int = 4
    scale_overrides: tuple[str, ...] = ()
    scale_batch: int = 4
    scale_images: tuple[int, ...] = (8, 16, 32)
    scale_side_fixed: int = 96
    scale_sides: tuple[int, ...] = (48, 64, 96, 128)
    scale_images_fixed: int = 8
    scale_repeats: int = 3
    # row 7: short GAN jobs (2 epochs of 2,048 images, FID with 256 samples against 256
    # real images, whose statistics a warm-up job caches first), so that process start-up does not dominate
    sweep_overrides: tuple[str, ...] = ("task=gan", "seed=0", "data.max_images=2048", "trainer.max_epochs=2",
                                        "metrics.fid.num_fake=256", "metrics.fid.num_real=256",
                                        "metrics.checkerboard.val_num_samples=64")
    sweep_upsamplers: tuple[str, ...] = SWEEP_UPSAMPLERS
    sweep_repeats: int = 1
    sweep_sequential_threads: tuple[str | int, ...] = ("default",)  # "default", "bench" (this run's count), N


FULL = Settings(mode="full")
QUICK = Settings(
    mode="quick", quick=True, repeats=3, matmul_n=1024, up_batch=4, unet_batch=2,
    overhead_steps=16, overhead_fits=1, threads_blocks=2,
    loader_epochs=2,
    fid_batch=8, fid_rounds=3, fid_ideas=(), fid_ideas_batch=8, fid_cache_n=8,
    cb_val_images=8, cb_repeats=1,
    scale_batch=2, scale_images=(2, 4, 8), scale_side_fixed=64, scale_sides=(48, 96, 192), scale_images_fixed=2,
    scale_repeats=3,
    # quick: the row's code path on smoke jobs (start-up dominates them: not the measurement, see the full mode)
    sweep_overrides=("task=segmentation", "seed=0", "debug=smoke", "model.base_channels=8", "data.num_train=16",
                     "data.num_val=4"), sweep_repeats=1, sweep_sequential_threads=("bench",),
)
