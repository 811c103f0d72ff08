"""The MOTChallenge on-disk format, read and written by builder/ and train/ alike: seqinfo.ini, seqmaps and
text rows (gt.txt, det.txt, tracker results, VisDrone annotations).

Formats (MOTChallenge, as MOT16/17/20, DanceTrack and the project's builds use them):

- ``seqinfo.ini``: an INI file with a ``[Sequence]`` section holding ``name``, ``imDir``, ``frameRate``,
  ``seqLength``, ``imWidth``, ``imHeight``, ``imExt`` (values are not interpolated).
- seqmap: TrackEval's sequence list, a header line ``name`` then one sequence name per line
  (comma-separated extra fields are ignored, as TrackEval's reader does).
- text rows ``frame,id,x,y,w,h,conf,class,visibility[,extra]``: 1-based frame, track id, box as top-left
  corner + size in pixels (xywh), then optional columns. Ground truth uses ``conf`` as the "consider" flag
  (0 = not considered / ignore region) and ``class`` as the class id; the project's result files are
  ``frame,id,x,y,w,h,score,class,-1,-1``.

Rows are parsed by :mod:`builder.formats.text_rows`; a non-integer frame, id or class is a
:class:`builder.errors.FormatError` naming ``file:line`` too.
"""

from __future__ import annotations

import configparser
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from builder.errors import FormatError
from builder.formats.files import MissingFileError, write_text_atomic
from builder.formats.text_rows import check_integral, read_numeric_rows

#: The columns of a MOTChallenge text row, in order; files have the first 6 to all 10.
MOT_COLUMNS = ("frame", "id", "x", "y", "w", "h", "conf", "class", "visibility", "extra")
MIN_COLUMNS = 6
#: Value of the class column when a file does not have one (e.g. 7-column result files).
NO_CLASS = -1
#: seqinfo.ini keys a sequence needs to be scored or tracked (``read_seqinfo``'s default ``required``).
SEQINFO_REQUIRED = ("frameRate", "seqLength", "imWidth", "imHeight")
_SEQINFO_KEYS = ("name", "imDir", "frameRate", "seqLength", "imWidth", "imHeight", "imExt")


# ----------------------------------------------------------------------------------------- seqinfo.ini
@dataclass
class SeqInfo:
    """The ``[Sequence]`` section of a ``seqinfo.ini``; a numeric key the file lacks is None.

    Attributes:
        path: the ini file.
        name: sequence name (``name``; the folder name when absent).
        frame_rate: frames per second (``frameRate``).
        length: number of frames (``seqLength``); frames are numbered 1..length.
        width, height: image size in pixels (``imWidth``, ``imHeight``).
        im_dir: image folder relative to the sequence folder (``imDir``, default ``img1``).
        im_ext: image extension with the dot (``imExt``), None when absent.
        extra: the other keys of the section as written (e.g. a build's ``source``, ``rawSequence``).
    """

    path: Path
    name: str
    frame_rate: float | None = None
    length: int | None = None
    width: int | None = None
    height: int | None = None
    im_dir: str = "img1"
    im_ext: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def image_path(self, seq_dir: Path | str, frame: int) -> Path:
        """Path of frame ``frame`` (1-based): ``<seq>/<imDir>/%08d<imExt>`` (DanceTrack, builds) or, when only
        that exists, ``%06d<imExt>`` (MOT16/17/20); ``imExt`` defaults to ``.jpg``."""
        ext = self.im_ext or ".jpg"
        eight = Path(seq_dir) / self.im_dir / f"{frame:08d}{ext}"
        six = eight.with_name(f"{frame:06d}{ext}")
        return six if not eight.exists() and six.exists() else eight


def _ini_number(section: configparser.SectionProxy, key: str, kind: type, path: Path) -> float | int | None:
    """``key`` of ``section`` as a positive ``kind`` (int accepts ``600.0``), None when absent."""
    if key not in section:
        return None
    raw = section[key].strip()
    try:
        number = float(raw)
    except ValueError:
        raise FormatError(f"{path}: [Sequence] {key}={raw!r} is not a number") from None
    if not math.isfinite(number):
        raise FormatError(f"{path}: [Sequence] {key}={raw!r} is not a finite number")
    if kind is int and number != int(number):
        raise FormatError(f"{path}: [Sequence] {key}={raw!r} is not an integer")
    if not number > 0:
        raise FormatError(f"{path}: [Sequence] {key}={raw!r} must be positive")
    return int(number) if kind is int else number


