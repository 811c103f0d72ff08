"""Write a planned build to disk, atomically, in the layout of docs/CONTRACTS.md.

``write_build`` writes everything into ``BUILD_ROOT/.tmp-<name>-XXXX`` and ``os.replace``-s it into
``BUILD_ROOT/<name>``. An earlier build of the same name is first renamed to ``.old-<name>-XXXX`` and
deleted only once the new one is in place; on any exception (Ctrl-C included) the tmp directory is
removed and the earlier build is left untouched. All of it happens under the build name's lock
(:mod:`builder.locks`); a build killed outright (SIGKILL, power loss) leaves ``.tmp-``/``.old-`` entries
that the next build of that name recovers from (a complete ``.old-`` copy put back) and removes.

Per output sequence (a train clip, or a complete locked val/test sequence)::

    <split>/<dir>/img1/NNNNNNNN<ext>   symlink -> absolute path of the raw frame, renumbered 1..L
    <split>/<dir>/gt/gt.txt            frame,id,x,y,w,h,conf,class,visibility
    <split>/<dir>/seqinfo.ini

gt.txt boxes are the raw annotation's boxes exactly (never clipped, never rounded: evaluation ground truth is
the benchmark's own), as xywh pixels (top-left corner + size) written with the shortest decimal that reads back
as the same float64 (``repr``). ``w`` is ``x2 - x1`` nudged by at most a few ulps so that ``x + w`` gives ``x2``
back bit for bit, the conversion every reader (TrackEval, ``builder.formats.motchallenge.xywh_to_xyxy``)
makes; a MOTChallenge source's ``x, w`` come back unchanged. ``builder.manifest.sequence_digest`` of the
re-read rows therefore equals the digest of the raw record. Positives: conf 1, class = unified id. Ignore
regions: conf 0, class 0. Visibility with 3 decimals (not part of the ground truth any benchmark scores).

COCO-VID (``annotations/<split>.json``): ``instance_id`` numbers the (video, track id) pairs of a
split 1, 2, ... in order of first appearance, so it is unique across the split's videos; an ignore
region is written once per category with ``iscrowd = 1`` and ``instance_id = -1``.

build_manifest.json (sorted keys, no timestamps: byte-identical for the same inputs) holds the keys of
docs/CONTRACTS.md; ``write_contents`` adds ``gt_format`` (:data:`builder.records.GT_FORMAT`: what the gt.txt boxes
are; evaluation refuses builds without it), ``classes``, ``splits`` ({split: {dir: {source, raw_split,
raw_sequence, stride, frames: [raw frame numbers], digest}}}), ``counts`` ({split: {source:
{sequences, frames, boxes (positives), ignore, identities (distinct (directory, track id) pairs among
positives), per_class}}}) and ``digests`` ({split: ``combine_digests`` of its (dir, digest) pairs}).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.progress import track

from builder.errors import BuilderError
from builder.formats.build_layout import BUILD_SPLITS, MANIFEST_NAME
from builder.formats.files import write_json
from builder.formats.motchallenge import seqinfo_text, write_seqmap, xyxy_to_xywh
from builder.locks import build_lock
from builder.manifest import combine_digests, sequence_digest
from builder.records import GT_FORMAT, IGNORE, FrameRecord, SequenceRecord


@dataclass(frozen=True)
class OutputSequence:
    """One directory of a build.

    Attributes:
        split: build split (``train``, ``val`` or ``test``).
        dirname: ``<source>__<seq>__<first raw frame, 7 digits>`` for a train clip,
            ``<source>__<seq>`` for a locked sequence.
        source: source name.
        record: the raw sequence (frame rate, size, extension, name, official split).
        frames: the frames written, in clip order; frame ``k`` of the output is ``frames[k - 1]``.
        stride: raw frames between consecutive output frames.
        digest: ``builder.manifest.sequence_digest`` of ``frames`` if already known (else computed).
    """

    split: str
    dirname: str
    source: str
    record: SequenceRecord
    frames: tuple[FrameRecord, ...]
    stride: int = 1
    digest: str | None = None


@dataclass
class BuildPlan:
    """Everything ``write_build`` needs.

    Attributes:
        name: build directory name under BUILD_ROOT.
        classes: unified class names (id = position + 1).
        sequences: the output sequences, any order (written sorted by split and dirname).
        manifest: the recipe-level part of build_manifest.json (recipe, seed, sources, locked,
            warnings, ...); ``write_build`` adds ``classes``, ``splits``, ``counts`` and ``digests``.
    """

    name: str
    classes: tuple[str, ...]
    sequences: list[OutputSequence]
    manifest: dict[str, Any]


@dataclass(frozen=True)
class GtTable:
    """The gt.txt rows of one output sequence as columns (N rows).

    Attributes:
        frame: (N,) int output frame number, 1-based.
        track_id: (N,) int.
        boxes: (N, 4) float64 xyxy pixels, the records' boxes unchanged.
        conf: (N,) int 1 = positive, 0 = ignore region.
        cls: (N,) int unified class id, 0 for an ignore region.
        visibility: (N,) float in [0, 1].
    """

    frame: np.ndarray
    track_id: np.ndarray
    boxes: np.ndarray
    conf: np.ndarray
    cls: np.ndarray
    visibility: np.ndarray

    def xywh(self) -> np.ndarray:
        """(N, 4) float64 x, y, w, h in pixels with ``x + w == x2`` and ``y + h == y2`` exactly
        (:func:`builder.formats.motchallenge.xyxy_to_xywh`)."""
        return xyxy_to_xywh(self.boxes)


def gt_table(frames: Sequence[FrameRecord]) -> GtTable:
    """Rows of ``frames`` (output frame k = position + 1), in frame order then the adapter's box order."""
    counts = [len(f.track_ids) for f in frames]
    labels = np.concatenate([np.asarray(f.labels, np.int64) for f in frames]) if frames else np.zeros(0, np.int64)
    conf = (labels != IGNORE).astype(np.int64)
    return GtTable(
        frame=np.repeat(np.arange(1, len(frames) + 1), counts),
        track_id=np.concatenate([np.asarray(f.track_ids, np.int64) for f in frames]) if frames else labels,
        boxes=np.concatenate([np.asarray(f.boxes, np.float64).reshape(-1, 4) for f in frames])
        if frames else np.zeros((0, 4)),
        conf=conf, cls=labels * conf,
        visibility=np.concatenate([np.asarray(f.visibility, np.float64) for f in frames]) if frames else
        np.zeros(0),
    )


