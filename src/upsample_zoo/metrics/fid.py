"""FID that works offline: the metric on the resolved weights, a real-statistics cache and the protocol string.

The metric is torchmetrics' ``FrechetInceptionDistance(feature=2048)``, which runs torch-fidelity's
InceptionV3 (the TF 2015-12-05 FID weights, pool3 features). Images are uint8 (N, 3, H, W) of any size;
they are resized to 299x299 with torch-fidelity's TF1-compatible bilinear resize (``antialias=False``),
as the reference TF / torch-fidelity FID does.

Weights: :mod:`upsample_zoo.metrics.fid_weights` (``resolve_fid_weights``), resolved when the run is built.

API (``to_uint8`` from :mod:`upsample_zoo.conversions`)::

    metric = build_fid_metric(cache_dir, weights_path=None, device="cpu")   # FrechetInceptionDistance
    stats = load_or_compute_real_stats(metric, cache_dir,
                                       {"dataset": "cifar_synthetic", "split": "train", "n_real": 1000,
                                        "resolution": 32, "fingerprint": dm.describe()["ref_fingerprint"]},
                                       real_batches=lambda: (to_uint8(x) for x, _ in loader))
    for z in ...: metric.update(to_uint8(generator(z)), real=False)
    fid = float(metric.compute()); metric.reset()          # the real statistics survive reset()
    fid_protocol(stats.n, n_fake, "train", metric.fid_weights.label)         # -> results.json protocol.fid
    compute_fid(real_uint8, fake_uint8)                                      # any two image sets

Real statistics (mean and covariance of the real features, ``mu``/``sigma`` in an ``.npz`` like
pytorch-fid's) live in ``<cache_dir>/fid_stats/``, keyed by dataset, split, n_real, resolution, the
fingerprint of the reference images (required), feature extractor, weights digest, device type, precision
flags (TF32 / float32 matmul precision, dtypes: on GPU cuDNN convs run in TF32 by default, so CPU and GPU
statistics differ) and library versions (torch, torchvision, Pillow, torchmetrics, torch-fidelity). The
first job computes them under a file lock and writes them atomically; every later job (and every concurrent
one waiting on the lock) loads them and skips the real pass. Under DDP the real states are filled on global
rank 0 only, so the metric's sum-reduction counts them once.

Speed: ``build_fid_metric`` folds every eval-mode BatchNorm of the frozen Inception into the conv before
it and stores the network channels-last (``speed_up_inception``). Features stay within 1e-5 of torchmetrics'
own path (the bench requires 1e-4). ``upsample-zoo bench`` measures it against torchmetrics' default path on
the same images (``fid_speedup``; its figures are in docs/performance.md, row 4). Inception needs 11.4 GFLOP
per image, and each ``compute()`` takes the eigenvalues of a 2048x2048 matrix.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from filelock import FileLock
from torchmetrics.image.fid import FrechetInceptionDistance

from upsample_zoo.atomic import atomic_write_bytes
from upsample_zoo.errors import ConfigError, DataError
from upsample_zoo.metrics.facts import MIN, MetricFact
from upsample_zoo.metrics.fid_weights import TF_WEIGHTS_LABEL, default_cache_dir, resolve_fid_weights
from upsample_zoo.metrics.frechet import frechet_distance as gaussian_frechet_distance
from upsample_zoo.metrics.frechet import gaussian_from_sums

log = logging.getLogger(__name__)

RESIZE = "resize 299 bilinear TF1-compatible (torch-fidelity)"
EXTRACTOR = "torch-fidelity InceptionV3 pool3, " + RESIZE
STATS_FORMAT = 2  # 2: the features themselves are stored too (KID, precision/recall); 1-entries are rebuilt


@dataclass(frozen=True)
class RealStats:
    mu: np.ndarray
    sigma: np.ndarray
    n: int
    path: Path
    cached: bool  # True when loaded from the cache, False when computed by this call
    features: np.ndarray | None = None  # (n, d) float32: what KID and the k-NN metrics need


# ----------------------------------------------------------------------------------------------- metric

def fold_batchnorm(module: torch.nn.Module) -> int:
    """Fold each eval-mode BatchNorm of torch-fidelity's ``BasicConv2d`` (conv -> bn -> relu) into its conv.

    ``conv'(x) = bn(conv(x))`` with ``w' = w * g / sqrt(var + eps)`` and ``b' = beta - mean * g / sqrt(var + eps)``:
    the same function (to float32 rounding), one pass over the activations instead of two. The BatchNorm
    becomes an ``nn.Identity``. Returns the number of folded blocks.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    folded = 0
    for block in module.modules():
        if isinstance(block, BasicConv2d) and isinstance(block.bn, torch.nn.BatchNorm2d):
            if block.bn.training or block.conv.training:
                raise ValueError("fold_batchnorm needs eval-mode modules (running statistics)")
            block.conv = fuse_conv_bn_eval(block.conv, block.bn)
            block.bn = torch.nn.Identity()
            folded += 1
    return folded


