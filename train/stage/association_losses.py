"""Losses that teach an appearance embedding to associate: quasi-dense similarity and identity classification.

Pure functions of embeddings and their identities (no model state), so they are tested on their own and shared by
every detector's embedding branch (:mod:`train.stage.embedding`).

Samples: ``S`` embeddings ``(S, D)`` float32, one per RoI (Faster R-CNN) or sampled location (FCOS / RetinaNet)
matched to a ground-truth box, each with ``track_ids (S,)`` int64 (the box's track id), ``groups (S,)`` int64 (the
sequence the frame comes from, numbered within the batch) and ``frames (S,)`` int64 (the image's index in the
batch). Identities are namespaced per sequence: samples of different groups never share an identity.

- Quasi-dense similarity learning (Pang et al., "Quasi-Dense Similarity Learning for Multiple Object Tracking",
  CVPR 2021, eqs. 3-5): every sample is a key; its references are the samples of the *other* frames of its group;
  references of the same track are positives, the others negatives. Multi-positive contrastive loss on dot
  products plus an auxiliary L2 loss on cosine similarities (QDTrack's own settings: negatives at most 3x the
  positives, hardest first, a 0.1 margin on negatives), per group, averaged over the groups. Needs no identity
  count, so it survives from stage to stage.
- Identity classification (JDE, Wang et al. ECCV 2020; FairMOT, Zhang et al. IJCV 2021): cross-entropy of a linear
  classifier over the build's identities on scaled, L2-normalised embeddings, plus a batch-hard triplet loss
  (Hermans et al., "In Defense of the Triplet Loss for Person Re-Identification", 2017) on the cosine distances.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: Label of a sample whose identity the classifier does not know (val frames, boxes without a track id).
UNKNOWN_IDENTITY = -1


def _zero(like: torch.Tensor) -> torch.Tensor:
    """A 0-valued scalar attached to ``like``'s graph (a loss component with nothing to learn this batch)."""
    return like.sum() * 0.0


