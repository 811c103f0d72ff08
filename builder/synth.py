"""Synthetic sources: tiny raw datasets in the exact official layouts, the project's embedded default data.

:func:`write_synth` renders (OpenCV, :mod:`builder.synth_render`) moving people and vehicles and writes them
as raw downloads of four sources, so that the real source adapters read them unchanged::

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
from builder.synth_render import ActorType, Instance, SceneSpec, clip_box, render_frames, simulate

#: Sources :func:`write_synth` can write, in its default order.
SOURCES = ("bdd100k", "dancetrack", "visdrone", "mot17")

#: DanceTrack's official sequence numbers per split (DanceTrack/DanceTrack ``{train,val,test}_seqmap.txt``).
DANCETRACK_SPLITS = MappingProxyType({
    "train": (1, 2, 6, 8, 12, 15, 16, 20, 23, 24, 27, 29, 32, 33, 37, 39, 44, 45, 49, 51, 52, 53, 55, 57, 61,
              62, 66, 68, 69, 72, 74, 75, 80, 82, 83, 86, 87, 96, 98, 99),
    "val": (4, 5, 7, 10, 14, 18, 19, 25, 26, 30, 34, 35, 41, 43, 47, 58, 63, 65, 73, 77, 79, 81, 90, 94, 97),
    "test": (3, 9, 11, 13, 17, 21, 22, 28, 31, 36, 38, 40, 42, 46, 48, 50, 54, 56, 59, 60, 64, 67, 70, 71, 76,
             78, 84, 85, 88, 89, 91, 92, 93, 95, 100),
})
#: MOT17's own sequence numbers per split; further synthetic sequences are numbered from 15 (train), 50 (test).
MOT17_NUMBERS = MappingProxyType({"train": (2, 4, 5, 9, 10, 11, 13), "test": (1, 3, 6, 7, 8, 12, 14)})

#: Frames per second written to seqinfo.ini (BDD100K MOT is sampled at 5 fps; DanceTrack is 20 fps; MOT17 and
#: VisDrone about 30 fps). bdd100k and visdrone have no seqinfo: their adapters assume the same rates.
FRAME_RATES = MappingProxyType({"bdd100k": 5, "dancetrack": 20, "visdrone": 30, "mot17": 30})
_MIN_SIDE = 2  # px: a clipped box thinner than this shows nothing and is not written


@dataclass(frozen=True)
class SplitPlan:
    """How many sequences of how many frames one official split gets."""

    split: str
    sequences: int
    frames: int


@dataclass(frozen=True)
class SynthScale:
    """Size parameters of one synthetic scale (see :data:`SCALES`).

    Attributes:
        name: the scale's name.
        ground_size: ``(width, height)`` px of the ground-level sources (bdd100k, dancetrack, mot17).
        aerial_size: ``(width, height)`` px of visdrone.
        objects: ``(min, max)`` moving objects per frame (entries keep the count near the range).
        plans: per source, the official splits written and their sequence count and length.
        jpeg_quality: OpenCV JPEG quality (0-100), fixed so that images are byte-identical per seed.
    """

    name: str
    ground_size: tuple[int, int]
    aerial_size: tuple[int, int]
    objects: tuple[int, int]
    plans: tuple[tuple[str, tuple[SplitPlan, ...]], ...]
    jpeg_quality: int = 90

    def plan(self, source: str) -> tuple[SplitPlan, ...]:
        """The split plans of ``source``; ``NotRegisteredError`` listing the planned sources if it has none."""
        for name, plans in self.plans:
            if name == source:
                return plans
        raise NotRegisteredError.of(f"source (in scale {self.name!r})", source, (n for n, _ in self.plans))


def _plans(**per_source: Sequence[tuple[str, int, int]]) -> tuple[tuple[str, tuple[SplitPlan, ...]], ...]:
    return tuple((src, tuple(SplitPlan(*p) for p in plans)) for src, plans in per_source.items())


#: Scales by name. "tiny" is for tests (the whole of write_synth in a few seconds on one core; val holds 4
#: sequences so that a lock can draw 2 val + 2 test); "demo" is for ``make demo`` (a detector trained from
#: scratch on 2 CPU cores learns it in minutes). mot17 has no official val split: a lock draws from train.
SCALES = MappingProxyType({
    "tiny": SynthScale(
        name="tiny", ground_size=(128, 96), aerial_size=(160, 120), objects=(3, 6),
        plans=_plans(
            bdd100k=[("train", 4, 12), ("val", 4, 12)],
            dancetrack=[("train", 4, 12), ("val", 4, 12), ("test", 1, 12)],
            visdrone=[("train", 4, 12), ("val", 4, 12), ("test-dev", 1, 12)],
            mot17=[("train", 8, 12), ("test", 1, 12)],
        )),
    "demo": SynthScale(
        name="demo", ground_size=(320, 192), aerial_size=(320, 240), objects=(4, 10),
        plans=_plans(
            bdd100k=[("train", 16, 40), ("val", 6, 40)],
            dancetrack=[("train", 10, 40), ("val", 6, 40), ("test", 2, 40)],
            visdrone=[("train", 10, 40), ("val", 4, 40), ("test-dev", 2, 40)],
            mot17=[("train", 4, 30), ("test", 1, 30)],
        )),
})


def get_scale(name: str) -> SynthScale:
    """The :class:`SynthScale` called ``name``; ``NotRegisteredError`` listing the valid names otherwise."""
    try:
        return SCALES[name]
    except KeyError:
        raise NotRegisteredError.of("synth scale", name, SCALES) from None


# --- scenes ------------------------------------------------------------------------------------------------
def scene_spec(source: str, objects: tuple[int, int]) -> SceneSpec:
    """The scene description of ``source`` (what moves, how fast, how it looks) with ``objects`` per frame."""
    crowd = frozenset({"crowd"})
    if source == "bdd100k":
        types = (ActorType("pedestrian", "person", 4.0), ActorType("car", "car", 4.0),
                 ActorType("truck", "truck", 0.8), ActorType("bus", "bus", 0.6),
                 ActorType("bicycle", "bicycle", 0.5), ActorType("motorcycle", "motor", 0.5))
        extras = ((ActorType("pedestrian", "crowd", 1.0, static=True, flags=crowd), 0.5),
                  (ActorType("bus", "bus", 1.0), 0.4))
        return SceneSpec("street", types, objects, speed=0.03, rider_prob=0.8, extras=extras)
    if source == "dancetrack":
        dancers = (objects[0] + 1, objects[1] + 1)
        return SceneSpec("stage", (ActorType("1", "person", 1.0),), dancers, speed=0.012, enter_prob=0.15,
                         similar_looks=True, bounce=True)
    if source == "visdrone":
        score0 = frozenset({"score0"})
        types = (ActorType("1", "person", 3.0), ActorType("3", "bicycle", 0.5), ActorType("4", "car", 5.0),
                 ActorType("5", "van", 1.2), ActorType("6", "truck", 0.8), ActorType("9", "bus", 0.5),
                 ActorType("10", "motor", 0.8))
        extras = ((ActorType("0", "region", 1.0, static=True), 0.7),
                  (ActorType("2", "sitting", 1.0, static=True), 0.6),
                  (ActorType("2", "sitting", 1.0, static=True), 0.4),
                  (ActorType("4", "car", 1.0, flags=score0), 0.5))
        return SceneSpec("aerial", types, (objects[0] + 2, objects[1] + 4), speed=0.012, extras=extras)
    if source == "mot17":
        types = (ActorType("1", "person", 6.0), ActorType("3", "car", 1.0))
        extras = ((ActorType("7", "person", 1.0, static=True), 0.7),
                  (ActorType("8", "person", 1.0, static=True, flags=frozenset({"distractor"})), 0.6),
                  (ActorType("3", "car", 1.0, static=True), 0.5))
        return SceneSpec("street", types, objects, speed=0.012, extras=extras)
    raise NotRegisteredError.of("synth source", source, SOURCES)


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


def sequence_names(source: str, scale: SynthScale, seed: int) -> dict[str, list[str]]:
    """Sequence names per split of ``source`` at ``scale``, in writing order (a pure function of the seed)."""
    plans = scale.plan(source)
    rng = np.random.default_rng([seed, zlib.crc32(source.encode()), 999])
    if source == "dancetrack":
        for p in plans:
            if p.sequences > len(DANCETRACK_SPLITS[p.split]):
                raise BuilderError(f"synth scale {scale.name!r}: dancetrack/{p.split} asks for {p.sequences} "
                                   f"sequences; DanceTrack's {p.split} split has {len(DANCETRACK_SPLITS[p.split])}")
        return {p.split: [f"dancetrack{n:04d}" for n in DANCETRACK_SPLITS[p.split][:p.sequences]] for p in plans}
    if source == "mot17":  # MOT17's own numbers first, then 15.. (train) or 50.. (test)
        first_extra = {"train": 15, "test": 50}
        return {p.split: [f"MOT17-{n:02d}-SYN" for n in (*MOT17_NUMBERS[p.split],
                                                          *range(first_extra[p.split], 100))[:p.sequences]]
                for p in plans}
    total = sum(p.sequences for p in plans)
    if source == "bdd100k":
        pairs = rng.integers(0, 2**32, size=(total, 2), dtype=np.uint64)
        flat = [f"{int(a):08x}-{int(b):08x}" for a, b in pairs]
    else:
        numbers = rng.choice(np.arange(1, 400), size=total, replace=False)
        flat = [f"uav{int(n):07d}_{int(s):05d}_v" for n, s in zip(numbers, rng.integers(0, 3000, total), strict=True)]
    if len(set(flat)) != total:  # two identical 64-bit draws: practically impossible, but never silently
        raise BuilderError(f"synth: seed {seed} drew a repeated {source} sequence name; use another seed")
    out, start = {}, 0
    for p in plans:
        out[p.split], start = flat[start:start + p.sequences], start + p.sequences
    return out


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


def write_synth(out: str | Path, *, scale: str = "tiny", seed: int = 0, sources: Sequence[str] = SOURCES,
                overwrite: bool = False, progress: bool = False) -> dict[str, Path]:
    """Write synthetic raw datasets under ``out/<source>/`` in the official layouts (see the module docstring).

    Each source is written to ``out/.tmp-<random>/<source>`` and renamed into place only when complete, so an
    interrupted run leaves no partial source behind (a leftover ``.tmp-*`` folder at worst).

    Args:
        out: output folder (created if missing), e.g. ``data/raw``.
        scale: a name from :data:`SCALES` (``"tiny"`` for tests, ``"demo"`` for ``make demo``).
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
    params = get_scale(scale)
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
