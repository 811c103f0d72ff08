"""The official BDD100K MOT protocol: 8 classes, crowd and distractor ignore regions, Scalabel's box convention,
per-class rows, the overall row and the class means mHOTA / mMOTA / mIDF1 / mMOTP.

Source of every rule (bdd100k toolkit ``bdd100k/eval/run.py`` -> Scalabel ``scalabel/eval/mot.py``):

- classes: the 8 leaf categories of ``bdd100k/configs/box_track.toml`` (:data:`TRACK_CLASSES`), older spellings
  renamed by its ``[name_mapping]`` (``conf/classmaps/bdd100k_official.toml``);
- ignore regions: boxes with the crowd attribute and the distractor classes of ``[ignored_mapping]`` (other
  person, other vehicle, trailer; ``bdd100k/label/to_scalabel.py`` marks them ``ignored``); per frame and class,
  predictions not matched to ground truth (Hungarian, IoU >= 0.5) and more than 50 % inside an ignore region
  (intersection over the prediction's area > 0.5) are removed (``acc_single_video_mot``; TrackEval's
  ``BDD100K.get_preprocessed_seq_data`` does the same);
- box convention: Scalabel's ``box2d_to_bbox`` (``scalabel/label/transforms.py``) makes width ``x2 - x1 + 1`` and
  height ``y2 - y1 + 1`` for ground truth and predictions alike; ``--box-convention 2020`` keeps ``x2 - x1``, the
  convention of the 2020 toolkit and of TrackEval's ``trackeval/datasets/bdd100k.py`` (tests check equality
  with that runner);
- aggregation: per class over every video; ``combined`` sums the counts over classes (Scalabel's OVERALL,
  TrackEval's ``cls_comb_det_av``); ``super_categories`` HUMAN / VEHICLE / BIKE likewise over their classes;
  ``class_mean`` is the mean over the 8 classes where a class without ground truth counts 0 (Scalabel's
  ``compute_average``: NaN and infinite values -> 0), so mMOTA = mean_c MOTA_c, absent classes 0;
- predictions of a class with no ground truth are false positives of that class (and of ``combined``);
  predictions of an ignored category are not scored (counted); an unknown category is an error;
- MT / PT / ML and Frag are py-motmetrics' (Scalabel's ``evaluate_single_class`` computes them with it):
  :data:`MOTMETRICS_COUNTS`, from a ``motmetrics.MOTAccumulator`` per video and class fed the same
  preprocessed boxes (distance 1 - IoU, none above 0.5), summed over videos and classes.

Metrics are TrackEval's HOTA / CLEAR / Identity code (:mod:`train.evaluate.scoring`); Scalabel computes CLEAR and
IDF1 with py-motmetrics, whose definitions TrackEval reproduces. Results: Scalabel JSON (:mod:`train.evaluate.
scalabel`) or MOTChallenge text with the project's sidecar / ``--result-classes`` naming BDD100K classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from builder.formats.motchallenge import MotTable, read_seqmap, xywh_to_xyxy
from builder.records import IGNORE, WarningCounter
from train.errors import EvaluationError
from train.evaluate.matching import MATCH_IOU
from train.evaluate.protocol import Protocol, class_mean, register
from train.evaluate.result_files import SIDECAR, load_result_files, map_classes
from train.evaluate.scalabel import ScalabelFrame, read_videos
from train.evaluate.scoring import EvalRules, SequenceData, evaluate_sequences, preprocess

#: The 8 evaluated classes, in the order of bdd100k/configs/box_track.toml.
TRACK_CLASSES = ("pedestrian", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
#: Super categories of box_track.toml, named as there (scored by summing their classes' counts).
SUPER_CATEGORIES = {"human": ("pedestrian", "rider"), "vehicle": ("car", "truck", "bus", "train"),
                    "bike": ("motorcycle", "bicycle")}
#: Counts Scalabel takes from py-motmetrics with definitions TrackEval's CLEAR does not share (motmetrics
#: ``metrics.py``: MT = tracked ratio >= 0.8 where TrackEval has > 0.8; a fragmentation is a tracked -> missed
#: switch inside a track's span, frames the object is not annotated in not counting).
MOTMETRICS_COUNTS = {"MT": "mostly_tracked", "PT": "partially_tracked", "ML": "mostly_lost",
                     "Frag": "num_fragmentations"}
#: The class map of the official classes (raw category -> class / ignore).
CLASSMAP = Path(__file__).resolve().parents[2] / "conf" / "classmaps" / "bdd100k_official.toml"
#: Pixels added to x2 and y2 before scoring, per box convention.
BOX_CONVENTIONS = {"scalabel": 1.0, "2020": 0.0}
#: Ignore regions (class 0) with TrackEval's / Scalabel's crowd rule; boxes scored as x1, y1, x2, y2.
BDD_RULES = EvalRules("crowd", (IGNORE,), False, box_format="xyxy")


def official_classmap():
    """The loaded :data:`CLASSMAP` bound to :data:`TRACK_CLASSES`."""
    from builder.classmap import ClassMap

    return ClassMap.load(CLASSMAP, TRACK_CLASSES)


def _gt_tables(root: Path, split: str, names: list[str] | None, plus: float) -> list[tuple[str, int, MotTable]]:
    """(video, frames, gt) with xyxy boxes (+``plus`` on x2, y2), classes 1..8, ignore regions class 0 conf 0."""
    from builder.sources import get_source

    adapter = get_source("bdd100k")(root, official_classmap(), WarningCounter())
    out = []
    for name in names or adapter.sequence_names(split):
        rec = adapter.read_sequence(split, name)
        rows = []
        for f in rec.frames:
            b = np.asarray(f.boxes, np.float64).reshape(-1, 4) + [0.0, 0.0, plus, plus]
            rows.append(np.column_stack([np.full(len(f), f.index), f.track_ids, b, (f.labels != IGNORE).astype(float),
                                         f.labels]))
        matrix = np.concatenate(rows) if rows else np.zeros((0, 8))
        out.append((name, max((f.index for f in rec.frames), default=0), MotTable.from_matrix(matrix, Path(name))))
    return out


def _json_table(frames: list[ScalabelFrame], video: str, n_frames: int, plus: float, classmap,
                warnings: WarningCounter) -> MotTable:
    """One video's Scalabel-JSON predictions as a table (xyxy + ``plus``, classes 1..8, ids per video)."""
    rows, ids = [], {}
    for frame in frames:
        if not 1 <= frame.index <= n_frames:
            raise EvaluationError(f"{frame.where}: frameIndex {frame.index - 1} is not a frame of video {video} "
                                  f"(0..{n_frames - 1} in the ground truth)")
        for j, (tid, cat) in enumerate(zip(frame.ids, frame.categories, strict=True)):
            cls = classmap.resolve(cat, f"{frame.where} label {j}")
            if cls <= IGNORE:  # an ignored / dropped category: Scalabel puts it aside, unscored
                warnings.add("predictions_not_scored", f"{frame.where} label {j}: category {cat!r}")
                continue
            if tid is None:
                raise EvaluationError(f"{frame.where} label {j}: no 'id' (a tracking result needs the track id)")
            rows.append([frame.index, ids.setdefault(str(tid), len(ids) + 1), *frame.boxes[j] + [0, 0, plus, plus],
                         frame.scores[j], cls])
    return MotTable.from_matrix(np.asarray(rows, np.float64).reshape(-1, 8), Path(frames[0].where.split(" frame ")[0])
                                if frames else None)


