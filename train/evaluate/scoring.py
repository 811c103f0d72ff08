"""Tracking evaluation with the benchmarks' own metrics and preprocessing: HOTA, CLEAR and Identity.

Metrics come from the ``trackeval`` package's metric classes (``trackeval.metrics.HOTA``, ``CLEAR``,
``Identity``, ``Count``: ``eval_sequence`` per sequence and class, ``combine_sequences`` over the
sequences of a val set, ``combine_classes_det_averaged`` over classes). This module only prepares their
input the way the benchmarks' own evaluation does (TrackEval's ``get_preprocessed_seq_data``):

* ``match`` ignore rule (MOTChallenge / DanceTrack, ``MotChallenge2DBox``): per frame, predictions are
  matched to ground-truth boxes by the Hungarian algorithm on IoU (pairs with IoU < 0.5 not allowed);
  predictions matched to a distractor (MOT17 classes 2, 7, 8, 12; a build's ignore regions, class 0) are
  removed before scoring.
* ``crowd`` ignore rule (BDD100K, VisDrone; TrackEval's ``BDD100K``): predictions are matched to the
  class's ground truth the same way; unmatched predictions lying more than 50 % inside an ignore region
  (intersection over the prediction's area > 0.5) are removed.
* ``none`` (MOT15, and VisDrone after its own ignored-region step, :mod:`train.evaluate.visdrone`): no
  prediction is removed.
* ground truth with conf 0 ("zero marked") and of other classes is removed before scoring (MOT15 has no
  classes: ``class_filter=False`` keeps every conf != 0 box, as TrackEval does for ``BENCHMARK = MOT15``).

Scale and combination: ratios are reported on a 0-100 scale (HOTA 63.2), counts as integers. HOTA, DetA,
AssA, LocA, DetRe, DetPr, AssRe, AssPr are the mean over TrackEval's 19 localisation thresholds
(alpha = 0.05..0.95), as TrackEval prints them. ``combined`` is TrackEval's detection-averaged class
combination (``combine_classes_det_averaged``: counts summed over classes, then the ratios computed),
the figure TrackEval reports as ``COMBINED`` for multi-class benchmarks.

Classes are chosen by the caller (a benchmark protocol, :mod:`train.evaluate.protocol`); tracker rows carry the
protocol's class ids, or -1 where the file has no class column (then only one class may be scored).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from builder.errors import FormatError
from builder.formats.motchallenge import NO_CLASS, MotTable
from train.errors import ConfigError, EvaluationError
from train.evaluate.matching import EPS, MATCH_IOU, box_iou_xywh, box_iou_xyxy, hungarian_matches
from train.evaluate.stats import sequence_stats

#: Keys of a metrics dict, in table order. Ratios on 0-100, counts integers.
HOTA_KEYS = ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr")
CLEAR_KEYS = ("MOTA", "MOTP")
IDENTITY_KEYS = ("IDF1", "IDP", "IDR")
COUNT_KEYS = ("IDSW", "FP", "FN", "TP", "Frag", "MT", "PT", "ML", "IDTP", "IDFP", "IDFN",
              "GT_Dets", "Dets", "GT_IDs", "IDs")
#: TrackEval's MOT17 distractor classes: person on vehicle, static person, distractor, reflection.
MOT17_DISTRACTORS = (2, 7, 8, 12)
#: Fraction of a prediction inside a crowd / ignore region beyond which it is removed (TrackEval BDD100K).
CROWD_IOA = 0.5
#: Ignore rule of each source's own benchmark (see the module docstring); other sources use ``match``.
SOURCE_IGNORE_RULE = {"mot17": "match", "dancetrack": "match", "bdd100k": "crowd", "visdrone": "crowd"}


@dataclass(frozen=True)
class EvalRules:
    """How ground truth and predictions are prepared before scoring (a benchmark's preprocessing).

    Attributes:
        ignore_rule: ``match`` (MOTChallenge distractor matching), ``crowd`` (BDD100K ignore regions) or
            ``none`` (no prediction removed).
        distractor_classes: gt class ids whose boxes are ignore regions / distractors.
        match_all_gt: ``match`` rule only: match predictions against every gt box of the frame, whatever
            its class (MOT17 official) instead of the evaluated class's boxes plus the distractors.
        class_filter: False where ground truth has no class (MOT15): every conf != 0 gt box is scored.
        box_format: how the sequences' ``boxes`` columns are to be read: ``xywh`` (MOTChallenge files) or
            ``xyxy`` (BDD100K's box2d, scored as TrackEval's BDD100K dataset does, without converting).
    """

    ignore_rule: str = "match"
    distractor_classes: tuple[int, ...] = (0,)
    match_all_gt: bool = False
    class_filter: bool = True
    box_format: str = "xywh"

    def __post_init__(self) -> None:
        if self.ignore_rule not in ("match", "crowd", "none"):
            raise ConfigError(f"EvalRules: ignore_rule {self.ignore_rule!r} unknown; expected match, crowd or none")
        if self.box_format not in ("xywh", "xyxy"):
            raise ConfigError(f"EvalRules: box_format {self.box_format!r} unknown; expected 'xywh' or 'xyxy'")

    def iou(self, a: np.ndarray, b: np.ndarray, ioa: bool = False) -> np.ndarray:
        """IoU (IoA) of (N, 4) and (M, 4) boxes in :attr:`box_format` -> (N, M)."""
        return (box_iou_xyxy if self.box_format == "xyxy" else box_iou_xywh)(a, b, ioa)


#: Rules for a project build (class 0 = ignore region) and for the official MOT17 / DanceTrack files.
BUILD_MATCH_RULES = EvalRules("match", (0,), False)
BUILD_CROWD_RULES = EvalRules("crowd", (0,), False)
MOT17_RULES = EvalRules("match", MOT17_DISTRACTORS, True)
#: MOT20 adds "non motorized vehicle" (6) to the distractors (TrackEval's MotChallenge2DBox, BENCHMARK MOT20).
MOT20_RULES = EvalRules("match", (*MOT17_DISTRACTORS, 6), True)


@dataclass
class SequenceData:
    """Ground truth and tracker output of one sequence.

    Attributes:
        name: sequence name (the result file is ``<name>.txt``).
        num_frames: frames 1..num_frames are scored (seqLength).
        gt: ground-truth rows; ``classes`` = class id, ``conf`` 0 = not considered.
        tracker: tracker rows; ``classes`` = class id or -1 when the file has no class column.
    """

    name: str
    num_frames: int
    gt: MotTable
    tracker: MotTable


@dataclass
class _Frames:
    """Row indices per frame of gt and tracker tables (computed once per sequence)."""

    gt: list[np.ndarray] = field(default_factory=list)
    tracker: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True)
class _FrameGt:
    """One frame's gt rows with their roles for one class: the boxes scored, distractors, matching pool."""

    boxes: np.ndarray  # (G, 4) xywh
    positive: np.ndarray  # (G,) bool: scored as ground truth of the class
    distractor: np.ndarray  # (G,) bool: ignore region / distractor
    pool: np.ndarray  # (G,) bool: matched against predictions by the ``match`` rule


def _removed_predictions(gt: _FrameGt, sim: np.ndarray, trk_boxes: np.ndarray, rules: EvalRules) -> np.ndarray:
    """Indices (into the frame's predictions) removed by the ignore rule; ``sim`` = IoU (G, T) of the frame."""
    if sim.size == 0 or not gt.distractor.any() or rules.ignore_rule == "none":
        return np.zeros(0, int)
    if rules.ignore_rule == "match":
        rows, cols = hungarian_matches(sim[gt.pool])
        return cols[gt.distractor[gt.pool][rows]]
    _, cols = hungarian_matches(sim[gt.positive])
    unmatched = np.setdiff1d(np.arange(len(trk_boxes)), cols)
    ioa = rules.iou(trk_boxes[unmatched], gt.boxes[gt.distractor], ioa=True)
    return unmatched[(ioa > CROWD_IOA + EPS).any(axis=1)]


def _tracker_class_mask(seq: SequenceData, cls: int, single_class: bool) -> np.ndarray:
    """Tracker rows of class ``cls``; rows without a class (-1) count as the class when only one is scored."""
    mask = seq.tracker.classes == cls
    unclassed = seq.tracker.classes == NO_CLASS
    if unclassed.any():
        if not single_class:
            raise EvaluationError(f"{seq.tracker.source}: column 8 is not read as a class (no results.json "
                                  "sidecar lists this file, and no --result-classes names its class ids) but several "
                                  "classes are scored; give the class names of column 8 with --result-classes")
        mask |= unclassed
    return mask


def _check_unique_ids(table: MotTable, rows: list[np.ndarray], what: str, scored: np.ndarray | None = None) -> None:
    """Raise EvaluationError naming the file and frame where an id appears twice (TrackEval's check).

    ``scored`` (N,) bool restricts the check to those rows: ignore regions may share an id (VisDrone's ignored
    regions all carry id 0; TrackEval's BDD100K checks only the boxes it scores).
    """
    for t, idx in enumerate(rows):
        if scored is not None:
            idx = idx[scored[idx]]
        ids = table.ids[idx]
        if len(ids) != len(np.unique(ids)):
            dup = sorted({int(i) for i in ids if (ids == i).sum() > 1})
            raise EvaluationError(f"{table.source}: {what} id(s) {dup} appear more than once in frame {t + 1}")


def _relabel(ids_per_frame: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Map ids to 0..K-1 (TrackEval's contiguous relabelling); returns new ids per frame and K."""
    unique = np.unique(np.concatenate(ids_per_frame)) if ids_per_frame else np.zeros(0, int)
    return [np.searchsorted(unique, ids).astype(int) for ids in ids_per_frame], len(unique)


def preprocess(seq: SequenceData, cls: int, rules: EvalRules, *, single_class: bool,
               frames: _Frames | None = None) -> dict:
    """The trackeval metric input for one sequence and one class, after the benchmark's preprocessing.

    Args:
        seq: ground truth and tracker rows of the sequence.
        cls: class id to score (gt class column; tracker class column).
        rules: the ignore rule and distractor classes.
        single_class: whether only one class is scored (then tracker rows without a class count).
        frames: row indices per frame, if already computed.

    Returns:
        dict with TrackEval's keys: ``num_timesteps, num_gt_ids, num_tracker_ids, num_gt_dets,
        num_tracker_dets, gt_ids, tracker_ids, gt_dets, tracker_dets, similarity_scores, seq`` (per-frame
        lists; boxes xywh pixels; similarity = IoU).
    """
    frames = frames or _Frames(seq.gt.by_frame(seq.num_frames), seq.tracker.by_frame(seq.num_frames))
    trk_mask = _tracker_class_mask(seq, cls, single_class)
    distractor = np.isin(seq.gt.classes, rules.distractor_classes) if rules.ignore_rule != "none" \
        else np.zeros(len(seq.gt), bool)
    of_class = (seq.gt.classes == cls) if rules.class_filter else np.ones(len(seq.gt), bool)
    positive = of_class & (seq.gt.conf != 0) & ~distractor
    pool = np.ones_like(positive) if rules.match_all_gt else positive | distractor
    out = {k: [] for k in ("gt_ids", "tracker_ids", "gt_dets", "tracker_dets", "similarity_scores")}
    for g_rows, t_rows in zip(frames.gt, frames.tracker, strict=True):
        t_rows = t_rows[trk_mask[t_rows]]
        if not rules.match_all_gt:  # rows of other classes play no part
            g_rows = g_rows[pool[g_rows] | positive[g_rows]]
        frame = _FrameGt(seq.gt.boxes[g_rows], positive[g_rows], distractor[g_rows], pool[g_rows])
        sim = rules.iou(frame.boxes, seq.tracker.boxes[t_rows])  # every gt x prediction once, as TrackEval
        keep = np.delete(np.arange(len(t_rows)), _removed_predictions(frame, sim, seq.tracker.boxes[t_rows], rules))
        t_rows, g_keep = t_rows[keep], g_rows[frame.positive]
        out["gt_ids"].append(seq.gt.ids[g_keep])
        out["tracker_ids"].append(seq.tracker.ids[t_rows])
        out["gt_dets"].append(seq.gt.boxes[g_keep])
        out["tracker_dets"].append(seq.tracker.boxes[t_rows])
        out["similarity_scores"].append(sim[frame.positive][:, keep])
    out["gt_ids"], out["num_gt_ids"] = _relabel(out["gt_ids"])
    out["tracker_ids"], out["num_tracker_ids"] = _relabel(out["tracker_ids"])
    out["num_gt_dets"] = int(sum(len(x) for x in out["gt_ids"]))
    out["num_tracker_dets"] = int(sum(len(x) for x in out["tracker_ids"]))
    out["num_timesteps"] = seq.num_frames
    out["seq"] = seq.name
    return out


def _metric_objects() -> dict:
    """Fresh trackeval metric instances (HOTA, CLEAR, Identity, Count) with printing off."""
    import trackeval

    quiet = {"PRINT_CONFIG": False}
    return {"HOTA": trackeval.metrics.HOTA(), "CLEAR": trackeval.metrics.CLEAR(dict(quiet, THRESHOLD=MATCH_IOU)),
            "Identity": trackeval.metrics.Identity(dict(quiet, THRESHOLD=MATCH_IOU)),
            "Count": trackeval.metrics.Count()}


def summarise(res: dict) -> dict:
    """Flatten trackeval results {metric name: fields} into the metrics.json keys (0-100 ratios, int counts)."""
    hota, clear, ident, count = res["HOTA"], res["CLEAR"], res["Identity"], res["Count"]
    out = {k: 100.0 * float(np.mean(hota[k])) for k in HOTA_KEYS}
    out.update({k: 100.0 * float(clear[k]) for k in CLEAR_KEYS})
    out.update({k: 100.0 * float(ident[k]) for k in IDENTITY_KEYS})
    counts = {"IDSW": clear["IDSW"], "FP": clear["CLR_FP"], "FN": clear["CLR_FN"], "TP": clear["CLR_TP"],
              "Frag": clear["Frag"], "MT": clear["MT"], "PT": clear["PT"], "ML": clear["ML"],
              "IDTP": ident["IDTP"], "IDFP": ident["IDFP"], "IDFN": ident["IDFN"],
              "GT_Dets": count["GT_Dets"], "Dets": count["Dets"], "GT_IDs": count["GT_IDs"], "IDs": count["IDs"]}
    out.update({k: int(round(float(v))) for k, v in counts.items()})
    return out


def _validate_sequence(seq: SequenceData, rules: EvalRules) -> _Frames:
    """Per-frame row indices, checking frame ranges and unique ids (errors name the file).

    Ground-truth ids must be unique per frame among the boxes that can be scored (conf != 0, class not a
    distractor / ignore region); tracker ids among all rows.
    """
    try:
        frames = _Frames(seq.gt.by_frame(seq.num_frames), seq.tracker.by_frame(seq.num_frames))
    except FormatError as exc:
        raise EvaluationError(str(exc)) from None
    scored = (seq.gt.conf != 0) & ~np.isin(seq.gt.classes, rules.distractor_classes)
    _check_unique_ids(seq.gt, frames.gt, "ground-truth", scored)
    _check_unique_ids(seq.tracker, frames.tracker, "tracker")
    return frames


def evaluate_sequences(sequences: list[SequenceData], class_ids: dict[str, int], rules: EvalRules) -> dict:
    """Score sequences as one val set: per class, combined over classes, and per sequence.

    Args:
        sequences: the val set's sequences.
        class_ids: {class name: class id} of the classes to score.
        rules: preprocessing rules.

    Returns:
        ``{"combined": metrics, "per_class": {name: metrics}, "per_sequence": {seq: metrics},
        "sequence_stats": {name: {seq: stats}}}`` where metrics holds :data:`HOTA_KEYS`, :data:`CLEAR_KEYS`,
        :data:`IDENTITY_KEYS` (0-100) and :data:`COUNT_KEYS` (int); ``combined`` and ``per_sequence`` use
        ``combine_classes_det_averaged``; stats are :func:`train.evaluate.stats.sequence_stats` (what a
        bootstrap over sequences resamples).
    """
    if not class_ids:
        raise EvaluationError("no class to evaluate")
    metrics = _metric_objects()
    single = len(class_ids) == 1
    raw: dict[str, dict[str, dict]] = {name: {} for name in class_ids}  # class -> seq -> metric -> res
    for seq in sequences:
        frames = _validate_sequence(seq, rules)
        for name, cls in class_ids.items():
            data = preprocess(seq, cls, rules, single_class=single, frames=frames)
            raw[name][seq.name] = {m: obj.eval_sequence(data) for m, obj in metrics.items()}
    per_class = {name: {m: obj.combine_sequences({s: r[m] for s, r in raw[name].items()})
                        for m, obj in metrics.items()} for name in class_ids}
    combined = {m: obj.combine_classes_det_averaged({c: per_class[c][m] for c in class_ids})
                for m, obj in metrics.items()}
    per_seq = {seq.name: summarise({m: obj.combine_classes_det_averaged({c: raw[c][seq.name][m] for c in class_ids})
                                    for m, obj in metrics.items()}) for seq in sequences}
    return {"combined": summarise(combined), "per_class": {c: summarise(r) for c, r in per_class.items()},
            "per_sequence": per_seq,
            "sequence_stats": {c: {s: sequence_stats(r) for s, r in raw[c].items()} for c in class_ids}}


def default_eval_classes(sequences: list[SequenceData], classes: list[str]) -> dict[str, int]:
    """{name: id} of the classes (ids 1-based in ``classes``) with a scored gt box or a prediction in the sequences.

    A class predicted but absent from the ground truth is scored too: its predictions are false positives
    (TrackEval's BDD100K runner and the official toolkits count them). Falls back to every class when there is
    neither (e.g. a val set of empty frames and no predictions).
    """
    present = set()
    for seq in sequences:
        present.update(np.unique(seq.gt.classes[seq.gt.conf != 0]).tolist())
        present.update(np.unique(seq.tracker.classes).tolist())
    chosen = {name: i + 1 for i, name in enumerate(classes) if i + 1 in present}
    return chosen or {name: i + 1 for i, name in enumerate(classes)}


def truncate(seq: SequenceData, max_frames: int) -> SequenceData:
    """The sequence restricted to frames 1..max_frames (rows of later frames dropped)."""
    n = min(seq.num_frames, max_frames)
    return SequenceData(seq.name, n, seq.gt.select(seq.gt.frames <= n), seq.tracker.select(seq.tracker.frames <= n))


def evaluate_with_classes(sequences: list[SequenceData], classes: list[str], rules: EvalRules,
                           eval_classes: list[str] | None) -> dict:
    """Resolve the class names to score, then :func:`evaluate_sequences`."""
    if eval_classes:
        unknown = [c for c in eval_classes if c not in classes]
        if unknown:
            raise EvaluationError(f"classes {unknown} not in the class list {classes}")
        class_ids = {c: classes.index(c) + 1 for c in eval_classes}
    else:
        class_ids = default_eval_classes(sequences, classes)
    return evaluate_sequences(sequences, class_ids, rules)
