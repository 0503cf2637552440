"""GANTask: DCGAN training (non-saturating BCE, Adam 2e-4 / (0.5, 0.999), manual optimization),
fixed-z sample grids, FID and the checkerboard score at test time."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from upsample_zoo.conversions import to_uint8
from upsample_zoo.errors import ConfigError, DivergenceError
from upsample_zoo.figures import log_image, save_image_grid
from upsample_zoo.metrics.checkerboard import CheckerboardScore
from upsample_zoo.metrics.facts import MIN, MetricFact
from upsample_zoo.metrics.fid import CachedFID
from upsample_zoo.metrics.kid import KIDResult
from upsample_zoo.metrics.prdc import FACTS as PRDC_FACTS
from upsample_zoo.metrics.spectral_fd import SpectralFD
from upsample_zoo.models.dcgan import DCGAN, SAMPLE_BN_MODES, precise_bn  # noqa: F401 (precise_bn: tests)
from upsample_zoo.tasks.base import TRAINING_FACTS, ZooTask
from upsample_zoo.tasks.declarations import BenchData, BenchFacts, TaskDeclaration
from upsample_zoo.tasks.gan_evaluation import EvaluationState, GeneratorEvaluation
from upsample_zoo.tasks.gan_sampling import GeneratorSampling, rank_share

log = logging.getLogger(__name__)

GAN = TaskDeclaration(
    "gan",
    ("test/fid", "test/kid", "test/precision", "test/recall", "test/density", "test/coverage",
     "test/spectral_fd_shape", "test/spectral_fd_artifact", "test/checkerboard_db", "test/checkerboard_db_vs_ref",
     "test/spectral_fd"),  # the one-number spectral FD of runs made before it was split in two parts
    # the real-vs-real floors (gan_evaluation.py): the same value in every run of a sweep
    references={"test/fid": "test/fid_real_floor", "test/kid": "test/kid_real_floor",
                **{f"test/{k}": f"test/{k}_real_floor" for k in ("precision", "recall", "density", "coverage")},
                "test/spectral_fd_shape": "test/spectral_fd_shape_real_floor",
                "test/spectral_fd_artifact": "test/spectral_fd_artifact_real_floor",
                "test/spectral_fd": "test/spectral_fd_real_floor",
                "test/checkerboard_db": "test/checkerboard_db_ref", "test/checkerboard_db_vs_ref": None},
    records_spectra=True,
    bench=BenchFacts(
        tiny_overrides=("model.ngf=2", "model.ndf=2", "model.z_dim=8", "data.batch_size=2"),
        data={"synthetic": BenchData("cifar_synthetic (32x32 PNG folder)",
                                     ("data=cifar_synthetic", "data.root={root}", "data.num_train={images}",
                                      "data.num_test=64", "data.max_ref_images=64"), images=(2048, 256)),
              "image_folder": BenchData("image_folder (32x32 JPEG, class subfolders)",
                                        ("data=image_folder", "data.root={root}", "data.max_ref_images=64"),
                                        images=(2048, 256), writes_jpeg_folder=True)},
        checkerboard="composed"),
).with_facts(CachedFID, KIDResult, PRDC_FACTS, SpectralFD, CheckerboardScore, TRAINING_FACTS,
             {"loss_g": MetricFact(MIN, "generator loss"), "loss_d": MetricFact(MIN, "discriminator loss")})


class GANTask(GeneratorSampling, GeneratorEvaluation, ZooTask):
    declaration = GAN

    def __init__(
        self,
        model: DCGAN,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        spectral_reg_weight: float = 0.0,
        num_fake: int = 1000,
        num_real: int = 1000,
        fid_weights_path: str | None = None,
        cache_dir: str | None = None,
        val_fid_every_n_epochs: int = 0,
        val_num_samples: int = 256,
        sample_dir: str | None = None,
        sample_grid_size: int = 64,
        sample_seed: int = 1234,
        data_name: str = "unknown",
        sample_bn: str = "precise",
        sample_bn_batches: int = 20,
        sample_bn_batch_size: int = 128,
        compile: bool = False,  # noqa: A002 - model.compile: torch.compile in setup() (tasks/base.py)
    ) -> None:
        super().__init__(compile=compile)
        if sample_bn not in SAMPLE_BN_MODES:
            raise ConfigError(f"task.sample_bn={sample_bn!r} is not one of {', '.join(SAMPLE_BN_MODES)}")
        if int(sample_bn_batches) <= 0 or int(sample_bn_batch_size) <= 1:
            raise ConfigError(f"task.sample_bn_batches={sample_bn_batches} must be >= 1 and "
                              f"task.sample_bn_batch_size={sample_bn_batch_size} >= 2")
        self.save_hyperparameters(ignore=["model"])
        self.automatic_optimization = False
        self.model = model
        self.sample_dir = Path(sample_dir) if sample_dir else None
        gen = torch.Generator().manual_seed(sample_seed)
        self.register_buffer("fixed_z", torch.randn(sample_grid_size, model.z_dim, generator=gen), persistent=False)
        scale = model.generator.total_scale
        self.val_checkerboard = CheckerboardScore(scale=scale)
        self.test_checkerboard = CheckerboardScore(scale=scale)
        self._eval = EvaluationState()  # FID metric, real statistics, features: not module state
        self._sampling = False

    # -- training --------------------------------------------------------------------------------
    @property
    def generator(self) -> torch.nn.Module:
        return self.model.generator

    @property
    def discriminator(self) -> torch.nn.Module:
        return self.model.discriminator

    def compiled_modules(self) -> list[torch.nn.Module]:
        return [self.generator, self.discriminator]  # the steps call these, never DCGAN.forward

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.generator(z)

    def _check_finite(self, **losses: torch.Tensor) -> None:
        bad = {k: float(v) for k, v in losses.items() if not torch.isfinite(v)}
        if bad:
            raise DivergenceError(
                f"GAN diverged: non-finite {', '.join(f'{k}={v}' for k, v in bad.items())} at epoch "
                f"{self.current_epoch}, step {self.global_step}; the last good checkpoint is kept; lower "
                "task.lr or change the seed"
            )

    def fake_batch(self, n: int, device: torch.device) -> torch.Tensor:
        """n generated images from a fresh z (one draw from the global RNG): the fakes of one training step."""
        return self.generator(torch.randn(n, self.model.z_dim, device=device))

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, D(real) logits, D(fake) logits): BCE of the discriminator on real vs detached fake images."""
        d_real, d_fake = self.discriminator(real), self.discriminator(fake.detach())
        loss = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + \
            F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        return loss, d_real, d_fake

    def generator_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """The non-saturating generator loss, plus the spectral regulariser when ``spectral_reg_weight > 0``."""
        d_gen = self.discriminator(fake)
        loss = F.binary_cross_entropy_with_logits(d_gen, torch.ones_like(d_gen))
        if self.hparams.spectral_reg_weight > 0:
            from upsample_zoo.metrics.spectrum import spectral_loss

            loss = loss + self.hparams.spectral_reg_weight * spectral_loss(fake, real)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """One discriminator step, then one generator step on the same fakes (the losses above: a plain
        PyTorch loop that calls them in this order trains identically)."""
        real = batch[0] if isinstance(batch, (list, tuple)) else batch
        opt_g, opt_d = self.optimizers()
        fake = self.fake_batch(real.shape[0], self.device)

        loss_d, d_real, d_fake = self.discriminator_loss(real, fake)
        self._check_finite(loss_d=loss_d)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()

        loss_g = self.generator_loss(real, fake)
        self._check_finite(loss_g=loss_g)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()

        bs = real.shape[0]
        self.log_dict({"train/loss_d": loss_d, "train/loss_g": loss_g}, prog_bar=True, on_step=True,
                      on_epoch=True, batch_size=bs)
        self.log_dict({"train/d_real": torch.sigmoid(d_real).mean(), "train/d_fake": torch.sigmoid(d_fake).mean()},
                      on_step=False, on_epoch=True, batch_size=bs)

    def configure_optimizers(self):
        lr, betas = self.hparams.lr, tuple(self.hparams.betas)
        return (torch.optim.Adam(self.generator.parameters(), lr=lr, betas=betas),
                torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=betas))

    def plain_step(self) -> Callable[[Any], None]:
        """training_step's order as a plain loop: D on detached fakes, then G, each with its own Adam."""
        opt_g, opt_d = self.configure_optimizers()

        def step(real: torch.Tensor) -> None:
            fake = self.fake_batch(real.shape[0], real.device)
            for opt, loss in ((opt_d, lambda: self.discriminator_loss(real, fake)[0]),
                              (opt_g, lambda: self.generator_loss(real, fake))):
                opt.zero_grad(set_to_none=True)
                loss().backward()
                opt.step()
        return step

    @classmethod
    def synthetic_batches(cls, cfg, n: int, generator: torch.Generator) -> list:
        """Images in [-1, 1] at the configured size and batch."""
        bs, size = int(cfg.data.batch_size), int(cfg.data.image_size)
        return [torch.rand(bs, 3, size, size, generator=generator) * 2 - 1 for _ in range(n)]

    @classmethod
    def describe_workload(cls, cfg) -> str:
        up, size = cfg.upsampler._target_.rsplit(".", 1)[-1], cfg.data.image_size
        return (f"DCGAN ngf {cfg.model.ngf}, ndf {cfg.model.ndf}, upsampler {up}, "
                f"batch {cfg.data.batch_size}x3x{size}x{size}")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        real = batch[0] if isinstance(batch, (list, tuple)) else batch
        self.val_checkerboard.update(to_uint8(real), real=True)

    def on_validation_epoch_end(self) -> None:
        every = self.hparams.val_fid_every_n_epochs
        fid_due = every and (self.current_epoch + 1) % every == 0 and not self.trainer.sanity_checking
        with self.sampling(), torch.no_grad():  # one BN re-estimation for all of this epoch's samples
            grid = self.generator(self.fixed_z).float().cpu() if self.sample_dir is not None else None
            fake = self.sample(self.hparams.val_num_samples, seed=self.hparams.sample_seed + 1)
            fid_fake = self.sample(self.hparams.num_fake, seed=self.hparams.sample_seed + 2) if fid_due else None
        if grid is not None and self.global_rank == 0:
            path = save_image_grid(grid, self.sample_dir / "samples" / f"epoch_{self.current_epoch:03d}.png")
            log_image(self.loggers, "val/samples", path)
        self.val_checkerboard.update(to_uint8(rank_share(fake)).to(self.device))
        scores = self.val_checkerboard.compute()
        self.log("val/checkerboard_db", scores["checkerboard_db"].float())
        self.val_checkerboard.reset()
        if fid_fake is not None:
            self.log("val/fid", self.fid(fid_fake))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        real = batch[0] if isinstance(batch, (list, tuple)) else batch
        self.test_checkerboard.update(to_uint8(real), real=True)

    def on_test_epoch_end(self) -> None:
        from upsample_zoo.figures import save_azimuthal_figure, save_spectrum_figure
        from upsample_zoo.metrics.spectrum import azimuthal_spectrum

        n_fake = self.hparams.num_fake
        fake = self.sample(n_fake, seed=self.hparams.sample_seed + 3)  # one sample set for every test metric
        self.log("test/fid", self.fid(fake))
        self._log_feature_metrics(self._eval.fake_features, self._eval.real_stats.features)
        self.test_checkerboard.update(to_uint8(rank_share(fake)).to(self.device))
        for k, v in self.test_checkerboard.compute().items():
            self.log(f"test/{k}", v.float())
        stats = self._eval.real_stats
        self._eval.protocol = {"n_real": int(stats.n), "n_fake": n_fake}
        self._log_spectral_fd(to_uint8(fake))
        self._log_real_floor(n_fake)
        if self.sample_dir is not None and self.global_rank == 0:
            grid = save_image_grid(fake[:64], self.sample_dir / "samples.png")
            log_image(self.loggers, "test/samples", grid)
            spec = save_spectrum_figure(self.test_checkerboard.mean_power(),
                                        self.sample_dir / "spectrum_2d.png", "generated: mean log-power")
            ref = self._datamodule().reference_images(limit=min(self.hparams.num_real, 2000))
            curves = {"generated": azimuthal_spectrum(to_uint8(fake)), "real": azimuthal_spectrum(ref)}
            self._eval.spectrum = {"freqs": curves["generated"].freqs.tolist(),
                                            "power": curves["generated"].mean.tolist(),  # linear power
                                            "real": curves["real"].mean.tolist()}
            az = save_azimuthal_figure({k: (v.freqs, v.mean) for k, v in curves.items()},
                                       self.sample_dir / "spectrum_azimuthal.png")
            log_image(self.loggers, "test/spectrum_2d", spec)
            log_image(self.loggers, "test/spectrum_azimuthal", az)
        self.test_checkerboard.reset()
