"""BDD100K MOT (``bdd100k``): Scalabel box_track_20 labels, one JSON file per video.

Raw layout under the adapter's root (as the official downloads unpack)::

    labels/box_track_20/{train,val}/<video>.json
    images/track/{train,val,test}/<video>/<video>-NNNNNNN.jpg     NNNNNNN = frameIndex + 1, 7 digits

A label file is a JSON list of frames. Two releases are read (per file, from the first frame's keys):

- current (Scalabel): ``{name, videoName, frameIndex (0-based), labels: [{id (string), category,
  attributes {occluded, truncated, crowd}, box2d {x1, y1, x2, y2}}]}``;
- 2020: the same with ``video_name`` / ``index`` and capitalised attribute names (Occluded, Truncated,
  Crowd); rules in the class map use the lower-case names for both.

Conventions: frame index = frameIndex + 1 (1-based, matching the image number); the frame's image is
``images/track/<split>/<videoName>/<name>`` (``<videoName>-NNNNNNN.jpg`` where a frame has no name); track
ids (strings) become ints 1, 2, ... per video in order of first appearance; boxes are xyxy pixels as
written; visibility is 1.0 (BDD records only an ``occluded`` flag, not a fraction). Frame size: the first
frame's image header when the image exists, else 1280x720 (the size of every BDD100K video). Frame rate:
5 fps (BDD100K MOT labels and frames are sampled at 5 fps from 30 fps videos). Only splits with labels are
listed (``test`` has none). A label file must hold one video; its sequence name is the file name. Warnings
and errors name a frame by its 1-based index (``frame N`` = frameIndex N - 1).
"""

from __future__ import annotations

import re
from itertools import chain
from operator import itemgetter
from pathlib import Path

import numpy as np

from builder.errors import BuilderError, FormatError
from builder.formats.files import read_json
from builder.records import SequenceRecord, check_sequence_name, inside_root
from builder.sources.base import BoxRows, SourceAdapter, gc_paused, register
from builder.sources.images import image_size

#: Frame size of every BDD100K video, used when no image exists to read it from.
BDD_SIZE = (1280, 720)
#: Frames per second of the BDD100K MOT labels (5 fps sampling of the 30 fps videos).
BDD_FRAME_RATE = 5.0
_LABEL_DIR = Path("labels") / "box_track_20"
_IMAGE_DIR = Path("images") / "track"
_SPLITS = ("train", "val", "test")
_FORMATS = {  # frame keys and attribute spelling per release
    "scalabel": {"video": "videoName", "index": "frameIndex", "attribute": str.lower},
    "2020": {"video": "video_name", "index": "index", "attribute": str.capitalize},
}
_get_box = itemgetter("x1", "y1", "x2", "y2")
#: The frame number of a Scalabel frame, as it appears in the raw bytes (see ``frame_indices``).
_FRAME_INDEX = re.compile(rb'"frameIndex"\s*:\s*(-?\d+)')


