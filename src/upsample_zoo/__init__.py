"""upsample-zoo: which upsampler should my decoder use, and what does it cost?"""
__version__ = "0.1.0"