def speed_up_inception(inception: torch.nn.Module, channels_last: bool = True) -> torch.nn.Module:
    """The project's extraction path, in place: BatchNorm folded into the convs and, by default, weights in
    channels-last memory format (oneDNN's native layout on CPU, Tensor Cores' on GPU; the convs then
    produce channels-last activations from a plain NCHW input). Measured by ``upsample-zoo bench``
    against torchmetrics' default path: features equal within 1e-4 (about 1e-5 in practice)."""
    fold_batchnorm(inception)
    if channels_last:
        inception.to(memory_format=torch.channels_last)
    return inception


class CachedFID(FrechetInceptionDistance):
    """torchmetrics FID on the resolved weights (``fid_weights``: a FIDWeights, for the stats key and the
    protocol), keeping real statistics across reset(), with real statistics loadable from the cache.

    Its frozen Inception stays out of ``state_dict()`` (Lightning checkpoints would grow by 96 MB each);
    loading a state dict without it keeps the current weights, so strict loads still work. With ``fast``
    (the default) the Inception is sped up by :func:`speed_up_inception` (same features within 1e-4).
    """

    facts: ClassVar[dict[str, MetricFact]] = {
        "fid": MetricFact(MIN, "FID", "Fréchet distance of the Inception pool features of generated vs real images "
                          "(Heusel et al. 2017), on the resolved FID weights"),
    }

    def __init__(self, cache_dir: str | os.PathLike, weights_path: str | os.PathLike | None = None,
                 num_features: int = 2048, fast: bool = True, **kwargs: Any) -> None:
        weights = resolve_fid_weights(cache_dir, weights_path)
        super().__init__(feature=num_features, reset_real_features=False, antialias=False,
                         feature_extractor_weights_path=str(weights.path), **kwargs)
        self.fid_weights = weights
        if fast:
            speed_up_inception(self.inception)

        from upsample_zoo.models.encoders import exclude_from_checkpoints

        exclude_from_checkpoints(self.inception)

    def load_real_stats(self, stats: RealStats) -> None:
        """The real side from cached (or just computed) statistics: no real image goes through the network."""
        set_real_stats(self, stats.mu, stats.sigma, stats.n)


def build_fid_metric(cache_dir: str | os.PathLike, weights_path: str | os.PathLike | None = None,
                     device: str | torch.device = "cpu", num_features: int = 2048,
                     fast: bool = True) -> CachedFID:
    """A :class:`CachedFID` on ``device``."""
    return CachedFID(cache_dir, weights_path, num_features, fast).to(device)


def fid_protocol(n_real: int, n_fake: int, ref_split: str, weights_label: str = TF_WEIGHTS_LABEL,
                 num_features: int = 2048) -> str:
    """The one-line protocol stamped into results.json (``protocol.fid``)."""
    return (f"torchmetrics FID, InceptionV3 ({weights_label}), {num_features}-d, {RESIZE}, "
            f"n_real={n_real}, n_fake={n_fake}, ref={ref_split}")


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """The Fréchet distance between two Gaussians (numpy or torch), as a float (upsample_zoo.metrics.frechet)."""
    t = [torch.as_tensor(np.asarray(a), dtype=torch.float64) for a in (mu1, sigma1, mu2, sigma2)]
    return float(gaussian_frechet_distance(*t))


def _images(x: torch.Tensor, name: str, at_least: int = 1) -> torch.Tensor:
    if not (torch.is_tensor(x) and x.dtype == torch.uint8 and x.dim() == 4 and x.shape[1] == 3):
        got = f"{x.dtype} {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__
        raise ConfigError(f"FID: {name} must be a uint8 tensor (N, 3, H, W) (see to_uint8), got {got}")
    if len(x) < at_least:
        raise ConfigError(f"FID: {name} needs at least {at_least} images, got {len(x)}")
    return x


def compute_fid(real: torch.Tensor, fake: torch.Tensor, num_features: int = 2048, *,
                cache_dir: str | os.PathLike | None = None, weights_path: str | os.PathLike | None = None,
                device: str | torch.device | None = None, batch_size: int = 50) -> float:
    """FID between two uint8 (N, 3, H, W) image sets, with the training-time weights, resize and protocol.

    cache_dir defaults to the app's ``${paths.cache_dir}``: ``$UPSAMPLE_ZOO_ROOT/.cache`` (or ``./.cache``).
    """
    real, fake = _images(real, "real", 2), _images(fake, "fake", 2)
    if cache_dir is None:
        cache_dir = default_cache_dir()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    metric = build_fid_metric(cache_dir, weights_path, device, num_features)
    with torch.inference_mode():
        for images, is_real in ((real, True), (fake, False)):
            for batch in images.split(batch_size):
                metric.update(batch.to(device), real=is_real)
        return float(metric.compute())


