"""Scalabel JSON, BDD100K's label and submission format, read for evaluation: tracking results (one file of every
video's frames, or a folder of ``<video>.json``) and detection labels / predictions.

Format (BDD100K documentation "Evaluation / Multiple Object Tracking / Submission format"; bdd100k toolkit
``doc/source/evaluate.rst``): a JSON list of frames (or an object ``{"frames": [...]}``, Scalabel's dataset form),
each ``{name, videoName, frameIndex (0-based), labels: [{id, category, box2d: {x1, y1, x2, y2}, score?,
attributes?}]}``; the 2020 release spells ``video_name`` / ``index``. Boxes are xyxy pixels as written. Every
error names the file, the frame's position in it and the label's position and key.

The builder's BDD100K adapter reads the ground truth (``builder/sources/bdd100k.py``); this module reads what
trackers and detectors submit, which that adapter does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from builder.errors import FormatError
from builder.formats.files import MissingFileError, read_json
from train.evaluate.result_files import SIDECAR

#: Frame keys of the two releases: (video, frame index).
_FRAME_KEYS = (("videoName", "frameIndex"), ("video_name", "index"))
_BOX_KEYS = ("x1", "y1", "x2", "y2")


@dataclass
class ScalabelFrame:
    """One frame's labels as arrays.

    Attributes:
        name: the frame's image name (``name``), or "" where absent.
        video: the video it belongs to (``videoName`` / ``video_name``), or None.
        index: 1-based frame number (``frameIndex + 1`` / ``index + 1``), or None where the frame has none.
        ids: (N,) object label ids as written (strings or integers; None where absent).
        categories: list of N category names.
        boxes: (N, 4) float64 xyxy pixels.
        scores: (N,) float64 ``score`` (1.0 where absent).
        crowd: (N,) bool ``attributes.crowd`` / ``Crowd``.
        where: ``file frame k`` (k = 0-based position in the file), for messages.
    """

    name: str
    video: str | None
    index: int | None
    ids: list
    categories: list[str]
    boxes: np.ndarray
    scores: np.ndarray
    crowd: np.ndarray
    where: str


def read_frames(path: Path | str) -> list[ScalabelFrame]:
    """Every frame of one Scalabel JSON file.

    Raises:
        MissingFileError: no such file. FormatError: malformed JSON (``file:line:col``), not a list of frames,
            or a frame / label lacking a key or with a value of the wrong type (names file, frame and label).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: Scalabel JSON file not found")
    data = read_json(path, expect=None, what="Scalabel JSON")
    if isinstance(data, dict) and isinstance(data.get("frames"), list):
        data = data["frames"]
    if not isinstance(data, list):
        raise FormatError(f"{path}: expected a JSON list of frames (or an object with a 'frames' list)")
    return [_frame(f, f"{path} frame {k}") for k, f in enumerate(data)]


def _frame(frame: object, where: str) -> ScalabelFrame:
    if not isinstance(frame, dict):
        raise FormatError(f"{where}: expected an object, got {type(frame).__name__}")
    video_key, index_key = next(((v, i) for v, i in _FRAME_KEYS if v in frame or i in frame), _FRAME_KEYS[0])
    index = frame.get(index_key)
    if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
        raise FormatError(f"{where}: {index_key!r} must be an integer, got {index!r}")
    labels = frame.get("labels") or []
    if not isinstance(labels, list):
        raise FormatError(f"{where}: 'labels' must be a list, got {type(labels).__name__}")
    ids, cats, boxes, scores, crowd = [], [], [], [], []
    for j, lab in enumerate(labels):
        at = f"{where} label {j}"
        if not isinstance(lab, dict):
            raise FormatError(f"{at}: expected an object, got {type(lab).__name__}")
        if lab.get("box2d") is None:  # a label without a box (e.g. a tag) is not a detection
            continue
        ids.append(lab.get("id"))
        cats.append(_category(lab, at))
        boxes.append(_box(lab["box2d"], at))
        scores.append(_score(lab, at))
        attributes = lab.get("attributes") or {}
        crowd.append(bool(attributes.get("crowd", attributes.get("Crowd", False))) if isinstance(attributes, dict)
                     else False)
    video = frame.get(video_key)
    return ScalabelFrame(name=str(frame.get("name") or ""), video=None if video is None else str(video),
                         index=None if index is None else index + 1, ids=ids, categories=cats,
                         boxes=np.asarray(boxes, np.float64).reshape(-1, 4), scores=np.asarray(scores, np.float64),
                         crowd=np.asarray(crowd, bool), where=where)


def _category(label: dict, where: str) -> str:
    category = label.get("category")
    if not isinstance(category, str):
        raise FormatError(f"{where}: 'category' must be a string, got {category!r}")
    return category


def _box(box: object, where: str) -> list[float]:
    if not isinstance(box, dict) or any(k not in box for k in _BOX_KEYS):
        raise FormatError(f"{where}: 'box2d' must be an object with x1, y1, x2, y2, got {box!r}")
    values = [box[k] for k in _BOX_KEYS]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in values):
        raise FormatError(f"{where}: box2d values must be finite numbers, got {values}")
    return [float(v) for v in values]


def _score(label: dict, where: str) -> float:
    score = label.get("score", 1.0)
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise FormatError(f"{where}: 'score' must be a number, got {score!r}")
    return float(score)


def read_videos(results: Path | str) -> dict[str, list[ScalabelFrame]]:
    """Tracking results by video: ``results`` is one JSON file of every video's frames, or a folder of JSON files
    (one per video, BDD100K's per-video submission). A frame's video is its ``videoName``; in a per-video file
    without one, the file name.

    Raises:
        MissingFileError: neither a file nor a folder holding ``*.json``. FormatError: see :func:`read_frames`;
            also a frame without an index.
    """
    results = Path(results)
    files = [results] if results.is_file() else sorted(p for p in results.glob("*.json") if p.name != SIDECAR) \
        if results.is_dir() else []
    if not files:
        raise MissingFileError(f"{results}: no Scalabel JSON results (expected a .json file or a folder of "
                               "<video>.json files)")
    videos: dict[str, list[ScalabelFrame]] = {}
    for path in files:
        for frame in read_frames(path):
            if frame.index is None:
                raise FormatError(f"{frame.where}: no 'frameIndex' (or 'index'): a tracking result needs the frame")
            video = frame.video or (path.stem if results.is_dir() else None)
            if video is None:
                raise FormatError(f"{frame.where}: no 'videoName': a file of several videos must name each frame's")
            videos.setdefault(video, []).append(frame)
    return videos
