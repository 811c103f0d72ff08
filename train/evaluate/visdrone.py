"""The official VisDrone2019-MOT protocol: the toolkit's five classes, its ignored-region rule and its aggregation.

Source of every rule: VisDrone2018-MOT-toolkit (used for VisDrone2019-MOT), ``evaluateTrackB.m`` and the files it
calls, at its latest revision:

- categories (``eval/classSplit.m``): 0 ignored region, 1 pedestrian, 2 people, 3 bicycle, 4 car, 5 van, 6 truck,
  7 tricycle, 8 awning-tricycle, 9 bus, 10 motor, 11 others; scored (``evalMOT.m`` ``evalClassSet``): car, bus,
  truck, pedestrian, van. "people" and the others are not scored. Results use the same category column (the
  toolkit's submission format ``frame,id,x,y,w,h,score,category,truncation,occlusion``); the score column of the
  ground truth is not read;
- ignored regions (``eval/dropObjects.m``): per frame, the union of the ground-truth boxes of categories 0 and 11,
  rounded to whole pixels (MATLAB ``round``, at least 1) and drawn inclusive of both ends on a frame-sized map;
  every ground-truth box and every result box with at least 50 % of its (rounded) area inside that union is removed
  before matching, as are the category-0 and -11 boxes themselves (results are checked against the original
  ground truth's regions, ``evaluateTrackB.m``); the frame size is the sequence's first image's;
- result rows after the last ground-truth frame are removed ("clip result to gtMaxFrame");
- per sequence and class, CLEAR MOT (``utils/CLEAR_MOT_HUN.m``, IoU >= 0.5) and ID measures
  (``utils/IDmeasures.m``); a (sequence, class) pair without ground truth is skipped (``eval/classEval.m``,
  ``utils/evaluateBenchmark.m``), so predictions of a class a sequence has no ground truth of are not counted
  (counted here as ``predictions_not_scored``): the one place where the official tool does not count
  absent-class predictions as false positives;
- aggregation (``utils/evaluateBenchmark.m``): counts summed over sequences per class, and over every (sequence,
  class) pair for the overall row (``combined``); per-category NaN values -> 0. ``class_mean`` (the mean over
  the five classes, absent = 0) is reported beside them, labelled as such.

Metrics are TrackEval's HOTA / CLEAR / Identity code (:mod:`train.evaluate.scoring`), whose CLEAR and Identity
reproduce the MOTChallenge devkit the toolkit is built on; HOTA is an addition the toolkit does not print.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from builder.formats.motchallenge import MotTable, read_seqmap
from builder.records import IGNORE, WarningCounter
from train.errors import EvaluationError
from train.evaluate.protocol import Protocol, class_mean, register
from train.evaluate.result_files import load_result_files, map_classes
from train.evaluate.scoring import EvalRules, SequenceData, evaluate_sequences
from train.evaluate.unified import records_table

#: Toolkit categories 0..11 (eval/classSplit.m); class id = category id.
CATEGORIES = {0: "ignored", 1: "pedestrian", 2: "people", 3: "bicycle", 4: "car", 5: "van", 6: "truck",
              7: "tricycle", 8: "awning-tricycle", 9: "bus", 10: "motor", 11: "others"}
#: The classes the toolkit scores, in evalMOT.m's order, with their category ids.
EVAL_CLASSES = {"car": 4, "bus": 9, "truck": 6, "pedestrian": 1, "van": 5}
#: Categories whose boxes are ignored regions (eval/dropObjects.m).
IGNORED_CATEGORIES = (0, 11)
#: The class map reading raw annotations as the toolkit's categories (0 and 11 -> ignore regions).
CLASSMAP = Path(__file__).resolve().parents[2] / "conf" / "classmaps" / "visdrone_official.toml"
#: Least fraction of a box's area inside the ignored regions that removes it (dropObjects.m: kept if < 0.5).
IGNORED_FRACTION = 0.5
#: No prediction is removed by scoring's own ignore rules: the ignored-region step comes first.
VISDRONE_RULES = EvalRules("none", (), False)


def matlab_round(values: np.ndarray) -> np.ndarray:
    """MATLAB's ``round``: halves away from zero (numpy rounds them to even)."""
    return np.sign(values) * np.floor(np.abs(values) + 0.5)


