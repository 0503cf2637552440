"""LightningModules: losses, steps, metric logging, figures."""

from upsample_zoo.faces import lazy_faces

_FACES = {"SegmentationTask": "segmentation", "GANTask": "gan", "ZooTask": "base", "TaskDeclaration": "declarations"}
__all__ = sorted(_FACES)
__getattr__ = lazy_faces(__name__, _FACES)
