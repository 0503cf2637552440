"""Randomness keyed by (seed, epoch, index), so that a resumed run replays an uninterrupted one exactly.

``EpochSampler`` yields *virtual* indices ``epoch * n + i`` in a (seed, epoch)-determined order; the
``EpochSeeded`` dataset wrapper splits them back and runs the wrapped dataset's random transforms
under a generator seeded from (seed, epoch, i). No state carries over from one epoch to the next, so
neither a resume, nor worker processes, nor their persistence can change what an epoch sees.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class EpochSampler(Sampler[int]):
    def __init__(self, n: int, seed: int, epoch_fn: Callable[[], int], shuffle: bool = True) -> None:
        self.n, self.seed, self.epoch_fn, self.shuffle = n, int(seed), epoch_fn, shuffle

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        epoch = int(self.epoch_fn())  # read when iteration starts: the trainer's (restored) epoch
        if self.shuffle:
            order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed * 100003 + epoch))
        else:
            order = torch.arange(self.n)
        return iter((epoch * self.n + order).tolist())


class EpochSeeded(Dataset):
    def __init__(self, base: Dataset, seed: int) -> None:
        self.base, self.seed = base, int(seed)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, virtual_index: int):
        epoch, i = divmod(int(virtual_index), len(self.base))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(((self.seed * 1_000_003 + epoch) * 10_000_019 + i) % 2**63)
            return self.base[i]


def make_loader(dataset: Dataset, datamodule, batch_size: int, train: bool, **kwargs) -> DataLoader:
    """The DataLoader both data modules use. Training sets get the virtual-index dataset and its sampler.

    The seed is the run's (``seed_everything`` has set it by the time loaders are built); the epoch is
    the trainer's, read when each epoch's iteration starts, which is the restored one after a resume.
    """
    data: dict = {"dataset": dataset}
    if train:
        seed = torch.initial_seed() % 2**31  # a fresh process without seed_everything has a 64-bit seed

        def epoch() -> int:
            trainer = getattr(datamodule, "trainer", None)
            return trainer.current_epoch if trainer is not None else 0

        data = {"dataset": EpochSeeded(dataset, seed), "sampler": EpochSampler(len(dataset), seed, epoch)}
    workers = datamodule.num_workers
    return DataLoader(**data, batch_size=batch_size, num_workers=workers, pin_memory=datamodule.pin_memory,
                      persistent_workers=datamodule.persistent_workers and workers > 0, **kwargs)