# ------------------------------------------------------------------------------------ real-stats cache

# torch.backends flags that change float32 conv / matmul results (TF32, bf16): the legacy allow_tf32 pair
# and, from torch 2.9, the per-backend fp32_precision of the new API (absent on older torch: left out).
PRECISION_FLAGS = ("cuda.matmul.allow_tf32", "cudnn.allow_tf32", "fp32_precision", "cuda.matmul.fp32_precision",
                   "cudnn.conv.fp32_precision", "mkldnn.matmul.fp32_precision", "mkldnn.conv.fp32_precision")


def _backend_flag(path: str) -> bool | str | None:
    obj = torch.backends
    try:
        for part in path.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        return None  # not in this torch version
    except RuntimeError:
        return "mixed"  # the legacy cudnn getter refuses when conv and rnn flags differ (mixed old/new API)
    return obj if isinstance(obj, str) else bool(obj)


def compute_settings(metric: FrechetInceptionDistance) -> dict:
    """Where and in which precision the metric extracts features: part of the real-statistics key."""
    param = next(iter(metric.inception.parameters()), None)
    flags = {path: _backend_flag(path) for path in PRECISION_FLAGS}
    flags = {k: v for k, v in flags.items() if v is not None}
    flags["float32_matmul_precision"] = torch.get_float32_matmul_precision()
    flags["extractor_dtype"] = str(param.dtype) if param is not None else None
    flags["state_dtype"] = str(metric.real_features_sum.dtype)
    return {"device": metric.real_features_sum.device.type, "precision": flags}


def stats_key(metric: FrechetInceptionDistance, key_parts: dict) -> dict:
    """The full cache key: the caller's data description plus what the metric itself determines."""
    missing = {"dataset", "split", "n_real", "resolution", "fingerprint"} - set(key_parts)
    if missing:
        raise ConfigError(f"FID stats key is missing {sorted(missing)}")
    if not key_parts["fingerprint"]:
        raise ConfigError(f"FID stats key needs the reference images' fingerprint, got {key_parts['fingerprint']!r}: "
                          "pass the data module's describe()['ref_fingerprint'] after setup()")
    weights = getattr(metric, "fid_weights", None)
    if weights is None:
        raise ConfigError("the FID metric has no fid_weights: build it with build_fid_metric()")
    return {**key_parts, "extractor": EXTRACTOR, "features": int(metric.real_features_sum.numel()),
            "weights": weights.digest, **compute_settings(metric), "torch": str(torch.__version__),
            "torchvision": version("torchvision"), "pillow": version("pillow"),
            "torchmetrics": version("torchmetrics"), "torch_fidelity": version("torch-fidelity"),
            "format": STATS_FORMAT}


def stats_path(cache_dir: str | os.PathLike, key: dict) -> Path:
    d, s, n, r = (re.sub(r"[^A-Za-z0-9_.]+", "_", str(key[k])).strip("_")
                  for k in ("dataset", "split", "n_real", "resolution"))
    h = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(cache_dir) / "fid_stats" / f"{d}-{s}-n{n}-r{r}-{h}.npz"


def _read_stats(path: Path, key: dict) -> RealStats | None:
    """The cached statistics, or None (with a warning) when unreadable, for another key or invalid."""
    try:
        with np.load(path, allow_pickle=False) as z:
            same_key = str(z["key"]) == json.dumps(key, sort_keys=True)
            mu, sigma, n = z["mu"], z["sigma"], int(z["n"])
            feats = z["features"] if "features" in z.files else None
    except Exception as e:  # noqa: BLE001 - unreadable / truncated / wrong layout: recompute
        log.warning("unreadable FID statistics %s (%s): recomputing", path, e)
        return None
    d = key["features"]
    if same_key and mu.shape == (d,) and sigma.shape == (d, d) and n >= 2 and np.isfinite(sigma).all() \
            and feats is not None and feats.shape == (n, d):
        return RealStats(mu, sigma, n, path, cached=True, features=feats)
    log.warning("FID statistics %s do not match their key or are invalid: recomputing", path)
    return None


@contextlib.contextmanager
def captured_features(metric: FrechetInceptionDistance) -> Iterator[list[torch.Tensor]]:
    """The Inception features the metric computes inside the block, as float32 CPU tensors (a forward hook):
    KID and the k-NN metrics read the very features FID summed, with no second pass over the images."""
    out: list[torch.Tensor] = []
    handle = metric.inception.register_forward_hook(lambda m, i, o: out.append(o.detach().float().cpu()))
    try:
        yield out
    finally:
        handle.remove()


