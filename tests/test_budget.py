"""Frame budgets: exact fill, spread over sequences, clips, determinism, errors (pure functions)."""

from __future__ import annotations

from collections import Counter

import pytest

from builder.budget import PoolSequence, candidate_clips, fill_budget, make_pool
from builder.errors import BuilderError


def _pool(n_seqs: int, n_frames: int) -> list[PoolSequence]:
    return [PoolSequence("train", f"seq{i:02d}", tuple(range(1, n_frames + 1))) for i in range(n_seqs)]


def _frames(result) -> list[tuple[str, int]]:
    return [(c.name, f) for c in result.clips for f in c.frames]


def test_candidate_clips_stride_and_gaps():
    assert candidate_clips(range(1, 11), 3, 1) == [(1, 2, 3), (4, 5, 6), (7, 8, 9)]
    # stride 2: a clip spans (L-1)*s + 1 raw frames; the next starts after it
    assert candidate_clips(range(1, 13), 3, 2) == [(1, 3, 5), (6, 8, 10)]
    # a gap (frame 4 missing) breaks the window
    assert candidate_clips([1, 2, 3, 5, 6, 7, 8], 3, 1) == [(1, 2, 3), (5, 6, 7)]
    assert candidate_clips([1, 2], 3, 1) == []


def test_exact_budget_with_shortened_last_clip():
    r = fill_budget(_pool(5, 40), budget=47, clip_length=10, stride=1, seed=0, source="s")
    lengths = sorted(len(c.frames) for c in r.clips)
    assert r.filled == 47 == sum(lengths) and not r.partial
    assert lengths == [7] + [10] * 4  # 47 = 4 * 10 + 7
    assert r.available_frames == 5 * 4 * 10 and r.available_sequences == 5


def test_round_robin_spreads_across_sequences():
    n_seqs, clips_each, clip = 8, 3, 5
    r = fill_budget(_pool(n_seqs, 100), budget=n_seqs * clips_each * clip, clip_length=clip, stride=1,
                    seed=3, source="s")
    # every sequence contributes exactly clips_each clips before any contributes clips_each + 1
    assert Counter(c.name for c in r.clips) == {f"seq{i:02d}": clips_each for i in range(n_seqs)}
    r = fill_budget(_pool(8, 100), budget=3 * clip, clip_length=clip, stride=1, seed=3, source="s")
    assert len({c.name for c in r.clips}) == 3


def test_no_overlap_no_replacement_and_inside_pool():
    pool = _pool(4, 30)
    # 30 frames, clips of 4 at stride 2 span 7 frames: 4 clips per sequence, 4 * 4 * 4 = 64 frames available
    r = fill_budget(pool, budget=62, clip_length=4, stride=2, seed=1, source="s")
    assert r.available_frames == 64
    frames = _frames(r)
    assert len(frames) == len(set(frames)) == 62
    for c in r.clips:
        assert all(b - a == 2 for a, b in zip(c.frames, c.frames[1:], strict=False))
        assert set(c.frames) <= set(range(1, 31))
    spans = sorted((c.name, c.frames[0], c.frames[-1]) for c in r.clips)
    for (n1, _, end), (n2, start, _) in zip(spans, spans[1:], strict=False):
        assert n1 != n2 or start > end  # clips of one sequence never share a time span


def test_deterministic_and_seed_dependent():
    pool = _pool(6, 50)
    kw = {"budget": 60, "clip_length": 5, "stride": 1, "source": "s"}
    a = fill_budget(pool, seed=0, **kw)
    assert a == fill_budget(list(reversed(pool)), seed=0, **kw)  # input order does not matter
    assert a.clips != fill_budget(pool, seed=1, **kw).clips
    assert a.clips != fill_budget(pool, seed=0, **(kw | {"source": "t"})).clips


def test_budget_over_pool_error_states_what_is_available():
    with pytest.raises(BuilderError) as err:
        fill_budget(_pool(3, 25), budget=100, clip_length=10, stride=1, seed=0, source="bdd100k")
    msg = str(err.value)
    # 25 frames -> 2 clips of 10 per sequence -> 3 * 2 * 10 = 60 frames from 3 sequences
    assert "bdd100k" in msg and "frame_budget 100" in msg and "60 frames" in msg and "3 of 3 sequences" in msg
    assert "allow_partial" in msg


def test_partial_fill_takes_the_whole_pool():
    r = fill_budget(_pool(3, 25), budget=100, clip_length=10, stride=1, seed=0, source="s", allow_partial=True)
    assert r.partial and r.filled == 60 == len(_frames(r)) and r.requested == 100


def test_zero_budget_and_pool_rules():
    assert fill_budget(_pool(2, 10), budget=0, clip_length=5, stride=1, seed=0, source="s").clips == ()
    pool = make_pool(_pool(3, 5), locked={"seq01"})
    assert [s.name for s in pool] == ["seq00", "seq02"]
    with pytest.raises(BuilderError, match="appears in splits"):
        make_pool([PoolSequence("train", "a", (1,)), PoolSequence("val", "a", (1,))], locked=())


def test_replay_subset_of_frames():
    # a replay pool holds only an earlier build's clip frames: clips are drawn from those only
    earlier = (1, 2, 3, 4, 11, 12, 13, 14)
    r = fill_budget([PoolSequence("train", "a", earlier)], budget=8, clip_length=4, stride=1, seed=0, source="s")
    assert sorted(f for _, f in _frames(r)) == list(earlier)
