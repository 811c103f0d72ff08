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
* ground truth with conf 0 ("zero marked") and of other classes is removed before scoring.

Scale and combination: ratios are reported on a 0-100 scale (HOTA 63.2), counts as integers. HOTA, DetA,
AssA, LocA, DetRe, DetPr, AssRe, AssPr are the mean over TrackEval's 19 localisation thresholds
(alpha = 0.05..0.95), as TrackEval prints them. ``combined`` is TrackEval's detection-averaged class
combination (``combine_classes_det_averaged``: counts summed over classes, then the ratios computed),
the figure TrackEval reports as ``COMBINED`` for multi-class benchmarks.

Missing result files: an error naming every missing file, unless ``allow_missing=True`` (CLI
``--allow-missing``), which scores a missing file as an empty tracker output and logs a warning.

Usage::

    python -m train.evaluate --results runs/stage1/latest/eval/dancetrack/tracker \\
        --build data/builds/demo_stage1 --split val --json metrics.json
    python -m train.evaluate --results my_tracker/ --raw mot17 --root data/raw/MOT17 --split train
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from train.mot_io import (
    NO_CLASS,
    MotFormatError,
    MotTable,
    list_sequences,
    read_mot_file,
    read_seqinfo,
    read_seqmap,
)

log = logging.getLogger(__name__)

#: Keys of a metrics dict, in table order. Ratios on 0-100, counts integers.
HOTA_KEYS = ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr")
CLEAR_KEYS = ("MOTA", "MOTP")
IDENTITY_KEYS = ("IDF1", "IDP", "IDR")
COUNT_KEYS = ("IDSW", "FP", "FN", "TP", "Frag", "MT", "PT", "ML", "IDTP", "IDFP", "IDFN",
              "GT_Dets", "Dets", "GT_IDs", "IDs")
#: TrackEval's MOT17 distractor classes: person on vehicle, static person, distractor, reflection.
MOT17_DISTRACTORS = (2, 7, 8, 12)
#: Similarity threshold of the preprocessing match and of the CLEAR / Identity metrics (TrackEval's 0.5).
MATCH_IOU = 0.5
#: Fraction of a prediction inside a crowd / ignore region beyond which it is removed (TrackEval BDD100K).
CROWD_IOA = 0.5
_EPS = np.finfo("float").eps
#: Ignore rule of each source's own benchmark (see the module docstring); other sources use ``match``.
SOURCE_IGNORE_RULE = {"mot17": "match", "dancetrack": "match", "bdd100k": "crowd", "visdrone": "crowd"}


class EvaluationError(ValueError):
    """Evaluation input is inconsistent (missing or malformed files, duplicate ids); names the file."""


@dataclass(frozen=True)
class EvalRules:
    """How ground truth and predictions are prepared before scoring (a benchmark's preprocessing).

    Attributes:
        ignore_rule: ``match`` (MOTChallenge distractor matching) or ``crowd`` (BDD100K ignore regions).
        distractor_classes: gt class ids whose boxes are ignore regions / distractors.
        match_all_gt: ``match`` rule only: match predictions against every gt box of the frame, whatever
            its class (MOT17 official) instead of the evaluated class's boxes plus the distractors.
    """

    ignore_rule: str = "match"
    distractor_classes: tuple[int, ...] = (0,)
    match_all_gt: bool = False

    def __post_init__(self) -> None:
        if self.ignore_rule not in ("match", "crowd"):
            raise ValueError(f"EvalRules: ignore_rule {self.ignore_rule!r} unknown; expected 'match' or 'crowd'")


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


