"""The appearance-embedding branch of the detectors: its config, its heads and its loss (one named component each).

The branch is a sibling of the box head on the same features (mmtracking's QDTrack practice): Faster R-CNN embeds
the RoI features its box head reads (:class:`RoIEmbedHead`); FCOS and RetinaNet get a dense embedding map beside
their classification and regression towers, sampled inside the boxes (:class:`DenseEmbedHead`). Wiring per
detector is in :mod:`train.stage.detectors`; the losses are in :mod:`train.stage.association_losses`.

Config (``model.embedding`` of conf/model/*.yaml, :class:`EmbeddingConfig`)::

    embedding:
      enabled: true          # false: today's detector, no branch, no loss
      dim: 128               # embedding size D
      loss: quasi_dense      # quasi_dense (default, no identity count) | identity (classifier + triplet)

Eval-mode outputs gain ``"embeddings"``: (N, D) float32, L2-normalised, one per detection. Train-mode loss
components: ``loss_embed`` and ``loss_embed_aux`` (quasi_dense) or ``loss_identity`` and ``loss_triplet``
(identity), already weighted, summed with the detector's own by the LightningModule.

Targets the branch needs beside ``boxes`` / ``labels`` (see :func:`train.stage.module.model_targets`):
``track_ids`` (N,) int64, ``group`` () int64 (the frame's sequence, numbered within the batch) and, for the
identity loss, ``identities`` (N,) int64 (index into the build's identities, -1 unknown).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from train.errors import ConfigError
from train.stage.association_losses import (
    UNKNOWN_IDENTITY,
    batch_hard_triplet,
    identity_cross_entropy,
    identity_scale,
    quasi_dense_losses,
)

#: Loss families of the embedding branch.
LOSSES = ("quasi_dense", "identity")
#: Parameter-name fragment of the identity classifier: sized by one build's identities, never carried to another
#: stage (train.stage.chaining drops and records it; tracking does not need it).
BUILD_SPECIFIC = "identity_classifier."


@dataclass(frozen=True)
class EmbeddingConfig:
    """``model.embedding``: the appearance-embedding branch.

    Attributes:
        enabled: build the branch (false keeps the plain detector).
        dim: embedding size D.
        loss: ``quasi_dense`` (Pang et al. CVPR 2021) or ``identity`` (JDE / FairMOT classifier + triplet).
        convs: 3x3 conv + GroupNorm + ReLU layers before the embedding (on the RoI features for Faster R-CNN,
            the dense tower for FCOS / RetinaNet; QDTrack uses 4 of 256 channels).
        fc_dim: hidden fully connected layer of the RoI head (QDTrack: 1024).
        pos_iou: a proposal counts as a sample of a box only at IoU >= this with it (QDTrack: 0.7).
        jitter_samples: FCOS / RetinaNet: jittered copies of each ground-truth box sampled besides the box itself
            (quasi-dense samples of one object; centre moved by up to 10 % of the size, size scaled by 0.9-1.1).
        loss_weight, aux_weight: weights of ``loss_embed`` and ``loss_embed_aux`` (QDTrack: 0.25 and 1.0).
        neg_margin, neg_pos_ratio: the auxiliary loss's margin on negatives and hard-negative ratio (0.1, 3).
        id_weight, triplet_weight, triplet_margin: the identity loss's weights and the triplet margin (cosine).
    """

    enabled: bool = False
    dim: int = 128
    loss: str = "quasi_dense"
    convs: int = 2
    fc_dim: int = 1024
    pos_iou: float = 0.7
    jitter_samples: int = 3
    loss_weight: float = 0.25
    aux_weight: float = 1.0
    neg_margin: float = 0.1
    neg_pos_ratio: int = 3
    id_weight: float = 1.0
    triplet_weight: float = 1.0
    triplet_margin: float = 0.3

    @classmethod
    def from_mapping(cls, values: Mapping | None) -> EmbeddingConfig | None:
        """The config of ``model.embedding`` (a dict or DictConfig), or None when absent or not enabled.

        Raises:
            ConfigError: an unknown key (lists the valid ones) or an unknown ``loss``.
        """
        if not values:
            return None
        values = dict(values)
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ConfigError(f"model.embedding: unknown key(s) {unknown}; valid: {valid}")
        cfg = cls(**values)
        if cfg.loss not in LOSSES:
            raise ConfigError(f"model.embedding.loss {cfg.loss!r} is not registered! Available: {list(LOSSES)}")
        return cfg if cfg.enabled else None


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(min(32, cout), cout),
                         nn.ReLU(inplace=True))


class RoIEmbedHead(nn.Module):
    """Embedding of pooled RoI features (QDTrack's embed head, sized by the config).

    Input (R, C, S, S) float32 (the box head's ``box_roi_pool`` output, S = 7); output (R, D) raw embeddings
    (the quasi-dense loss uses their dot products; the tracker L2-normalises them).
    """

    def __init__(self, in_channels: int, resolution: int, cfg: EmbeddingConfig) -> None:
        super().__init__()
        self.convs = nn.Sequential(*[_conv_block(in_channels, in_channels) for _ in range(cfg.convs)])
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * resolution * resolution, cfg.fc_dim),
                                nn.ReLU(inplace=True))
        self.embed = nn.Linear(cfg.fc_dim, cfg.dim)

    def forward(self, rois: torch.Tensor) -> torch.Tensor:
        if rois.shape[0] == 0:
            return rois.new_zeros((0, self.embed.out_features))
        return self.embed(self.fc(self.convs(rois)))


class DenseEmbedHead(nn.Module):
    """A dense embedding map per FPN level (FCOS / RetinaNet), weights shared across levels like their towers.

    Input: list of (B, C, H_l, W_l) float32; output: list of (B, D, H_l, W_l) raw embeddings.
    """

    def __init__(self, in_channels: int, cfg: EmbeddingConfig) -> None:
        super().__init__()
        self.tower = nn.Sequential(*[_conv_block(in_channels, in_channels) for _ in range(cfg.convs)])
        self.embed = nn.Conv2d(in_channels, cfg.dim, 1)

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [self.embed(self.tower(f)) for f in features]


@dataclass
class Samples:
    """Who each embedding sample is: (S,) int64 tensors ``track_ids``, ``groups``, ``frames`` (image index in the
    batch) and ``identities`` (build identity index, -1 unknown)."""

    track_ids: torch.Tensor
    groups: torch.Tensor
    frames: torch.Tensor
    identities: torch.Tensor

    @classmethod
    def gather(cls, targets: Sequence[Mapping[str, torch.Tensor]], boxes: Sequence[torch.Tensor]) -> Samples:
        """Samples for ``boxes[i]`` (S_i,) int64 indices into ``targets[i]["boxes"]``, image by image.

        Raises:
            ConfigError: a target lacks ``track_ids`` (the embedding branch needs ground-truth identities).
        """
        parts: list[list[torch.Tensor]] = [[], [], [], []]
        for i, (t, idx) in enumerate(zip(targets, boxes, strict=True)):
            if "track_ids" not in t:
                raise ConfigError("model.embedding is enabled but the targets carry no 'track_ids' "
                                  "(build them with train.stage.module.model_targets)")
            group = t["group"] if "group" in t else torch.tensor(i)
            unknown = torch.full_like(t["track_ids"], UNKNOWN_IDENTITY)
            parts[0].append(t["track_ids"][idx])
            parts[1].append(group.to(idx.device).expand(len(idx)))
            parts[2].append(torch.full_like(idx, i))
            parts[3].append(t.get("identities", unknown)[idx])
        return cls(*(torch.cat(p) if p else torch.zeros(0, dtype=torch.int64) for p in parts))


class EmbeddingLoss(nn.Module):
    """The embedding branch's loss components, weighted (see :class:`EmbeddingConfig`).

    ``forward(embeddings (S, D), samples) -> {name: scalar}``; samples whose track id is negative (no identity in
    the annotations) are left out. The ``identity`` loss needs :meth:`set_identity_count` first (the
    LightningModule calls it with the build's identity count when fitting starts).
    """

    def __init__(self, cfg: EmbeddingConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.identity_classifier: nn.Linear | None = None

    def set_identity_count(self, count: int) -> None:
        """(Re)build the identity classifier for ``count`` identities (identity loss only)."""
        if self.cfg.loss != "identity":
            return
        if count < 1:
            raise ConfigError("model.embedding.loss=identity: the build's training split has no identities")
        device = next(iter(self.parameters()), torch.zeros(0)).device
        self.identity_classifier = nn.Linear(self.cfg.dim, count).to(device)

    def forward(self, embeddings: torch.Tensor, samples: Samples) -> dict[str, torch.Tensor]:
        keep = samples.track_ids >= 0
        emb = embeddings[keep]
        tracks, groups = samples.track_ids[keep], samples.groups[keep]
        cfg = self.cfg
        if cfg.loss == "quasi_dense":
            losses = quasi_dense_losses(emb, tracks, groups, samples.frames[keep], neg_margin=cfg.neg_margin,
                                        neg_pos_ratio=cfg.neg_pos_ratio)
            return {"loss_embed": cfg.loss_weight * losses["loss_embed"],
                    "loss_embed_aux": cfg.aux_weight * losses["loss_embed_aux"]}
        if self.identity_classifier is None:
            raise ConfigError("model.embedding.loss=identity needs the build's identity count "
                              "(EmbeddingLoss.set_identity_count; the stage's LightningModule sets it)")
        scale = identity_scale(self.identity_classifier.out_features)
        logits = self.identity_classifier(scale * F.normalize(emb, dim=1))
        labels = groups * (int(tracks.max()) + 1 if len(tracks) else 1) + tracks  # one label per sequence and track
        return {"loss_identity": cfg.id_weight * identity_cross_entropy(logits, samples.identities[keep]),
                "loss_triplet": cfg.triplet_weight * batch_hard_triplet(emb, labels, margin=cfg.triplet_margin)}