@register("bdd100k", name="official")
class BDD100KOfficial(Protocol):
    """Scalabel's BDD100K MOT rules (module docstring)."""

    @property
    def label(self) -> str:
        convention = self.options.box_convention or "scalabel"
        return (f"official bdd100k protocol: scalabel/eval/mot.py rules, 8 classes, box convention {convention} "
                f"({'w = x2 - x1 + 1' if convention == 'scalabel' else 'w = x2 - x1'}), class means absent = 0")

    def check_options(self) -> None:
        super().check_options()
        if (self.options.box_convention or "scalabel") not in BOX_CONVENTIONS:
            raise EvaluationError(f"box convention {self.options.box_convention!r} is not registered! Available: "
                                  f"{', '.join(BOX_CONVENTIONS)}")

    def evaluate(self, root: Path, split: str, results_dir: Path) -> dict:
        opts = self.options
        plus = BOX_CONVENTIONS[opts.box_convention or "scalabel"]
        gts = _gt_tables(Path(root), split, read_seqmap(opts.seqmap) if opts.seqmap else None, plus)
        trackers = self._trackers(Path(results_dir), gts, plus)
        sequences = [SequenceData(name, n, gt, trackers[name]) for name, n, gt in gts]
        class_ids = {c: i + 1 for i, c in enumerate(TRACK_CLASSES)}
        scored = evaluate_sequences(sequences, class_ids, BDD_RULES)
        supers = {sup: evaluate_sequences(sequences, {c: class_ids[c] for c in members}, BDD_RULES)["combined"]
                  for sup, members in SUPER_CATEGORIES.items()}
        counts = motmetrics_counts(sequences, class_ids)
        for cls, entry in scored["per_class"].items():
            entry.update(_sum(counts, cls=cls))
        for sup, members in SUPER_CATEGORIES.items():
            supers[sup].update(_sum(counts, classes=members))
        scored["combined"].update(_sum(counts))
        for seq, entry in scored["per_sequence"].items():
            entry.update(_sum(counts, seq=seq))
        return self.entry(scored) | {"super_categories": supers, "class_mean": class_mean(scored["per_class"])}

    def _trackers(self, results: Path, gts: list[tuple[str, int, MotTable]], plus: float) -> dict[str, MotTable]:
        """Each video's predictions, from Scalabel JSON or MOTChallenge text (with classes named)."""
        names = [name for name, _, _ in gts]
        opts = self.options
        if results.is_file() or (results.is_dir() and any(p.name != SIDECAR for p in results.glob("*.json"))):
            videos = read_videos(results)
            unknown = sorted(set(videos) - set(names))
            if unknown:
                raise EvaluationError(f"{results}: results for video(s) not in the ground truth: "
                                      f"{', '.join(unknown[:5])}" + (" ..." if len(unknown) > 5 else ""))
            missing = [n for n in names if n not in videos]
            if missing and not opts.allow_missing:
                raise EvaluationError(f"{results}: no results for {len(missing)} video(s): {', '.join(missing[:5])} "
                                      "(pass --allow-missing to score them as empty output)")
            classmap, n_frames = official_classmap(), {name: n for name, n, _ in gts}
            return {n: _json_table(videos.get(n, []), n, n_frames[n], plus, classmap, opts.warnings) for n in names}
        files = load_result_files(results, names, declared=opts.result_classes, allow_missing=opts.allow_missing,
                                  warnings=opts.warnings)
        classmap = official_classmap()
        out = {}
        for name in names:
            table = map_classes(files[name], lambda c: _text_class(classmap, c), opts.warnings, benchmark="bdd100k")
            table.boxes = xywh_to_xyxy(table.boxes) + [0.0, 0.0, plus, plus]
            out[name] = table
        return out


