"""Scales of the synthetic sources: the sources, their official splits, the sequences each split gets, their names.

A :class:`SynthScale` says, per source, which official splits are written and how many sequences of how many
frames each holds (:class:`SplitPlan`), plus the frame sizes, object counts and JPEG quality.
:func:`sequence_names` names the sequences: DanceTrack's official names of each split, MOT17's own numbers
(then further synthetic ones), BDD-like ``xxxxxxxx-xxxxxxxx`` video names and VisDrone-like
``uavNNNNNNN_NNNNN_v`` names drawn from the seed.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from builder.errors import BuilderError, NotRegisteredError

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
