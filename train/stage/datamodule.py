"""LightningDataModule over one build (train split for fitting, val split for the validation loss).

Tracking metrics on the val sets are computed separately, by :class:`train.stage.callbacks.TrackingEval`, from
the build's MOT directories; this module only feeds the detector's loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from builder.errors import FormatError
from builder.formats.build_layout import build_classes
from train.stage.datasets import ClipDataset, FrameDataset, collate_frames, identity_table
from train.stage.distributed import resolve_flag, resolve_num_workers
from train.stage.transforms import make_transform


class EpochSeededSampler(Sampler[tuple[int, int]]):
    """Shuffle with a permutation that depends only on ``(seed, epoch)``, yielding ``(index, sample seed)``; with
    several DDP ranks, rank ``r`` of ``R`` takes every ``R``-th entry of that permutation from ``r``.

    Lightning calls ``set_epoch`` at the start of every training epoch, including the first epoch after a
    resume (when ``on_train_epoch_start`` hooks are skipped). Each sample's augmentation is drawn from its
    own seed (a function of seed, epoch and index; see :data:`train.stage.datasets.Key`), so the data of an epoch
    replays exactly after a resume, in any worker and on any rank; the detector's own sampling is reseeded per
    epoch by :class:`train.stage.module.DetectionModule`. Together: an interrupted and resumed run reaches the
    weights of an uninterrupted one (on deterministic CPU kernels).

    Sharding (the rule of torch's ``DistributedSampler`` with ``drop_last=True``, strided): the permutation is cut
    to a multiple of ``num_replicas`` (at most ``num_replicas - 1`` samples of an epoch are left out, different
    ones every epoch), so the shards are disjoint and equally long (a rank with one batch more would wait for
    the others' gradients forever). Strided, so that batch ``k`` of the ``R`` ranks together (global batch
    ``R x batch_size``) is batch ``k`` of a one-process run with batch size ``R x batch_size``.

    Args:
        length: samples in the dataset. seed: base seed. num_replicas: DDP world size. rank: this rank (0-based).

    Raises:
        ValueError: ``rank`` outside ``[0, num_replicas)``.
    """

    def __init__(self, length: int, seed: int, *, num_replicas: int = 1, rank: int = 0) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.length, self.seed, self.epoch = length, seed, 0
        self.num_replicas, self.rank = num_replicas, rank

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length // self.num_replicas

    def __iter__(self):
        base = (self.seed * SEED_STRIDE + self.epoch) * SEED_STRIDE
        g = torch.Generator().manual_seed(self.seed * SEED_STRIDE + self.epoch)
        order = torch.randperm(self.length, generator=g)[:len(self) * self.num_replicas]
        return iter((i, (base + i) % 2**63) for i in order[self.rank::self.num_replicas].tolist())


class ShardSampler(Sampler[int]):
    """Rank ``r``'s contiguous share of a validation set of ``length`` samples, in order: indices
    ``[r * length // R, (r + 1) * length // R)`` for ``R`` ranks. Every sample is on exactly one rank, none repeated;
    contiguous shards keep consecutive frames of a sequence together (the quasi-dense embedding loss pairs them
    within a batch). Validation needs no equal shards: its metrics are summed with their sample counts across
    ranks."""

    def __init__(self, length: int, *, num_replicas: int = 1, rank: int = 0) -> None:
        self.length, self.num_replicas, self.rank = length, num_replicas, rank

    def _range(self) -> range:
        return range(self.rank * self.length // self.num_replicas, (self.rank + 1) * self.length // self.num_replicas)

    def __len__(self) -> int:
        return len(self._range())

    def __iter__(self):
        return iter(self._range())


#: Multiplier that keeps (seed, epoch, index) combinations apart in the per-sample seed.
SEED_STRIDE = 1_000_003


class BuildDataModule(L.LightningDataModule):
    """Frames (or clips of ``clip_length`` frames) of a build.

    Args:
        build_dir: build root (``build_manifest.json``, ``annotations/{train,val}.json``).
        batch_size: frames per batch and rank; with ``clip_length`` T > 1 the training batch holds
            ``batch_size // T`` whole clips (at least one), so a config's effective batch in frames stays what it
            says. With DDP the global batch is ``batch_size x`` the world size.
        num_workers: DataLoader worker processes per rank, or ``auto``: ``min(8, usable CPUs - 1)`` with the
            node's CPUs split between its ranks (:func:`train.stage.distributed.auto_num_workers`). Workers are
            persistent (kept from epoch to epoch) whenever there are any.
        scales: training shortest-side sizes in px (multi-scale).
        max_size: longest-side cap in px.
        eval_size: validation shortest side in px (None: ``max(scales)``); the model's ``min_size``.
        hflip_prob, photometric, mask_ignore: see :func:`train.stage.transforms.make_transform`.
        clip_length: 1 yields frames; T > 1 yields non-overlapping clips of T consecutive frames (the pairs of
            frames of one clip the quasi-dense embedding loss learns from; ``batch_size`` then counts clips).
        frame_range: a clip's frames are ``s`` apart, ``s`` drawn from ``1 .. frame_range`` per sample (see
            :class:`train.stage.datasets.ClipDataset`; 1 = consecutive frames).
        max_train_frames, max_val_frames: keep only the first N frames (debug presets).
        pin_memory: page-locked batches (faster host-to-GPU copies), or ``auto``: on when the Trainer runs on a
            CUDA GPU.
        seed: base seed of the training order and augmentations (see :class:`EpochSeededSampler`).

    The loaders shard themselves across DDP ranks (:class:`EpochSeededSampler`, :class:`ShardSampler`), so the
    Trainer runs with ``use_distributed_sampler=False`` (conf/trainer/default.yaml).

    Raises:
        train.errors.ConfigError: ``num_workers`` or ``pin_memory`` of another kind.
    """

    def __init__(self, build_dir: str | Path, *, batch_size: int = 2, num_workers: int = 0,
                 scales: Sequence[int] = (320,), max_size: int = 1000, eval_size: int | None = None, hflip_prob: float = 0.5,
                 photometric: bool = True, mask_ignore: bool = True, clip_length: int = 1, frame_range: int = 1,
                 max_train_frames: int | None = None, max_val_frames: int | None = None,
                 pin_memory: bool | str = False, seed: int = 0) -> None:
        super().__init__()
        self.build_dir = Path(build_dir)
        self.classes = build_classes(self.build_dir)
        # checked now (bad input before any training), resolved when the loaders are made (the Trainer decides)
        resolve_num_workers(num_workers), resolve_flag(pin_memory, "data.pin_memory", auto=False)
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.scales, self.max_size = list(scales), max_size
        self.eval_size = eval_size or max(self.scales)
        self.hflip_prob, self.photometric, self.mask_ignore = hflip_prob, photometric, mask_ignore
        self.clip_length, self.frame_range = clip_length, frame_range
        self.seed = seed
        self.max_train_frames, self.max_val_frames = max_train_frames, max_val_frames
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def _transform(self, policy: str):
        scales = self.scales if policy == "train" else [self.eval_size]
        return make_transform(policy, scales=scales, max_size=self.max_size, hflip_prob=self.hflip_prob,
                              photometric=self.photometric, mask_ignore=self.mask_ignore)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            train_tf = self._transform("train")
            self.train_set = (ClipDataset(self.build_dir, "train", self.clip_length, train_tf,
                                          max_frames=self.max_train_frames, frame_range=self.frame_range) if self.clip_length > 1 else
                              FrameDataset(self.build_dir, "train", train_tf, max_frames=self.max_train_frames))
            if len(self.train_set) == 0:
                raise FormatError(f"{self.build_dir}/annotations/train.json: no training "
                                 f"{'clips' if self.clip_length > 1 else 'frames'}")
            self.val_set = FrameDataset(self.build_dir, "val", self._transform("val"),
                                        max_frames=self.max_val_frames)

    def identity_table(self) -> dict[tuple[str, int], int]:
        """``{(sequence, track id): index}`` of the training split's identities (see
        :func:`train.stage.datasets.identity_table`); call after :meth:`setup`."""
        self.setup()
        frames = self.train_set.frames if isinstance(self.train_set, ClipDataset) else self.train_set
        return identity_table(frames.entries)

    def _ranks(self) -> tuple[int, int, int]:
        """(world size, global rank, processes on this node) of the attached Trainer; (1, 0, 1) without one."""
        trainer = self.trainer
        if trainer is None:
            return 1, 0, 1
        return trainer.world_size, trainer.global_rank, trainer.num_devices

    def _loader(self, dataset: Dataset, batch_size: int, sampler: Sampler) -> DataLoader:
        trainer = self.trainer
        on_cuda = trainer is not None and trainer.strategy.root_device.type == "cuda"
        workers = resolve_num_workers(self.num_workers, processes=self._ranks()[2])
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                          collate_fn=collate_frames, persistent_workers=workers > 0,
                          pin_memory=resolve_flag(self.pin_memory, "data.pin_memory", auto=on_cuda))

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches of ``batch_size`` frames per rank (whole clips when ``clip_length > 1``),
        each rank drawing its shard of the epoch's seeded permutation."""
        world, rank, _ = self._ranks()
        clips = max(1, self.batch_size // self.clip_length)
        return self._loader(self.train_set, clips if self.clip_length > 1 else self.batch_size,
                            EpochSeededSampler(len(self.train_set), self.seed, num_replicas=world, rank=rank))

    def val_dataloader(self) -> DataLoader:
        """Validation frames in (sequence, frame) order, ``batch_size`` at a time (consecutive frames of a
        sequence share a batch, so the quasi-dense embedding loss has pairs in validation too); with DDP each
        rank takes a contiguous shard."""
        world, rank, _ = self._ranks()
        return self._loader(self.val_set, self.batch_size, ShardSampler(len(self.val_set), num_replicas=world,
                                                                         rank=rank))
