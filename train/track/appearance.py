"""Motion + appearance tracking: the ByteTrack-style tracker with a fused motion + appearance association cost.

:class:`AppearanceTracker` runs ByteTrack's association steps (:class:`train.track.bytetrack.ByteTracker`) and
changes only the cost of the high-score associations (steps 1 and 3), where detections carry an appearance
embedding each:

1. motion decides *which* pairs may match: ``d_iou = 1 - IoU(Kalman-predicted track box, detection) * score``
   (ByteTrack's score fusion) must not exceed the step's threshold (``match_thresh`` / ``unconfirmed_match_thresh``)
   nor ``proximity_thresh`` (the motion gate: BoT-SORT's ``proximity_thresh``; DeepSORT gates appearance by motion);
2. appearance ranks those candidates: each track's appearance is an exponential moving average of the unit
   embeddings of its confident matches (BoT-SORT / JDE: ``e <- m * e + (1 - m) * f``, renormalised); the cosine
   similarities of the candidate pairs, less those below the appearance gate (``(1 - cos) / 2 > appearance_thresh``,
   BoT-SORT's gate on the same halved cosine distance), go through QDTrack's bi-directional softmax (Pang et al.
   CVPR 2021, eq. 6, at ``temperature``) over each track's candidate detections and each detection's candidate
   tracks: ``d_app = 1 - (softmax_row + softmax_col) / 2``. A lone candidate is never penalised; two look-alike
   rivals share the score, so appearance barely separates them and motion decides; a distinct match takes it all;
3. the fused cost ``(1 - appearance_weight) * d_iou + appearance_weight * d_app`` (DeepSORT's weighted sum of a
   motion and an appearance term, Wojke et al. 2017 eq. 5), scaled into [0, threshold], is assigned (Hungarian):
   appearance changes which motion-feasible pairs match, never whether a track can match, so an occluded detection
   whose embedding shows its occluder still continues its track when nothing competes for it.

Why a weighted sum and not BoT-SORT's ``min(d_iou, d_app)``: when two objects of one shape bump into each other and
turn back, the Kalman prediction of one lands on the other's detection (``d_iou`` near 0); only a cost that adds
the appearance term can refuse that swap (tests/test_appearance_tracker.py scripts it). Low-score detections
(step 2) are matched on IoU alone and never update the appearance (they are mostly occluded; ByteTrack / BoT-SORT
do the same). A track or detection without an embedding falls back to ``d_iou``; without embeddings the tracker
equals :class:`ByteTracker`. The defaults (conf/tracker/appearance.yaml) were chosen on synthetic DanceTrack-like
sequences of a seed used nowhere else (neither the demo's nor benchmarks/bench_association.py's).
"""

from __future__ import annotations

import numpy as np

from train.errors import ConfigError
from train.track.bytetrack import _INFEASIBLE, ByteTracker, _Track


def bisoftmax(cosine: np.ndarray, candidate: np.ndarray, temperature: float) -> np.ndarray:
    """QDTrack's bi-directional softmax (Pang et al. CVPR 2021, eq. 6) restricted to candidate pairs.

    ``(softmax over a track's candidate detections + softmax over a detection's candidate tracks) / 2`` of
    ``cosine / temperature``; 0 outside ``candidate``. A pair without a rival scores 1; two look-alike rivals share
    the score (appearance then barely ranks them), a distinct match takes it all.

    Args:
        cosine: (T, D) cosine similarities. candidate: (T, D) bool. temperature: > 0.
    """
    logits = np.where(candidate, cosine / temperature, -np.inf)
    with np.errstate(invalid="ignore"):
        row = np.exp(logits - logits.max(axis=1, keepdims=True))
        col = np.exp(logits - logits.max(axis=0, keepdims=True))
        row = row / row.sum(axis=1, keepdims=True)
        col = col / col.sum(axis=0, keepdims=True)
    return np.nan_to_num((row + col) / 2.0)


