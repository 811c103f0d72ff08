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
from train.stage.transforms import make_transform


class EpochSeededSampler(Sampler[tuple[int, int]]):
    """Shuffle with a permutation that depends only on ``(seed, epoch)``, yielding ``(index, sample seed)``.

    Lightning calls ``set_epoch`` at the start of every training epoch, including the first epoch after a
    resume (when ``on_train_epoch_start`` hooks are skipped). Each sample's augmentation is drawn from its
    own seed (a function of seed, epoch and index; see :data:`train.stage.datasets.Key`), so the data of an epoch
    replays exactly after a resume, in any worker; the detector's own sampling is reseeded per epoch by
    :class:`train.stage.module.DetectionModule`. Together: an interrupted and resumed run reaches the weights of
    an uninterrupted one (on deterministic CPU kernels).
    """

    def __init__(self, length: int, seed: int) -> None:
        self.length, self.seed, self.epoch = length, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        base = (self.seed * SEED_STRIDE + self.epoch) * SEED_STRIDE
        g = torch.Generator().manual_seed(self.seed * SEED_STRIDE + self.epoch)
        return iter((i, (base + i) % 2**63) for i in torch.randperm(self.length, generator=g).tolist())


#: Multiplier that keeps (seed, epoch, index) combinations apart in the per-sample seed.
SEED_STRIDE = 1_000_003


class BuildDataModule(L.LightningDataModule):
    """Frames (or clips of ``clip_length`` frames) of a build.

    Args:
        build_dir: build root (``build_manifest.json``, ``annotations/{train,val}.json``).
        batch_size: frames per batch; with ``clip_length`` T > 1 the training batch holds ``batch_size // T``
            whole clips (at least one), so a config's effective batch in frames stays what it says.
        num_workers: DataLoader worker processes.
        scales: training shortest-side sizes in px (multi-scale).
        max_size: longest-side cap in px.
        eval_size: validation shortest side in px (None: ``max(scales)``); the model's ``min_size``.
        hflip_prob, photometric, mask_ignore: see :func:`train.stage.transforms.make_transform`.
        clip_length: 1 yields frames; T > 1 yields non-overlapping clips of T consecutive frames (the pairs of
            frames of one clip the quasi-dense embedding loss learns from; ``batch_size`` then counts clips).
        max_train_frames, max_val_frames: keep only the first N frames (debug presets).
        seed: base seed of the training order and augmentations (see :class:`EpochSeededSampler`).
    """

    def __init__(self, build_dir: str | Path, *, batch_size: int = 2, num_workers: int = 0,
                 scales: Sequence[int] = (320,), max_size: int = 1000, eval_size: int | None = None, hflip_prob: float = 0.5,
                 photometric: bool = True, mask_ignore: bool = True, clip_length: int = 1,
                 max_train_frames: int | None = None, max_val_frames: int | None = None,
                 pin_memory: bool = False, seed: int = 0) -> None:
        super().__init__()
        self.build_dir = Path(build_dir)
        self.classes = build_classes(self.build_dir)
        self.batch_size, self.num_workers, self.pin_memory = batch_size, num_workers, pin_memory
        self.scales, self.max_size = list(scales), max_size
        self.eval_size = eval_size or max(self.scales)
        self.hflip_prob, self.photometric, self.mask_ignore = hflip_prob, photometric, mask_ignore
        self.clip_length = clip_length
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
                                          max_frames=self.max_train_frames) if self.clip_length > 1 else
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

    def _loader(self, dataset: Dataset, batch_size: int, sampler: Sampler | None = None) -> DataLoader:
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers,
                          collate_fn=collate_frames, pin_memory=self.pin_memory,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches of ``batch_size`` frames (whole clips when ``clip_length > 1``)."""
        clips = max(1, self.batch_size // self.clip_length)
        return self._loader(self.train_set, clips if self.clip_length > 1 else self.batch_size,
                            EpochSeededSampler(len(self.train_set), self.seed))

    def val_dataloader(self) -> DataLoader:
        """Validation frames in (sequence, frame) order, ``batch_size`` at a time (consecutive frames of a
        sequence share a batch, so the quasi-dense embedding loss has pairs in validation too)."""
        return self._loader(self.val_set, self.batch_size)
