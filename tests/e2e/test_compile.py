"""model.compile=true: torch.compile gives the same outputs as eager on CPU."""

from __future__ import annotations

import functools

import torch

from upsample_zoo.models.unet import UNet
from upsample_zoo.upsamplers import TransposedConv

from ..helpers.cli import compose_cfg


def test_compiled_unet_matches_eager():
    torch.manual_seed(0)
    model = UNet(functools.partial(TransposedConv), num_classes=3, base_channels=4, depth=2).eval()
    x = torch.randn(2, 3, 20, 28)
    with torch.no_grad():
        eager = model(x)
        model.compile()
        compiled = model(x)
    assert torch.allclose(eager, compiled, atol=1e-5, rtol=1e-4)
    assert not any(k.startswith("_orig_mod") for k in model.state_dict())


def _task(overrides, tmp_path):
    from hydra.utils import instantiate

    from upsample_zoo.models.build import build_model

    cfg = compose_cfg(overrides, tmp_path)
    return instantiate(cfg.task, model=build_model(cfg), _convert_="all")


def test_model_compile_is_the_task_setup_switch(zoo_root, tmp_path):
    """`model.compile` is not a model argument (the U-Net takes none: passing it on would be a TypeError): the
    builder leaves the model eager, and the task's setup() compiles it in place, on, and only on, true."""
    import inspect

    assert "compile" not in inspect.signature(UNet).parameters
    for flag, compiled in (("false", False), ("true", True)):
        task = _task(["debug=smoke", f"model.compile={flag}", "model.base_channels=4"], tmp_path)
        assert isinstance(task.model, UNet) and task.model._compiled_call_impl is None, flag  # built eager
        task.setup("fit")
        assert (task.model._compiled_call_impl is not None) is compiled, flag


def test_gan_compile_reaches_generator_and_discriminator(zoo_root, tmp_path):
    task = _task(["task=gan", "model.compile=true", "model.ngf=4", "model.ndf=4"], tmp_path)
    task.setup("fit")
    model = task.model.eval()
    assert model.generator._compiled_call_impl is not None
    assert model.discriminator._compiled_call_impl is not None
    torch.manual_seed(0)
    z = torch.randn(2, model.z_dim)
    with torch.no_grad():
        compiled = model.generator(z)
        model.generator._compiled_call_impl = None  # back to eager, same weights
        eager = model.generator(z)
    assert torch.allclose(eager, compiled, atol=1e-5, rtol=1e-4)
