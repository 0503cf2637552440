"""Models that take their upsampler as configuration."""

from upsample_zoo.faces import lazy_faces

_FACES = {"UNet": "unet", "DCGAN": "dcgan", "ResNetEncoder": "encoders", "InceptionV3Encoder": "encoders"}
__all__ = sorted(_FACES)
__getattr__ = lazy_faces(__name__, _FACES)
