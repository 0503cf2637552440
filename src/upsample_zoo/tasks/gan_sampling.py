"""How the GAN task draws its samples: the ``task.sample_bn`` protocol (precise BN by default) around seeded z,
every evaluation's one way to sample (FID, KID, the checkerboard score, the grids), and its description for
results.json. A mixin of GANTask, which holds the generator (``self.model``) and the hyperparameters."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from upsample_zoo.models.dcgan import precise_bn


def rank_share(x: torch.Tensor) -> torch.Tensor:
    """Under DDP every rank draws the same seeded sample set; each scores only its share (rank::world_size), so
    the metric states summed over ranks count every sample exactly once. Without DDP: all of x."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return x[torch.distributed.get_rank()::torch.distributed.get_world_size()]
    return x


class GeneratorSampling:
    _sampling = False  # inside sampling(): nested uses share the outer one

    @contextmanager
    def sampling(self) -> Iterator[None]:
        """The generator as the ``task.sample_bn`` protocol samples it. Afterwards its previous mode and its BN
        buffers are back, so evaluation never changes training. Nested uses share the outer one (one BN
        re-estimation for several sample sets)."""
        if self._sampling:
            yield
            return
        g, mode = self.generator, self.hparams.sample_bn
        was_training = g.training
        saved = {k: v.clone() for k, v in g.state_dict().items() if "running_" in k or "num_batches" in k}
        self._sampling = True
        try:
            if mode == "precise":
                precise_bn(g, self.model.z_dim, self.hparams.sample_bn_batches, self.hparams.sample_bn_batch_size,
                           seed=self.hparams.sample_seed - 1, device=self.device)
            g.train(mode == "train")
            yield
        finally:
            self._sampling = False
            g.load_state_dict(saved, strict=False)
            g.train(was_training)

    @torch.no_grad()
    def sample(self, n: int, seed: int, batch_size: int = 256) -> torch.Tensor:
        """n images in [-1, 1] from a seeded z, drawn under the ``task.sample_bn`` protocol, on the CPU."""
        gen = torch.Generator().manual_seed(seed)
        out = []
        with self.sampling():
            for i in range(0, n, batch_size):
                z = torch.randn(min(batch_size, n - i), self.model.z_dim, generator=gen).to(self.device)
                out.append(self.generator(z).float().cpu())
        return torch.cat(out) if out else torch.empty(0, 3, 32, 32)

    def sampling_protocol(self) -> str:
        h = self.hparams
        return {
            "precise": f"seeded z, generator in eval mode; BatchNorm running statistics re-estimated first over "
                       f"{h.sample_bn_batches} x {h.sample_bn_batch_size} fresh z (momentum=None, precise BN), "
                       "training-time statistics restored afterwards (task.sample_bn=precise)",
            "train": "seeded z in batches of 256, generator in train mode: BatchNorm uses each batch's own "
                     "statistics (task.sample_bn=train)",
            "running": "seeded z, generator in eval mode with the training-time BatchNorm running statistics "
                       "(momentum 0.1; task.sample_bn=running)",
        }[h.sample_bn]