def read_seqinfo(path: Path | str, *, required: Sequence[str] = SEQINFO_REQUIRED) -> SeqInfo:
    """Read a ``seqinfo.ini`` (or the one inside a sequence folder); the project's only seqinfo.ini parser.

    Args:
        path: the ini file, or a sequence folder containing ``seqinfo.ini``.
        required: keys that must be present (the builder's adapters pass ``()``: a labels-only download may
            lack them, and the files then decide).

    Raises:
        MissingFileError: the file does not exist.
        FormatError: not an INI file, no ``[Sequence]`` section, a required key missing, or ``frameRate``,
            ``seqLength``, ``imWidth``, ``imHeight`` not a positive number (integers for the last three).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "seqinfo.ini"
    if not path.is_file():
        raise MissingFileError(f"{path}: seqinfo.ini not found")
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep camelCase keys
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: not a valid seqinfo.ini ({exc})") from None
    if "Sequence" not in parser:
        raise FormatError(f"{path}: no [Sequence] section (expected {', '.join(_SEQINFO_KEYS)})")
    sec = parser["Sequence"]
    missing = [k for k in required if k not in sec]
    if missing:
        raise FormatError(f"{path}: [Sequence] has no key {', '.join(repr(k) for k in missing)} "
                          f"(expected {', '.join(_SEQINFO_KEYS)})")
    return SeqInfo(path=path, name=sec.get("name", path.parent.name).strip(),
                   frame_rate=_ini_number(sec, "frameRate", float, path),
                   length=_ini_number(sec, "seqLength", int, path),
                   width=_ini_number(sec, "imWidth", int, path), height=_ini_number(sec, "imHeight", int, path),
                   im_dir=sec.get("imDir", "img1").strip(),
                   im_ext=sec["imExt"].strip() if "imExt" in sec else None,
                   extra={k: v for k, v in sec.items() if k not in _SEQINFO_KEYS})


def seqinfo_text(name: str, *, frame_rate: float, length: int, width: int, height: int, im_ext: str,
                 im_dir: str = "img1", extra: Mapping[str, str] | None = None) -> str:
    """The text of a ``seqinfo.ini`` (``frameRate`` written as an integer when it is one)."""
    rate = str(int(frame_rate)) if float(frame_rate).is_integer() else f"{frame_rate:.6g}"
    lines = [f"name={name}", f"imDir={im_dir}", f"frameRate={rate}", f"seqLength={length}", f"imWidth={width}",
             f"imHeight={height}", f"imExt={im_ext}", *(f"{k}={v}" for k, v in (extra or {}).items())]
    return "[Sequence]\n" + "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------- seqmaps
def read_seqmap(path: Path | str) -> list[str]:
    """Read a TrackEval seqmap: header ``name`` (optional) then one sequence per line.

    Blank lines are skipped; only the first comma-separated field of a line is used.

    Returns:
        sequence names in file order.

    Raises:
        MissingFileError: the seqmap does not exist.
        FormatError: a name appears twice (names file:line).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: seqmap not found")
    names: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        name = line.split(",")[0].strip()
        if not name or (not seen and name.lower() == "name"):
            continue
        if name in seen:
            raise FormatError(f"{path}:{lineno}: sequence {name!r} already listed on line {seen[name]}")
        seen[name] = lineno
        names.append(name)
    return names


def write_seqmap(path: Path | str, names: Sequence[str]) -> Path:
    """Write a TrackEval seqmap (header ``name``, one sequence per line) atomically; returns the path."""
    return write_text_atomic(path, "name\n" + "".join(f"{n}\n" for n in names))