@register("bdd100k")
class BDD100KSource(SourceAdapter):
    """Adapter for BDD100K MOT labels (see the module docstring)."""

    attributes = ("crowd", "occluded", "truncated")

    def splits(self) -> list[str]:
        folder = self.root / _LABEL_DIR
        return [s for s in _SPLITS if (folder / s).is_dir()]

    def sequence_names(self, split: str) -> list[str]:
        self.check_split(split)
        return [check_sequence_name(p.stem, str(p)) for p in self.label_files(split)]

    def label_files(self, split: str) -> list[Path]:
        self.check_split(split)
        return sorted((self.root / _LABEL_DIR / split).glob("*.json"))

    def frame_indices(self, split: str, name: str) -> list[int]:
        """Sorted 1-based frame numbers of a video, without converting its boxes (the build's pool pass).

        Scans the label file's bytes for the frame-level ``"frameIndex"`` key (labels never carry it)
        instead of ``json.loads`` of the whole file (benchmarks/bench_build.py times the build against
        parsing); a 2020-release file (``index`` / ``video_name``, where
        ``index`` is not unique to frames) is parsed instead. The file is checked as it enters the pool
        (:func:`check_label_bytes`: not empty, UTF-8, one complete JSON list; a file failing the cheap checks is
        parsed in full, so the error names its line and column); ``read_sequence`` validates every label of
        the videos the build then reads. An empty list counts ``empty_label_file``; a negative frameIndex
        counts ``frame_out_of_range`` and is left out.

        Raises:
            BuilderError: a missing, empty, non-UTF-8, non-list or truncated label file (named).
        """
        path = self.root / _LABEL_DIR / split / f"{check_sequence_name(name, str(self.root / _LABEL_DIR))}.json"
        if not path.is_file():
            raise BuilderError(f"{path}: label file of sequence {name!r} not found in split {split!r}")
        raw = path.read_bytes()
        if not check_label_bytes(path, raw):
            self._frame_list(path)  # the cheap checks failed: the full parse names the line and column
        if b'"video_name"' in raw[:4096]:  # the 2020 release
            frames = self._frame_list(path)
            found = [int(f["index"]) + 1 for f in frames if _frame_ok(f, "index")]
        else:
            found = [int(v) + 1 for v in _FRAME_INDEX.findall(raw)]
        if not found:
            self.warnings.add("empty_label_file", str(path))
        negative = sum(1 for i in found if i < 1)
        self.warnings.add("frame_out_of_range", f"{path}: negative frameIndex", negative)
        return sorted({i for i in found if i >= 1})

    def read_sequence(self, split: str, name: str) -> SequenceRecord:
        with gc_paused():  # the JSON tree has no cycles: see gc_paused
            return self._read_sequence(split, name)

    def _read_sequence(self, split: str, name: str) -> SequenceRecord:
        path = self.root / _LABEL_DIR / split / f"{check_sequence_name(name, str(self.root / _LABEL_DIR))}.json"
        if not path.is_file():
            raise BuilderError(f"{path}: label file of sequence {name!r} not found in split {split!r}")
        frames = self._frame_list(path)
        keys = _FORMATS[_detect_format(frames)]
        frames, indices = self._unique_frames(path, frames, keys["index"])
        video = _video_name(path, frames, keys["video"], name)
        image_dir = self.root / _IMAGE_DIR / split / video
        images = [self._image(path, image_dir, f.get("name"), f"{video}-{i:07d}.jpg", i)
                  for f, i in zip(frames, indices, strict=True)]
        width, height = image_size(images[0]) if images and images[0].is_file() else BDD_SIZE
        rows = self.sanitise(self._rows(path, frames, indices, keys), width, height)
        return SequenceRecord(source=self.name, split=split, name=name, frame_rate=BDD_FRAME_RATE, width=width,
                              height=height, frames=self.frame_records(rows, indices, images), image_ext=".jpg")

    def _image(self, path: Path, image_dir: Path, name, default: str, index: int) -> Path:
        """The image of a frame: its ``name`` (a file name inside the source root) or the default name."""
        if name is not None and not isinstance(name, str):
            raise BuilderError(f"{path}: frame {index}: 'name' must be a string (the image file), got {name!r}")
        return inside_root(self.root, image_dir / (name or default), f"{path}: frame {index} 'name'")

    @staticmethod
    def _frame_list(path: Path) -> list[dict]:
        frames = read_json(path, expect=None, what="Scalabel box_track_20 labels")
        if not isinstance(frames, list) or not all(isinstance(f, dict) for f in frames):
            raise BuilderError(f"{path}: expected a JSON list of frame objects (Scalabel box_track_20)")
        return frames

    def _unique_frames(self, path: Path, frames: list[dict], index_key: str) -> tuple[list[dict], list[int]]:
        """Frames sorted by index (1-based = frameIndex + 1); a repeated index keeps its first frame."""
        try:
            raw = [int(f[index_key]) + 1 for f in frames]
        except (KeyError, TypeError, ValueError):
            bad = next(i for i, f in enumerate(frames) if not _frame_ok(f, index_key))
            raise BuilderError(f"{path}: frame object {bad} (0-based position in the file): expected an integer "
                               f"{index_key!r}") from None
        uniq, first = np.unique(np.asarray(raw, np.int64), return_index=True)
        if uniq.size != len(raw):
            self.warnings.add("duplicate_frame", str(path), len(raw) - uniq.size)
        if not raw:
            self.warnings.add("empty_label_file", str(path))
        keep = uniq >= 1  # frameIndex >= 0
        self.warnings.add("frame_out_of_range", f"{path}: negative frameIndex", int((~keep).sum()))
        return [frames[i] for i in first[keep].tolist()], uniq[keep].tolist()

    def _rows(self, path: Path, frames: list[dict], indices: list[int], keys: dict) -> BoxRows:
        """Flat box arrays of a video: one pass of C-level maps over the JSON labels, no per-box objects."""
        per_frame = [f.get("labels") or () for f in frames]
        bad = next((i for i, lab in zip(indices, per_frame, strict=True) if not isinstance(lab, list | tuple)), None)
        if bad is not None:
            raise BuilderError(f"{path}: frame {bad}: 'labels' must be a list of label objects")
        labels = list(chain.from_iterable(per_frame))
        try:
            ids = list(map(itemgetter("id"), labels))
            cats = list(map(itemgetter("category"), labels))
            xyxy = list(map(_get_box, map(itemgetter("box2d"), labels)))
        except (KeyError, TypeError):
            _raise_bad_label(path, per_frame, indices)
            raise
        try:
            boxes = np.fromiter(chain.from_iterable(xyxy), np.float64, 4 * len(xyxy)).reshape(-1, 4)
        except (TypeError, ValueError):  # a null coordinate (becomes NaN, dropped later) or a non-number
            _raise_bad_label(path, per_frame, indices)
            boxes = np.array(xyxy, np.float64).reshape(-1, 4)
        counts = np.fromiter(map(len, per_frame), np.int64, len(per_frame))
        frame_of = np.repeat(np.asarray(indices, np.int64), counts)
        attributes = {a: self._attribute(labels, keys["attribute"](a)) for a in self.classmap.rule_attributes}
        try:
            targets = self.resolve_str_categories(cats, attributes,
                                                  lambda row: f"{path} frame {int(frame_of[row])}")
            order = {tid: k for k, tid in enumerate(dict.fromkeys(ids), start=1)}
        except TypeError:  # an unhashable id or category (a list or an object)
            _raise_bad_label(path, per_frame, indices)
            raise
        track_ids = np.fromiter(map(order.__getitem__, ids), np.int64, len(ids))
        return BoxRows(frame_of, track_ids, boxes, targets, np.ones(len(ids), np.float32), path)

    @staticmethod
    def _attribute(labels: list[dict], key: str) -> np.ndarray:
        """(N,) object array of one attribute per label (``None`` where the label or the key lacks it)."""
        try:
            values = [lab["attributes"][key] for lab in labels]
        except (KeyError, TypeError):  # some label has no attributes (or not this one): the slower safe way
            values = [(lab.get("attributes") or {}).get(key) for lab in labels]
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out