def box_iou_xywh(a: np.ndarray, b: np.ndarray, ioa: bool = False) -> np.ndarray:
    """IoU (or intersection over the area of ``a`` when ``ioa``) of (N, 4) and (M, 4) xywh boxes -> (N, M).

    The same arithmetic as TrackEval's ``_calculate_box_ious`` (degenerate boxes give 0), so that scores
    equal TrackEval's to the last bit.
    """
    a = np.array(a, np.float64).reshape(-1, 4)
    b = np.array(b, np.float64).reshape(-1, 4)
    a[:, 2:] += a[:, :2]
    b[:, 2:] += b[:, :2]
    lo = np.minimum(a[:, None, :], b[None, :, :])
    hi = np.maximum(a[:, None, :], b[None, :, :])
    inter = np.maximum(lo[..., 2] - hi[..., 0], 0) * np.maximum(lo[..., 3] - hi[..., 1], 0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    if ioa:
        out = np.zeros_like(inter)
        ok = area_a > _EPS
        out[ok, :] = inter[ok, :] / area_a[ok][:, None]
        return out
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    inter[area_a <= _EPS, :] = 0
    inter[:, area_b <= _EPS] = 0
    inter[union <= _EPS] = 0
    union[union <= _EPS] = 1
    return inter / union


def _hungarian_matches(sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns matched by maximum total similarity, pairs below MATCH_IOU not allowed (TrackEval)."""
    if sim.size == 0:
        return np.zeros(0, int), np.zeros(0, int)
    scores = sim.copy()
    scores[scores < MATCH_IOU - _EPS] = 0
    rows, cols = linear_sum_assignment(-scores)
    ok = scores[rows, cols] > _EPS
    return rows[ok], cols[ok]


@dataclass(frozen=True)
class _FrameGt:
    """One frame's gt rows with their roles for one class: the boxes scored, distractors, matching pool."""

    boxes: np.ndarray  # (G, 4) xywh
    positive: np.ndarray  # (G,) bool: scored as ground truth of the class
    distractor: np.ndarray  # (G,) bool: ignore region / distractor
    pool: np.ndarray  # (G,) bool: matched against predictions by the ``match`` rule


def _removed_predictions(gt: _FrameGt, sim: np.ndarray, trk_boxes: np.ndarray, rules: EvalRules) -> np.ndarray:
    """Indices (into the frame's predictions) removed by the ignore rule; ``sim`` = IoU (G, T) of the frame."""
    if sim.size == 0 or not gt.distractor.any():
        return np.zeros(0, int)
    if rules.ignore_rule == "match":
        rows, cols = _hungarian_matches(sim[gt.pool])
        return cols[gt.distractor[gt.pool][rows]]
    _, cols = _hungarian_matches(sim[gt.positive])
    unmatched = np.setdiff1d(np.arange(len(trk_boxes)), cols)
    ioa = box_iou_xywh(trk_boxes[unmatched], gt.boxes[gt.distractor], ioa=True)
    return unmatched[(ioa > CROWD_IOA + _EPS).any(axis=1)]


def _tracker_class_mask(seq: SequenceData, cls: int, single_class: bool) -> np.ndarray:
    """Tracker rows of class ``cls``; rows without a class (-1) count as the class when only one is scored."""
    mask = seq.tracker.classes == cls
    unclassed = seq.tracker.classes == NO_CLASS
    if unclassed.any():
        if not single_class:
            raise EvaluationError(f"{seq.tracker.source}: rows without a class column (class -1) but several "
                                  "classes are evaluated; write the class id in column 8")
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
    distractor = np.isin(seq.gt.classes, rules.distractor_classes)
    positive = (seq.gt.classes == cls) & (seq.gt.conf != 0) & ~distractor
    pool = np.ones_like(positive) if rules.match_all_gt else positive | distractor
    out = {k: [] for k in ("gt_ids", "tracker_ids", "gt_dets", "tracker_dets", "similarity_scores")}
    for g_rows, t_rows in zip(frames.gt, frames.tracker, strict=True):
        t_rows = t_rows[trk_mask[t_rows]]
        if not rules.match_all_gt:  # rows of other classes play no part
            g_rows = g_rows[pool[g_rows] | positive[g_rows]]
        frame = _FrameGt(seq.gt.boxes[g_rows], positive[g_rows], distractor[g_rows], pool[g_rows])
        sim = box_iou_xywh(frame.boxes, seq.tracker.boxes[t_rows])  # every gt x prediction once, as TrackEval
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
    except MotFormatError as exc:
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
        ``{"combined": metrics, "per_class": {name: metrics}, "per_sequence": {seq: metrics}}`` where
        metrics holds :data:`HOTA_KEYS`, :data:`CLEAR_KEYS`, :data:`IDENTITY_KEYS` (0-100) and
        :data:`COUNT_KEYS` (int). ``combined`` and ``per_sequence`` use ``combine_classes_det_averaged``.
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
            "per_sequence": per_seq}


def missing_results(results_dir: Path, names: Iterable[str], *, allow_missing: bool) -> list[str]:
    """Names whose ``<results_dir>/<name>.txt`` is missing; raises EvaluationError naming them all unless allowed."""
    missing = [n for n in names if not (Path(results_dir) / f"{n}.txt").is_file()]
    if missing and not allow_missing:
        raise EvaluationError(f"{results_dir}: no result file for {len(missing)} sequence(s): "
                              + ", ".join(f"{n}.txt" for n in missing)
                              + " (pass allow_missing / --allow-missing to score them as empty output)")
    return missing


def load_results(results_dir: Path, names: Iterable[str], *, allow_missing: bool) -> dict[str, MotTable]:
    """Read ``<results_dir>/<name>.txt`` for every sequence name.

    Raises:
        EvaluationError: result files are missing (all of them named) and ``allow_missing`` is False.
        MotFormatError: a malformed row (file:line).
    """
    results_dir = Path(results_dir)
    names = list(names)
    if not results_dir.is_dir():
        raise EvaluationError(f"{results_dir}: results folder not found (expected <seq>.txt files)")
    missing = missing_results(results_dir, names, allow_missing=allow_missing)
    for n in missing:
        log.warning("%s: no result file, scored as empty tracker output", results_dir / f"{n}.txt")
    return {n: (MotTable.empty(results_dir / f"{n}.txt") if n in missing else read_mot_file(results_dir / f"{n}.txt"))
            for n in names}


def default_eval_classes(sequences: list[SequenceData], classes: list[str]) -> dict[str, int]:
    """{name: id} of the classes (ids 1-based in ``classes``) with at least one scored gt box in the sequences.

    Falls back to every class when no gt box is positive (e.g. a val set of empty frames).
    """
    present = set()
    for seq in sequences:
        present.update(np.unique(seq.gt.classes[seq.gt.conf != 0]).tolist())
    chosen = {name: i + 1 for i, name in enumerate(classes) if i + 1 in present}
    return chosen or {name: i + 1 for i, name in enumerate(classes)}


def evaluate_mot(gt_dir: Path | str, results_dir: Path | str, *, classes: list[str], seqmap: Path | str | None = None,
                 seqs: list[str] | None = None, rules: EvalRules = BUILD_MATCH_RULES,
                 eval_classes: list[str] | None = None, allow_missing: bool = False,
                 max_frames: int | None = None) -> dict:
    """Evaluate one val set: MOTChallenge-layout gt folders against a folder of result files.

    Args:
        gt_dir: folder of sequences ``<seq>/{gt/gt.txt, seqinfo.ini}`` (a build split or a raw split).
        results_dir: folder of result files ``<seq>.txt`` (``frame,id,x,y,w,h,score,class,...``).
        classes: the class list; class id = 1-based position (``["person", "vehicle"]``).
        seqmap: TrackEval seqmap naming the sequences; default every sequence folder in ``gt_dir``.
        seqs: explicit sequence names (overrides ``seqmap``).
        rules: preprocessing rules (default: a build's ignore regions with the ``match`` rule).
        eval_classes: names of the classes to score; default the classes with gt boxes.
        allow_missing: score a missing result file as empty output (warning) instead of raising.
        max_frames: score only frames 1..max_frames of each sequence (quick evaluations during training;
            ground truth and results beyond are dropped).

    Returns:
        ``{"combined", "per_class", "per_sequence"}`` as :func:`evaluate_sequences` (the metrics.json val-set
        entry without ``detection``).

    Raises:
        FileNotFoundError / MotFormatError / EvaluationError naming the offending file.
    """
    gt_dir = Path(gt_dir)
    names = seqs or (read_seqmap(seqmap) if seqmap else list_sequences(gt_dir))
    if not names:
        raise EvaluationError(f"{gt_dir}: no sequence to evaluate (no seqinfo.ini found / empty seqmap)")
    results = load_results(Path(results_dir), names, allow_missing=allow_missing)
    sequences = [SequenceData(n, read_seqinfo(gt_dir / n).length, read_mot_file(gt_dir / n / "gt" / "gt.txt"),
                              results[n]) for n in names]
    if max_frames:
        sequences = [truncate(s, max_frames) for s in sequences]
    return _evaluate_with_classes(sequences, classes, rules, eval_classes)


def truncate(seq: SequenceData, max_frames: int) -> SequenceData:
    """The sequence restricted to frames 1..max_frames (rows of later frames dropped)."""
    n = min(seq.num_frames, max_frames)
    return SequenceData(seq.name, n, seq.gt.select(seq.gt.frames <= n), seq.tracker.select(seq.tracker.frames <= n))


def _evaluate_with_classes(sequences: list[SequenceData], classes: list[str], rules: EvalRules,
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


def val_set_of(seq_dir_name: str) -> str:
    """Val set (source) of a build sequence folder: the prefix before ``__`` (the whole name without one)."""
    return seq_dir_name.split("__", 1)[0]


def read_build_classes(build_dir: Path | str) -> list[str]:
    """The class list of a build (``build_manifest.json`` key ``classes``)."""
    path = Path(build_dir) / "build_manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: build manifest not found (is {build_dir} a build folder?)")
    try:
        classes = json.loads(path.read_text(encoding="utf-8"))["classes"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise EvaluationError(f"{path}: expected a JSON object with a 'classes' list ({exc})") from None
    return list(classes)


def build_val_sets(build_dir: Path | str, split: str, val_sets: list[str] | None = None) -> dict[str, list[str]]:
    """{val set: [sequence folder names]} of a build split, from its seqmap (or its folders).

    Raises:
        EvaluationError: a requested val set has no sequence (message lists the available ones).
    """
    build_dir = Path(build_dir)
    seqmap = build_dir / "seqmaps" / f"{split}.txt"
    names = read_seqmap(seqmap) if seqmap.is_file() else list_sequences(build_dir / split)
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(val_set_of(n), []).append(n)
    if val_sets:
        unknown = [v for v in val_sets if v not in groups]
        if unknown:
            raise EvaluationError(f"{build_dir}/{split}: val set(s) {unknown} not found; available: {sorted(groups)}")
        groups = {v: groups[v] for v in val_sets}
    return groups


def rules_for_source(source: str) -> EvalRules:
    """A build val set's rules: its source benchmark's ignore rule (:data:`SOURCE_IGNORE_RULE`), class 0 ignored."""
    return BUILD_CROWD_RULES if SOURCE_IGNORE_RULE.get(source, "match") == "crowd" else BUILD_MATCH_RULES


def results_dir_for(results_dir: Path | str, val_set: str) -> Path:
    """Where a val set's result files are: ``<results>/<val set>/tracker/`` (a run's ``eval/`` layout),
    ``<results>/<val set>/``, or ``<results>/`` itself (one flat folder), the first that exists."""
    results_dir = Path(results_dir)
    for cand in (results_dir / val_set / "tracker", results_dir / val_set):
        if cand.is_dir():
            return cand
    return results_dir


def evaluate_build(build_dir: Path | str, split: str, results_dir: Path | str, *, val_sets: list[str] | None = None,
                   allow_missing: bool = False) -> dict:
    """Evaluate result files against every val set (source) of a build split.

    Args:
        build_dir: the build folder (``build_manifest.json``, ``<split>/``, ``seqmaps/``).
        split: ``val`` or ``test`` (or ``train``).
        results_dir: a flat folder of ``<seq>.txt``, or a run's ``eval/`` folder with
            ``<val set>/tracker/<seq>.txt`` (see :func:`results_dir_for`).
        val_sets: only these val sets (default all).
        allow_missing: see :func:`evaluate_mot`; without it every missing file of every val set is named
            in one error.

    Returns:
        ``{"val_sets": {set: {"combined", "per_class", "per_sequence"}}}``.

    Raises:
        EvaluationError: the results folder does not exist, result files are missing (all named), a
            requested val set is unknown, or a result file is inconsistent (duplicate ids, frames
            outside the sequence).
        MotFormatError: a malformed row (file:line). FileNotFoundError: the build has no manifest.
    """
    classes = read_build_classes(build_dir)
    groups = build_val_sets(build_dir, split, val_sets)
    if not Path(results_dir).is_dir():
        raise EvaluationError(f"{results_dir}: results folder not found (expected <seq>.txt files or "
                              "<val set>/tracker/<seq>.txt)")
    dirs = {vs: results_dir_for(results_dir, vs) for vs in groups}
    missing = [str(dirs[vs] / f"{n}.txt") for vs, names in groups.items() for n in names
               if not (dirs[vs] / f"{n}.txt").is_file()]
    if missing and not allow_missing:
        raise EvaluationError(f"no result file for {len(missing)} sequence(s): {', '.join(missing)} "
                              "(pass allow_missing / --allow-missing to score them as empty output)")
    out = {}
    for vs, names in groups.items():
        out[vs] = evaluate_mot(Path(build_dir) / split, dirs[vs], classes=classes, seqs=names,
                               rules=rules_for_source(vs), allow_missing=allow_missing)
    return {"val_sets": out}


# ----------------------------------------------------------------------------------------- raw datasets
def _raw_mot_sequences(source: str, root: Path, split: str, seqmap: Path | None) -> tuple[Path, list[str]]:
    """Split folder and sequence names of a raw MOTChallenge / DanceTrack download.

    Sequences: ``seqmap`` if given, else ``<root>/<split>_seqmap.txt`` (DanceTrack) or
    ``<root>/seqmaps/<SOURCE>-<split>.txt`` (TrackEval's naming), else every sequence folder of the split.
    """
    split_dir = root / split
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir}: split folder not found (expected <root>/<split>/<seq>/gt/gt.txt)")
    candidates = [seqmap] if seqmap else [root / f"{split}_seqmap.txt",
                                          root / "seqmaps" / f"{source.upper()}-{split}.txt"]
    for cand in candidates:
        if cand is not None and Path(cand).is_file():
            return split_dir, read_seqmap(cand)
    if seqmap:
        raise FileNotFoundError(f"{seqmap}: seqmap not found")
    return split_dir, list_sequences(split_dir)


def _adapter_sequences(source: str, root: Path, split: str, classes: list[str],
                       names: list[str] | None) -> list[tuple[str, int, MotTable]]:
    """(name, num_frames, gt) of a raw split read with the builder's source adapter (class 0 = ignore)."""
    from builder.classmap import ClassMap, default_classmap_path
    from builder.records import WarningCounter
    from builder.sources import get_source

    adapter = get_source(source)(root, ClassMap.load(default_classmap_path(source), classes), WarningCounter())
    out = []
    for name in names or adapter.sequence_names(split):
        rec = adapter.read_sequence(split, name)
        rows = [np.column_stack([np.full(len(f), f.index), f.track_ids, f.boxes[:, :2], f.boxes[:, 2:] - f.boxes[:, :2],
                                 (f.labels != 0).astype(float), f.labels, f.visibility]) for f in rec.frames]
        matrix = np.concatenate(rows) if rows else np.zeros((0, 9))
        num_frames = max([f.index for f in rec.frames], default=0)
        out.append((name, num_frames, MotTable.from_matrix(matrix.reshape(-1, 9), Path(root) / name)))
    return out


def trackeval_mot17_reference(root: Path | str, tracker: str, *, split: str = "train") -> dict[str, dict]:
    """TrackEval's own runner (``trackeval.Evaluator`` + ``MotChallenge2DBox``, benchmark MOT17): the reference
    our numbers are checked against (tests/test_trackeval_equality.py, benchmarks/bench_eval.py).

    Layout under ``root``: ``gt/MOT17-<split>/<seq>/{gt/gt.txt, seqinfo.ini}``, ``gt/seqmaps/MOT17-<split>.txt``
    and ``trackers/MOT17-<split>/<tracker>/data/<seq>.txt``. Runs quiet and single-process.

    Returns:
        ``{sequence name or "COMBINED_SEQ": {"HOTA": ..., "CLEAR": ..., "Identity": ...}}``: TrackEval's own
        pedestrian result fields (ratios in 0-1, HOTA-family values as arrays over the 19 alphas).
    """
    import trackeval

    root = Path(root)
    eval_cfg = {"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False,
                "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False, "LOG_ON_ERROR": None}
    ds_cfg = {"GT_FOLDER": str(root / "gt"), "TRACKERS_FOLDER": str(root / "trackers"), "BENCHMARK": "MOT17",
              "SPLIT_TO_EVAL": split, "TRACKERS_TO_EVAL": [tracker], "PRINT_CONFIG": False}
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
               trackeval.metrics.Identity({"PRINT_CONFIG": False})]
    res, _ = trackeval.Evaluator(eval_cfg).evaluate([trackeval.datasets.MotChallenge2DBox(ds_cfg)], metrics)
    return {seq: r["pedestrian"] for seq, r in res["MotChallenge2DBox"][tracker].items()}


def evaluate_raw(source: str, root: Path | str, split: str, results_dir: Path | str, *, classes: list[str],
                 seqmap: Path | str | None = None, allow_missing: bool = False) -> dict:
    """Evaluate result files against a raw benchmark split with that benchmark's rules.

    ``mot17`` / ``mot20`` / ``dancetrack``: MOTChallenge layout, the official MOTChallenge rules
    (:data:`MOT17_RULES`, :data:`MOT20_RULES`; DanceTrack's evaluation uses TrackEval's MOT17 ones), pedestrians
    (gt class 1) scored against result rows of the class ``person`` (its id in ``classes``) or without class.
    ``bdd100k`` / ``visdrone``: read through the builder's source adapter and class map; ignore regions
    with the ``crowd`` rule.

    Returns:
        ``{"val_sets": {source: {"combined", "per_class", "per_sequence"}}}``.
    """
    root = Path(root)
    if source in ("mot17", "mot20", "dancetrack"):
        split_dir, names = _raw_mot_sequences(source, root, split, Path(seqmap) if seqmap else None)
        if "person" not in classes:
            raise EvaluationError(f"--raw {source} scores pedestrians: the class list {classes} has no 'person'")
        results = load_results(Path(results_dir), names, allow_missing=allow_missing)
        person = classes.index("person") + 1
        sequences = []
        for n in names:
            gt = read_mot_file(split_dir / n / "gt" / "gt.txt")
            trk = results[n]
            trk.classes = np.where(trk.classes == person, 1, np.where(trk.classes == NO_CLASS, NO_CLASS, -2))
            sequences.append(SequenceData(n, read_seqinfo(split_dir / n).length, gt, trk))
        entry = evaluate_sequences(sequences, {"person": 1}, MOT20_RULES if source == "mot20" else MOT17_RULES)
        return {"val_sets": {source: entry}}
    if source in ("bdd100k", "visdrone"):
        names = read_seqmap(seqmap) if seqmap else None
        gts = _adapter_sequences(source, root, split, classes, names)
        results = load_results(Path(results_dir), [g[0] for g in gts], allow_missing=allow_missing)
        sequences = [SequenceData(n, nf, gt, results[n]) for n, nf, gt in gts]
        return {"val_sets": {source: _evaluate_with_classes(sequences, classes, BUILD_CROWD_RULES, None)}}
    raise EvaluationError(f"unknown raw source {source!r}; expected one of mot17, mot20, dancetrack, bdd100k, "
                          "visdrone")


# ----------------------------------------------------------------------------------------- output
TABLE_COLUMNS = ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDP", "IDR", "IDSW", "FP", "FN",
                 "Frag", "MT", "PT", "ML")


