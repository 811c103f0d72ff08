"""What every source adapter shares: the registry, the adapter base class, box sanitising and text parsing.

An adapter turns one raw dataset layout into :class:`builder.records.SequenceRecord` objects without reading
pixels (it may read one image header to learn the frame size where no metadata gives it). A new source
subclasses :class:`SourceAdapter`, decorates itself with ``@register("name")`` and overrides only
``splits``, ``sequence_names``, ``read_sequence`` and ``label_files``.

Bad-input policy (one test per case in tests/test_sources_bad_input.py):

======================================  ===============================================================
input                                   what happens
======================================  ===============================================================
malformed JSON                          ``BuilderError`` "<file>:<line>:<col>: malformed JSON" (the line of
                                        ``json.JSONDecodeError``)
malformed text row (not a number)       ``BuilderError`` "<file>:<line>: expected N comma-separated numbers"
wrong column count                      ``BuilderError`` "<file>:<line>: expected N columns (names), got M"
JSON frame/label lacking a key          ``BuilderError`` naming the file, frame and label position and key
unknown raw category                    ``BuilderError`` naming the file (and line) and the category
NaN or non-positive box size            box dropped, warning ``box_invalid`` counted
box partly outside the frame            box kept exactly as annotated, warning ``box_partly_outside_frame``
box wholly outside the frame            box kept exactly as annotated, warning ``box_outside_frame``
track id twice in one frame             first box (in file order) kept, later ones dropped, warning
                                        ``duplicate_track_id`` (positives only; ignore regions may share ids)
frame number outside 1..seqLength       row dropped, warning ``frame_out_of_range``
frame listed twice in a JSON file       first one kept, warning ``duplicate_frame``
negative track id (a positive box)      kept, warning ``negative_track_id``
visibility outside [0, 1] or NaN        clipped to [0, 1] (NaN -> 1), warning ``visibility_out_of_range``
BDD100K frameIndex < 0                  frame dropped, warning ``frame_out_of_range``
BDD100K label file: empty list          no frames, warning ``empty_label_file``
BDD100K label file: empty (0 bytes),    ``BuilderError`` naming the file, also in the build's pool pass
not UTF-8, not a list, truncated        (:func:`builder.sources.bdd100k.check_label_bytes`)
image path leaving the source root      ``BuilderError`` (BDD ``name``, ``imDir``; ``imExt`` like ``.jpg``)
seqinfo.ini disagreeing with the files  warning ``seqinfo_mismatch``; the files win (image count, header size)
frame size unknown (no metadata, no     width = height = 0, no frame checks, warning ``image_size_unknown``
image)
unsafe sequence name ('/', '\\', '..',   ``BuilderError`` (:func:`builder.records.check_sequence_name`)
whitespace, ',', control characters)
missing image file                      not an adapter error: records name the expected path;
                                        :func:`missing_images` lists them (counted by ``stats``, an error
                                        in ``build``)
empty or unreadable image (0 bytes, a   not an adapter error: ``build`` reads every linked frame's header
header no reader knows, size 0)         (:func:`check_image`) and refuses it; ``verify`` reports it
======================================  ===============================================================

Warnings go to the adapter's :class:`builder.records.WarningCounter`, each with a ``file:line`` (or ``file
frame N``) example.

Boxes are never clipped or rounded: evaluation ground truth must be the benchmark's own (TrackEval and the
official toolkits score boxes that leave the frame as they are), so records carry the raw boxes and the
out-of-frame ones are only counted (``stats`` and ``build_manifest.json`` report the counts). Training clips
its targets when it loads them (``train/stage/transforms.py``).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from builder.classmap import DROP, ClassMap
from builder.errors import BuilderError, NotRegisteredError
from builder.records import FrameRecord, SequenceRecord, WarningCounter

#: Registered adapters, name -> class. Filled by :func:`register` when builder.sources is imported.
SOURCES: dict[str, type[SourceAdapter]] = {}


def register(name: str) -> Callable[[type[SourceAdapter]], type[SourceAdapter]]:
    """Class decorator: register an adapter class under ``name`` (and set its ``name`` attribute)."""

    def wrap(cls: type[SourceAdapter]) -> type[SourceAdapter]:
        if name in SOURCES:
            raise ValueError(f"source {name!r} is already registered by {SOURCES[name].__qualname__}")
        cls.name = name
        SOURCES[name] = cls
        return cls

    return wrap


def get_source(name: str) -> type[SourceAdapter]:
    """The adapter class registered as ``name``.

    Raises:
        NotRegisteredError: "source 'x' is not registered! Available: bdd100k, ...".
    """
    try:
        return SOURCES[name]
    except KeyError:
        raise NotRegisteredError.of("source", name, SOURCES) from None


@dataclass
class BoxRows:
    """The boxes of one sequence as flat arrays, before they are split into frames.

    Attributes:
        frames: (N,) int64 frame index, 1-based.
        track_ids: (N,) int64 track id (per sequence).
        boxes: (N, 4) float64 xyxy pixels.
        targets: (N,) int16 unified class id, ``IGNORE`` (0) or ``DROP`` (-1), from the class map.
        visibility: (N,) float32 in [0, 1].
        origin: the label file the rows come from (named in warnings).
        lines: (N,) int64 line number of each row in ``origin``, or ``None`` for formats without lines.
    """

    frames: np.ndarray
    track_ids: np.ndarray
    boxes: np.ndarray
    targets: np.ndarray
    visibility: np.ndarray
    origin: Path
    lines: np.ndarray | None = None

    @staticmethod
    def empty(origin: Path) -> BoxRows:
        """No boxes (a sequence without ground truth)."""
        return BoxRows(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int16),
                       np.zeros(0, np.float32), origin, None)

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def take(self, keep: np.ndarray) -> BoxRows:
        """The rows selected by a boolean mask or index array, in their order."""
        return BoxRows(self.frames[keep], self.track_ids[keep], self.boxes[keep], self.targets[keep],
                       self.visibility[keep], self.origin, None if self.lines is None else self.lines[keep])

    def where(self, row: int) -> str:
        """``file:line`` of a row (``file frame N`` where the format has no lines)."""
        if self.lines is not None:
            return f"{self.origin}:{int(self.lines[row])}"
        return f"{self.origin} frame {int(self.frames[row])}"


class SourceAdapter:
    """Base class of the source adapters (see docs/CONTRACTS.md, "Source adapters").

    Args:
        root: the source's raw download folder (e.g. ``data/raw/bdd100k``).
        classmap: the loaded class map (raw category -> unified id / ignore / drop).
        warnings: counter that receives every warning (``box_partly_outside_frame``, ``seqinfo_mismatch``, ...).

    Raises:
        BuilderError: ``root`` is not a directory, or a class-map rule reads an attribute this source lacks.
    """

    #: Registered name, set by :func:`register`.
    name: ClassVar[str] = ""
    #: Per-box attributes that class-map rules may test.
    attributes: ClassVar[tuple[str, ...]] = ()

    def __init__(self, root: str | Path, classmap: ClassMap, warnings: WarningCounter) -> None:
        self.root = Path(root)
        self.classmap = classmap
        self.warnings = warnings
        if not self.root.is_dir():
            raise BuilderError(f"{self.root}: {self.name} root is not a directory")
        unknown = sorted(classmap.rule_attributes - set(self.attributes))
        if unknown:
            raise BuilderError(f"{classmap.path}: rules read attribute(s) {unknown} that source {self.name!r} "
                               f"does not provide (available: {', '.join(self.attributes)})")

    def splits(self) -> list[str]:
        """Official splits present on disk, in the source's usual order (``train``, ``val``, ``test``...)."""
        raise NotImplementedError

    def sequence_names(self, split: str) -> list[str]:
        """Sorted names of the sequences of ``split`` (each a safe directory name)."""
        raise NotImplementedError

    def read_sequence(self, split: str, name: str) -> SequenceRecord:
        """Parse one sequence into a record (no pixels read)."""
        raise NotImplementedError

    def label_files(self, split: str) -> list[Path]:
        """Sorted annotation files the split's records come from (for content digests)."""
        raise NotImplementedError

    def video_key(self, name: str) -> str:
        """The video that sequence ``name`` shows: sequences with the same key hold the same frames.

        The build removes from the training pool every sequence whose key equals a locked sequence's key,
        so that another copy of a locked video never reaches train. Default: the name itself.
        """
        return name

    def sequences(self, split: str) -> Iterator[SequenceRecord]:
        """Every sequence of ``split``, in ``sequence_names`` order."""
        for name in self.sequence_names(split):
            yield self.read_sequence(split, name)

    def check_split(self, split: str) -> None:
        """Raise ``BuilderError`` listing the available splits if ``split`` is not one of them."""
        available = self.splits()
        if split not in available:
            raise BuilderError(f"{self.root}: split {split!r} of source {self.name!r} not found "
                               f"(available: {', '.join(available) or 'none'})")

    # -- shared parsing steps -------------------------------------------------------------------------

    def resolve_int_categories(self, categories: np.ndarray, attributes: Mapping[str, np.ndarray],
                               where: Callable[[int], str]) -> np.ndarray:
        """Targets (N,) int16 of integer raw categories (text formats), with the class-map rules applied.

        ``where(row)`` names the file and line of a row, for the unknown-category error.
        """
        if categories.size == 0:
            return np.zeros(0, np.int16)
        uniq, first, inverse = np.unique(categories, return_index=True, return_inverse=True)
        table = np.array([self.classmap.resolve(str(u), where(int(i))) for u, i in zip(uniq, first, strict=True)],
                         np.int16)
        targets = table[inverse]
        if self.classmap.rules:
            targets = self.classmap.apply_rules(targets, uniq.astype(str)[inverse], attributes)
        return targets

    def resolve_str_categories(self, categories: list[str], attributes: Mapping[str, np.ndarray],
                               where: Callable[[int], str]) -> np.ndarray:
        """Targets (N,) int16 of string raw categories (JSON formats), with the class-map rules applied."""
        table = {}
        for cat in dict.fromkeys(categories):
            table[cat] = self.classmap.resolve(str(cat), where(categories.index(cat)))
        targets = np.fromiter(map(table.__getitem__, categories), np.int16, len(categories))
        if self.classmap.rules:
            targets = self.classmap.apply_rules(targets, np.array(categories, dtype=object), attributes)
        return targets

    def sanitise(self, rows: BoxRows, width: int, height: int) -> BoxRows:
        """Drop ``DROP`` targets, then apply the box policy of the module docstring, vectorised.

        Args:
            rows: boxes of one sequence, xyxy pixels.
            width, height: frame size in pixels; 0 when unknown (then no frame checks are made).

        Returns:
            The kept rows, boxes unchanged (never clipped), in their original order.
        """
        rows = rows.take(rows.targets != DROP)
        negative = (rows.track_ids < 0) & (rows.targets > 0)
        if negative.any():  # kept: ids only need to be unique per frame, but a negative one is unusual
            self.warnings.add("negative_track_id", rows.where(int(np.argmax(negative))), int(negative.sum()))
        b = rows.boxes
        invalid = ~np.isfinite(b).all(axis=1) | ~(b[:, 2] > b[:, 0]) | ~(b[:, 3] > b[:, 1])
        rows = self._drop(rows, invalid, "box_invalid")
        if width > 0 and height > 0:
            self._count_out_of_frame(rows, width, height)
        return self._drop(rows, duplicate_track_ids(rows.frames, rows.track_ids, rows.targets > 0),
                          "duplicate_track_id")

    def _drop(self, rows: BoxRows, mask: np.ndarray, kind: str) -> BoxRows:
        if not mask.any():
            return rows
        self.warnings.add(kind, rows.where(int(np.argmax(mask))), int(mask.sum()))
        return rows.take(~mask)

    def _count_out_of_frame(self, rows: BoxRows, width: int, height: int) -> None:
        """Count boxes wholly (``box_outside_frame``) and partly (``box_partly_outside_frame``) outside the
        frame [0, width] x [0, height]; the boxes stay as annotated."""
        b = rows.boxes
        outside = (b[:, 2] <= 0) | (b[:, 3] <= 0) | (b[:, 0] >= width) | (b[:, 1] >= height)
        partly = ~outside & ((b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > width) | (b[:, 3] > height))
        for kind, mask in (("box_outside_frame", outside), ("box_partly_outside_frame", partly)):
            if mask.any():
                self.warnings.add(kind, rows.where(int(np.argmax(mask))), int(mask.sum()))

    def frame_records(self, rows: BoxRows, indices: Sequence[int], images: Sequence[Path]) -> list[FrameRecord]:
        """Split sanitised rows into one :class:`FrameRecord` per entry of ``indices`` (sorted, 1-based).

        ``images[i]`` is the image path of frame ``indices[i]``; rows of frames not in ``indices`` must have
        been removed by the caller.
        """
        order = np.argsort(rows.frames, kind="stable")
        frames = rows.frames[order]
        boxes = rows.boxes[order].astype(np.float64)
        tids = rows.track_ids[order]
        labels = rows.targets[order]
        vis = rows.visibility[order]
        idx = np.asarray(indices, np.int64)
        starts = np.searchsorted(frames, idx, "left").tolist()
        ends = np.searchsorted(frames, idx, "right").tolist()
        return [FrameRecord(index=f, image=img, boxes=boxes[s:e], track_ids=tids[s:e], labels=labels[s:e],
                            visibility=vis[s:e])
                for f, img, s, e in zip(idx.tolist(), images, starts, ends, strict=True)]

    def keep_frames_in_range(self, rows: BoxRows, last: int) -> BoxRows:
        """Drop rows whose frame is outside ``1..last``, counting ``frame_out_of_range``."""
        return self._drop(rows, (rows.frames < 1) | (rows.frames > last), "frame_out_of_range")


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector inside the block (restored on exit, also on error).

    Parsing a large JSON label file allocates a tree of dicts and lists with no reference cycles
    (refcounting frees it); the cyclic collector would only traverse it again and again while it is built,
    which costs about a quarter of the parse time on BDD100K-sized files.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def duplicate_track_ids(frames: np.ndarray, track_ids: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Mask (N,) bool of rows whose (frame, track id) already appeared earlier among the rows in ``among``.

    The first row of each (frame, track id) pair, in array order, is not marked.
    """
    idx = np.flatnonzero(among)
    dup = np.zeros(frames.shape, bool)
    if idx.size < 2:
        return dup
    order = np.lexsort((idx, track_ids[idx], frames[idx]))
    f, t = frames[idx][order], track_ids[idx][order]
    again = (f[1:] == f[:-1]) & (t[1:] == t[:-1])
    dup[idx[order[1:][again]]] = True
    return dup


