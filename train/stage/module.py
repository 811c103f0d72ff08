"""LightningModule around a torchvision detector: one shared loss step, named loss components, param groups.

Batches are ``(images, targets)`` as :func:`train.stage.datasets.collate_frames` makes them: ``images`` a list of
float32 (3, H, W) in [0, 1], ``targets`` a list of dicts with ``boxes`` (N, 4) float32 xyxy px and
``labels`` (N,) int64 (1..K), ``track_ids`` (N,) int64 and ``video``. The detector returns a dict of named loss
components (torchvision's references/detection/engine.py practice; with ``model.embedding`` also
``loss_embed`` / ``loss_embed_aux`` or ``loss_identity`` / ``loss_triplet``); they are summed, checked finite and
each logged by name as ``train/<component>`` / ``val/<component>``, with the sum as ``train/loss`` / ``val/loss``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import grad_norm
from torch import nn

from train.errors import ConfigError, NonFiniteLossError
from train.stage.datasets import sequence_of
from train.stage.detectors import embedding_loss_of

log = logging.getLogger(__name__)

#: Parameter-name prefix of the backbone body (torchvision detectors: ``backbone.body``; the FPN is "rest").
BACKBONE_PREFIX = "backbone.body."


#: Offset between the data seeds (sampler) and the per-epoch seed of the detector's own sampling.
MODEL_SEED_OFFSET = 1_000_003


def model_targets(targets: Sequence[Mapping], identities: Mapping[tuple[str, int], int] | None = None) -> list[dict]:
    """What the detector's loss reads from each dataset target (train.stage.datasets): ``boxes``, ``labels``,
    ``track_ids``, ``group`` (() int64, numbered in batch order: the frames the quasi-dense loss pairs share it) and,
    given an identity table, ``identities`` ((N,) int64, -1 unknown).

    Groups: the frames of one clip (targets of :class:`train.stage.datasets.ClipDataset` carry ``"clip"``), as
    QDTrack pairs a key frame with a reference frame of the same video; without clips, the frames of one sequence
    (validation batches of consecutive frames). Grouping by clip keeps a clip's loss independent of the other
    clips in its batch, so it is the same in one process and in a DDP rank holding a part of the batch."""
    groups: dict[tuple, int] = {}
    out = []
    for i, t in enumerate(targets):
        sequence = sequence_of(t["video"]) if "video" in t else f"#{i}"
        key = ("clip", int(t["clip"])) if "clip" in t else ("sequence", sequence)
        tracks = t.get("track_ids", torch.full((len(t["labels"]),), -1, dtype=torch.int64))
        item = {"boxes": t["boxes"], "labels": t["labels"], "track_ids": tracks,
                "group": torch.tensor(groups.setdefault(key, len(groups)), device=tracks.device)}
        if identities is not None:
            item["identities"] = torch.tensor([identities.get((sequence, int(k)), -1) for k in tracks.tolist()],
                                              dtype=torch.int64, device=tracks.device)
        out.append(item)
    return out


class DetectionModule(L.LightningModule):
    """Train a torchvision detector (see :mod:`train.stage.models`) with Lightning.

    Args:
        model: torchvision detector (Faster R-CNN / FCOS / RetinaNet).
        optimizer: ``functools.partial`` of a torch optimizer (Hydra ``_partial_: true``), called with the
            param groups ``[{"name": "backbone", "lr": backbone_lr}, {"name": "rest"}]``.
        scheduler: partial of a torch LR scheduler taking the optimizer, or None.
        backbone_lr: learning rate of the backbone body; None uses the optimizer's lr for it too.
        scheduler_interval: ``epoch`` or ``step`` (when ``scheduler.step()`` is called).
        seed: base seed; the RNGs are reseeded with ``seed + epoch + MODEL_SEED_OFFSET`` before the first
            step of every epoch (the detector's anchor / proposal sampling), and the data side draws each
            sample's augmentation from its own seed (:class:`train.stage.datamodule.EpochSeededSampler`): a resumed
            run replays an uninterrupted one exactly.
        extra_checkpoint: plain dict stored in every Lightning checkpoint (resolved config, classes).
    """

    def __init__(self, model: nn.Module, optimizer: Callable, scheduler: Callable | None = None, *,
                 backbone_lr: float | None = None, scheduler_interval: str = "epoch", seed: int = 0,
                 extra_checkpoint: dict | None = None) -> None:
        super().__init__()
        if scheduler_interval not in ("epoch", "step"):
            raise ConfigError(f"scheduler.interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        self.model = model
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.backbone_lr = backbone_lr
        self.scheduler_interval = scheduler_interval
        self.seed = seed
        self.extra_checkpoint = extra_checkpoint or {}
        self.identities: dict[tuple[str, int], int] | None = None

    def setup(self, stage: str) -> None:
        """Size the identity classifier of the ``identity`` embedding loss by the build's identities (it is tied to
        one build: rebuilt for every stage, never carried over; see train.stage.chaining)."""
        branch = embedding_loss_of(self.model)
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if branch is None or branch.cfg.loss != "identity" or datamodule is None:
            return
        self.identities = datamodule.identity_table()
        branch.set_identity_count(len(self.identities))
        log.info("identity classifier built for %d identities (sequence, track id) of %s", len(self.identities),
                 getattr(datamodule, "build_dir", "the build"))

    def forward(self, images: list[torch.Tensor]) -> list[dict]:
        """Detections per image (eval mode): boxes (N, 4) xyxy px, scores (N,), labels (N,) int64."""
        return self.model(images)

    def shared_step(self, batch: tuple[list, list], stage: str) -> torch.Tensor:
        """Loss of one batch: sum of the detector's named components, each logged as ``<stage>/<name>``.

        Raises:
            NonFiniteLossError: the sum is NaN or infinite (before any backward, so weights stay finite).
        """
        images, targets = batch
        components = self.model(images, model_targets(targets, self.identities))
        loss = sum(components.values())
        if not torch.isfinite(loss):
            values = {k: float(v.detach()) for k, v in components.items()}
            raise NonFiniteLossError(f"non-finite {stage} loss at epoch {self.current_epoch}, global step "
                                     f"{self.global_step}: components {values}")
        on_step = stage == "train"
        # sync_dist: with DDP the logged loss is that of the global batch (mean over the ranks), the one
        # ModelCheckpoint / EarlyStopping see on every rank; no-op in one process
        for name, value in components.items():
            self.log(f"{stage}/{name}", value, on_step=on_step, on_epoch=True, batch_size=len(images), sync_dist=True)
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, batch_size=len(images),
                 sync_dist=True)
        return loss

    def training_step(self, batch: tuple[list, list], batch_idx: int) -> torch.Tensor:
        """:meth:`shared_step` on a training batch (images list of (3, H, W) float 0-1, targets list)."""
        return self.shared_step(batch, "train")

    def validation_step(self, batch: tuple[list, list], batch_idx: int) -> torch.Tensor:
        """:meth:`shared_step` with the detector in loss mode (torchvision returns losses only in train mode)."""
        with loss_mode(self.model):
            return self.shared_step(batch, "val")

    def on_train_batch_start(self, batch: tuple[list, list], batch_idx: int) -> None:
        # The detector samples anchors / proposals with the global RNG. Reseed before the first step of
        # every epoch so that this sampling replays after a resume, whatever Lightning's restart path drew
        # between the epoch start and here.
        if batch_idx == 0:
            seed_all(self.seed + self.current_epoch + MODEL_SEED_OFFSET)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Log ``train/grad_norm``: the total L2 norm of all gradients (after accumulation, before clipping)."""
        norms = grad_norm(self.model, norm_type=2)
        if norms:
            self.log("train/grad_norm", norms["grad_2.0_norm_total"], on_step=True, on_epoch=True, batch_size=1,
                     sync_dist=True)

    def param_groups(self) -> list[dict]:
        """``[{"name": "backbone", "params", "lr"?}, {"name": "rest", "params"}]`` (trainable params only)."""
        backbone, rest = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (backbone if name.startswith(BACKBONE_PREFIX) else rest).append(p)
        groups = [{"name": "backbone", "params": backbone}, {"name": "rest", "params": rest}]
        if self.backbone_lr is not None:
            groups[0]["lr"] = self.backbone_lr
        return [g for g in groups if g["params"]]

    def configure_optimizers(self):
        """The optimizer over :meth:`param_groups` and, when configured, its scheduler, stepped every
        ``scheduler_interval`` (``epoch`` by default: the multistep LR drop and warmup + cosine count epochs)."""
        optimizer = self.optimizer_factory(self.param_groups())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": self.scheduler_interval}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Add the RNG states (python, numpy, torch) and the run's extras (classes, resolved config)."""
        checkpoint["rng_states"] = rng_states()
        checkpoint.update(self.extra_checkpoint)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Restore the RNG states saved by :meth:`on_save_checkpoint` (exact resume)."""
        if "rng_states" in checkpoint:
            set_rng_states(checkpoint["rng_states"])


@contextmanager
def loss_mode(model: nn.Module):
    """Put a torchvision detector in train mode (it only returns losses there) with every normalisation
    layer in eval mode, so computing a validation loss never updates BatchNorm running statistics."""
    was_training = model.training
    model.train()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def seed_all(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) RNGs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_states() -> dict:
    """Current Python / NumPy / torch CPU (and CUDA when present) RNG states, as plain Python values and
    tensors only (so Lightning can load the checkpoint with ``torch.load(weights_only=True)``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                   "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    states = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    """Restore states captured by :func:`rng_states`."""
    random.setstate(states["python"])
    n = states["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def warmup_cosine(optimizer: torch.optim.Optimizer, *, warmup_epochs: int, max_epochs: int,
                  warmup_start_factor: float = 0.1, eta_min: float = 0.0) -> torch.optim.lr_scheduler.LRScheduler:
    """Linear warm-up for ``warmup_epochs`` (LR from ``warmup_start_factor`` x base up to base), then cosine
    annealing to ``eta_min`` over the remaining epochs (torch LinearLR + CosineAnnealingLR in SequentialLR;
    stepped once per epoch).

    Raises:
        ValueError: ``warmup_epochs`` not in [0, max_epochs).
    """
    if not 0 <= warmup_epochs < max_epochs:
        raise ConfigError(f"scheduler.warmup_epochs={warmup_epochs} must be in [0, max_epochs={max_epochs})")
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epochs - warmup_epochs, eta_min=eta_min)
    if warmup_epochs == 0:
        return cosine
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=warmup_start_factor, total_iters=warmup_epochs)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[warmup_epochs])
