"""Unified records that every source adapter yields, without loading pixels.

The builder parses annotations into these records apart from reading images (detectron2's dataset
practice): a record names its image files and carries its boxes, nothing more.

Box format everywhere in this module: xyxy, pixels, float64, in the frame's coordinate system, exactly as the
raw annotation gives them (x1 < x2, y1 < y2). Adapters never clip: a box may extend beyond the frame (the
benchmarks score such boxes as they are); training clips its targets at load time
(``train/stage/transforms.py``: ``ClampBoundingBoxes`` + ``SanitizeBoundingBoxes``).
"""

from __future__ import annotations

import os
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from builder.errors import BuilderError

#: Unified class id of an ignore region (a box that is neither a positive nor a negative).
IGNORE = 0
#: What a build's ``gt/gt.txt`` boxes are, recorded as ``gt_format`` in ``build_manifest.json``: the raw
#: annotation's boxes exactly (no clipping, no rounding). Builds without this value (written by builders
#: that clipped boxes to the frame and rounded them to 0.01 px) are refused for evaluation.
GT_FORMAT = "raw-boxes-v1"


@dataclass
class FrameRecord:
    """One annotated frame of a sequence.

    Attributes:
        index: frame number in the raw sequence, 1-based (MOTChallenge convention).
        image: path of the raw image file (may not exist: adapters do not touch pixels).
        boxes: (N, 4) float64, xyxy pixels, as annotated (possibly beyond the frame).
        track_ids: (N,) int64 track id per box, unique within the frame among positives.
        labels: (N,) int16 unified class id (1-based position in the class list), ``IGNORE`` (0) for
            an ignore region.
        visibility: (N,) float32 in [0, 1]; 1.0 where the source records none.
    """

    index: int
    image: Path
    boxes: np.ndarray
    track_ids: np.ndarray
    labels: np.ndarray
    visibility: np.ndarray

    @staticmethod
    def empty(index: int, image: Path) -> FrameRecord:
        """A frame with no boxes (arrays of length 0 with the documented dtypes)."""
        return FrameRecord(
            index=index,
            image=image,
            boxes=np.zeros((0, 4), np.float64),
            track_ids=np.zeros((0,), np.int64),
            labels=np.zeros((0,), np.int16),
            visibility=np.zeros((0,), np.float32),
        )

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


@dataclass
class SequenceRecord:
    """One raw sequence (a video) of a source, with its frames in increasing ``index`` order.

    Attributes:
        source: registered adapter name (``bdd100k``, ``dancetrack``, ``mot17``, ``visdrone``).
        split: official split the sequence comes from (``train``, ``val``, ``test``, ...).
        name: sequence name as on disk; never contains a path separator or ``..``.
        frame_rate: frames per second.
        width, height: image size in pixels.
        frames: every frame of the sequence, annotated or not, sorted by ``index``.
        image_ext: image file extension with the dot (``.jpg``).
        has_gt: False for a sequence without ground truth (e.g. an official ``test`` split): its frames
            carry no boxes because none were published, not because the frames are empty.
    """

    source: str
    split: str
    name: str
    frame_rate: float
    width: int
    height: int
    frames: list[FrameRecord]
    image_ext: str = ".jpg"
    has_gt: bool = True

    @property
    def num_frames(self) -> int:
        """Number of frames (annotated or not), ``len(frames)``."""
        return len(self.frames)


@dataclass
class WarningCounter:
    """Counts every warning the builder raises, by kind, keeping a few examples of each.

    Kinds are short snake_case names (``box_partly_outside_frame``, ``box_outside_frame``, ``seqinfo_mismatch``,
    ``missing_image``, ...). ``build_manifest.json`` records ``counts``.
    """

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    max_examples: int = 5

    def add(self, kind: str, example: str = "", n: int = 1) -> None:
        """Count ``n`` occurrences of ``kind``; keep ``example`` (e.g. ``file:line``) among the first few."""
        if n <= 0:
            return
        self.counts[kind] += n
        if example:
            ex = self.examples.setdefault(kind, [])
            if len(ex) < self.max_examples:
                ex.append(example)

    def as_dict(self) -> dict[str, int]:
        """Counts as a plain dict sorted by kind (deterministic JSON)."""
        return {k: int(self.counts[k]) for k in sorted(self.counts)}


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a directory name of a build (and a line of a seqmap), or None when it can.

    A name must be one path component of printable characters: not empty, not ``.``/``..``, no ``/`` or ``\\``,
    no ``..`` inside, no whitespace (seqmaps and seqinfo.ini strip it; shells split on it), no comma (TrackEval
    reads seqmaps as CSV) and no control or other non-printing character (a newline would end a seqmap line).
    """
    if not isinstance(name, str) or not name or name in {".", ".."}:
        return "expected a non-empty name"
    if "/" in name or "\\" in name or ".." in name:
        return "expected no path separator and no '..'"
    bad = sorted({c for c in name if c.isspace() or c == "," or unicodedata.category(c)[0] in "CZ"})
    if bad:
        return f"expected no whitespace, comma or control character (found {', '.join(map(repr, bad))})"
    return None


def check_sequence_name(name: str, where: str) -> str:
    """Return ``name`` if it is a safe single path component (:func:`name_problem`), else raise ``BuilderError``.

    Sequence names become directory names in a build and lines of its seqmaps; every adapter checks each name
    where it enters (the listing of a split, a name read from a label file).
    """
    problem = name_problem(name)
    if problem:
        raise BuilderError(f"{where}: sequence name {name!r} is not a safe directory name ({problem})")
    return name


def inside_root(root: Path, path: str | Path, where: str) -> Path:
    """``path`` (a file named by the data, joined to a folder of ``root``), checked to stay inside ``root``.

    The check is on the normalised path (``..`` and absolute names resolved lexically): a label file cannot
    make the build link a file from elsewhere on the disk. Symlinks the user placed inside the root (a folder
    of images on another disk) are the user's own layout and are followed.

    Raises:
        BuilderError: the path leads outside ``root`` (names ``where`` and the path).
    """
    base = os.path.normpath(os.path.abspath(root))
    full = os.path.normpath(os.path.abspath(path))
    if full != base and not full.startswith(base.rstrip(os.sep) + os.sep):
        raise BuilderError(f"{where}: path {str(path)!r} leads outside the source root {root}")
    return Path(path)
