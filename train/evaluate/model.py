"""Evaluate a detector as a tracker on a build's val sets: what stage training calls during and after a stage.

For every val set (the ``<source>__`` prefix of a build split's sequence folders) the detector runs over
every frame (eval mode, no grad, frames batched), the configured tracker (``tracker_params["name"]``: motion-only
ByteTrack or the appearance tracker) links the detections, with their appearance embeddings when the detector
has an embedding branch (:class:`train.track.runner.TorchDetector` passes them on), and

- ``<out_dir>/<val set>/tracker/<seq>.txt`` holds the MOTChallenge result files, and ``tracker/results.json`` the
  sidecar naming their class column (:mod:`train.evaluate.result_files`),
- ``<out_dir>/<val set>/metrics.json`` holds ``{"protocol", "protocol_label", "combined", "per_class",
  "per_sequence", "warnings", "detection"}``: HOTA / CLEAR / Identity with the unified protocol
  (:mod:`train.evaluate.results`; the source benchmark's ignore rule) and COCO detection AP from
  :mod:`train.evaluate.coco` on the build's ``annotations/<split>.json``.

A build written by an older builder (no ``gt_format``: clipped ground truth) is refused before anything runs.
The split may be ``test`` (the locked test sets, :mod:`train.evaluate.locked`).

Usage (from Python; the CLI equivalents are ``python -m train.track`` then ``python -m train.evaluate``)::

    result = evaluate_model(model, "data/builds/demo_stage1", "val", "runs/x/eval", classes=["person", "vehicle"],
                            tracker_params={}, device="cpu")
    result["val_sets"]["dancetrack"]["combined"]["HOTA"]
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from builder.formats.build_layout import build_classes, split_val_sets
from builder.formats.files import write_json
from train.errors import EvaluationError
from train.evaluate.coco import detections_to_coco, evaluate_detections, image_ids_by_frame, load_coco
from train.evaluate.result_files import write_sidecar
from train.evaluate.results import check_build_ground_truth, evaluate_mot
from train.evaluate.unified import rules_for_source
from train.track.runner import DEFAULT_BATCH, TorchDetector, track_sequence

log = logging.getLogger(__name__)


class _DetectionCollector:
    """Collects one sequence's raw detections as COCO result dicts (image ids from the COCO-VID file)."""

    def __init__(self, frame_to_image: dict[int, int]) -> None:
        self.frame_to_image = frame_to_image
        self.results: list[dict] = []
        self.image_ids: list[int] = []

    def __call__(self, frame: int, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> None:
        image_id = self.frame_to_image.get(frame)
        if image_id is None:
            return
        self.image_ids.append(image_id)
        self.results += detections_to_coco(image_id, boxes, scores, labels)


def _track_val_set(coco, names: list[str], out_dir: Path, detect, tracker_params, batch_size, max_frames,
                   split_dir: Path, classes: list[str]) -> dict | None:
    """Detect and track every sequence of one val set; return its detection AP (None without a COCO file)."""
    results, image_ids = [], []
    for name in names:
        collector = None
        if coco is not None:
            try:
                collector = _DetectionCollector(image_ids_by_frame(coco, name))
            except EvaluationError as exc:
                log.warning("%s: no detection AP for this sequence (%s)", name, exc)
        track_sequence(detect, split_dir / name, out_dir / "tracker" / f"{name}.txt", tracker_params=tracker_params,
                       batch_size=batch_size, max_frames=max_frames, on_detections=collector)
        if collector is not None:
            results += collector.results
            image_ids += collector.image_ids
    write_sidecar(out_dir / "tracker", classes, names)
    if coco is None or not image_ids:
        return None
    return evaluate_detections(coco, results, image_ids=image_ids)


def evaluate_model(model, build_dir: Path | str, split: str, out_dir: Path | str, *, classes: list[str] | None,
                   tracker_params: dict | None, score_thresh: float = 0.05, device="cpu",
                   val_sets: list[str] | None = None, max_frames: int | None = None,
                   batch_size: int = DEFAULT_BATCH) -> dict:
    """Detect, track and score ``model`` on every val set of ``<build_dir>/<split>`` (or only ``val_sets``).

    Args:
        model: torchvision detector (eval-mode output boxes xyxy px, scores, labels = unified class ids).
            It is left in eval mode; callers in training switch it back.
        build_dir: a build folder (``build_manifest.json``, ``<split>/``, ``seqmaps/``, ``annotations/``).
        split: usually ``val``.
        out_dir: where ``<val set>/tracker/<seq>.txt`` and ``<val set>/metrics.json`` go.
        classes: the model's class list (ids 1-based); None = the build's.
        tracker_params: ``name`` (``bytetrack`` | ``appearance``) and the tracker's keyword arguments
            (:func:`train.track.runner.make_tracker`).
        score_thresh: detections below this score are dropped before tracking and AP.
        device: torch device the model is on.
        val_sets: only these val sets (default all of the split).
        max_frames: only frames 1..max_frames of each sequence (quick checks during training).
        batch_size: frames per forward pass.

    Returns:
        ``{"val_sets": {set: {"combined", "per_class", "per_sequence", "detection"}}}`` (metrics.json's
        per-val-set shape; ``detection`` is None when the build has no COCO file for the split).

    Raises:
        FileNotFoundError / EvaluationError naming the missing or malformed file.
    """
    build_dir, out_dir = Path(build_dir), Path(out_dir)
    check_build_ground_truth(build_dir)
    classes = list(classes) if classes else build_classes(build_dir)
    ann = build_dir / "annotations" / f"{split}.json"
    coco = load_coco(ann) if ann.is_file() else None
    if coco is None:
        log.warning("%s: missing, detection AP skipped", ann)
    detect = TorchDetector(model, device, score_thresh)
    out = {}
    for vs, names in split_val_sets(build_dir, split, val_sets).items():
        start = time.perf_counter()
        vs_dir = out_dir / vs
        detection = _track_val_set(coco, names, vs_dir, detect, tracker_params, batch_size, max_frames,
                                   build_dir / split, classes)
        entry = evaluate_mot(build_dir / split, vs_dir / "tracker", classes=classes, seqs=names,
                             rules=rules_for_source(vs), max_frames=max_frames)
        entry["detection"] = detection
        write_json(vs_dir / "metrics.json", entry, sort_keys=True)
        out[vs] = entry
        log.info("%s: HOTA %.1f IDF1 %.1f MOTA %.1f AP %s (%d sequences, %.1f s)", vs, entry["combined"]["HOTA"],
                 entry["combined"]["IDF1"], entry["combined"]["MOTA"],
                 "-" if not detection or detection["AP"] is None else f"{detection['AP']:.1f}", len(names),
                 time.perf_counter() - start)
    return {"val_sets": out}
