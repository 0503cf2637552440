"""Package faces: ``upsample_zoo.data.CIFAR10DataModule`` instead of the module that holds the class today.

The configs name these faces in their ``_target_``, so moving a class to another module changes neither a
config nor the config hash that lets a sweep resume. Lazy (PEP 562): naming one face imports only the
module that holds it, never the whole package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_faces(package: str, faces: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that serves each name in ``faces`` (name -> submodule)."""

    def __getattr__(name: str) -> Any:
        if name in faces:
            return getattr(importlib.import_module(f"{package}.{faces[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