def _real_pass(metric: FrechetInceptionDistance, real_batches: Callable[[], Iterable[torch.Tensor]],
               n_real: int) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
    """Features of up to n_real real images through the metric itself; returns (mu, sigma, n, features)."""
    with torch.inference_mode(False):  # fresh plain tensors: safe inside and outside Lightning's inference mode
        for name in ("real_features_sum", "real_features_cov_sum", "real_features_num_samples"):
            setattr(metric, name, torch.zeros_like(getattr(metric, name)))
    device = metric.real_features_sum.device
    with torch.inference_mode(), captured_features(metric) as feats:
        for batch in real_batches():
            left = n_real - int(metric.real_features_num_samples)
            if left <= 0:
                break
            metric.update(_images(batch[:left], "a real batch").to(device), real=True)
    n = int(metric.real_features_num_samples)
    if n < 2:
        raise DataError(f"FID real statistics need at least 2 real images, got {n}")
    if n < n_real:
        log.warning("FID real statistics: only %d of n_real=%d images available", n, n_real)
    s, ss = metric.real_features_sum.cpu().double(), metric.real_features_cov_sum.cpu().double()
    mu, sigma = gaussian_from_sums(s, ss, n)
    return mu.numpy(), sigma.numpy(), n, torch.cat(feats).numpy()


def set_real_stats(metric: FrechetInceptionDistance, mu: np.ndarray, sigma: np.ndarray, n: int) -> None:
    """Fill the metric's real-feature states (sums) from a mean and covariance."""
    ref = metric.real_features_sum
    rank0 = not (torch.distributed.is_available() and torch.distributed.is_initialized()
                 and torch.distributed.get_rank() != 0)
    w = 1.0 if rank0 else 0.0  # DDP sums the states over ranks: count them once
    with torch.inference_mode(False):  # plain tensors, even when called under Lightning's inference mode
        mu_t = torch.as_tensor(mu, dtype=torch.float64, device=ref.device)
        sigma_t = torch.as_tensor(sigma, dtype=torch.float64, device=ref.device)
        metric.real_features_sum = w * n * mu_t
        metric.real_features_cov_sum = w * (sigma_t * (n - 1) + n * torch.outer(mu_t, mu_t))
        metric.real_features_num_samples = torch.tensor(int(w) * n, dtype=torch.long, device=ref.device)


def load_or_compute_real_stats(metric: FrechetInceptionDistance, cache_dir: str | os.PathLike, key_parts: dict,
                               real_batches: Callable[[], Iterable[torch.Tensor]]) -> RealStats:
    """Fill ``metric``'s real statistics from ``<cache_dir>/fid_stats/``, computing them once if absent.

    key_parts needs dataset, split, n_real, resolution and fingerprint (a hash of the reference images, e.g.
    the data module's ``describe()["ref_fingerprint"]``; None is refused). ``real_batches()`` is called only on a cache
    miss and yields uint8 (B, 3, H, W) batches; the first n_real images are used. Concurrent callers wait
    on a file lock, so one job computes and the others load.
    """
    stats = cached_real_stats(metric, cache_dir, key_parts, real_batches)
    set_real_stats(metric, stats.mu, stats.sigma, stats.n)
    return stats


def cached_real_stats(metric: FrechetInceptionDistance, cache_dir: str | os.PathLike, key_parts: dict,
                      real_batches: Callable[[], Iterable[torch.Tensor]]) -> RealStats:
    """The Inception statistics of a real image set, from the cache or computed once (as in
    ``load_or_compute_real_stats``). A computation goes through the metric's real states, so they hold these
    images afterwards: call ``set_real_stats`` to put the reference back."""
    key = stats_key(metric, key_parts)
    path = stats_path(cache_dir, key)
    stats = _read_stats(path, key) if path.exists() else None
    if stats is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(path) + ".lock"):
            stats = _read_stats(path, key) if path.exists() else None
            if stats is None:
                t0 = time.perf_counter()
                mu, sigma, n, feats = _real_pass(metric, real_batches, int(key["n_real"]))
                buf = io.BytesIO()
                np.savez(buf, mu=mu, sigma=sigma, n=np.int64(n), features=feats,
                         key=np.str_(json.dumps(key, sort_keys=True)))
                atomic_write_bytes(path, buf.getvalue())
                log.info("FID real statistics: %d images and their features (%.1f MB) in %.1f s -> %s", n,
                         len(buf.getvalue()) / 1e6, time.perf_counter() - t0, path)
                stats = RealStats(mu, sigma, n, path, cached=False, features=feats)
    return stats