def gt_text(t: GtTable) -> str:
    """gt.txt text: ``frame,id,x,y,w,h,conf,class,visibility``; boxes as the shortest decimals that read back as the
    same float64 (``repr``: ``912.0``, ``1071.5469207113``), visibility with 3 decimals."""
    cols = (t.frame.tolist(), t.track_id.tolist(), *t.xywh().T.tolist(), t.conf.tolist(), t.cls.tolist(),
            t.visibility.tolist())
    return "".join(f"{k},{i},{x!r},{y!r},{w!r},{h!r},{c},{cl},{v:.3f}\n" for k, i, x, y, w, h, c, cl, v
                   in zip(*cols, strict=True))


def sequence_seqinfo(seq: OutputSequence) -> str:
    """seqinfo.ini of an output sequence (MOTChallenge keys plus source, rawSequence, rawFrames)."""
    rec = seq.record
    first, last = seq.frames[0].index, seq.frames[-1].index
    return seqinfo_text(seq.dirname, frame_rate=rec.frame_rate / seq.stride, length=len(seq.frames),
                        width=rec.width, height=rec.height, im_ext=rec.image_ext,
                        extra={"source": seq.source, "rawSequence": rec.name,
                               "rawFrames": f"{first}:{last}:{seq.stride}"})


def write_sequence(seq: OutputSequence, root: Path) -> GtTable:
    """Write one sequence directory under ``root`` (the tmp build dir); return its gt rows."""
    d = root / seq.split / seq.dirname
    (d / "img1").mkdir(parents=True)
    (d / "gt").mkdir()
    img1, ext = str(d / "img1"), seq.record.image_ext
    for k, fr in enumerate(seq.frames, start=1):
        os.symlink(os.path.abspath(fr.image), f"{img1}/{k:08d}{ext}")
    table = gt_table(seq.frames)
    (d / "gt" / "gt.txt").write_text(gt_text(table))
    (d / "seqinfo.ini").write_text(sequence_seqinfo(seq))
    return table


