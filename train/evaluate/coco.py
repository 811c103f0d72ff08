"""Detection AP on a build's COCO-VID annotations with pycocotools' ``COCOeval`` (bbox).

Figures are COCO's own (Lin et al., "Microsoft COCO", ECCV 2014; pycocotools ``COCOeval.summarize``):
AP = mean over IoU 0.50:0.05:0.95 and 101 recall points, AP50 / AP75 at one IoU, APs / APm / APl for
areas < 32^2, 32^2..96^2, > 96^2 pixels^2, AR = recall with at most 100 detections per image. Per-class AP
is the same AP restricted to one category. Values are on a 0-100 scale; -1 (COCO's "no ground truth")
becomes ``None``. Ignore regions are ``iscrowd = 1`` annotations: COCOeval neither rewards nor penalises
detections on them.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np

from builder.errors import FormatError
from builder.formats.files import MissingFileError
from train.errors import EvaluationError

#: Keys of the summary, in pycocotools ``stats`` order (indices 0-5 and 8 = AR@100).
SUMMARY_KEYS = {"AP": 0, "AP50": 1, "AP75": 2, "APs": 3, "APm": 4, "APl": 5, "AR": 8}


def _pct(value: float) -> float | None:
    """COCO value -> 0-100 float; -1 (undefined: no ground truth in that bucket) -> None."""
    return None if value < 0 else 100.0 * float(value)


def load_coco(annotation: Path | str | dict, image_ids: list[int] | None = None):
    """A pycocotools ``COCO`` from a file or dict, optionally restricted to ``image_ids`` (annotations too).

    Raises:
        FileNotFoundError: no such file. ValueError: not COCO JSON (names the file and the missing key).
    """
    from pycocotools.coco import COCO

    if isinstance(annotation, dict):
        data, where = annotation, "annotations"
    else:
        path = Path(annotation)
        if not path.is_file():
            raise MissingFileError(f"{path}: COCO annotation file not found")
        data, where = json.loads(path.read_text(encoding="utf-8")), str(path)
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise FormatError(f"{where}: not a COCO file (no '{key}' key)")
    if image_ids is not None:
        keep = set(image_ids)
        data = dict(data, images=[im for im in data["images"] if im["id"] in keep],
                    annotations=[a for a in data["annotations"] if a["image_id"] in keep])
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def evaluate_detections(coco_gt, detections: list[dict], *, image_ids: list[int] | None = None) -> dict:
    """COCO bbox AP of ``detections`` against ``coco_gt``.

    Args:
        coco_gt: a pycocotools ``COCO`` (see :func:`load_coco`), or a path / dict of COCO JSON.
        detections: ``[{"image_id": int, "category_id": int, "bbox": [x, y, w, h] pixels, "score": float}]``.
        image_ids: images to score (default every image of ``coco_gt``); detections elsewhere are ignored.

    Returns:
        ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR", "per_class": {name: AP}}`` on 0-100 (``None``
        where COCO reports -1); with no detections every value is 0 (or None without ground truth).

    Raises:
        ValueError: a detection lacks a key or names an unknown category / image (names the index).
    """
    from pycocotools.cocoeval import COCOeval

    if not hasattr(coco_gt, "getImgIds"):
        coco_gt = load_coco(coco_gt)
    ids = sorted(coco_gt.getImgIds()) if image_ids is None else sorted(image_ids)
    wanted = set(ids)
    dets = _check_detections(coco_gt, [d for d in detections if d.get("image_id") in wanted])
    if not dets or not coco_gt.getAnnIds(imgIds=ids):
        return _empty_result(coco_gt, ids)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.imgIds = ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    out = {k: _pct(ev.stats[i]) for k, i in SUMMARY_KEYS.items()}
    out["per_class"] = _per_class_ap(coco_gt, ev)
    return out


def _check_detections(coco_gt, detections: list[dict]) -> list[dict]:
    """Validate keys and ids; returns detections with float bbox/score (copies)."""
    cats = set(coco_gt.getCatIds())
    out = []
    for i, d in enumerate(detections):
        missing = [k for k in ("image_id", "category_id", "bbox", "score") if k not in d]
        if missing:
            raise ValueError(f"detection {i}: missing key(s) {missing} (expected image_id, category_id, bbox, score)")
        if d["category_id"] not in cats:
            raise ValueError(f"detection {i}: category_id {d['category_id']} not in the categories {sorted(cats)}")
        out.append({"image_id": int(d["image_id"]), "category_id": int(d["category_id"]),
                    "bbox": [float(v) for v in d["bbox"]], "score": float(d["score"])})
    return out


def _per_class_ap(coco_gt, ev) -> dict[str, float | None]:
    """AP (IoU 0.50:0.95, all areas, maxDets 100) per category name from ``ev.eval['precision']``."""
    precision = ev.eval["precision"]  # (T IoUs, R recalls, K categories, A areas, M maxDets)
    out = {}
    for k, cat_id in enumerate(ev.params.catIds):
        p = precision[:, :, k, 0, -1]
        valid = p[p > -1]
        name = coco_gt.cats[cat_id]["name"]
        out[name] = 100.0 * float(np.mean(valid)) if valid.size else None
    return out


def _empty_result(coco_gt, image_ids: list[int]) -> dict:
    """The result with no detections on ``image_ids``: AP 0 where those images hold (non-crowd) ground
    truth, None where they hold none (overall, and per class)."""
    value = 0.0 if coco_gt.getAnnIds(imgIds=image_ids, iscrowd=False) else None
    out = {k: value for k in SUMMARY_KEYS}
    out["per_class"] = {c["name"]: (0.0 if coco_gt.getAnnIds(imgIds=image_ids, catIds=[c["id"]], iscrowd=False)
                                    else None)
                        for c in coco_gt.loadCats(coco_gt.getCatIds())}
    return out


def image_ids_by_frame(coco_gt, video_name: str) -> dict[int, int]:
    """{frame_id (1-based): image id} of one video of a COCO-VID file (by ``videos[].name``).

    Raises:
        KeyError: no video of that name (lists a few names that exist).
    """
    videos = {v["name"]: v["id"] for v in coco_gt.dataset.get("videos", [])}
    if video_name not in videos:
        raise EvaluationError(f"video {video_name!r} not in the COCO-VID file; e.g. {sorted(videos)[:5]}")
    vid = videos[video_name]
    return {int(im["frame_id"]): int(im["id"]) for im in coco_gt.dataset["images"] if im.get("video_id") == vid}


def detections_to_coco(image_id: int, boxes_xyxy: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> list[dict]:
    """COCO result dicts for one image: ``boxes (N, 4) xyxy px -> bbox xywh``, ``labels`` = category ids."""
    b = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    wh = b[:, 2:] - b[:, :2]
    return [{"image_id": int(image_id), "category_id": int(c), "bbox": [float(b[i, 0]), float(b[i, 1]),
                                                                     float(wh[i, 0]), float(wh[i, 1])],
             "score": float(s)} for i, (s, c) in enumerate(zip(scores, labels, strict=True))]
