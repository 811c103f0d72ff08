"""MOTChallenge-layout sources: ``mot17`` (MOT16, MOT17, MOT20), ``mot15`` (2DMOT2015: no class column) and
``dancetrack``.

Raw layout under the adapter's root (as the official downloads unpack)::

    <split>/<seq>/seqinfo.ini     [Sequence] name, imDir, frameRate, seqLength, imWidth, imHeight, imExt
    <split>/<seq>/img1/NNNNNN.jpg  MOT17: 6 digits; DanceTrack: 8 digits (the count is taken from the files)
    <split>/<seq>/gt/gt.txt        frame,id,x,y,w,h,conf,class,visibility (1-based frames, xywh pixels,
                                   top-left corner + size, as written; converted to xyxy = x, y, x+w, y+h)

Which frames a sequence has (documented rule; it reproduces the counts of ../shared/realdata/mot17-mini,
whose seqinfo.ini keeps the full seqLength, e.g. 600, while img1 holds only the first 4 frames):

- images exist: the frames are the union of the image files and the frames named in gt.txt, limited to
  ``1..seqLength``. A gt frame without its image file stays a frame whose image is missing
  (:func:`builder.sources.images.missing_images` lists it; ``stats`` counts it, ``build`` refuses it).
- no image exists (labels-only download): frames ``1..seqLength`` (every one a missing image), or the gt
  frames when there is no seqinfo.ini either.

seqinfo.ini disagreeing with the files (seqLength vs the number of images when images exist, imWidth/imHeight
vs the first image's header) counts one ``seqinfo_mismatch`` warning per disagreement; the files win (the
size of the header is used). A split without gt/gt.txt (``test``) gives frames without boxes and
``has_gt = False``. Class-map categories are the class column as a string (``"1"``); rules may test the
attributes ``conf`` and ``visibility``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from builder.errors import BuilderError
from builder.formats.motchallenge import SeqInfo, read_mot_file, read_seqinfo, xywh_to_xyxy
from builder.records import SequenceRecord, check_sequence_name, inside_root
from builder.sources.base import BoxRows, SourceAdapter, register
from builder.sources.images import image_size, list_frame_images

#: What seqinfo.ini's imExt may be: a dot and up to 8 letters or digits (image names are <frame><imExt>).
_IMAGE_EXT = re.compile(r"\.[A-Za-z0-9]{1,8}")
#: Columns a gt.txt row must have: frame,id,x,y,w,h,conf,class,visibility (a 10th is allowed and unused).
GT_COLUMNS = 9
#: Raw category of every MOT15 box: MOT15 has no class column (columns 8-10 are world coordinates x, y, z).
MOT15_CATEGORY = 1
_OFFICIAL_SPLITS = ("train", "val", "test")


class MOTChallengeSource(SourceAdapter):
    """Adapter for the MOTChallenge layout (see the module docstring). Subclasses set the defaults."""

    attributes = ("conf", "visibility")
    #: Whether gt.txt column 8 is a class (MOT16/17/20, DanceTrack); False for MOT15, whose columns 8-10 are
    #: world coordinates: every row is then category :data:`MOT15_CATEGORY` and visibility 1.0.
    class_column = True
    #: Fewest columns a gt.txt row may have.
    gt_columns = GT_COLUMNS
    #: Zero-padded digits of image names when no image exists to count them.
    default_digits = 6
    #: Frames per second when seqinfo.ini gives none (the MOT17/DanceTrack videos are mostly 30 fps).
    default_frame_rate = 30.0

    def splits(self) -> list[str]:
        found = [p.name for p in self.root.iterdir() if p.is_dir() and self._seq_dirs(p)]
        return [s for s in _OFFICIAL_SPLITS if s in found] + sorted(set(found) - set(_OFFICIAL_SPLITS))

    def sequence_names(self, split: str) -> list[str]:
        self.check_split(split)
        return [check_sequence_name(p.name, str(p)) for p in self._seq_dirs(self.root / split)]

    def label_files(self, split: str) -> list[Path]:
        files = []
        for name in self.sequence_names(split):
            seq = self.root / split / name
            files += [f for f in (seq / "gt" / "gt.txt", seq / "seqinfo.ini") if f.is_file()]
        return sorted(files)

    @staticmethod
    def _seq_dirs(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.is_dir()
                      and ((p / "seqinfo.ini").is_file() or (p / "img1").is_dir() or (p / "gt").is_dir()))

    def read_sequence(self, split: str, name: str) -> SequenceRecord:
        seq_dir = self.root / split / check_sequence_name(name, str(self.root / split))
        if not seq_dir.is_dir():
            raise BuilderError(f"{seq_dir}: sequence {name!r} not found in split {split!r}")
        ini = seq_dir / "seqinfo.ini"
        info = read_seqinfo(ini, required=()) if ini.is_file() else SeqInfo(path=ini, name=name)
        im_dir = inside_root(self.root, seq_dir / info.im_dir, f"{ini}: imDir")
        if info.im_ext is not None and not _IMAGE_EXT.fullmatch(info.im_ext):
            raise BuilderError(f"{ini}: [Sequence] imExt={info.im_ext!r}: expected an image extension like '.jpg'")
        images, digits, ext = list_frame_images(im_dir, info.im_ext)
        gt_path = seq_dir / "gt" / "gt.txt"
        rows = self._read_gt(gt_path) if gt_path.is_file() else BoxRows.empty(gt_path)
        last = self._last_frame(info, images, rows)
        rows = self.keep_frames_in_range(rows, last)
        width, height = self._frame_size(info, im_dir, images)
        rows = self.sanitise(rows, width, height)
        if images:
            indices = sorted(set(images) | set(np.unique(rows.frames).tolist()))
        else:
            indices = list(range(1, last + 1))
        digits = digits or self.default_digits
        ext = ext or ".jpg"
        paths = [im_dir / images.get(i, f"{i:0{digits}d}{ext}") for i in indices]
        return SequenceRecord(source=self.name, split=split, name=name,
                              frame_rate=info.frame_rate or self.default_frame_rate, width=width, height=height,
                              frames=self.frame_records(rows, indices, paths), image_ext=ext,
                              has_gt=gt_path.is_file())

    def _read_gt(self, path: Path) -> BoxRows:
        table = read_mot_file(path, finite_boxes=False, min_columns=self.gt_columns, class_column=self.class_column)
        lines = table.lines
        categories = table.classes if self.class_column else np.full(len(table), MOT15_CATEGORY, np.int64)
        visibility = np.asarray(table.visibility, np.float64) if self.class_column else np.ones(len(table))
        attributes = {"conf": table.conf, "visibility": visibility}
        targets = self.resolve_int_categories(categories, attributes, lambda row: f"{path}:{int(lines[row])}")
        outside = ~((visibility >= 0.0) & (visibility <= 1.0))  # NaN included
        if outside.any():
            self.warnings.add("visibility_out_of_range", f"{path}:{int(lines[np.argmax(outside)])}", int(outside.sum()))
            visibility = np.clip(np.nan_to_num(visibility, nan=1.0), 0.0, 1.0)
        visibility = visibility.astype(np.float32)
        return BoxRows(table.frames, table.ids, xywh_to_xyxy(table.boxes), targets, visibility, path, lines)

    def _last_frame(self, info: SeqInfo, images: dict[int, str], rows: BoxRows) -> int:
        """The last frame: seqLength (checked against the image count), else the last frame seen."""
        seen = max(max(images, default=0), int(rows.frames.max()) if len(rows) else 0)
        if info.length is None:
            return seen
        if images and info.length != len(images):
            self.warnings.add("seqinfo_mismatch",
                              f"{info.path}: seqLength={info.length} but {len(images)} images in {info.im_dir}")
        return max(info.length, max(images, default=0))  # images beyond seqLength: the files win

    def _frame_size(self, info: SeqInfo, im_dir: Path, images: dict[int, str]) -> tuple[int, int]:
        """(width, height): the first image's header when an image exists, else seqinfo.ini, else (0, 0)."""
        if images:
            w, h = image_size(im_dir / images[min(images)])
            if info.width is not None and (info.width, info.height) != (w, h):
                self.warnings.add("seqinfo_mismatch", f"{info.path}: imWidth x imHeight = {info.width}x"
                                  f"{info.height} but {images[min(images)]} is {w}x{h}")
            return w, h
        if info.width is not None and info.height is not None:
            return info.width, info.height
        self.warnings.add("image_size_unknown", str(info.path))
        return 0, 0


