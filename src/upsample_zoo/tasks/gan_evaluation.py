"""The GAN task's evaluation: FID against cached real statistics, KID and the k-NN metrics from the same
Inception features, the spectral FD, the real-vs-real floors, and the protocol strings of results.json. A mixin
of GANTask; what it holds between calls is an ``EvaluationState`` with typed fields, kept out of the module tree
(checkpoints carry no Inception)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from upsample_zoo.conversions import to_uint8
from upsample_zoo.data.extras import HasReferenceImages
from upsample_zoo.metrics.fid import CachedFID, RealStats, captured_features
from upsample_zoo.metrics.fid_weights import default_cache_dir
from upsample_zoo.metrics.kid import feature_metrics, gathered
from upsample_zoo.tasks.gan_sampling import rank_share

log = logging.getLogger("upsample_zoo.tasks.gan")


@dataclass
class EvaluationState:
    fid: CachedFID | None = None  # built on first use
    real_stats: RealStats | None = None  # the reference set's Inception statistics and features
    ref_split: str = "train"
    fake_features: torch.Tensor | None = None  # the last FID call's generated features (KID, k-NN metrics)
    spectrum: dict[str, Any] | None = None  # azimuthal spectra of the test samples and the reference
    protocol: dict[str, Any] = field(default_factory=dict)  # n_real, n_fake, n_real_spectral, floor


class GeneratorEvaluation:
    _eval: EvaluationState

    def _datamodule(self):
        return getattr(self.trainer, "datamodule", None)

    def prepare_evaluation(self, datamodule=None) -> None:
        """Before training: verify the FID weights, choose the floor's real images (a corrupt one named or skipped)."""
        from upsample_zoo.metrics.fid_weights import resolve_fid_weights

        resolve_fid_weights(self._cache_dir(), self.hparams.fid_weights_path)
        if isinstance(datamodule, HasReferenceImages):
            datamodule.floor_set(self.hparams.num_fake)

    def _cache_dir(self):
        return self.hparams.cache_dir or default_cache_dir()

    def _fid_metric(self):
        """Built on first use and kept out of the module tree, so checkpoints don't carry Inception."""
        if self._eval.fid is None:
            from upsample_zoo.metrics.fid import build_fid_metric

            self._eval.fid = build_fid_metric(
                self._cache_dir(), weights_path=self.hparams.fid_weights_path, device=self.device
            )
        return self._eval.fid

    def _fill_real_stats(self) -> None:
        from upsample_zoo.metrics.fid import load_or_compute_real_stats

        dm = self._datamodule()
        ref = dm.reference_images(limit=self.hparams.num_real)  # first: it runs setup(), which the fingerprint needs
        info = dm.describe()
        key = {"dataset": info["name"], "split": info["ref_split"], "n_real": int(ref.shape[0]),
               "resolution": int(ref.shape[-1]), "fingerprint": info.get("ref_fingerprint")}
        stats = load_or_compute_real_stats(self._fid_metric(), self._cache_dir(), key,
                                           real_batches=lambda: ref.split(100))
        self._eval.real_stats = stats
        self._eval.ref_split = info["ref_split"]

    def fid(self, fake: torch.Tensor) -> float:
        """FID of generated images in [-1, 1] against the cached real statistics."""
        metric = self._fid_metric()
        if self._eval.real_stats is None:
            self._fill_real_stats()
        metric.reset()  # fake states only: the real statistics survive reset()
        with captured_features(metric) as feats:  # the same forward pass gives KID and the k-NN metrics
            for chunk in rank_share(fake).split(100):
                metric.update(to_uint8(chunk).to(metric.device), real=False)
        self._eval.fake_features = gathered(torch.cat(feats))
        return float(metric.compute())

    def _log_feature_metrics(self, fake: torch.Tensor, real: np.ndarray, suffix: str = "") -> None:
        """test/kid, test/kid_se (x 10³), test/precision, recall, density, coverage (metrics/kid.py, prdc.py)."""
        for k, v in feature_metrics(fake, torch.from_numpy(real)).items():
            self.log(f"test/{k}{suffix}", v)

    def _log_spectral_fd(self, images: torch.Tensor, suffix: str = "") -> None:
        """test/spectral_fd_shape{suffix} (log azimuthal spectrum: blur) and test/spectral_fd_artifact{suffix}
        (Nyquist and aliasing bins of every period of the strides: checkerboards) of uint8 ``images`` vs the real
        reference (docs/spectral_metrics.md). Each rank adds its rank_share; compute() sums over ranks."""
        from upsample_zoo.metrics.spectral_fd import SpectralFD

        ref = self._datamodule().reference_images(limit=self.hparams.num_real)
        if ref.shape[0] >= 2 and images.shape[0] >= 2:
            metric = SpectralFD(scale=self.generator.total_scale).to(self.device)
            metric.update(rank_share(ref).to(self.device), real=True)
            metric.update(rank_share(images).to(self.device), real=False)
            for part, value in metric.compute().items():
                self.log(f"test/spectral_fd_{part}{suffix}", float(value))
            self._eval.protocol["n_real_spectral"] = int(ref.shape[0])

    def _log_real_floor(self, n: int) -> None:
        """The floors that no generator can beat at this n, by the same code as the generator's scores:
        ``test/fid_real_floor`` and ``test/spectral_fd_{shape,artifact}_real_floor`` score n real images of the
        reference split outside the reference set (``floor_set``) exactly as the n generated ones are scored (their
        Inception statistics cached like the reference's). A split with fewer such images is scored at the n it
        has, with a warning; the protocol records both (``real_floor_n``, ``real_floor_n_requested``)."""
        from upsample_zoo.metrics.fid import cached_real_stats, frechet_distance, set_real_stats

        dm = self._datamodule()
        if not isinstance(dm, HasReferenceImages):
            return
        floor = dm.floor_set(n)
        scored = len(floor) if len(floor) >= 2 else 0
        what = (f"n={scored} real images of the reference split outside the reference set" if scored else
                "not scored: fewer than 2 real images outside the reference set") + \
            (f", FEWER than the {n} generated (all the split has)" if len(floor) < n else "")
        names = "test/fid_real_floor, test/spectral_fd_shape_real_floor, test/spectral_fd_artifact_real_floor"
        self._eval.protocol["floor"] = {
            "real_floor": f"{names}: {what}; test/checkerboard_db_ref: the checkerboard score of the reference images",
            "real_floor_n": scored, "real_floor_n_requested": int(n)}
        if len(floor) < n:
            log.warning(f"real-vs-real floor: {what}; lower data.max_ref_images or task.num_fake to score it at n={n}")
        if not scored:
            return
        real = torch.stack([floor.load_uint8(i) for i in range(len(floor))])
        info, ref = dm.describe(), self._eval.real_stats
        key = {"dataset": info["name"], "split": f"{info['ref_split']}-floor", "n_real": len(floor),
               "resolution": int(real.shape[-1]), "fingerprint": floor.fingerprint()}
        metric = self._fid_metric()
        stats = cached_real_stats(metric, self._cache_dir(), key, lambda: real.split(100))
        set_real_stats(metric, ref.mu, ref.sigma, ref.n)  # a computation went through the real states
        self.log("test/fid_real_floor", frechet_distance(stats.mu, stats.sigma, ref.mu, ref.sigma))
        self._log_feature_metrics(torch.from_numpy(stats.features), ref.features, "_real_floor")
        self._log_spectral_fd(real, "_real_floor")

    def spectrum(self) -> dict | None:
        """The azimuthal spectra of the test samples and the real reference, for the comparison report."""
        return self._eval.spectrum

    def protocol(self) -> dict:
        from upsample_zoo.metrics.fid import fid_protocol

        p = self._eval.protocol
        if not p:
            return {}
        weights = self._fid_metric().fid_weights
        out = {
            "fid": fid_protocol(p["n_real"], p["n_fake"], self._eval.ref_split, weights.label),
            "fid_weights": {"source": weights.source, "digest": weights.digest},
            "samples": self.sampling_protocol(),
            "checkerboard": "upsample_zoo.metrics.checkerboard, scale 8 (3 x2 stages), generated uint8 samples vs "
            "real reference images of the same size",
            "spectral_fd": f"metrics.spectral_fd.SpectralFD(scale={self.generator.total_scale}), n_fake={p['n_fake']} "
            f"generated vs n_real={p.get('n_real_spectral', 0)} real reference images: test/spectral_fd_shape (blur) "
            "of the log azimuthal spectrum, test/spectral_fd_artifact (checkerboards) of log(1 + P/ring mean) at the "
            "Nyquist and aliasing bins of every period dividing the scale (docs/spectral_metrics.md)",
            **p.get("floor", {}),  # real_floor (text), real_floor_n (scored), real_floor_n_requested (generated)
        }
        return out