class AppearanceTracker(ByteTracker):
    """ByteTrack's association with a fused motion + appearance cost (see the module docstring).

    Args:
        appearance_weight: weight of the appearance distance in the fused cost, in [0, 1] (0 = motion only).
        proximity_thresh: motion gate, the largest IoU distance (1 - IoU x score) a pair may have to match, in
            [0, 1], on top of the step's own threshold (the default 1.0 leaves ByteTrack's gates alone).
        appearance_thresh: appearance gate: a pair whose halved cosine distance ``(1 - cos) / 2`` exceeds it gets
            the largest appearance distance, 1, in [0, 1] (0.25 = cosine similarity 0.5, BoT-SORT's default).
        temperature: of the bi-directional softmax over cosine similarities, > 0 (smaller = more decisive).
        ema_momentum: weight of a track's previous appearance when a confident match updates it, in [0, 1)
            (BoT-SORT: 0.9).
        **kwargs: :class:`ByteTracker`'s parameters (keyword-only, same defaults).

    Raises:
        ConfigError: a parameter outside its range (named), or any of ByteTracker's errors.
    """

    def __init__(self, *, appearance_weight: float = 0.3, proximity_thresh: float = 1.0,
                 appearance_thresh: float = 0.25, temperature: float = 0.1, ema_momentum: float = 0.9,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        for name, value in (("appearance_weight", appearance_weight), ("proximity_thresh", proximity_thresh),
                            ("appearance_thresh", appearance_thresh)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"AppearanceTracker: {name}={value} must be in [0, 1]")
        if not 0.0 <= ema_momentum < 1.0:
            raise ConfigError(f"AppearanceTracker: ema_momentum={ema_momentum} must be in [0, 1)")
        self.appearance_weight = appearance_weight
        self.proximity_thresh = proximity_thresh
        self.appearance_thresh = appearance_thresh
        self.ema_momentum = ema_momentum
        if temperature <= 0:
            raise ConfigError(f"AppearanceTracker: temperature={temperature} must be > 0")
        self.temperature = temperature

    def _cost(self, tracks: list[_Track], det: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
              labels: np.ndarray, embeddings: np.ndarray | None, limit: float) -> np.ndarray:
        """Fused cost (T, D) of ``tracks`` vs detections ``det`` (indices) in [0, ``limit``]; ``_INFEASIBLE`` where
        the motion gate refuses."""
        d_iou = super()._cost(tracks, det, boxes, scores, labels, embeddings, limit)
        known = np.array([t.embedding is not None for t in tracks], bool)
        if embeddings is None or not known.any() or len(det) == 0 or self.appearance_weight == 0.0:
            return d_iou
        rows = np.flatnonzero(known)
        appearance = np.stack([tracks[i].embedding for i in rows])  # (T', D) unit
        cosine = appearance @ embeddings[det].T  # (T', D)
        feasible = d_iou[rows] <= min(limit, self.proximity_thresh)  # motion gate
        d_app = 1.0 - bisoftmax(cosine, feasible & ((1.0 - cosine) / 2.0 <= self.appearance_thresh),
                                self.temperature)
        cost = d_iou.copy()
        w = self.appearance_weight
        fused = ((1.0 - w) * d_iou[rows] + w * d_app) * limit  # in [0, limit]: ranks, never refuses
        cost[rows] = np.where(feasible, fused, _INFEASIBLE)
        return cost

    def _observe(self, pairs: list[tuple[_Track, int]], embeddings: np.ndarray | None) -> None:
        """Update each confidently matched track's appearance with its detection's embedding (EMA, unit)."""
        if embeddings is None:
            return
        m = self.ema_momentum
        for track, d in pairs:
            new = embeddings[d]
            if track.embedding is not None:
                new = m * track.embedding + (1.0 - m) * new
                new = new / max(float(np.linalg.norm(new)), 1e-12)
            track.embedding = new
