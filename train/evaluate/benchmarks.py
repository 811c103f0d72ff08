"""Raw benchmark splits scored with each benchmark's own rules (``python -m train.evaluate --raw``).

``mot17`` / ``mot20`` / ``dancetrack``: the MOTChallenge layout with the official MOTChallenge preprocessing
(TrackEval's ``MotChallenge2DBox``); ``bdd100k`` / ``visdrone``: read through the builder's source adapter and
class map, ignore regions with the ``crowd`` rule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from builder.formats.files import MissingFileError
from builder.formats.motchallenge import (
    NO_CLASS,
    MotTable,
    list_sequences,
    read_mot_file,
    read_seqinfo,
    read_seqmap,
)
from train.errors import EvaluationError
from train.evaluate.results import load_results
from train.evaluate.scoring import (
    BUILD_CROWD_RULES,
    MOT17_RULES,
    MOT20_RULES,
    SequenceData,
    evaluate_sequences,
    evaluate_with_classes,
)


def _raw_mot_sequences(source: str, root: Path, split: str, seqmap: Path | None) -> tuple[Path, list[str]]:
    """Split folder and sequence names of a raw MOTChallenge / DanceTrack download.

    Sequences: ``seqmap`` if given, else ``<root>/<split>_seqmap.txt`` (DanceTrack) or
    ``<root>/seqmaps/<SOURCE>-<split>.txt`` (TrackEval's naming), else every sequence folder of the split.
    """
    split_dir = root / split
    if not split_dir.is_dir():
        raise MissingFileError(f"{split_dir}: split folder not found (expected <root>/<split>/<seq>/gt/gt.txt)")
    candidates = [seqmap] if seqmap else [root / f"{split}_seqmap.txt",
                                          root / "seqmaps" / f"{source.upper()}-{split}.txt"]
    for cand in candidates:
        if cand is not None and Path(cand).is_file():
            return split_dir, read_seqmap(cand)
    if seqmap:
        raise MissingFileError(f"{seqmap}: seqmap not found")
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
        return {"val_sets": {source: evaluate_with_classes(sequences, classes, BUILD_CROWD_RULES, None)}}
    raise EvaluationError(f"unknown raw source {source!r}; expected one of mot17, mot20, dancetrack, bdd100k, "
                          "visdrone")