#: MOT17 ships every video once per public detection set (``MOT17-02-DPM``, ``-FRCNN``, ``-SDP``):
#: the same frames and the same gt.txt under three names.
_MOT17_DETECTOR_SUFFIX = re.compile(r"-(DPM|FRCNN|SDP)$")


@register("mot17")
class MOT17Source(MOTChallengeSource):
    """MOT17 (and MOT16/MOT20, same layout): 6-digit image names, class and conf columns honoured."""

    default_digits = 6

    def video_key(self, name: str) -> str:
        """``MOT17-02-DPM``, ``MOT17-02-FRCNN`` and ``MOT17-02-SDP`` -> ``MOT17-02`` (one video, three copies)."""
        return _MOT17_DETECTOR_SUFFIX.sub("", name)


@register("mot15")
class MOT15Source(MOT17Source):
    """MOT15 (2DMOT2015 layout): gt.txt rows ``frame,id,x,y,w,h,conf,x,y,z`` where columns 8-10 are world
    coordinates (-1 in 2D), not a class: every box is category ``"1"`` (a pedestrian), conf 0 = not considered,
    as TrackEval's ``MotChallenge2DBox`` with ``BENCHMARK = MOT15`` reads them."""

    class_column = False
    gt_columns = 7


@register("dancetrack")
class DanceTrackSource(MOTChallengeSource):
    """DanceTrack: MOTChallenge layout with 8-digit image names; one class (1 = dancer)."""

    default_digits = 8
