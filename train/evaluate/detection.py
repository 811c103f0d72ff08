"""Detection AP from the command line (``python -m train.evaluate --det``): COCO AP / AP50 / AP75 / APs / APm / APl /
AR and AP per class, with pycocotools' ``COCOeval`` (:mod:`train.evaluate.coco`), on

- a build split: COCO result JSON (``[{"image_id", "category_id", "bbox": [x, y, w, h], "score"}]``) against the
  build's ``annotations/<split>.json`` (:func:`evaluate_build_detections`);
- raw BDD100K detection labels (``labels/det_20/det_<split>.json``, Scalabel JSON) and Scalabel-JSON predictions,
  converted as BDD100K's official detection evaluation converts them (:func:`evaluate_bdd100k_detections`;
  bdd100k toolkit ``bdd100k/eval/run.py`` -> ``scalabel/eval/detect.py`` and ``scalabel/label/to_coco.py``
  ``scalabel2coco_detection``): the 10 detection classes of ``bdd100k/configs/det.toml``; a label's category
  renamed by its ``[name_mapping]``, a distractor category (``[ignored_mapping]``) turned into its mapped class
  with ``iscrowd = 1``, as is a crowd box; COCO boxes ``[x1, y1, x2 - x1 + 1, y2 - y1 + 1]``
  (``box2d_to_bbox``; ``--box-convention 2020``: no +1), area = w * h; predictions matched to labels by frame
  ``name`` (``videoName/name`` when names repeat); predictions of frames without labels are left out (counted).
"""

from __future__ import annotations

from pathlib import Path

from builder.formats.files import MissingFileError, read_json
from builder.records import IGNORE, WarningCounter
from train.errors import EvaluationError
from train.evaluate.bdd100k import BOX_CONVENTIONS, TRACK_CLASSES, official_classmap
from train.evaluate.coco import evaluate_detections, load_coco
from train.evaluate.results import check_build_ground_truth
from train.evaluate.scalabel import ScalabelFrame, read_frames

#: The 10 classes of BDD100K detection (leaf categories of bdd100k/configs/det.toml, in order).
DET_CLASSES = (*TRACK_CLASSES, "traffic light", "traffic sign")
#: [ignored_mapping] of bdd100k/configs/det.toml (and box_track.toml): the class a distractor's crowd box gets.
IGNORED_MAPPING = {"other person": "pedestrian", "other vehicle": "car", "trailer": "truck"}
#: BDD100K's frame size (bdd100k/configs/det.toml [scalabel.imageSize]); COCO image records need one.
IMAGE_SIZE = (1280, 720)


def evaluate_build_detections(build_dir: Path | str, split: str, detections: Path | str) -> dict:
    """COCO AP of a COCO result file against a build split's ``annotations/<split>.json``.

    Returns:
        ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR", "per_class": {name: AP}}`` (0-100; None where COCO
        has no ground truth), see :func:`train.evaluate.coco.evaluate_detections`.

    Raises:
        EvaluationError: a build of an older builder, a result file that is not a list of detections, or a
            detection naming an unknown image / category (its position). MissingFileError: a missing file.
    """
    check_build_ground_truth(build_dir)
    coco = load_coco(Path(build_dir) / "annotations" / f"{split}.json")
    dets = read_json(Path(detections), expect=None, what="COCO detection results")
    if not isinstance(dets, list):
        raise EvaluationError(f"{detections}: expected a JSON list of detections {{image_id, category_id, bbox, "
                              "score}} (COCO result format)")
    unknown = [i for i, d in enumerate(dets) if isinstance(d, dict) and d.get("image_id") not in coco.imgs]
    if unknown:
        raise EvaluationError(f"{detections}: detection {unknown[0]} (of {len(unknown)}) names image_id "
                              f"{dets[unknown[0]]['image_id']!r}, not an image of {split}")
    try:
        return evaluate_detections(coco, dets)
    except ValueError as exc:
        raise EvaluationError(f"{detections}: {exc}") from None