def check_label_bytes(path: Path, raw: bytes) -> bool:
    """Cheap checks of a label file's bytes: True when it is one complete JSON list (brackets balance), False
    when only a full parse can tell (brackets inside strings, or a broken file whose parse error names the line).

    Raises:
        FormatError: an empty file, bytes that are not UTF-8, or a top-level value that is not a list.
    """
    body = raw.removeprefix(b"\xef\xbb\xbf").strip()
    if not body:
        raise FormatError(f"{path}: empty file; expected a JSON list of frames (Scalabel box_track_20)")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: not UTF-8 text (byte {exc.start}); expected Scalabel box_track_20 JSON") from None
    if body[:1] != b"[":
        raise FormatError(f"{path}: expected a JSON list of frame objects (Scalabel box_track_20), the file starts "
                          f"with {body[:24].decode('utf-8', 'replace')!r}")
    return body[-1:] == b"]" and body.count(b"[") == body.count(b"]") and body.count(b"{") == body.count(b"}")


def _detect_format(frames: list[dict]) -> str:
    return "2020" if frames and "video_name" in frames[0] else "scalabel"


def _video_name(path: Path, frames: list[dict], key: str, default: str) -> str:
    """The one video name of a label file (its frames may not name two videos)."""
    names = {f.get(key) for f in frames} - {None}
    if len(names) > 1:
        raise BuilderError(f"{path}: frames name {len(names)} videos ({', '.join(sorted(map(str, names)))}); "
                           f"expected one video per label file")
    name = str(names.pop()) if names else default
    return check_sequence_name(name, f"{path}: {key}")


def _frame_ok(frame: dict, index_key: str) -> bool:
    try:
        int(frame[index_key])
        return True
    except (KeyError, TypeError, ValueError):
        return False


def _raise_bad_label(path: Path, per_frame: list, indices: list[int]) -> None:
    """Find the first label lacking id/category/box2d{x1,y1,x2,y2} and raise a BuilderError naming it.

    ``per_frame[i]`` holds the labels of frame ``indices[i]`` (1-based, = frameIndex + 1), the frame
    number the message gives; the label is its 0-based position in that frame's ``labels``.
    """
    for fi, labels in zip(indices, per_frame, strict=True):
        for li, lab in enumerate(labels):
            if not isinstance(lab, dict):
                raise BuilderError(f"{path}: frame {fi} label {li}: expected an object, got {type(lab).__name__}")
            for key in ("id", "category", "box2d"):
                if key not in lab:
                    raise BuilderError(f"{path}: frame {fi} label {li}: missing key {key!r}")
            if not isinstance(lab["id"], str | int) or not isinstance(lab["category"], str):
                raise BuilderError(f"{path}: frame {fi} label {li}: id must be a string or integer and category "
                                   f"a string, got id {lab['id']!r}, category {lab['category']!r}")
            box = lab["box2d"]
            if not isinstance(box, dict) or any(k not in box for k in ("x1", "y1", "x2", "y2")):
                raise BuilderError(f"{path}: frame {fi} label {li}: box2d must hold x1, y1, x2, y2")
            if not all(v is None or isinstance(v, int | float) for v in _get_box(box)):
                raise BuilderError(f"{path}: frame {fi} label {li}: box2d values must be numbers")
