"""Frame budgets: pick exactly ``frame_budget`` training frames per source, as clips. Pure functions, no I/O.

The rule, for one source:

1. The pool is every sequence of the pool splits (or of the replayed build) minus every locked
   sequence, by name, whatever split it was found in (``make_pool``).
2. Each sequence is cut into non-overlapping candidate clips: ``clip_length`` frames
   ``f, f + s, ..., f + (L-1)s`` (``s = frame_stride``), all of them available, scanned greedily from
   the first frame so that two clips never share a time span (``candidate_clips``).
3. Sequences are visited round-robin in a seeded shuffle of their sorted names; each visit takes that
   sequence's next clip from its own seeded shuffle, so every sequence contributes before any
   contributes twice and no few sequences are exhausted first (``fill_budget``).
4. The last clip is shortened (first frames kept) so that the total is exactly the budget.

Every random draw comes from ``numpy.random.Generator(PCG64)`` seeded with a sha256 of
(seed, source, sequence name): the choice depends on the seed, the recipe and the content only,
never on dict, set or file system order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from builder.errors import BuilderError


@dataclass(frozen=True)
class PoolSequence:
    """A sequence the training pool may draw from.

    Attributes:
        split: official split it comes from.
        name: raw sequence name.
        frames: available raw frame numbers (1-based), sorted ascending, unique.
    """

    split: str
    name: str
    frames: tuple[int, ...]


@dataclass(frozen=True)
class Clip:
    """A training clip: raw frame numbers ``frames`` (ascending) of sequence ``name`` of ``split``."""

    split: str
    name: str
    frames: tuple[int, ...]


@dataclass(frozen=True)
class BudgetResult:
    """The clips chosen for one source.

    Attributes:
        clips: chosen clips, sorted by (sequence name, first frame).
        requested: the recipe's frame budget.
        filled: frames in ``clips`` (== requested unless ``partial``).
        available_frames: frames in all candidate clips of the pool.
        available_sequences: pool sequences with at least one candidate clip.
        pool_sequences: sequences in the pool (after removing locked ones).
        partial: True when the pool was smaller than the budget and ``allow_partial`` took all of it.
    """

    clips: tuple[Clip, ...]
    requested: int
    filled: int
    available_frames: int
    available_sequences: int
    pool_sequences: int
    partial: bool


def seeded_rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator seeded by sha256 of ``seed`` and ``keys`` (stable across runs, platforms, Python versions)."""
    h = hashlib.sha256("\x1f".join([str(int(seed)), *keys]).encode()).digest()
    return np.random.default_rng(int.from_bytes(h[:16], "little"))


def make_pool(sequences: Iterable[PoolSequence], locked: Collection[str]) -> list[PoolSequence]:
    """Drop every sequence whose name is locked; return the rest sorted by name.

    Raises:
        BuilderError: the same sequence name appears twice (e.g. in two pool splits), since build
            directory names are made from sequence names.
    """
    locked = set(locked)
    seen: dict[str, str] = {}
    pool = []
    for seq in sequences:
        if seq.name in seen:
            raise BuilderError(f"sequence {seq.name!r} appears in splits {seen[seq.name]!r} and {seq.split!r}; "
                               "pool splits must not share sequence names")
        seen[seq.name] = seq.split
        if seq.name not in locked:
            pool.append(seq)
    return sorted(pool, key=lambda s: s.name)


def candidate_clips(frames: Sequence[int], clip_length: int, stride: int) -> list[tuple[int, ...]]:
    """Non-overlapping clips ``(f, f+stride, ..., f+(clip_length-1)*stride)`` whose frames are all in ``frames``.

    Scans start frames in increasing order and takes a clip whenever it fits; the next clip starts
    after the previous clip's last frame, so clips never share a time span.
    """
    if clip_length < 1 or stride < 1:
        raise BuilderError(f"clip_length and frame_stride must be >= 1, got {clip_length}, {stride}")
    available = set(frames)
    clips: list[tuple[int, ...]] = []
    last = None
    for f in sorted(available):
        if last is not None and f <= last:
            continue
        clip = tuple(f + k * stride for k in range(clip_length))
        if all(c in available for c in clip):
            clips.append(clip)
            last = clip[-1]
    return clips


def _describe_pool(source: str, pool: list[PoolSequence], cands: dict[str, list], clip_length: int,
                   stride: int, budget: int) -> str:
    frames = sum(len(c) for c in cands.values()) * clip_length
    usable = sum(1 for c in cands.values() if c)
    return (f"source {source}: frame_budget {budget} exceeds the training pool: {frames} frames available "
            f"in clips of {clip_length} at stride {stride} from {usable} of {len(pool)} sequences "
            f"({sum(len(s.frames) for s in pool)} raw frames, locked sequences excluded); "
            "lower frame_budget, shorten clip_length/frame_stride, or set allow_partial = true")


def fill_budget(pool: Sequence[PoolSequence], *, budget: int, clip_length: int, stride: int, seed: int,
                source: str, allow_partial: bool = False) -> BudgetResult:
    """Choose clips totalling exactly ``budget`` frames from ``pool`` (see the module docstring for the rule).

    Args:
        pool: sequences already stripped of locked ones (``make_pool``).
        budget: frames to fill (>= 0).
        clip_length, stride: clip shape, in frames.
        seed: the recipe seed.
        source: source name (part of every seed, so two sources with the same names draw differently).
        allow_partial: take the whole pool instead of failing when it is smaller than the budget.

    Raises:
        BuilderError: the pool holds fewer than ``budget`` frames and ``allow_partial`` is false; the
            message states the frames and sequences available.
    """
    pool = sorted(pool, key=lambda s: s.name)
    cands: dict[str, list[tuple[int, ...]]] = {}
    for seq in pool:
        clips = candidate_clips(seq.frames, clip_length, stride)
        order = seeded_rng(seed, source, "clips", seq.name).permutation(len(clips))
        cands[seq.name] = [clips[i] for i in order]
    available = sum(len(c) for c in cands.values()) * clip_length
    if budget > available and not allow_partial:
        raise BuilderError(_describe_pool(source, pool, cands, clip_length, stride, budget))
    visit = [pool[i] for i in seeded_rng(seed, source, "sequences").permutation(len(pool))]
    chosen: list[Clip] = []
    remaining = budget
    depth = 0
    while remaining > 0:
        took = False
        for seq in visit:
            if remaining <= 0:
                break
            if depth < len(cands[seq.name]):
                frames = cands[seq.name][depth][:remaining]
                chosen.append(Clip(seq.split, seq.name, frames))
                remaining -= len(frames)
                took = True
        if not took:
            break  # pool exhausted (allow_partial)
        depth += 1
    chosen.sort(key=lambda c: (c.name, c.frames[0]))
    return BudgetResult(
        clips=tuple(chosen), requested=budget, filled=budget - remaining, available_frames=available,
        available_sequences=sum(1 for c in cands.values() if c), pool_sequences=len(pool),
        partial=remaining > 0,
    )
