"""The upsampler zoo: one small nn.Module per operator (one module per family, like timm's ``layers/``),
one shared contract in :mod:`upsample_zoo.upsamplers.base`. The configs in ``configs/upsampler/`` name these
classes; :mod:`upsample_zoo.zoo` reads them."""

from upsample_zoo.upsamplers.additive import BilinearAdditive
from upsample_zoo.upsamplers.base import (
    SUPPORTED_SCALES,
    Upsampler,
    accepts_guide,
    conv_output_size,
    fit_to_size,
    needs_guide,
    tconv_output_size,
    upsampler_modules,
    upsampler_parameters,
    upsampler_stages,
)
from upsample_zoo.upsamplers.bilateral import JBF, JBU
from upsample_zoo.upsamplers.carafe import CARAFE, carafe_reassemble
from upsample_zoo.upsamplers.dysample import DySample
from upsample_zoo.upsamplers.fade import FADE
from upsample_zoo.upsamplers.fir import FIRSincUp, TConvBlurUp
from upsample_zoo.upsamplers.freqfusion import FreqFusion
from upsample_zoo.upsamplers.interp import InterpConv, ResizeConv
from upsample_zoo.upsamplers.pixel_shuffle import PixelShuffleUp
from upsample_zoo.upsamplers.sapa import SAPA
from upsample_zoo.upsamplers.tconv import TransposedConv

__all__ = [
    "CARAFE",
    "SUPPORTED_SCALES",
    "BilinearAdditive",
    "DySample",
    "FADE",
    "FIRSincUp",
    "FreqFusion",
    "InterpConv",
    "JBF",
    "JBU",
    "PixelShuffleUp",
    "ResizeConv",
    "SAPA",
    "TConvBlurUp",
    "TransposedConv",
    "Upsampler",
    "accepts_guide",
    "needs_guide",
    "carafe_reassemble",
    "conv_output_size",
    "fit_to_size",
    "tconv_output_size",
    "upsampler_modules",
    "upsampler_parameters",
    "upsampler_stages",
]