def list_sequences(split_dir: Path | str) -> list[str]:
    """Sorted names of the sequence folders of a split folder (folders holding a ``seqinfo.ini``).

    Raises:
        MissingFileError: ``split_dir`` is not a folder.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise MissingFileError(f"{split_dir}: split folder not found")
    return sorted(p.name for p in split_dir.iterdir() if (p / "seqinfo.ini").is_file())


@dataclass
class MotTable:
    """The rows of one MOTChallenge text file (gt, det or tracker result), column by column.

    Attributes:
        frames: (N,) int64, 1-based frame numbers.
        ids: (N,) int64 track ids.
        boxes: (N, 4) float64, xywh pixels (top-left corner x, y, width, height).
        conf: (N,) float64 column 7: in gt the "consider" flag (0 = ignore / not considered), in results
            the detection score; 1.0 when the file has only 6 columns.
        classes: (N,) int64 column 8: class id; ``NO_CLASS`` (-1) when the file has fewer than 8 columns.
        visibility: (N,) float64 column 9: gt visibility ratio in [0, 1]; -1.0 when absent.
        source: the file the rows came from (for error messages), or None.
        lines: (N,) int64 line number of each row in ``source``, or None.
    """

    frames: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray
    conf: np.ndarray
    classes: np.ndarray
    visibility: np.ndarray
    source: Path | None = None
    lines: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @staticmethod
    def empty(source: Path | None = None) -> MotTable:
        """A table with no rows and the documented dtypes."""
        return MotTable.from_matrix(np.zeros((0, len(MOT_COLUMNS))), source)

    @staticmethod
    def from_matrix(matrix: np.ndarray, source: Path | None = None, lines: np.ndarray | None = None) -> MotTable:
        """Build from an (N, C) float array of MOT rows, 6 <= C <= 10; missing or NaN optional columns get
        their defaults (conf 1.0, class -1, visibility -1.0)."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.ndim != 2 or not MIN_COLUMNS <= m.shape[1] <= len(MOT_COLUMNS):
            raise FormatError(f"{source}: expected an (N, 6..10) array of MOT rows, got shape {m.shape}")
        n, cols = m.shape

        def column(j: int, default: float) -> np.ndarray:
            return np.where(np.isnan(m[:, j]), default, m[:, j]) if cols > j else np.full(n, default)

        return MotTable(frames=m[:, 0].astype(np.int64), ids=m[:, 1].astype(np.int64), boxes=m[:, 2:6].copy(),
                        conf=column(6, 1.0), classes=column(7, NO_CLASS).astype(np.int64),
                        visibility=column(8, -1.0), source=source, lines=lines)

    def select(self, mask: np.ndarray) -> MotTable:
        """Rows where ``mask`` (bool (N,) or an index array) holds, as a new table."""
        return MotTable(self.frames[mask], self.ids[mask], self.boxes[mask], self.conf[mask],
                        self.classes[mask], self.visibility[mask], self.source,
                        None if self.lines is None else self.lines[mask])

    def by_frame(self, num_frames: int) -> list[np.ndarray]:
        """Row indices per frame: element ``t`` holds the rows of frame ``t + 1`` (t = 0..num_frames-1).

        Raises:
            FormatError: a row's frame is outside 1..num_frames (names the file, line and frame).
        """
        bad = (self.frames < 1) | (self.frames > num_frames)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            where = f"{self.source}:{int(self.lines[i])}" if self.lines is not None else str(self.source)
            raise FormatError(f"{where}: frame {int(self.frames[i])} is outside the sequence's frames "
                              f"1..{num_frames} (seqLength in seqinfo.ini)")
        order = np.argsort(self.frames, kind="stable")
        bounds = np.searchsorted(self.frames[order], np.arange(1, num_frames + 2))
        return [order[bounds[t]:bounds[t + 1]] for t in range(num_frames)]