def _fmt(key: str, value) -> str:
    return f"{value:.3f}" if key not in COUNT_KEYS else str(int(value))


def render_tables(result: dict, per_sequence: bool = False):
    """rich Tables (one per val set) in TrackEval's layout: a row per class and COMBINED."""
    from rich.table import Table

    tables = []
    for vs, entry in result["val_sets"].items():
        table = Table(title=f"{vs}: HOTA / CLEAR / Identity (TrackEval metrics, 0-100)")
        table.add_column("class / sequence")
        for key in TABLE_COLUMNS:
            table.add_column(key, justify="right")
        rows = list(entry["per_class"].items()) + [("COMBINED", entry["combined"])]
        if per_sequence:
            rows = list(entry.get("per_sequence", {}).items()) + rows
        for name, m in rows:
            table.add_row(name, *(_fmt(k, m[k]) for k in TABLE_COLUMNS))
        tables.append(table)
    return tables


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--results", required=True, type=Path,
                   help="folder of <seq>.txt result files (MOTChallenge rows frame,id,x,y,w,h,score,class,...)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--build", type=Path, help="a build folder (ground truth of <build>/<split>)")
    src.add_argument("--raw", choices=["mot17", "mot20", "dancetrack", "visdrone", "bdd100k"],
                     help="a raw benchmark split")
    p.add_argument("--root", type=Path, help="raw dataset root (with --raw)")
    p.add_argument("--split", default="val", help="split to evaluate (default val)")
    p.add_argument("--seqmap", type=Path, help="seqmap naming the sequences (raw splits)")
    p.add_argument("--val-sets", nargs="*", help="only these val sets of the build")
    p.add_argument("--classes", nargs="*", default=["person", "vehicle"],
                   help="class list for raw splits (ids = 1-based position); builds use their manifest's")
    p.add_argument("--allow-missing", action="store_true", help="score missing result files as empty output")
    p.add_argument("--per-seq", action="store_true", help="print a row per sequence too")
    p.add_argument("--json", type=Path, help="write the metrics to this JSON file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0 ok, 2 bad input)."""
    from rich.console import Console
    from rich.markup import escape

    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    console = Console(width=None if sys.stdout.isatty() else 200)
    try:
        if args.build:
            result = evaluate_build(args.build, args.split, args.results, val_sets=args.val_sets,
                                    allow_missing=args.allow_missing)
        else:
            if args.root is None:
                raise EvaluationError("--raw needs --root (the dataset's root folder)")
            result = evaluate_raw(args.raw, args.root, args.split, args.results, classes=args.classes,
                                  seqmap=args.seqmap, allow_missing=args.allow_missing)
    except (EvaluationError, MotFormatError, FileNotFoundError, KeyError) as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}")
        return 2
    for table in render_tables(result, per_sequence=args.per_seq):
        console.print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
