"""Motion + appearance tracking: the ByteTrack-style tracker with a DeepSORT / BoT-SORT-style fused cost.

:class:`AppearanceTracker` runs ByteTrack's association steps (:class:`train.track.bytetrack.ByteTracker`) and
changes only the cost of the high-score associations (steps 1 and 3), where detections carry an appearance
embedding each:

- motion: IoU distance ``d_iou = 1 - IoU(Kalman-predicted track box, detection) * score`` (ByteTrack's score
  fusion); a pair with ``d_iou > proximity_thresh`` may not match at all (the motion gate; BoT-SORT's
  ``proximity_thresh``, DeepSORT's gating of appearance by motion);
- appearance: ``d_app = (1 - cos(track appearance, detection embedding)) / 2`` in [0, 1], the track's appearance
  being an exponential moving average of the unit embeddings of its confident matches (BoT-SORT's EMA,
  ``e <- m * e + (1 - m) * f``, renormalised; JDE / FairMOT use the same smoothing); a pair with
  ``d_app > appearance_thresh`` counts as looking unlike (``d_app`` set to 1, BoT-SORT's appearance gate on the same
  halved cosine distance): it can still match on a good overlap, never on appearance;
- fused: ``(1 - appearance_weight) * d_iou + appearance_weight * d_app`` (DeepSORT's weighted sum of a motion and
  an appearance term, Wojke et al. 2017 eq. 5), assigned under ByteTrack's ``match_thresh``.

A weighted sum rather than BoT-SORT's ``min(d_iou, d_app)``: when two look-alike-shaped objects bounce off each
other, the Kalman prediction of one lands on the other's detection (``d_iou`` near 0), and only a cost that adds the
appearance term can refuse that swap. Low-score detections (step 2) are matched on IoU alone and never update the
appearance (they are mostly occluded; ByteTrack / BoT-SORT do the same). A track or detection without an embedding
falls back to ``d_iou``; with no embeddings at all the tracker equals :class:`ByteTracker`.
"""

from __future__ import annotations

import numpy as np

from train.errors import ConfigError
from train.track.bytetrack import _INFEASIBLE, ByteTracker, _Track


class AppearanceTracker(ByteTracker):
    """ByteTrack's association with a fused motion + appearance cost (see the module docstring).

    Args:
        appearance_weight: weight of the appearance distance in the fused cost, in [0, 1] (0 = motion only).
        proximity_thresh: motion gate, the largest IoU distance (1 - IoU x score) a pair may have to match when
            appearance is used, in [0, 1].
        appearance_thresh: appearance gate: a pair whose halved cosine distance ``(1 - cos) / 2`` exceeds it gets
            the largest appearance distance, 1, in [0, 1] (0.25 = cosine similarity 0.5, BoT-SORT's default).
        ema_momentum: weight of a track's previous appearance when a confident match updates it, in [0, 1)
            (BoT-SORT: 0.9).
        **kwargs: :class:`ByteTracker`'s parameters (keyword-only, same defaults).

    Raises:
        ConfigError: a parameter outside its range (named), or any of ByteTracker's errors.
    """

    def __init__(self, *, appearance_weight: float = 0.6, proximity_thresh: float = 0.9,
                 appearance_thresh: float = 0.35, ema_momentum: float = 0.9, **kwargs) -> None:
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

    def _cost(self, tracks: list[_Track], det: np.ndarray, boxes: np.ndarray, scores: np.ndarray,
              labels: np.ndarray, embeddings: np.ndarray | None) -> np.ndarray:
        """Fused cost (T, D) of ``tracks`` vs detections ``det`` (indices); ``_INFEASIBLE`` where a gate refuses."""
        d_iou = super()._cost(tracks, det, boxes, scores, labels, embeddings)
        known = np.array([t.embedding is not None for t in tracks], bool)
        if embeddings is None or not known.any() or len(det) == 0 or self.appearance_weight == 0.0:
            return d_iou
        rows = np.flatnonzero(known)
        appearance = np.stack([tracks[i].embedding for i in rows])  # (T', D) unit
        d_app = (1.0 - appearance @ embeddings[det].T) / 2.0  # (T', D) in [0, 1]
        cost = d_iou.copy()
        w = self.appearance_weight
        d_app = np.where(d_app > self.appearance_thresh, 1.0, d_app)  # appearance gate: looks unlike
        fused = (1.0 - w) * d_iou[rows] + w * d_app
        cost[rows] = np.where(d_iou[rows] > self.proximity_thresh, _INFEASIBLE, fused)  # motion gate
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
