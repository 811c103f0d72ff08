"""VisDrone2019-MOT (``visdrone``): drone videos with per-sequence text annotations.

Raw layout under the adapter's root (as the official downloads unpack)::

    VisDrone2019-MOT-{train,val,test-dev}/sequences/<seq>/NNNNNNN.jpg    7-digit, 1-based frame numbers
    VisDrone2019-MOT-{train,val,test-dev}/annotations/<seq>.txt

Annotation rows: ``frame,id,x,y,w,h,score,category,truncation,occlusion`` (1-based frames, xywh pixels,
top-left corner + size; converted to xyxy). Categories (VisDrone toolkit): 0 ignored region, 1 pedestrian,
2 people, 3 bicycle, 4 car, 5 van, 6 truck, 7 tricycle, 8 awning-tricycle, 9 bus, 10 motor, 11 others; score
0 marks a box to ignore. Class-map categories are the category column as a string (``"4"``); rules may test
``score``, ``truncation`` and ``occlusion``.

Conventions: split names are the folder suffixes (``train``, ``val``, ``test-dev``, and any other
``VisDrone2019-MOT-*`` folder). There is no seqinfo: the frame size comes from the first image's header
(width = height = 0 with an ``image_size_unknown`` warning when no image exists), and the frame rate is 30 fps
(VisDrone publishes none per sequence; its MOT videos were recorded at about 30 fps). Frames are the union of
the image files and the annotated frames, or ``1..last annotated frame`` without images. Visibility is the lower
bound of the visible fraction implied by the occlusion level: 0 (none) -> 1.0, 1 (partial, 1-50 % occluded)
-> 0.5, 2 (heavy, 50-100 %) -> 0.0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from builder.errors import BuilderError
from builder.formats.text_rows import check_integral, read_numeric_rows
from builder.records import SequenceRecord, check_sequence_name
from builder.sources.base import BoxRows, SourceAdapter, register
from builder.sources.images import image_size, list_frame_images

COLUMNS = ("frame", "id", "x", "y", "w", "h", "score", "category", "truncation", "occlusion")
#: Frames per second assumed for every VisDrone2019-MOT sequence (none is published).
VISDRONE_FRAME_RATE = 30.0
_PREFIX = "VisDrone2019-MOT-"
_SPLITS = ("train", "val", "test-dev")
_DIGITS = 7
#: Occlusion level -> lower bound of the visible fraction (see the module docstring).
_VISIBILITY = np.array([1.0, 0.5, 0.0], np.float32)


@register("visdrone")
class VisDroneSource(SourceAdapter):
    """Adapter for VisDrone2019-MOT (see the module docstring)."""

    attributes = ("score", "truncation", "occlusion")

    def splits(self) -> list[str]:
        found = [p.name[len(_PREFIX):] for p in self.root.glob(_PREFIX + "*") if p.is_dir()]
        return [s for s in _SPLITS if s in found] + sorted(set(found) - set(_SPLITS))

    def _split_dir(self, split: str) -> Path:
        self.check_split(split)
        return self.root / f"{_PREFIX}{split}"

    def sequence_names(self, split: str) -> list[str]:
        folder = self._split_dir(split)
        names = {p.stem for p in (folder / "annotations").glob("*.txt")}
        seq_root = folder / "sequences"
        names |= {p.name for p in seq_root.iterdir() if p.is_dir()} if seq_root.is_dir() else set()
        return [check_sequence_name(n, str(folder)) for n in sorted(names)]

    def label_files(self, split: str) -> list[Path]:
        return sorted((self._split_dir(split) / "annotations").glob("*.txt"))

    def read_sequence(self, split: str, name: str) -> SequenceRecord:
        folder = self._split_dir(split)
        check_sequence_name(name, str(folder))
        ann = folder / "annotations" / f"{name}.txt"
        im_dir = folder / "sequences" / name
        images, digits, ext = list_frame_images(im_dir, None)
        if not ann.is_file() and not images and not im_dir.is_dir():
            raise BuilderError(f"{folder}: sequence {name!r} has neither {ann} nor an image folder {im_dir}")
        rows = self._read_annotations(ann) if ann.is_file() else BoxRows.empty(ann)
        rows = self.keep_frames_in_range(rows, max(max(images, default=0), int(rows.frames.max(initial=0))))
        width, height = self._frame_size(ann, im_dir, images)
        rows = self.sanitise(rows, width, height)
        last = int(rows.frames.max(initial=0))
        indices = sorted(set(images) | set(np.unique(rows.frames).tolist())) if images else list(range(1, last + 1))
        ext = ext or ".jpg"
        paths = [im_dir / images.get(i, f"{i:0{digits or _DIGITS}d}{ext}") for i in indices]
        return SequenceRecord(source=self.name, split=split, name=name, frame_rate=VISDRONE_FRAME_RATE,
                              width=width, height=height, frames=self.frame_records(rows, indices, paths),
                              image_ext=ext, has_gt=ann.is_file())

    def _read_annotations(self, path: Path) -> BoxRows:
        rows = read_numeric_rows(path, COLUMNS)
        check_integral(rows, {"frame": 0, "id": 1, "category": 7, "occlusion": 9})
        table, lines = rows.values, rows.lines
        occlusion = table[:, 9].astype(np.int64)
        bad = (occlusion < 0) | (occlusion > 2)
        if bad.any():
            row = int(np.argmax(bad))
            raise BuilderError(f"{path}:{int(lines[row])}: occlusion must be 0, 1 or 2, got {occlusion[row]}")
        xywh = table[:, 2:6]
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        attributes = {"score": table[:, 6], "truncation": table[:, 8], "occlusion": table[:, 9]}
        targets = self.resolve_int_categories(table[:, 7].astype(np.int64), attributes,
                                              lambda row: f"{path}:{int(lines[row])}")
        return BoxRows(table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), boxes, targets,
                       _VISIBILITY[occlusion], path, lines)

    def _frame_size(self, ann: Path, im_dir: Path, images: dict[int, str]) -> tuple[int, int]:
        if images:
            return image_size(im_dir / images[min(images)])
        self.warnings.add("image_size_unknown", str(ann))
        return 0, 0
