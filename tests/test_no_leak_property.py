"""Property: no locked sequence ever reaches train, for any seed, budget, clip shape, pool splits and replay."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from builder.budget import PoolSequence, fill_budget, make_pool
from builder.build import read_pool
from builder.errors import BuilderError
from builder.recipe import SourceSpec


@st.composite
def pools(draw):
    n = draw(st.integers(1, 12))
    names = [f"seq{i:03d}" for i in draw(st.lists(st.integers(0, 200), min_size=n, max_size=n, unique=True))]
    seqs = []
    for name in names:
        split = draw(st.sampled_from(["train", "val", "test"]))
        frames = draw(st.sets(st.integers(1, 60), max_size=60))
        seqs.append(PoolSequence(split, name, tuple(sorted(frames))))
    locked = draw(st.sets(st.sampled_from(names)))
    return seqs, locked


@settings(max_examples=200, deadline=None)
@given(pools(), st.integers(0, 2**31), st.integers(0, 400), st.integers(1, 8), st.integers(1, 3), st.booleans())
def test_no_locked_sequence_reaches_train(pool_and_locked, seed, budget, clip_length, stride, allow_partial):
    seqs, locked = pool_and_locked
    pool = make_pool(seqs, locked)
    assert not {s.name for s in pool} & locked
    try:
        result = fill_budget(pool, budget=budget, clip_length=clip_length, stride=stride, seed=seed,
                             source="src", allow_partial=allow_partial)
    except BuilderError:
        assert not allow_partial and budget > 0
        return
    chosen = {c.name for c in result.clips}
    assert not chosen & locked
    frames = [(c.name, f) for c in result.clips for f in c.frames]
    assert len(frames) == len(set(frames)) == result.filled <= budget
    assert result.filled == budget or result.partial
    available = {s.name: set(s.frames) for s in seqs}
    assert all(f in available[name] for name, f in frames)


class _FakeAdapter:
    """Labels-only adapter: {split: {name: frame numbers}}; ``<video>-<copy>`` names share a video key."""

    root = Path("/fake")

    def __init__(self, seqs: dict[str, dict[str, tuple[int, ...]]]):
        self.seqs = seqs

    def splits(self) -> list[str]:
        return sorted(self.seqs)

    def sequence_names(self, split: str) -> list[str]:
        return sorted(self.seqs[split])

    def frame_indices(self, split: str, name: str) -> list[int]:
        return list(self.seqs[split][name])

    def video_key(self, name: str) -> str:
        return name.split("-")[0]


@st.composite
def sources(draw):
    videos = draw(st.lists(st.integers(0, 30), min_size=1, max_size=8, unique=True))
    seqs: dict[str, dict[str, tuple[int, ...]]] = {"train": {}, "val": {}, "test": {}}
    for v in videos:
        for copy in range(draw(st.integers(1, 3))):  # copies of one video (MOT17's -DPM/-FRCNN/-SDP)
            split = draw(st.sampled_from(sorted(seqs)))
            seqs[split][f"v{v:02d}-{copy}"] = tuple(range(1, draw(st.integers(1, 30)) + 1))
    names = sorted(n for s in seqs.values() for n in s)
    locked = draw(st.sets(st.sampled_from(names)))
    pool_splits = draw(st.lists(st.sampled_from(sorted(seqs)), min_size=1, max_size=3, unique=True))
    return seqs, locked, tuple(pool_splits)


@settings(max_examples=100, deadline=None)
@given(sources(), st.integers(0, 2**31), st.integers(0, 200), st.integers(1, 5), st.booleans())
def test_no_locked_video_reaches_train_through_read_pool(source, seed, budget, clip_length, replay):
    """The build's pool step, from any pool splits or from a replayed build that trained on locked videos."""
    seqs, locked, pool_splits = source
    adapter = _FakeAdapter(seqs)
    with tempfile.TemporaryDirectory() as tmp:
        build_root = Path(tmp)
        if replay:  # an earlier build that trained on every sequence, locked ones included
            (build_root / "earlier").mkdir()
            train = {f"src__{n}": {"source": "src", "raw_split": split, "raw_sequence": n, "frames": list(frames)}
                     for split, by_name in seqs.items() for n, frames in by_name.items()}
            (build_root / "earlier" / "build_manifest.json").write_text(json.dumps({"splits": {"train": train}}))
        spec = SourceSpec(name="src", root="x", frame_budget=budget, clip_length=clip_length,
                          pool_splits=pool_splits, replay_from="earlier" if replay else None)
        pool, _ = read_pool(adapter, spec, locked, build_root)
    locked_videos = {adapter.video_key(n) for n in locked}
    assert not {adapter.video_key(s.name) for s in pool} & locked_videos
    result = fill_budget(pool, budget=budget, clip_length=clip_length, stride=1, seed=seed, source="src",
                         allow_partial=True)
    assert not {adapter.video_key(c.name) for c in result.clips} & locked_videos