class _CocoSplit:
    """Accumulates one split's COCO-VID dict (ids in write order, starting at 1)."""

    def __init__(self, classes: Sequence[str]):
        self.categories = [{"id": i + 1, "name": n} for i, n in enumerate(classes)]
        self.videos: list[dict] = []
        self.images: list[dict] = []
        self.annotations: list[dict] = []
        self._instances: dict[tuple[int, int], int] = {}

    def add(self, split: str, seq: OutputSequence, table: GtTable) -> None:
        vid = len(self.videos) + 1
        self.videos.append({"id": vid, "name": seq.dirname})
        first_image = len(self.images) + 1
        for k in range(1, len(seq.frames) + 1):
            self.images.append({"id": first_image + k - 1, "video_id": vid, "frame_id": k,
                                "file_name": f"{split}/{seq.dirname}/img1/{k:08d}{seq.record.image_ext}",
                                "width": seq.record.width, "height": seq.record.height})
        cols = (table.frame.tolist(), table.track_id.tolist(), table.xywh().tolist(), table.conf.tolist(),
                table.cls.tolist())
        for k, tid, (x, y, w, h), conf, cls in zip(*cols, strict=True):
            base = {"image_id": first_image + k - 1, "video_id": vid, "bbox": [x, y, w, h],
                    "area": w * h}
            if conf == 0:
                for c in self.categories:
                    self._append(base | {"instance_id": -1, "category_id": c["id"], "iscrowd": 1})
            else:
                inst = self._instances.setdefault((vid, tid), len(self._instances) + 1)
                self._append(base | {"instance_id": inst, "category_id": cls, "iscrowd": 0})

    def _append(self, ann: dict) -> None:
        ann["id"] = len(self.annotations) + 1
        self.annotations.append(ann)

    def to_dict(self) -> dict:
        return {"categories": self.categories, "videos": self.videos, "images": self.images,
                "annotations": self.annotations}


def _count(seqs: Iterable[OutputSequence], classes: Sequence[str]) -> dict:
    out: dict[str, dict] = {}
    for seq in seqs:
        c = out.setdefault(seq.source, {"sequences": 0, "frames": 0, "boxes": 0, "ignore": 0, "identities": 0,
                                        "per_class": {n: 0 for n in classes}})
        c["sequences"] += 1
        c["frames"] += len(seq.frames)
        labels = np.concatenate([f.labels for f in seq.frames]) if seq.frames else np.zeros(0, np.int16)
        ids = np.concatenate([f.track_ids for f in seq.frames]) if seq.frames else np.zeros(0, np.int64)
        pos = labels != IGNORE
        c["boxes"] += int(pos.sum())
        c["ignore"] += int((~pos).sum())
        c["identities"] += len(np.unique(ids[pos]))
        for i, n in enumerate(classes, start=1):
            c["per_class"][n] += int((labels == i).sum())
    return {s: out[s] for s in sorted(out)}


def write_contents(plan: BuildPlan, root: Path, *, progress: bool = False) -> dict:
    """Write every sequence, COCO JSON, seqmaps and build_manifest.json under ``root``; return the manifest."""
    seqs = sorted(plan.sequences, key=lambda s: (BUILD_SPLITS.index(s.split), s.dirname))
    coco = {s: _CocoSplit(plan.classes) for s in BUILD_SPLITS}
    splits: dict[str, dict] = {s: {} for s in BUILD_SPLITS}
    seq_digests: dict[str, list] = {s: [] for s in BUILD_SPLITS}
    for s in BUILD_SPLITS:
        (root / s).mkdir(parents=True)
    for seq in track(seqs, description=f"writing {plan.name}", disable=not progress, transient=True):
        table = write_sequence(seq, root)
        coco[seq.split].add(seq.split, seq, table)
        digest = seq.digest or sequence_digest(seq.frames, plan.classes)
        seq_digests[seq.split].append((seq.dirname, digest))
        splits[seq.split][seq.dirname] = {"source": seq.source, "raw_split": seq.record.split,
                                          "raw_sequence": seq.record.name, "stride": seq.stride,
                                          "frames": [f.index for f in seq.frames], "digest": digest}
    (root / "annotations").mkdir()
    (root / "seqmaps").mkdir()
    for s in BUILD_SPLITS:
        write_json(root / "annotations" / f"{s}.json", coco[s].to_dict(), sort_keys=True, indent=None)
        write_seqmap(root / "seqmaps" / f"{s}.txt", sorted(splits[s]))
    manifest = dict(plan.manifest) | {
        "gt_format": GT_FORMAT,
        "classes": list(plan.classes),
        "splits": splits,
        "counts": {s: _count((q for q in seqs if q.split == s), plan.classes) for s in BUILD_SPLITS},
        "digests": {s: combine_digests(seq_digests[s]) for s in BUILD_SPLITS},
    }
    write_json(root / MANIFEST_NAME, manifest, sort_keys=True, indent=1)
    return manifest


