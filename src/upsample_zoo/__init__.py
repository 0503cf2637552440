"""upsample-zoo: which upsampler should my decoder use, and what does it cost?

The zoo as a library (no Hydra in your code)::

    import upsample_zoo as uz
    uz.list_upsamplers()                      # the names in configs/upsampler/*.yaml
    up = uz.create_upsampler("carafe", 64, 32)
    uz.check_upsampler(MyUp)                  # the zoo's contract, for your own operator's tests
"""

__version__ = "0.1.0"  # the one place: pyproject.toml reads it (dynamic version)

__all__ = ["__version__", "check_upsampler", "create_upsampler", "list_upsamplers"]


def __getattr__(name: str):
    # lazy: `import upsample_zoo` (the CLI, --version) does not import torch
    if name in ("check_upsampler", "create_upsampler", "list_upsamplers"):
        from upsample_zoo import zoo

        return getattr(zoo, name)
    raise AttributeError(f"module 'upsample_zoo' has no attribute {name!r}")