def outside_ignored(boxes: np.ndarray, regions: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N,) bool: boxes kept by dropObjects.m (less than 50 % of the rounded box inside the regions' union).

    Args:
        boxes: (N, 4) xywh pixels. regions: (M, 4) xywh pixels of the frame's ignored regions.
        width, height: the frame size in pixels.

    The arithmetic is the toolkit's, 1-based: region ``(x, y, w, h) = max(1, round(.))`` fills map rows
    ``y..min(H, y + h)`` and columns ``x..min(W, x + w)``; a box's count is the integral image's
    ``I(y2, x2) + I(y, x) - I(y, x2) - I(y2, x)`` with ``x`` clamped to 1..W, ``x2 = min(W, x + w)``, ``y2 =
    max(1, min(H, y + h))``, compared with ``w * h``.
    """
    keep = np.ones(len(boxes), bool)
    if not len(regions) or not len(boxes):
        return keep
    mask = np.zeros((height, width))
    for x, y, w, h in np.maximum(1, matlab_round(np.asarray(regions, np.float64))).astype(int).tolist():
        mask[y - 1:min(height, y + h), x - 1:min(width, x + w)] = 1
    integral = mask.cumsum(axis=0).cumsum(axis=1)
    pos = np.maximum(1, matlab_round(np.asarray(boxes, np.float64))).astype(int)
    x = np.clip(pos[:, 0], 1, width)
    y = np.clip(pos[:, 1], 1, height)
    w, h = pos[:, 2], pos[:, 3]
    x2 = np.minimum(width, x + w)
    y2 = np.maximum(1, np.minimum(height, y + h))
    inside = integral[y - 1, x - 1] + integral[y2 - 1, x2 - 1] - integral[y - 1, x2 - 1] - integral[y2 - 1, x - 1]
    return inside / (h * w) < IGNORED_FRACTION


def drop_ignored(table: MotTable, gt: MotTable, width: int, height: int) -> MotTable:
    """``table`` without its category-0/11 rows (class 0 here) and without rows at least 50 % inside the ignored
    regions of ``gt`` in their frame (eval/dropObjects.m)."""
    keep = table.classes != IGNORE
    regions = gt.classes == IGNORE
    for frame in np.unique(gt.frames[regions]).tolist():
        rows = np.flatnonzero(keep & (table.frames == frame))
        keep[rows] = outside_ignored(table.boxes[rows], gt.boxes[regions & (gt.frames == frame)], width, height)
    return table.select(keep)


def _category(name: str) -> int | None:
    ids = {v: k for k, v in CATEGORIES.items()}
    if name not in ids:
        raise EvaluationError(f"result class {name!r} is not a VisDrone category (valid: {', '.join(ids)}); score "
                              "unified-class results with --protocol unified")
    return IGNORE if ids[name] in IGNORED_CATEGORIES else ids[name]


@register("visdrone", name="official")
class VisDroneOfficial(Protocol):
    """The VisDrone2019-MOT toolkit's Task 4B rules (module docstring)."""

    label = ("official visdrone protocol: VisDrone2018-MOT-toolkit evaluateTrackB.m rules, classes car, bus, truck, "
             "pedestrian, van; ignored regions removed before matching")

    def evaluate(self, root: Path, split: str, results_dir: Path) -> dict:
        from builder.classmap import ClassMap
        from builder.sources import get_source

        opts = self.options
        classes = [CATEGORIES[k] for k in range(1, 11)]
        adapter = get_source("visdrone")(Path(root), ClassMap.load(CLASSMAP, classes), WarningCounter())
        names = read_seqmap(opts.seqmap) if opts.seqmap else adapter.sequence_names(split)
        files = load_result_files(results_dir, names, declared=opts.result_classes, category_names=CATEGORIES,
                                  allow_missing=opts.allow_missing, warnings=opts.warnings)
        sequences = []
        for name in names:
            rec = adapter.read_sequence(split, name)
            if rec.width <= 0 or rec.height <= 0:
                raise EvaluationError(f"{adapter.root}: sequence {name} has no image to take the frame size from "
                                      "(the ignored-region rule of dropObjects.m needs it)")
            raw_gt = records_table(rec.frames, Path(name))
            gt = drop_ignored(raw_gt, raw_gt, rec.width, rec.height)
            tracker = drop_ignored(map_classes(files[name], _category, opts.warnings, benchmark="visdrone"),
                                   raw_gt, rec.width, rec.height)
            tracker = self._toolkit_pairs(tracker, gt, name)
            sequences.append(SequenceData(name, max((f.index for f in rec.frames), default=0), gt, tracker))
        scored = evaluate_sequences(sequences, EVAL_CLASSES, VISDRONE_RULES)
        return self.entry(scored) | {"class_mean": class_mean(scored["per_class"])}

    def _toolkit_pairs(self, tracker: MotTable, gt: MotTable, name: str) -> MotTable:
        """Result rows the toolkit scores: frames up to the last ground-truth frame, and classes with ground truth
        in this sequence (classEval.m skips the others); the rest is counted as not scored."""
        last = int(gt.frames.max(initial=0))
        late = tracker.frames > last
        absent = ~np.isin(tracker.classes, np.unique(gt.classes)) & np.isin(tracker.classes,
                                                                            list(EVAL_CLASSES.values()))
        for kind, mask in (("results_after_last_gt_frame", late), ("predictions_not_scored", absent & ~late)):
            if mask.any():
                self.options.warnings.add(kind, f"{name}: {int(mask.sum())} row(s)", int(mask.sum()))
        return tracker.select(~late & ~absent)
