"""Writers of the synthetic sources: tiny raw datasets in the exact official layouts (:func:`write_synth`).

:func:`write_synth` simulates (:mod:`builder.synth.motion`) and renders (OpenCV, :mod:`builder.synth.draw`)
moving people and vehicles and writes them as raw downloads of four sources, so that the real source adapters
read them unchanged::

    <out>/bdd100k/images/track/{train,val}/<video>/<video>-NNNNNNN.jpg        NNNNNNN = frameIndex + 1
    <out>/bdd100k/labels/box_track_20/{train,val}/<video>.json                 Scalabel frame list
    <out>/dancetrack/{train,val,test}/dancetrackNNNN/{img1/NNNNNNNN.jpg, gt/gt.txt, seqinfo.ini}  (no gt/ in test)
    <out>/visdrone/VisDrone2019-MOT-{train,val,test-dev}/{sequences/<seq>/NNNNNNN.jpg, annotations/<seq>.txt}
    <out>/mot17/{train,test}/MOT17-NN-SYN/{img1/NNNNNN.jpg, gt/gt.txt, seqinfo.ini}  (no gt/ in test)

What each source holds (raw categories as the official formats spell them):

- bdd100k: street scenes at 5 fps; pedestrian, rider (on a bicycle / motorcycle, both labelled), car, truck,
  bus; now and then a group of people labelled as one ``pedestrian`` box with ``crowd = true``. Attributes
  ``occluded`` (visible fraction < 0.75), ``truncated`` (cut by the frame edge), ``crowd``. Video names are
  BDD-like ``xxxxxxxx-xxxxxxxx`` (two 8-hex-digit groups) drawn from the seed.
- dancetrack: a dance stage at 20 fps; 4-8 dancers in costumes of one hue, crossing paths; gt rows
  ``frame,id,x,y,w,h,1,1,1`` as DanceTrack writes them. Sequence names are the official ones of each split
  (the first N of DanceTrack's own train / val / test lists), so the shipped DanceTrack manifest applies.
- visdrone: top-down view, small objects: pedestrian 1, people 2 (sitting), bicycle 3, car 4, van 5, truck 6,
  bus 9, motor 10; ignored regions (category 0, id 0, score 0: a patch of packed parked cars) and a few
  score-0 objects. Truncation 0/1 (cut by the frame edge) and occlusion 0/1/2 (none, <= 50 %, > 50 %).
- mot17: street scenes at 30 fps with MOT17's class / conf semantics: class 1 pedestrians (conf 1), class 7
  static persons, class 8 distractors (grey mannequins), class 3 cars, all three with conf 0; visibility is
  the visible fraction of the box. As in MOT17, boxes are NOT clipped: a person half out of the frame has a
  negative x (the adapter clips and counts it).

Box conventions: boxes are the drawn extents, integer pixel edges (xyxy with x2 exclusive, i.e. width =
x2 - x1). Text formats write ``x = x1, y = y1, w, h`` (0-based left / top edge); Scalabel ``box2d`` is written
as the same xyxy (note: Scalabel's own tools read x2 / y2 as inclusive, a 1-pixel difference that no
consumer here relies on). Every format but mot17 clips boxes to the frame; a clipped box narrower or lower
than 2 px is not written (nothing of it is visible).

Determinism: every sequence draws from ``numpy.random.default_rng([seed, source code, split index, sequence
index])``, so label files and JPEG images (fixed quality, OpenCV's encoder) are byte-identical for the same
seed and scale, and a source's data does not depend on which other sources are written.

Run: ``python -m builder synth data/synth --scale demo`` (builder/cli.py).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import cv2
import numpy as np

from builder.errors import BuilderError, NotRegisteredError
from builder.synth.draw import render_frames
from builder.synth.motion import simulate
from builder.synth.scales import SOURCES, SynthScale, get_scale, sequence_names
from builder.synth.scene import Instance, clip_box, scene_spec

#: Frames per second written to seqinfo.ini (BDD100K MOT is sampled at 5 fps; DanceTrack is 20 fps; MOT17 and
#: VisDrone about 30 fps). bdd100k and visdrone have no seqinfo: their adapters assume the same rates.
FRAME_RATES = MappingProxyType({"bdd100k": 5, "dancetrack": 20, "visdrone": 30, "mot17": 30})
_MIN_SIDE = 2  # px: a clipped box thinner than this shows nothing and is not written


@dataclass(frozen=True)
class _Sequence:
    """One simulated sequence ready to write: its frames' instances and a lazy image iterator."""

    split: str
    name: str
    size: tuple[int, int]
    frames: list[list[Instance]]
    images: Iterator[np.ndarray]


