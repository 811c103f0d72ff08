"""Box overlap and one-to-one matching with TrackEval's arithmetic, shared by the scorer and the video review.

Boxes are (N, 4) xywh pixels (top-left corner + size), as MOTChallenge files hold them, or xyxy pixels where a
function says so (BDD100K's box2d).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

#: Similarity threshold of the preprocessing match and of the CLEAR / Identity metrics (TrackEval's 0.5).
MATCH_IOU = 0.5
#: TrackEval's float epsilon: similarities at or below it count as zero.
EPS = np.finfo("float").eps


def box_iou_xywh(a: np.ndarray, b: np.ndarray, ioa: bool = False) -> np.ndarray:
    """IoU (or intersection over the area of ``a`` when ``ioa``) of (N, 4) and (M, 4) xywh boxes -> (N, M).

    The same arithmetic as TrackEval's ``_calculate_box_ious`` with ``box_format='xywh'`` (x2 = x + w, then
    :func:`box_iou_xyxy`; degenerate boxes give 0), so that scores equal TrackEval's to the last bit.
    """
    a = np.array(a, np.float64).reshape(-1, 4)
    b = np.array(b, np.float64).reshape(-1, 4)
    a[:, 2:] += a[:, :2]
    b[:, 2:] += b[:, :2]
    return box_iou_xyxy(a, b, ioa)


def box_iou_xyxy(a: np.ndarray, b: np.ndarray, ioa: bool = False) -> np.ndarray:
    """IoU (or intersection over the area of ``a`` when ``ioa``) of (N, 4) and (M, 4) xyxy boxes -> (N, M).

    TrackEval's ``_calculate_box_ious`` with ``box_format='x0y0x1y1'`` (its BDD100K dataset): areas
    ``(x2 - x1) * (y2 - y1)``, no +1.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lo = np.minimum(a[:, None, :], b[None, :, :])
    hi = np.maximum(a[:, None, :], b[None, :, :])
    inter = np.maximum(lo[..., 2] - hi[..., 0], 0) * np.maximum(lo[..., 3] - hi[..., 1], 0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    if ioa:
        out = np.zeros_like(inter)
        ok = area_a > EPS
        out[ok, :] = inter[ok, :] / area_a[ok][:, None]
        return out
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    inter[area_a <= EPS, :] = 0
    inter[:, area_b <= EPS] = 0
    inter[union <= EPS] = 0
    union[union <= EPS] = 1
    return inter / union


def hungarian_matches(score: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one matches of maximum total ``score`` (scipy's Hungarian solver), as TrackEval matches boxes.

    Args:
        score: (N, M) float similarity (IoU, possibly plus a bonus).
        valid: (N, M) bool pairs allowed to match; default ``score >= MATCH_IOU`` (TrackEval's rule).

    Returns:
        ``(rows, cols)`` int arrays of the matched pairs: valid, with a score above :data:`EPS`.
    """
    if score.size == 0:
        return np.zeros(0, int), np.zeros(0, int)
    valid = score >= MATCH_IOU - EPS if valid is None else valid
    scores = np.where(valid, score, 0.0)
    rows, cols = linear_sum_assignment(-scores)
    ok = valid[rows, cols] & (scores[rows, cols] > EPS)
    return rows[ok], cols[ok]