def motmetrics_counts(sequences: list[SequenceData], class_ids: dict[str, int]) -> dict[tuple[str, str], dict]:
    """``{(sequence, class): {"MT", "PT", "ML", "Frag"}}`` as py-motmetrics computes them for Scalabel
    (:data:`MOTMETRICS_COUNTS`): one accumulator per video and class, updated on every frame with ground truth or
    predictions, distance ``1 - IoU`` and no match above 0.5 (``mm.distances.iou_matrix(max_iou=0.5)``)."""
    import motmetrics as mm

    metrics = mm.metrics.create()
    out = {}
    for seq in sequences:
        for name, cls in class_ids.items():
            data = preprocess(seq, cls, BDD_RULES, single_class=False)
            acc = mm.MOTAccumulator(auto_id=True)
            for gt_ids, trk_ids, sim in zip(data["gt_ids"], data["tracker_ids"], data["similarity_scores"],
                                            strict=True):
                if len(gt_ids) or len(trk_ids):
                    dist = 1.0 - np.asarray(sim, np.float64).reshape(len(gt_ids), len(trk_ids))
                    acc.update(gt_ids, trk_ids, np.where(dist > 1.0 - MATCH_IOU, np.nan, dist))
            if not len(acc.events):
                out[seq.name, name] = dict.fromkeys(MOTMETRICS_COUNTS, 0)
                continue
            summary = metrics.compute(acc, metrics=list(MOTMETRICS_COUNTS.values()), return_dataframe=False)
            out[seq.name, name] = {k: int(summary[v]) for k, v in MOTMETRICS_COUNTS.items()}
    return out


def _sum(counts: dict[tuple[str, str], dict], *, cls: str | None = None, classes=None, seq: str | None = None) -> dict:
    """The motmetrics counts summed over the (sequence, class) pairs selected."""
    keys = [k for k in counts if (cls is None or k[1] == cls) and (classes is None or k[1] in classes)
            and (seq is None or k[0] == seq)]
    return {m: int(sum(counts[k][m] for k in keys)) for m in MOTMETRICS_COUNTS}


def _text_class(classmap, name: str) -> int | None:
    """A result class name -> BDD100K class id (None for an ignored category); unknown names raise."""
    if name not in classmap.categories:
        raise EvaluationError(f"result class {name!r} is not a BDD100K category (evaluated: "
                              f"{', '.join(TRACK_CLASSES)}); score unified-class results with --protocol unified")
    target = classmap.categories[name]
    return target if target > IGNORE else None