def _swap_into_place(tmp: Path, final: Path) -> None:
    old = tmp.with_name(tmp.name.replace(".tmp-", ".old-", 1))
    had_old = final.exists() or final.is_symlink()
    if had_old:
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        if had_old:
            os.replace(old, final)
        raise
    if had_old:  # the new build is in place: the old one goes (a symlink is unlinked, never followed)
        _remove(old)


def _remove(path: Path) -> None:
    """Delete a leftover: a symlink or file is unlinked (never followed); a directory loses its manifest first,
    so that a delete cut short leaves a directory no recovery takes for a complete build."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    (path / MANIFEST_NAME).unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)


def leftovers(build_root: Path, name: str) -> list[Path]:
    """``.tmp-<name>-<suffix>`` and ``.old-<name>-<suffix>`` entries of ``build_root`` (a suffix has no ``-``, so
    leftovers of a build named ``<name>-x`` are not ``<name>``'s), newest first."""
    pattern = re.compile(rf"\.(tmp|old)-{re.escape(name)}-[^-/]+")
    found = [p for p in build_root.iterdir() if pattern.fullmatch(p.name)] if build_root.is_dir() else []
    return sorted(found, key=lambda p: p.lstat().st_mtime, reverse=True)


def recover_interrupted_swap(build_root: Path, name: str) -> Path | None:
    """Put back a build that a killed swap left aside: ``.old-<name>-*`` present and ``<name>`` missing.

    :func:`_swap_into_place` moves the previous build to ``.old-<name>-*`` and then renames the new one into
    place; a SIGKILL between the two renames would leave no ``<name>``. Only a complete build is put back: a
    real directory (never a symlink) whose build_manifest.json verifies (:func:`builder.verify.verify_build`);
    of several, the newest. A half-deleted or damaged copy is left where it is. The caller holds the build's
    lock (:mod:`builder.locks`). Returns the restored path, or None when nothing was to do.
    """
    from builder.verify import verify_build

    final = build_root / name
    if final.exists() or final.is_symlink():
        return None
    for old in leftovers(build_root, name):
        if not old.name.startswith(".old-") or old.is_symlink() or not (old / MANIFEST_NAME).is_file():
            continue
        try:
            complete = verify_build(old).ok
        except BuilderError:
            complete = False
        if complete:
            os.replace(old, final)
            return final
    return None


def clean_leftovers(build_root: Path, name: str) -> list[Path]:
    """Delete what killed builds of ``name`` left: every ``.tmp-<name>-*``, and every ``.old-<name>-*`` once a
    build ``<name>`` is in place (while none is, an ``.old-*`` copy that did not verify is kept: it may be the
    only one left). Symlinks are unlinked, never followed. The caller holds the build's lock, which proves no
    other build of that name is running. Returns what was removed."""
    present = (build_root / name).exists()
    removed = [p for p in leftovers(build_root, name) if p.name.startswith(".tmp-") or present or p.is_symlink()]
    for path in removed:
        _remove(path)
    return removed


def write_build(plan: BuildPlan, build_root: str | Path, *, progress: bool = False,
                write: Callable[..., dict] = write_contents, locked: bool = False) -> Path:
    """Write ``plan`` to ``build_root/<plan.name>`` atomically (see the module docstring); return that path.

    Under the build's lock (:func:`builder.locks.build_lock`; ``locked=True``: the caller holds it): a build a
    killed swap left aside is put back (:func:`recover_interrupted_swap`), leftovers of killed builds are
    removed (:func:`clean_leftovers`), then the new build is written and swapped into place.

    Raises:
        BuildLockedError: another process is building ``plan.name``.
        BuilderError: the file system refused the write (a full disk...): names the build and the reason;
            whatever happens, no partial build is left behind and an earlier build of the same name is intact
            unless the new one replaced it completely.
    """
    build_root = Path(build_root)
    build_root.mkdir(parents=True, exist_ok=True)
    with contextlib.nullcontext() if locked else build_lock(build_root, plan.name):
        recover_interrupted_swap(build_root, plan.name)
        clean_leftovers(build_root, plan.name)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{plan.name}-", dir=build_root))
        try:
            tmp.chmod(0o755)
            write(plan, tmp, progress=progress)
            _swap_into_place(tmp, build_root / plan.name)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise BuilderError(f"{build_root / plan.name}: could not write the build ({_reason(exc)}); "
                               "nothing was replaced") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return build_root / plan.name


def _reason(exc: OSError) -> str:
    return f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else (exc.strerror or str(exc))