def _category_id(classmap, category: str, where: str, *, crowd: bool) -> tuple[int | None, bool]:
    """(COCO category id 1..10 or None for a category detection does not evaluate, iscrowd) of one label;
    ``classmap`` is :func:`train.evaluate.bdd100k.official_classmap`'s (name mapping, unknown categories)."""
    if category in IGNORED_MAPPING:
        return DET_CLASSES.index(IGNORED_MAPPING[category]) + 1, True
    if category in DET_CLASSES:
        return DET_CLASSES.index(category) + 1, crowd
    target = classmap.resolve(category, where)  # name_mapping spellings; an unknown category raises
    return (TRACK_CLASSES.index(classmap.classes[target - 1]) + 1 if target > IGNORE else None), crowd


def _frame_key(frame: ScalabelFrame, by_video: bool) -> str:
    return f"{frame.video}/{frame.name}" if by_video else frame.name


def _to_coco(frames: list[ScalabelFrame], plus: float, *, predictions: bool, image_ids: dict[str, int],
             by_video: bool, warnings: WarningCounter) -> list[dict]:
    """COCO annotation (or result) dicts of Scalabel frames, as scalabel2coco_detection converts them."""
    classmap = official_classmap()
    out = []
    for frame in frames:
        image = image_ids.get(_frame_key(frame, by_video))
        if image is None:
            warnings.add("predictions_for_unlabelled_frames", frame.where, len(frame.categories))
            continue
        for j, cat in enumerate(frame.categories):
            cls, crowd = _category_id(classmap, cat, f"{frame.where} label {j}", crowd=bool(frame.crowd[j]))
            if cls is None:
                continue
            x1, y1, x2, y2 = frame.boxes[j].tolist()
            w, h = x2 - x1 + plus, y2 - y1 + plus
            ann = {"image_id": image, "category_id": cls, "bbox": [x1, y1, w, h]}
            out.append(ann | ({"score": float(frame.scores[j])} if predictions else
                              {"id": len(out) + 1, "area": w * h, "iscrowd": int(crowd)}))
    return out


def evaluate_bdd100k_detections(labels: Path | str, predictions: Path | str, *,
                                box_convention: str | None = None) -> dict:
    """COCO AP of Scalabel-JSON predictions against BDD100K detection labels (module docstring).

    Returns:
        as :func:`evaluate_build_detections`, plus ``"warnings"`` {kind: count}.

    Raises:
        EvaluationError / BuilderError: an unknown box convention or category (names file, frame and label).
        MissingFileError / FormatError: a missing or malformed file.
    """
    if (box_convention or "scalabel") not in BOX_CONVENTIONS:
        raise EvaluationError(f"box convention {box_convention!r} is not registered! Available: "
                              f"{', '.join(BOX_CONVENTIONS)}")
    plus = BOX_CONVENTIONS[box_convention or "scalabel"]
    if not Path(labels).is_file():
        raise MissingFileError(f"{labels}: BDD100K detection labels not found (labels/det_20/det_<split>.json)")
    gt_frames = sorted(read_frames(labels), key=lambda f: f.name)
    names = [f.name for f in gt_frames]
    by_video = len(set(names)) != len(names)
    image_ids = {_frame_key(f, by_video): i + 1 for i, f in enumerate(gt_frames)}
    warnings = WarningCounter()
    gt = {"images": [{"id": i + 1, "file_name": f.name, "width": IMAGE_SIZE[0], "height": IMAGE_SIZE[1]}
                     for i, f in enumerate(gt_frames)],
          "annotations": _to_coco(gt_frames, plus, predictions=False, image_ids=image_ids, by_video=by_video,
                                  warnings=warnings),
          "categories": [{"id": i + 1, "name": c} for i, c in enumerate(DET_CLASSES)]}
    dets = _to_coco(read_frames(predictions), plus, predictions=True, image_ids=image_ids, by_video=by_video,
                    warnings=warnings)
    return evaluate_detections(load_coco(gt), dets) | {"warnings": warnings.as_dict()}