def pair_masks(track_ids: torch.Tensor, groups: torch.Tensor,
               frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(positive, negative)`` (S, S) bool: reference j of key i is in i's group but another frame; positive when
    it shows the same track, negative otherwise."""
    reference = (groups[:, None] == groups[None, :]) & (frames[:, None] != frames[None, :])
    same = track_ids[:, None] == track_ids[None, :]
    return reference & same, reference & ~same


def multi_positive_contrastive(similarity: torch.Tensor, positive: torch.Tensor,
                               negative: torch.Tensor) -> torch.Tensor:
    """QDTrack's multi-positive contrastive loss (eq. 3), mean over keys that have a positive.

    ``L_i = log(1 + sum_{k+} sum_{k-} exp(s(i, k-) - s(i, k+)))``, computed as
    ``softplus(logsumexp_{k-} s(i, k-) + logsumexp_{k+} -s(i, k+))`` (the double sum factorises), so it is
    O(S^2) and never overflows. A key with positives but no negative costs 0 (log 1).

    Args:
        similarity: (S, S) float, dot products of the raw embeddings (key x reference).
        positive, negative: (S, S) bool masks from :func:`pair_masks`.
    """
    keys = positive.any(dim=1)
    rows = keys & negative.any(dim=1)
    if not rows.any():
        return _zero(similarity)
    s = similarity[rows]
    neg = torch.where(negative[rows], s, float("-inf")).logsumexp(dim=1)
    pos = torch.where(positive[rows], -s, float("-inf")).logsumexp(dim=1)
    return F.softplus(neg + pos).sum() / keys.sum()


def cosine_pair_loss(cosine: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, *,
                     neg_margin: float = 0.1, neg_pos_ratio: int = 3) -> torch.Tensor:
    """QDTrack's auxiliary loss (eq. 5): squared error of cosine similarities against 1 (positives) and 0
    (negatives), similarities clamped to [0, 1] and negatives lowered by ``neg_margin`` first; only the
    ``neg_pos_ratio`` x (number of positives, at least 1) hardest negatives count. Mean over the pairs used.

    Args:
        cosine: (S, S) float in [-1, 1], cosine similarities of the embeddings.
        positive, negative: (S, S) bool masks from :func:`pair_masks`.
    """
    pos_err = (cosine[positive].clamp(0.0, 1.0) - 1.0) ** 2
    neg_err = (cosine[negative] - neg_margin).clamp(0.0, 1.0) ** 2
    limit = neg_pos_ratio * max(int(pos_err.numel()), 1)
    if neg_pos_ratio > 0 and neg_err.numel() > limit:
        neg_err = neg_err.topk(limit).values  # hard mining: the most similar negatives
    used = pos_err.numel() + neg_err.numel()
    return (pos_err.sum() + neg_err.sum()) / used if used else _zero(cosine)


def quasi_dense_losses(embeddings: torch.Tensor, track_ids: torch.Tensor, groups: torch.Tensor,
                       frames: torch.Tensor, *, neg_margin: float = 0.1,
                       neg_pos_ratio: int = 3) -> dict[str, torch.Tensor]:
    """``{"loss_embed": multi-positive contrastive, "loss_embed_aux": cosine L2}`` (unweighted) of (S, D) raw
    embeddings; see the module docstring for the sample tensors.

    Each group (a clip: a key frame and its reference frames, as QDTrack samples them) gets its own loss, hard
    negatives mined within it; the batch's loss is the mean over its groups. So a clip's loss does not depend on the
    other clips of its batch, and the mean over DDP ranks holding equal numbers of clips equals the loss of one
    process holding them all (what tests/test_ddp.py checks)."""
    per_group: dict[str, list[torch.Tensor]] = {"loss_embed": [], "loss_embed_aux": []}
    for g in torch.unique(groups):
        mask = groups == g
        emb = embeddings[mask]
        positive, negative = pair_masks(track_ids[mask], groups[mask], frames[mask])
        unit = F.normalize(emb, dim=1)
        per_group["loss_embed"].append(multi_positive_contrastive(emb @ emb.T, positive, negative))
        per_group["loss_embed_aux"].append(cosine_pair_loss(unit @ unit.T, positive, negative, neg_margin=neg_margin,
                                                            neg_pos_ratio=neg_pos_ratio))
    if not per_group["loss_embed"]:
        return {name: _zero(embeddings) for name in per_group}
    return {name: torch.stack(values).mean() for name, values in per_group.items()}


def identity_scale(num_identities: int) -> float:
    """JDE's embedding scale ``s = sqrt(2) * log(nID - 1)`` (Wang et al. 2020, sec. 3.3) applied to unit
    embeddings before the identity classifier, so that the softmax can become confident (>= 1 for tiny counts)."""
    return max(math.sqrt(2.0) * math.log(max(num_identities - 1, 2)), 1.0)


def identity_cross_entropy(logits: torch.Tensor, identities: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (S, nID) logits against (S,) identity indices; samples labelled
    :data:`UNKNOWN_IDENTITY` are skipped (0 when none is known)."""
    known = identities != UNKNOWN_IDENTITY
    if not known.any():
        return _zero(logits)
    return F.cross_entropy(logits[known], identities[known])


def batch_hard_triplet(embeddings: torch.Tensor, labels: torch.Tensor, *, margin: float = 0.3) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017) on cosine distances of L2-normalised embeddings.

    For every anchor with a positive (another sample of its label) and a negative: ``relu(max_p d(a, p) -
    min_n d(a, n) + margin)``; mean over those anchors (0 when there is none).

    Args:
        embeddings: (S, D) float. labels: (S,) int64 identity of each sample (unique per sequence and track).
        margin: in cosine-distance units (0..2).
    """
    unit = F.normalize(embeddings, dim=1)
    dist = 1.0 - unit @ unit.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos, neg = same & ~eye, ~same
    anchors = pos.any(dim=1) & neg.any(dim=1)
    if not anchors.any():
        return _zero(embeddings)
    hardest_pos = torch.where(pos, dist, float("-inf")).amax(dim=1)[anchors]
    hardest_neg = torch.where(neg, dist, float("inf")).amin(dim=1)[anchors]
    return F.relu(hardest_pos - hardest_neg + margin).mean()
