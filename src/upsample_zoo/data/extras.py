"""What a data module may offer beyond a LightningDataModule, as typing Protocols: a task or ``train.py`` asks
``isinstance(dm, Describes)`` (runtime-checkable: the methods are there), never ``hasattr`` with a string.

- ``Describes``: ``describe()``, the subset a run used (results.json ``dataset``);
- ``HasReferenceImages``: the real images a generation task scores against (``reference_images``) and the
  disjoint real set of its real-vs-real floor (``floor_set``);
- ``CachesEncoderFeatures``: a frozen encoder's per-image feature cache (``use_encoder_cache``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Describes(Protocol):
    def describe(self) -> dict[str, Any]: ...


@runtime_checkable
class HasReferenceImages(Protocol):
    def reference_images(self, limit: int | None = None) -> Any: ...

    def floor_set(self, n: int) -> Any: ...


@runtime_checkable
class CachesEncoderFeatures(Protocol):
    def use_encoder_cache(self, encoder: Any, cache_dir: str) -> None: ...
