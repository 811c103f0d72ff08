"""The end of a stage beyond the val sets: the locked test sets, and the official splits they complete.

- Test sets: the best checkpoint (already chosen on val) is tracked and scored on every locked test set of the
  build (``<run>/eval_test/<set>/{tracker/, metrics.json}``); nothing reads these figures to select a model.
- Official splits: where a source's locked val and test sequences together are every sequence of the official
  split they were drawn from (``locked.<source>.official_split`` in build_manifest.json; DanceTrack val: 13 + 12 =
  25 sequences), that union is scored too. When the benchmark's official protocol can be computed from the build's
  ground truth (:data:`OFFICIAL_FROM_BUILD`: a class map that maps exactly the benchmark's scored category to one
  class, nothing else, no rules, its file unchanged since the build), the union is scored with it and labelled
  "comparable with published <benchmark> <split>" when it has the published split's size (:data:`PUBLISHED_SIZES`;
  the synthetic look-alikes have fewer); otherwise with the unified protocol, labelled as not comparable.

metrics.json gains ``test_sets`` {set: val-set entry} and ``official_splits`` {set: {split, sequences, protocol,
label, combined, per_class, per_sequence}}; report.md a section each (:func:`report_lines`).
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path

from builder.formats.build_layout import read_build_manifest, split_val_sets
from builder.formats.motchallenge import read_mot_file, read_seqinfo
from builder.records import WarningCounter
from train.evaluate.model import evaluate_model
from train.evaluate.result_files import load_result_files, map_classes
from train.evaluate.scoring import (
    EvalRules,
    SequenceData,
    evaluate_sequences,
    evaluate_with_classes,
    truncate,
)
from train.evaluate.unified import rules_for_source, unified_tracker

#: Sources whose official protocol a build can give: {source: (benchmark name as published, the raw category the
#: benchmark scores)}. DanceTrack: TrackEval's MotChallenge2DBox, pedestrians = category "1" (its only category).
OFFICIAL_FROM_BUILD = {"dancetrack": ("DanceTrack", "1")}
#: Sequences of the published splits (DanceTrack's val_seqmap.txt; the VisDrone toolkit's README; BDD100K's
#: box_track_20 val): a union of another size (a partial download, synthetic data) is not called comparable.
PUBLISHED_SIZES = {("dancetrack", "val"): 25, ("visdrone", "val"): 7, ("bdd100k", "val"): 200}
#: MotChallenge2DBox's MOT17 rule on a build's ground truth: ignore regions (class 0) are the distractors.
_BUILD_OFFICIAL_RULES = EvalRules("match", (0,), True)
#: Metrics shown in report.md's tables.
REPORT_METRICS = ("HOTA", "DetA", "AssA", "IDF1", "MOTA", "IDSW")


def evaluate_locked_sets(model, build_dir: Path | str, out_dir: Path | str, *, val_dir: Path | str,
                         classes: list[str], tracker_params: dict | None, score_thresh: float, device,
                         max_frames: int | None = None) -> dict:
    """Score ``model`` on the build's locked test sets and the official splits they complete (module docstring).

    Args:
        out_dir: where ``<set>/tracker/<seq>.txt`` and ``<set>/metrics.json`` of the test sets go.
        val_dir: the val sets' evaluation folder (``<set>/tracker/``), already written.
        classes, tracker_params, score_thresh, device, max_frames: as :func:`train.evaluate.model.evaluate_model`.

    Returns:
        ``{"test_sets": {set: entry}, "official_splits": {set: entry}}`` (empty dicts for a build without test
        sequences or without a complete official split).
    """
    if not split_val_sets(build_dir, "test"):
        return {"test_sets": {}, "official_splits": {}}
    test = evaluate_model(model, build_dir, "test", out_dir, classes=classes, tracker_params=tracker_params,
                          score_thresh=score_thresh, device=device, max_frames=max_frames)["val_sets"]
    return {"test_sets": test,
            "official_splits": official_unions(build_dir, {"val": Path(val_dir), "test": Path(out_dir)}, classes,
                                               max_frames=max_frames)}


def official_unions(build_dir: Path | str, result_dirs: dict[str, Path], classes: list[str], *,
                    max_frames: int | None = None) -> dict:
    """``{source: entry}`` for every source whose locked val + test sequences are its whole official split."""
    build_dir = Path(build_dir)
    manifest = read_build_manifest(build_dir)
    out = {}
    for source, locked in (manifest.get("locked") or {}).items():
        official = locked.get("official_split") or {}
        names = {"val": list(locked.get("val", [])), "test": list(locked.get("test", []))}
        if not official.get("sequences") or set(names["val"] + names["test"]) != set(official["sequences"]):
            continue
        published = _published(manifest, source)
        warnings = WarningCounter()
        if published:
            def tracker_of(result, _p=published, _w=warnings):
                return map_classes(result, lambda c: _p[2] if c == _p[1] else None, _w, benchmark=_p[0])
        else:
            def tracker_of(result, _w=warnings):
                return unified_tracker(result, classes, _w)
        sequences = []
        for split, seqs in names.items():
            dirs = [f"{source}__{n}" for n in seqs]
            files = load_result_files(result_dirs[split] / source / "tracker", dirs)
            for d in dirs:
                gt_dir = build_dir / split / d
                seq = SequenceData(d, read_seqinfo(gt_dir).length, read_mot_file(gt_dir / "gt" / "gt.txt"),
                                   tracker_of(files[d]))
                sequences.append(truncate(seq, max_frames) if max_frames else seq)
        out[source] = _union_entry(source, official, published, sequences, classes) | {"warnings": warnings.as_dict()}
    return out


def _union_entry(source: str, official: dict, published: tuple[str, str, int] | None, sequences: list[SequenceData],
                 classes: list[str]) -> dict:
    split, n = official["split"], len(official["sequences"])
    if published:
        scored = evaluate_sequences(sequences, {"pedestrian": published[2]}, _BUILD_OFFICIAL_RULES)
        size = PUBLISHED_SIZES.get((source, split))
        label = (f"comparable with published {published[0]} {split}" if size in (None, n) else
                 f"official {published[0]} protocol on all {n} sequences of this {split} split; the published split "
                 f"has {size}: not comparable with published figures")
        return {"split": split, "sequences": n, "protocol": "official", "label": label, **scored}
    scored = evaluate_with_classes(sequences, classes, rules_for_source(source), None)
    return {"split": split, "sequences": n, "protocol": "unified",
            "label": f"all {n} sequences of {source} {split}, unified protocol: not comparable with published figures",
            **scored}


def _published(manifest: dict, source: str) -> tuple[str, str, int] | None:
    """(benchmark, class name, build class id) when the build's ground truth of ``source`` is exactly the
    benchmark's scored category under that one class (:data:`OFFICIAL_FROM_BUILD`), else None."""
    if source not in OFFICIAL_FROM_BUILD:
        return None
    info = (manifest.get("sources") or {}).get(source) or {}
    path = Path(info.get("classmap") or "")
    if not path.is_absolute():
        path = Path(__file__).resolve().parents[2] / path
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != info.get("classmap_sha256"):
        return None  # the class map the build used cannot be checked
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    benchmark, category = OFFICIAL_FROM_BUILD[source]
    targets = data.get("categories") or {}
    build_classes = list(manifest.get("classes") or [])
    if data.get("rules") or set(targets) != {category} or targets[category] not in build_classes:
        return None
    return benchmark, targets[category], build_classes.index(targets[category]) + 1


def report_lines(metrics: dict) -> list[str]:
    """report.md sections for ``test_sets`` and ``official_splits`` (none when both are empty)."""
    lines = []
    if metrics.get("test_sets"):
        lines += ["", "## Locked test sets (best checkpoint; never used for selection; unified protocol)", "",
                  "| test set | " + " | ".join(REPORT_METRICS) + " |", "|---|" + "---:|" * len(REPORT_METRICS)]
        lines += [f"| {name} | " + _cells(entry["combined"]) + " |" for name, entry in metrics["test_sets"].items()]
    if metrics.get("official_splits"):
        lines += ["", "## Official splits (locked val + test together)", "",
                  "| set | split | sequences | " + " | ".join(REPORT_METRICS) + " | |",
                  "|---|---|---:|" + "---:|" * len(REPORT_METRICS) + "---|"]
        lines += [f"| {name} | {e['split']} | {e['sequences']} | {_cells(e['combined'])} | {e['label']} |"
                  for name, e in metrics["official_splits"].items()]
    return lines


def _cells(m: dict) -> str:
    return " | ".join(str(m[k]) if k == "IDSW" else f"{m[k]:.2f}" for k in REPORT_METRICS)
