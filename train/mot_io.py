"""Read and write the MOTChallenge on-disk formats: seqinfo.ini, seqmaps, gt.txt and tracker result files.

Formats (MOTChallenge, as used by MOT16/17/20, DanceTrack and the project's builds):

- ``seqinfo.ini``: an INI file with a ``[Sequence]`` section holding ``name``, ``imDir``, ``frameRate``,
  ``seqLength``, ``imWidth``, ``imHeight``, ``imExt``.
- seqmap: the TrackEval sequence list, a header line ``name`` then one sequence name per line
  (comma-separated extra fields are ignored, as TrackEval's reader does).
- MOT text rows ``frame,id,x,y,w,h,conf,class,visibility[,extra]``: 1-based frame, track id, box as
  top-left corner + size in pixels (xywh), then optional columns. Ground truth uses ``conf`` as the
  "consider" flag (0 = not considered / ignore region) and ``class`` as the class id; result files written
  by this project use ``frame,id,x,y,w,h,score,class,-1,-1``.

Reading is tolerant of what real files contain (6 to 10 columns, blank lines, trailing commas, CRLF,
whitespace-separated rows) and strict about values: a non-numeric field, a non-finite number, a
non-integer or < 1 frame number, a non-integer id or class raises :class:`MotFormatError` naming
``file:line``.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Fewest and most columns a MOT text row may have (frame,id,x,y,w,h is the minimum).
MIN_COLUMNS = 6
MAX_COLUMNS = 10

#: Value used for the class column when a file does not have one (e.g. 7-column result files).
NO_CLASS = -1


class MotFormatError(ValueError):
    """A MOTChallenge file is malformed; the message names the file (and line or key) and what was expected."""


@dataclass(frozen=True)
class SeqInfo:
    """The ``[Sequence]`` section of a ``seqinfo.ini``.

    Attributes:
        name: sequence name.
        frame_rate: frames per second (``frameRate``).
        length: number of frames (``seqLength``); frames are numbered 1..length.
        width, height: image size in pixels (``imWidth``, ``imHeight``).
        im_dir: image folder relative to the sequence folder (``imDir``, default ``img1``).
        im_ext: image extension with the dot (``imExt``, default ``.jpg``).
        extra: any other keys of the section (e.g. the builder's ``source``, ``rawSequence``).
    """

    name: str
    frame_rate: float
    length: int
    width: int
    height: int
    im_dir: str = "img1"
    im_ext: str = ".jpg"
    extra: tuple[tuple[str, str], ...] = ()

    def image_path(self, seq_dir: Path | str, frame: int) -> Path:
        """Path of frame ``frame`` (1-based): ``<seq>/<imDir>/%08d<imExt>`` (DanceTrack, builds) or, when only
        that exists, ``%06d<imExt>`` (MOT16/17/20)."""
        eight = Path(seq_dir) / self.im_dir / f"{frame:08d}{self.im_ext}"
        six = eight.with_name(f"{frame:06d}{self.im_ext}")
        return six if not eight.exists() and six.exists() else eight


def _ini_value(section: configparser.SectionProxy, key: str, kind: type, path: Path):
    """Read ``key`` from ``section`` converted by ``kind``; raise MotFormatError naming file and key."""
    if key not in section:
        raise MotFormatError(f"{path}: [Sequence] has no key '{key}' (expected name, imDir, frameRate, "
                             "seqLength, imWidth, imHeight, imExt)")
    raw = section[key].strip()
    try:
        value = kind(float(raw)) if kind is int else kind(raw)
    except ValueError:
        raise MotFormatError(f"{path}: [Sequence] {key}={raw!r} is not a valid {kind.__name__}") from None
    if kind is int and float(raw) != int(float(raw)):
        raise MotFormatError(f"{path}: [Sequence] {key}={raw!r} is not an integer")
    return value


def read_seqinfo(path: Path | str) -> SeqInfo:
    """Read a ``seqinfo.ini`` (or the one inside a sequence folder).

    Args:
        path: the ini file, or a sequence folder containing ``seqinfo.ini``.

    Raises:
        FileNotFoundError: the file does not exist (message names it).
        MotFormatError: no ``[Sequence]`` section, a missing required key, or a non-numeric value;
            ``seqLength``, ``imWidth``, ``imHeight`` must be positive integers.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "seqinfo.ini"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: seqinfo.ini not found")
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep camelCase keys
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as exc:
        raise MotFormatError(f"{path}: not a valid INI file ({exc})") from None
    if "Sequence" not in parser:
        raise MotFormatError(f"{path}: no [Sequence] section")
    sec = parser["Sequence"]
    info = SeqInfo(
        name=sec.get("name", path.parent.name).strip(),
        frame_rate=_ini_value(sec, "frameRate", float, path),
        length=_ini_value(sec, "seqLength", int, path),
        width=_ini_value(sec, "imWidth", int, path),
        height=_ini_value(sec, "imHeight", int, path),
        im_dir=sec.get("imDir", "img1").strip(),
        im_ext=sec.get("imExt", ".jpg").strip(),
        extra=tuple((k, v) for k, v in sec.items()
                    if k not in {"name", "imDir", "frameRate", "seqLength", "imWidth", "imHeight", "imExt"}),
    )
    for key, value in (("seqLength", info.length), ("imWidth", info.width), ("imHeight", info.height),
                       ("frameRate", info.frame_rate)):
        if value <= 0:
            raise MotFormatError(f"{path}: [Sequence] {key}={value} must be positive")
    return info


def read_seqmap(path: Path | str) -> list[str]:
    """Read a TrackEval seqmap: header ``name`` then one sequence per line.

    Blank lines are skipped; only the first comma-separated field of a line is used. The first line is
    taken as the header when it reads ``name`` (as TrackEval writes it); a file without that header is
    accepted too.

    Returns:
        sequence names in file order, without duplicates.

    Raises:
        FileNotFoundError: the seqmap does not exist.
        MotFormatError: a name appears twice (the message names file:line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: seqmap not found")
    names: list[str] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        name = line.split(",")[0].strip()
        if not name or (not names and not seen and name.lower() == "name"):
            continue
        if name in seen:
            raise MotFormatError(f"{path}:{lineno}: sequence {name!r} already listed on line {seen[name]}")
        seen[name] = lineno
        names.append(name)
    return names


def write_seqmap(path: Path | str, names: list[str]) -> Path:
    """Write a TrackEval seqmap (header ``name``, one sequence per line); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("name\n" + "".join(f"{n}\n" for n in names), encoding="utf-8")
    return path


@dataclass
class MotTable:
    """The rows of one MOT text file (gt or tracker result), column by column.

    Attributes:
        frames: (N,) int64, 1-based frame numbers.
        ids: (N,) int64 track ids.
        boxes: (N, 4) float64, xywh pixels (top-left corner x, y, width, height).
        conf: (N,) float64 column 7: in gt the "consider" flag (0 = ignore / not considered), in results
            the detection score; 1.0 when the file has only 6 columns.
        classes: (N,) int64 column 8: class id; ``NO_CLASS`` (-1) when the file has fewer than 8 columns.
        visibility: (N,) float64 column 9: gt visibility ratio in [0, 1]; -1.0 when absent (result files
            write -1 there).
        source: the file the rows came from (for error messages), or None.
    """

    frames: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray
    conf: np.ndarray
    classes: np.ndarray
    visibility: np.ndarray
    source: Path | None = None

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @staticmethod
    def empty(source: Path | None = None) -> MotTable:
        """A table with no rows and the documented dtypes."""
        return MotTable.from_matrix(np.zeros((0, MAX_COLUMNS)), source)

    @staticmethod
    def from_matrix(matrix: np.ndarray, source: Path | None = None) -> MotTable:
        """Build from an (N, C) float array of MOT rows, 6 <= C <= 10 (missing columns get their defaults)."""
        m = np.asarray(matrix, dtype=np.float64)
        if m.ndim != 2 or not MIN_COLUMNS <= m.shape[1] <= MAX_COLUMNS:
            raise MotFormatError(f"{source}: expected an (N, 6..10) array of MOT rows, got shape {m.shape}")
        n, cols = m.shape
        return MotTable(
            frames=m[:, 0].astype(np.int64),
            ids=m[:, 1].astype(np.int64),
            boxes=m[:, 2:6].copy(),
            conf=m[:, 6].copy() if cols > 6 else np.ones(n),
            classes=(np.nan_to_num(m[:, 7], nan=NO_CLASS).astype(np.int64) if cols > 7
                     else np.full(n, NO_CLASS, np.int64)),
            visibility=m[:, 8].copy() if cols > 8 else np.full(n, -1.0),
            source=source,
        )

    def select(self, mask: np.ndarray) -> MotTable:
        """Rows where ``mask`` (bool (N,) or an index array) holds, as a new table."""
        return MotTable(self.frames[mask], self.ids[mask], self.boxes[mask], self.conf[mask],
                        self.classes[mask], self.visibility[mask], self.source)

    def by_frame(self, num_frames: int) -> list[np.ndarray]:
        """Row indices per frame: element ``t`` holds the rows of frame ``t + 1`` (t = 0..num_frames-1).

        Raises:
            MotFormatError: a row's frame is outside 1..num_frames (message names the file and frame).
        """
        if len(self) and (self.frames.min() < 1 or self.frames.max() > num_frames):
            bad = int(self.frames[(self.frames < 1) | (self.frames > num_frames)][0])
            raise MotFormatError(f"{self.source}: frame {bad} is outside the sequence's frames "
                                 f"1..{num_frames} (seqLength in seqinfo.ini)")
        order = np.argsort(self.frames, kind="stable")
        bounds = np.searchsorted(self.frames[order], np.arange(1, num_frames + 2))
        return [order[bounds[t]:bounds[t + 1]] for t in range(num_frames)]


def _parse_line(line: str, path: Path, lineno: int) -> list[float] | None:
    """Parse one text row; None for a blank line. Raises MotFormatError naming file:line."""
    text = line.strip()
    if not text:
        return None
    fields = text.split(",") if "," in text else text.split()
    while fields and not fields[-1].strip():
        fields.pop()  # trailing commas
    if not MIN_COLUMNS <= len(fields) <= MAX_COLUMNS:
        raise MotFormatError(f"{path}:{lineno}: expected {MIN_COLUMNS} to {MAX_COLUMNS} columns "
                             f"(frame,id,x,y,w,h[,conf,class,visibility,...]), got {len(fields)}: {text!r}")
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise MotFormatError(f"{path}:{lineno}: non-numeric field in {text!r}") from None
    return values


def _check_values(m: np.ndarray, path: Path, line_numbers: np.ndarray, widths: np.ndarray) -> None:
    """Reject non-finite values, non-integer or < 1 frame numbers, non-integer ids, and a conf / class
    column that a row writes but that is not finite (conf) or not an integer (class) (file:line).

    ``widths`` (N,) is the number of fields each row wrote; columns beyond it are NaN padding.
    """
    cols = m.shape[1]
    conf = m[:, 6] if cols > 6 else np.ones(len(m))
    cls = m[:, 7] if cols > 7 else np.ones(len(m))
    checks = (
        (~np.isfinite(m[:, :6]).all(axis=1), "non-finite value (NaN or inf) in frame,id,x,y,w,h"),
        ((m[:, 0] < 1) | (m[:, 0] != np.round(m[:, 0])), "frame must be an integer >= 1"),
        (m[:, 1] != np.round(m[:, 1]), "track id must be an integer"),
        ((widths > 6) & ~np.isfinite(conf), "conf / score (column 7) must be a finite number"),
        ((widths > 7) & ~(np.isfinite(cls) & (cls == np.round(cls))), "class (column 8) must be an integer"),
    )
    for bad, what in checks:
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise MotFormatError(f"{path}:{int(line_numbers[i])}: {what}; got row "
                                 f"{','.join(f'{v:g}' for v in m[i])}")


def _read_matrix_careful(path: Path, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Line-by-line parse of ``text``: (N, widest row) rows padded with NaN, line numbers, fields per row."""
    rows: list[list[float]] = []
    lines: list[int] = []
    width = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        values = _parse_line(line, path, lineno)
        if values is None:
            continue
        rows.append(values)
        lines.append(lineno)
        width = max(width, len(values))
    m = np.full((len(rows), max(width, MIN_COLUMNS)), np.nan)
    for i, values in enumerate(rows):
        m[i, :len(values)] = values
    return m, np.asarray(lines, dtype=np.int64), np.asarray([len(v) for v in rows], dtype=np.int64)


def read_mot_file(path: Path | str) -> MotTable:
    """Read a MOT text file (``gt.txt``, ``det.txt`` or a tracker result) into a :class:`MotTable`.

    Rows may have 6 to 10 columns; a file whose rows differ in width is padded to its widest row, missing
    ``conf`` reading 1.0, missing ``class`` -1 and missing ``visibility`` -1.0. Blank lines, trailing
    commas and whitespace-separated rows are accepted. An empty file gives an empty table.

    Raises:
        FileNotFoundError: the file does not exist (message names it).
        MotFormatError: a row with fewer than 6 or more than 10 fields, a non-numeric or non-finite value
            in frame,id,x,y,w,h or conf, a frame number that is not an integer >= 1, a non-integer id or
            class, or a file that is not UTF-8 text; the message names file:line (or the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: MOT text file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MotFormatError(f"{path}: not a text file (byte {exc.start} is not UTF-8); expected MOT rows "
                             "frame,id,x,y,w,h[,conf,class,visibility,...]") from None
    if not text.strip():
        return MotTable.empty(path)
    try:
        # Fast path: a regular comma-separated file (numpy's C parser); anything irregular falls back.
        m = np.loadtxt(text.splitlines(), delimiter=",", ndmin=2, dtype=np.float64)
        if not MIN_COLUMNS <= m.shape[1] <= MAX_COLUMNS:
            raise ValueError("column count")
        lines = np.asarray([i for i, ln in enumerate(text.splitlines(), start=1) if ln.strip()], np.int64)
        if len(lines) != len(m):
            raise ValueError("line count")
        widths = np.full(len(m), m.shape[1], np.int64)
    except ValueError:
        m, lines, widths = _read_matrix_careful(path, text)
    if m.shape[0] == 0:
        return MotTable.empty(path)
    _check_values(m, path, lines, widths)
    table = MotTable.from_matrix(m, path)
    # Padding NaN in optional columns (rows narrower than the widest) -> documented defaults.
    table.conf[np.isnan(table.conf)] = 1.0
    table.visibility[np.isnan(table.visibility)] = -1.0
    return table


def write_results(path: Path | str, frames: np.ndarray, ids: np.ndarray, boxes_xywh: np.ndarray,
                  scores: np.ndarray, classes: np.ndarray) -> Path:
    """Write a MOTChallenge result file, rows ``frame,id,x,y,w,h,score,class,-1,-1`` sorted by frame, id.

    Args:
        path: output file (parent folders are created).
        frames: (N,) int, 1-based frame numbers.
        ids: (N,) int track ids (>= 1 by convention).
        boxes_xywh: (N, 4) float, xywh pixels; written with 2 decimals.
        scores: (N,) float detection scores in [0, 1]; written with 4 decimals.
        classes: (N,) int class ids (unified class id for builds).

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.asarray(frames, np.int64).reshape(-1)
    ids = np.asarray(ids, np.int64).reshape(-1)
    boxes = np.asarray(boxes_xywh, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    classes = np.asarray(classes, np.int64).reshape(-1)
    n = len(frames)
    if not all(len(a) == n for a in (ids, boxes, scores, classes)):
        raise ValueError(f"{path}: frames, ids, boxes, scores, classes must have the same length, got "
                         f"{[len(a) for a in (frames, ids, boxes, scores, classes)]}")
    order = np.lexsort((ids, frames))
    lines = [
        f"{frames[i]},{ids[i]},{boxes[i, 0]:.2f},{boxes[i, 1]:.2f},{boxes[i, 2]:.2f},{boxes[i, 3]:.2f},"
        f"{scores[i]:.4f},{classes[i]},-1,-1\n"
        for i in order
    ]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def write_table(path: Path | str, table: MotTable) -> Path:
    """Write a :class:`MotTable` as a result file (``conf`` column as the score)."""
    return write_results(path, table.frames, table.ids, table.boxes, table.conf, table.classes)


def list_sequences(split_dir: Path | str) -> list[str]:
    """Sorted names of the sequence folders of a split folder (folders holding a ``seqinfo.ini``).

    Raises:
        FileNotFoundError: ``split_dir`` is not a folder.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir}: split folder not found")
    return sorted(p.name for p in split_dir.iterdir() if (p / "seqinfo.ini").is_file())


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xywh (top-left + size) -> (N, 4) xyxy, same units and dtype."""
    b = np.asarray(boxes).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy -> (N, 4) xywh (top-left + size), same units and dtype."""
    b = np.asarray(boxes).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)