def read_mot_file(path: Path | str, *, finite_boxes: bool = True, min_columns: int = MIN_COLUMNS,
                  class_column: bool = True) -> MotTable:
    """Read a MOTChallenge text file (``gt.txt``, ``det.txt`` or a tracker result) into a :class:`MotTable`.

    Rows have 6 to 10 columns (:data:`MOT_COLUMNS`); an empty file gives an empty table.

    Args:
        finite_boxes: reject NaN / inf in frame,id,x,y,w,h and conf (scoring needs finite numbers); the
            builder's adapters pass False and drop such boxes with a counted warning instead.
        min_columns: fewest columns a row may have (ground truth needs 9: conf, class, visibility).
        class_column: False where columns 8-10 are not class and visibility but world coordinates x, y, z
            (MOT15 ground truth; MOTChallenge result files, whose format defines them so): they are not read,
            ``classes`` is ``NO_CLASS`` and ``visibility`` -1 on every row.

    Raises:
        MissingFileError: no such file.
        FormatError: see :func:`read_numeric_rows`; also a frame, id or class that is not an integer, and
            (``finite_boxes``) a non-finite value, naming ``file:line``.
    """
    rows = read_numeric_rows(path, MOT_COLUMNS, min_columns=min_columns)
    check_integral(rows, {"frame": 0, "id": 1, "class": 7} if class_column else {"frame": 0, "id": 1})
    if finite_boxes:
        bad = ~np.isfinite(rows.values[:, :6]).all(axis=1) | ((rows.widths > 6) & ~np.isfinite(rows.values[:, 6]))
        if bad.any():
            raise FormatError(f"{rows.where(int(np.argmax(bad)))}: non-finite value (NaN or inf) in "
                              "frame,id,x,y,w,h,conf")
    return MotTable.from_matrix(rows.values if class_column else rows.values[:, :7], rows.path, rows.lines)


def write_results(path: Path | str, frames: np.ndarray, ids: np.ndarray, boxes_xywh: np.ndarray,
                  scores: np.ndarray, classes: np.ndarray) -> Path:
    """Write a MOTChallenge result file atomically, rows ``frame,id,x,y,w,h,score,class,-1,-1`` sorted by
    (frame, id); boxes xywh pixels with 2 decimals, scores with 4.

    Args:
        frames: (N,) int, 1-based. ids: (N,) int track ids. boxes_xywh: (N, 4) float, xywh pixels.
        scores: (N,) float in [0, 1]. classes: (N,) int class ids (the unified class id for builds).

    Raises:
        ValueError: the arrays differ in length.
    """
    frames = np.asarray(frames, np.int64).reshape(-1)
    ids = np.asarray(ids, np.int64).reshape(-1)
    boxes = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    classes = np.asarray(classes, np.int64).reshape(-1)
    if len({len(a) for a in (frames, ids, boxes, scores, classes)}) != 1:
        raise ValueError(f"{path}: frames, ids, boxes, scores, classes must have the same length, got "
                         f"{[len(a) for a in (frames, ids, boxes, scores, classes)]}")
    order = np.lexsort((ids, frames))
    return write_text_atomic(path, "".join(
        f"{frames[i]},{ids[i]},{boxes[i, 0]:.2f},{boxes[i, 1]:.2f},{boxes[i, 2]:.2f},{boxes[i, 3]:.2f},"
        f"{scores[i]:.4f},{classes[i]},-1,-1\n" for i in order))


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xywh (top-left + size) -> (N, 4) xyxy, same units and dtype."""
    b = np.asarray(boxes).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


#: Most ulp steps :func:`xyxy_to_xywh` takes to make ``x + w`` give x2 back.
_MAX_ULP_STEPS = 4


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy -> (N, 4) xywh (top-left + size), same units and dtype.

    ``w = x2 - x1`` nudged by at most a few ulps so that ``x + w`` (what :func:`xywh_to_xyxy`, TrackEval and every
    MOTChallenge reader compute) gives x2 back bit for bit wherever a float of the dtype reaches it; the same for
    y. Ground truth written this way reads back exactly (a build's gt.txt, issue 9).
    """
    b = np.asarray(boxes).reshape(-1, 4)
    size = b[:, 2:] - b[:, :2]
    for _ in range(_MAX_ULP_STEPS):
        back = b[:, :2] + size
        bad = back != b[:, 2:]
        if not bad.any():
            break
        size[bad] = np.nextafter(size[bad], np.where(back[bad] < b[:, 2:][bad], np.inf, -np.inf)).astype(size.dtype)
    return np.concatenate([b[:, :2], size], axis=1)