def _sequences(source: str, scale: SynthScale, seed: int, names: dict[str, list[str]]) -> Iterator[_Sequence]:
    """Simulate every planned sequence of ``source`` (images rendered lazily, frame by frame)."""
    spec = scene_spec(source, scale.objects)
    size = scale.aerial_size if spec.style == "aerial" else scale.ground_size
    code = zlib.crc32(source.encode())
    for split_index, plan in enumerate(scale.plan(source)):
        for seq_index, name in enumerate(names[plan.split]):
            rng = np.random.default_rng([seed, code, split_index, seq_index])
            sim = simulate(spec, size, plan.frames, rng)
            yield _Sequence(plan.split, name, size, sim.frames, render_frames(spec.style, sim, size, rng))


# --- writers -----------------------------------------------------------------------------------------------
def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise BuilderError(f"{path}: OpenCV could not encode the image as JPEG")
    path.write_bytes(buf.tobytes())


def _visible_box(inst: Instance, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The box clipped to the frame, or None when less than ``_MIN_SIDE`` px of it is in view."""
    x1, y1, x2, y2 = (int(v) for v in clip_box(inst.box, *size))
    if x2 - x1 < _MIN_SIDE or y2 - y1 < _MIN_SIDE:
        return None
    return x1, y1, x2, y2


def _truncated(inst: Instance, box: tuple[int, int, int, int]) -> bool:
    return tuple(box) != tuple(inst.box)


def _seqinfo(path: Path, name: str, seq: _Sequence, frame_rate: int) -> None:
    """seqinfo.ini in the MOTChallenge format (DanceTrack and MOT17 write the same keys)."""
    w, h = seq.size
    path.write_text(f"[Sequence]\nname={name}\nimDir=img1\nframeRate={frame_rate}\nseqLength={len(seq.frames)}\n"
                    f"imWidth={w}\nimHeight={h}\nimExt=.jpg\n")


def _bdd_label(inst: Instance, box: tuple[int, int, int, int], id_base: int) -> dict:
    x1, y1, x2, y2 = box
    return {"id": f"{id_base + inst.tid:08d}", "category": inst.category,
            "attributes": {"occluded": inst.visibility < 0.75, "truncated": _truncated(inst, box),
                           "crowd": "crowd" in inst.flags},
            "box2d": {"x1": float(x1), "y1": float(y1), "x2": float(x2), "y2": float(y2)}}


def _write_bdd100k(root: Path, seqs: Iterator[_Sequence], quality: int, advance: Callable[[int], None]) -> None:
    for index, seq in enumerate(seqs):
        image_dir = root / "images" / "track" / seq.split / seq.name
        label_dir = root / "labels" / "box_track_20" / seq.split
        image_dir.mkdir(parents=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        frames = []
        for k, (insts, image) in enumerate(zip(seq.frames, seq.images, strict=True)):
            name = f"{seq.name}-{k + 1:07d}.jpg"
            _write_jpeg(image_dir / name, image, quality)
            labels = [_bdd_label(i, b, (index + 1) * 10_000) for i in insts
                      if (b := _visible_box(i, seq.size)) is not None and i.visibility > 0.05]
            frames.append({"name": name, "videoName": seq.name, "frameIndex": k, "labels": labels})
            advance(1)
        (label_dir / f"{seq.name}.json").write_text(json.dumps(frames))


def _mot_row(frame: int, inst: Instance, box: Sequence[int], tail: str) -> tuple[int, int, str]:
    x1, y1, x2, y2 = box
    return inst.tid, frame, f"{frame},{inst.tid},{x1},{y1},{x2 - x1},{y2 - y1},{tail}"


def _write_motchallenge(root: Path, seqs: Iterator[_Sequence], quality: int, advance: Callable[[int], None],
                        *, source: str) -> None:
    """DanceTrack and MOT17: {split}/<seq>/{img1/, gt/gt.txt, seqinfo.ini}; test splits without gt/."""
    digits = 8 if source == "dancetrack" else 6
    for seq in seqs:
        seq_dir = root / seq.split / seq.name
        (seq_dir / "img1").mkdir(parents=True)
        rows = []
        for k, (insts, image) in enumerate(zip(seq.frames, seq.images, strict=True), start=1):
            _write_jpeg(seq_dir / "img1" / f"{k:0{digits}d}.jpg", image, quality)
            rows += [_mot_gt_row(source, k, i, seq.size) for i in insts]
            advance(1)
        _seqinfo(seq_dir / "seqinfo.ini", seq.name, seq, FRAME_RATES[source])
        if seq.split != "test":
            rows = sorted(r for r in rows if r is not None)
            if source == "dancetrack":  # DanceTrack orders by frame, MOT17 by track id
                rows.sort(key=lambda r: (r[1], r[0]))
            (seq_dir / "gt").mkdir()
            (seq_dir / "gt" / "gt.txt").write_text("".join(r[2] + "\n" for r in rows))


def _mot_gt_row(source: str, frame: int, inst: Instance, size: tuple[int, int]) -> tuple[int, int, str] | None:
    if _visible_box(inst, size) is None:
        return None
    if source == "dancetrack":
        return _mot_row(frame, inst, _visible_box(inst, size), "1,1,1")
    conf = 1 if inst.category == "1" else 0
    return _mot_row(frame, inst, inst.box, f"{conf},{inst.category},{round(inst.visibility, 5)}")


def _visdrone_row(frame: int, inst: Instance, size: tuple[int, int]) -> tuple[int, int, str] | None:
    box = _visible_box(inst, size)
    if box is None:
        return None
    if inst.kind == "region":
        return 0, frame, f"{frame},0,{box[0]},{box[1]},{box[2] - box[0]},{box[3] - box[1]},0,0,0,0"
    score = 0 if "score0" in inst.flags else 1
    x1, y1, x2, y2 = inst.box
    in_frame = (box[2] - box[0]) * (box[3] - box[1]) / ((x2 - x1) * (y2 - y1))
    occluded = 1.0 - inst.visibility / in_frame  # share of the in-frame part hidden by nearer objects
    occlusion = 0 if occluded < 0.01 else (1 if occluded <= 0.5 else 2)
    truncation = 1 if _truncated(inst, box) else 0
    return _mot_row(frame, inst, box, f"{score},{inst.category},{truncation},{occlusion}")


def _write_visdrone(root: Path, seqs: Iterator[_Sequence], quality: int, advance: Callable[[int], None]) -> None:
    for seq in seqs:
        split_dir = root / f"VisDrone2019-MOT-{seq.split}"
        image_dir = split_dir / "sequences" / seq.name
        image_dir.mkdir(parents=True)
        (split_dir / "annotations").mkdir(exist_ok=True)
        rows = []
        for k, (insts, image) in enumerate(zip(seq.frames, seq.images, strict=True), start=1):
            _write_jpeg(image_dir / f"{k:07d}.jpg", image, quality)
            rows += [r for i in insts if (r := _visdrone_row(k, i, seq.size)) is not None]
            advance(1)
        rows.sort(key=lambda r: (r[1], r[0]))
        (split_dir / "annotations" / f"{seq.name}.txt").write_text("".join(r[2] + "\n" for r in rows))


def _write_source(source: str, root: Path, scale: SynthScale, seed: int, advance: Callable[[int], None]) -> None:
    """Write one source's raw layout under ``root`` (which must not exist yet)."""
    root.mkdir(parents=True)
    seqs = _sequences(source, scale, seed, sequence_names(source, scale, seed))
    if source == "bdd100k":
        _write_bdd100k(root, seqs, scale.jpeg_quality, advance)
    elif source == "visdrone":
        _write_visdrone(root, seqs, scale.jpeg_quality, advance)
    else:
        _write_motchallenge(root, seqs, scale.jpeg_quality, advance, source=source)


# --- entry points ------------------------------------------------------------------------------------------
@contextmanager
def _progress_bar(total: int, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over ``total`` frames when ``enabled``; otherwise a no-op ``advance``."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("synth: rendering frames", total=total)
        yield lambda n: bar.advance(task, n)


def _check_targets(out: Path, sources: Sequence[str], overwrite: bool) -> None:
    for source in sources:
        target = out / source
        if target.exists() and not target.is_dir():
            raise BuilderError(f"{target}: exists and is not a directory; remove it or pick another output folder")
        if target.is_dir() and any(target.iterdir()) and not overwrite:
            raise BuilderError(f"{target}: already holds data; refusing to overwrite it "
                               "(pass overwrite=True / --overwrite, or pick another output folder)")


def _move_into_place(new: Path, target: Path, trash: Path) -> None:
    """Replace ``target`` by ``new`` with renames, so that a reader never sees a half-written source."""
    if target.is_dir():
        target.rename(trash)
    new.rename(target)
    if trash.exists():
        shutil.rmtree(trash)


def write_synth(out: str | Path, *, scale: str | SynthScale = "tiny", seed: int = 0, sources: Sequence[str] = SOURCES,
                overwrite: bool = False, progress: bool = False) -> dict[str, Path]:
    """Write synthetic raw datasets under ``out/<source>/`` in the official layouts (see the module docstring).

    Each source is written to ``out/.tmp-<random>/<source>`` and renamed into place only when complete, so an
    interrupted run leaves no partial source behind (a leftover ``.tmp-*`` folder at worst).

    Args:
        out: output folder (created if missing), e.g. ``data/raw``.
        scale: a name from :data:`SCALES` (``"tiny"`` for tests, ``"demo"`` for ``make demo``) or a
            :class:`SynthScale` of one's own (e.g. many held-out DanceTrack-like sequences for a benchmark).
        seed: integer seed; the same seed and scale give byte-identical files.
        sources: which of :data:`SOURCES` to write.
        overwrite: replace an existing non-empty ``out/<source>`` folder instead of refusing.
        progress: show a progress bar (rich) over the rendered frames.

    Returns:
        ``{source: out/source}`` for every written source.

    Raises:
        NotRegisteredError: unknown scale or source (the message lists the valid names).
        BuilderError: ``out/<source>`` already holds data and ``overwrite`` is false.
    """
    params = scale if isinstance(scale, SynthScale) else get_scale(scale)
    sources = list(dict.fromkeys(sources))
    for source in sources:
        if source not in SOURCES:
            raise NotRegisteredError.of("synth source", source, SOURCES)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_targets(out, sources, overwrite)
    total = sum(p.sequences * p.frames for s in sources for p in params.plan(s))
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out))
    try:
        with _progress_bar(total, progress) as advance:
            for source in sources:
                _write_source(source, tmp / source, params, seed, advance)
        for source in sources:
            _move_into_place(tmp / source, out / source, tmp / f"old-{source}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {source: out / source for source in sources}
