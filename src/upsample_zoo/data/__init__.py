"""Data modules: VOC segmentation, CIFAR-10 / image folders, and their synthetic stand-ins."""

from upsample_zoo.faces import lazy_faces

_FACES = {
    "VOCDataModule": "voc",
    "SyntheticVOCDataModule": "voc_synthetic",
    "ImageFolderDataModule": "image_folder",
    "CIFAR10DataModule": "cifar10",
    "SyntheticImageDataModule": "cifar_synthetic",
}
__all__ = sorted(_FACES)
__getattr__ = lazy_faces(__name__, _FACES)
