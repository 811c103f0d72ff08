"""Property: no locked sequence ever reaches train, for any seed, budget, clip shape and pool."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from builder.budget import PoolSequence, fill_budget, make_pool
from builder.records import BuilderError


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
