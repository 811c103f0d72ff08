"""Per-frame matching of ground truth and predictions for review (train.viz): which box is a stable match, an
ID switch, a miss, a false positive or on an ignore region.

Positive ground-truth boxes are matched to predicted boxes by the Hungarian algorithm on IoU (a pair needs
IoU >= 0.5 and, when both carry a class id >= 1, the same class), keeping the previous frame's pairs when they
still qualify, as CLEAR MOT (Bernardin & Stiefelhagen 2008) and TrackEval do. Boxes are xyxy pixels, float64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from builder.formats.motchallenge import MotTable, xywh_to_xyxy
from train.evaluate.matching import MATCH_IOU, hungarian_matches
from train.track.bytetrack import box_iou

#: Minimum IoU for a GT-prediction or ignore-prediction pair (the MOTChallenge / TrackEval threshold).
IOU_THRESHOLD = MATCH_IOU


#: Bonus added to pairs that continue last frame's match, so that they win over any new pair (CLEAR MOT).
_CONTINUE_BONUS = 10.0


@dataclass
class FrameBoxes:
    """Boxes of one frame.

    Attributes:
        boxes: (N, 4) float64, xyxy pixels.
        ids: (N,) int64 track ids (GT ids or predicted ids).
        classes: (N,) int64 class ids (unified class id; -1 = unknown, matched to any class).
    """

    boxes: np.ndarray
    ids: np.ndarray
    classes: np.ndarray

    @staticmethod
    def from_table(table: MotTable, rows: np.ndarray) -> FrameBoxes:
        """Rows ``rows`` of a MOT table, boxes converted xywh -> xyxy."""
        return FrameBoxes(xywh_to_xyxy(table.boxes[rows]).astype(np.float64), table.ids[rows].copy(),
                          table.classes[rows].copy())

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


@dataclass
class FrameMatch:
    """How one frame's predictions relate to its ground truth.

    Attributes:
        matched: (gt index, prediction index) pairs, IoU >= 0.5.
        switched: for each pair of ``matched``, the GT's previous matched prediction id when it differs
            from this frame's (an ID switch), else None.
        missed: indices of positive GTs with no match.
        false_positives: indices of predictions matched to no GT and no ignore region.
        ignored: indices of predictions matched to an ignore region (not scored).
    """

    matched: list[tuple[int, int]] = field(default_factory=list)
    switched: list[int | None] = field(default_factory=list)
    missed: list[int] = field(default_factory=list)
    false_positives: list[int] = field(default_factory=list)
    ignored: list[int] = field(default_factory=list)

    @property
    def num_switches(self) -> int:
        """Number of ID switches in this frame (orange boxes)."""
        return sum(s is not None for s in self.switched)


def _class_ok(gt_classes: np.ndarray, pr_classes: np.ndarray) -> np.ndarray:
    """(N, M) bool: classes agree, or either side carries no class (< 1)."""
    g, p = gt_classes[:, None], pr_classes[None, :]
    return (g < 1) | (p < 1) | (g == p)


def _hungarian(score: np.ndarray, valid: np.ndarray) -> list[tuple[int, int]]:
    """Maximum-score assignment restricted to ``valid`` pairs; returns (row, col) pairs."""
    rows, cols = hungarian_matches(score, valid)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)]


def match_frame(gt: FrameBoxes, pred: FrameBoxes, ignore_boxes: np.ndarray, last_match: dict[int, int],
                *, iou_threshold: float = IOU_THRESHOLD,
                previous_frame: dict[int, int] | None = None) -> tuple[FrameMatch, dict[int, int]]:
    """Match one frame's predictions to its positive GT and ignore regions.

    Args:
        gt: positive ground truth of the frame.
        pred: predictions of the frame.
        ignore_boxes: (K, 4) xyxy pixels, the frame's ignore regions.
        last_match: GT id -> predicted id at that GT's most recent match (earlier frames); an ID switch is
            a match to another predicted id.
        iou_threshold: minimum IoU of a pair.
        previous_frame: GT id -> predicted id of the pairs matched in the immediately previous frame; only
            those pairs are kept in preference to better-overlapping ones (TrackEval's CLEAR, which resets
            this map every frame). None = ``last_match`` (the two agree when every GT was matched last frame).

    Returns:
        (the frame's ``FrameMatch``, the updated GT id -> predicted id map; ``last_match`` is not changed).
        The pairs of this frame, for the next call's ``previous_frame``, are ``FrameMatch.matched``.
    """
    iou = box_iou(gt.boxes, pred.boxes)
    valid = (iou >= iou_threshold) & _class_ok(gt.classes, pred.classes)
    keep_from = last_match if previous_frame is None else previous_frame
    kept = np.array([[keep_from.get(int(g)) == int(p) for p in pred.ids] for g in gt.ids], bool)
    pairs = _hungarian(iou + _CONTINUE_BONUS * kept.reshape(iou.shape), valid)
    result, updated = FrameMatch(matched=pairs), dict(last_match)
    for g, p in pairs:
        gid, pid = int(gt.ids[g]), int(pred.ids[p])
        before = last_match.get(gid)
        result.switched.append(before if before is not None and before != pid else None)
        updated[gid] = pid
    used_gt, used_pr = {g for g, _ in pairs}, {p for _, p in pairs}
    result.missed = [i for i in range(len(gt)) if i not in used_gt]
    rest = np.array([i for i in range(len(pred)) if i not in used_pr], np.int64)
    ign_iou = box_iou(ignore_boxes, pred.boxes[rest])
    on_ignore = {int(rest[c]) for _, c in _hungarian(ign_iou, ign_iou >= iou_threshold)}
    result.ignored = sorted(on_ignore)
    result.false_positives = [int(i) for i in rest if int(i) not in on_ignore]
    return result, updated
