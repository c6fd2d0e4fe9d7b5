"""Learning rates and the order of training batches: both pure functions of the step, so resuming is exact."""

from __future__ import annotations

import math
from typing import Iterator

import torch
from torch.utils.data import Sampler

from ..config import TrainConfig


def learning_rate(step: int, base_lr: float, train: TrainConfig) -> float:
    """The learning rate for optimizer step ``step`` (0-based): linear warm-up, then the schedule.

    ``poly`` is the original RadioDiff ``(1 - t/T)^0.95``, floored at ``min_lr`` (the original floored the
    multiplier at ``min_lr`` instead, which let the rate fall to ~0); ``cosine`` decays to ``min_lr``.
    """
    if step < train.warmup_steps:
        return base_lr * (step + 1) / train.warmup_steps
    if train.lr_schedule == "constant":
        return base_lr
    decay_steps = max(1, train.max_steps - train.warmup_steps)
    progress = min(1.0, (step - train.warmup_steps) / decay_steps)
    floor = min(train.min_lr, base_lr)
    if train.lr_schedule == "cosine":
        return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return max(base_lr * (1.0 - progress) ** 0.95, floor)


class ResumableShuffleSampler(Sampler[int]):
    """A fresh shuffle every epoch from ``(seed, epoch)``, sharded across processes, startable mid-epoch.

    Every process sees ``batches_per_epoch`` full batches per epoch (the remainder is dropped), so the
    position after ``n`` micro-batches is ``divmod(n, batches_per_epoch)`` on every rank.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, num_replicas: int = 1, rank: int = 0):
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.batches_per_epoch = num_items // num_replicas // batch_size
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"the training split has {num_items} maps, fewer than one batch of {batch_size} for each of "
                f"{num_replicas} processes; lower train.batch_size or add data"
            )
        self.epoch = 0
        self.start_batch = 0

    def set_position(self, epoch: int, start_batch: int) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self) -> Iterator[int]:
        order = torch.randperm(self.num_items, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        mine = order[self.rank :: self.num_replicas][: self.batches_per_epoch * self.batch_size]
        return iter(mine[self.start_batch * self.batch_size :].tolist())

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size
