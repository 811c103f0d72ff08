"""The appearance tracker on scripted detections: a bump of two look-alike-shaped boxes keeps both ids only with
appearance; without embeddings it is exactly ByteTrack; the detection-box option reports the matched boxes."""

from __future__ import annotations

import numpy as np
import pytest

from train.errors import ConfigError
from train.track.appearance import AppearanceTracker
from train.track.bytetrack import ByteTracker

W, H = 30.0, 70.0  # both boxes: one size
LOOK_A, LOOK_B = np.array([1.0, 0.2, 0.0, 0.0]), np.array([0.2, 1.0, 0.0, 0.0])


def bump(tracker: ByteTracker, *, with_embeddings: bool, turn_back: bool) -> dict[int, set[int]]:
    """A from x = 0 moving right, B from x = 100 moving left, 5 px / frame, one size, rows 2 px apart; they meet
    exactly at x = 50 (frame 11), then turn back (a bump) or pass. Returns {track id: rows (A 50, B 52) it held}."""
    xa, xb, va, vb = 0.0, 100.0, 5.0, -5.0
    held: dict[int, set[int]] = {}
    for _ in range(24):
        boxes = np.array([[xa, 50, xa + W, 50 + H], [xb, 52, xb + W, 52 + H]])
        emb = np.stack([LOOK_A, LOOK_B]) if with_embeddings else None
        tracks = tracker.update(boxes, np.array([0.9, 0.9]), np.array([1, 1]), emb)
        for tid, box in zip(tracks.track_ids, tracks.boxes, strict=True):
            held.setdefault(int(tid), set()).add(round(float(box[1])))
        if turn_back and xb - xa <= 0:
            va, vb = -va, -vb
        xa, xb = xa + va, xb + vb
    return held


def test_a_bump_swaps_motion_only_ids_and_appearance_keeps_them():
    # reported boxes = the matched detections, so the row each id held is exact
    motion = bump(ByteTracker(output_box="detection"), with_embeddings=True, turn_back=True)  # embeddings ignored
    assert motion[1] == {50, 52} and motion[2] == {50, 52}  # each id held both objects: one swap each
    fused = bump(AppearanceTracker(output_box="detection"), with_embeddings=True, turn_back=True)
    assert fused == {1: {50}, 2: {52}}
    # passing through each other is what motion predicts: both keep their ids either way
    assert bump(ByteTracker(output_box="detection"), with_embeddings=False, turn_back=False) == {1: {50}, 2: {52}}
    assert bump(AppearanceTracker(output_box="detection"), with_embeddings=True, turn_back=False) == \
        {1: {50}, 2: {52}}


def _scene(seed: int = 0, frames: int = 40, n: int = 25):
    rng = np.random.default_rng(seed)
    pos, vel = rng.uniform(0, 600, (n, 2)), rng.normal(0, 4, (n, 2))
    for t in range(frames):
        seen = rng.random(n) > 0.15
        xy = pos[seen] + vel[seen] * t + rng.normal(0, 1.5, (seen.sum(), 2))
        boxes = np.hstack([xy, xy + [40.0, 90.0]])
        yield boxes, rng.uniform(0.05, 1.0, len(boxes)), rng.integers(1, 3, len(boxes))


def _run(tracker: ByteTracker, embeddings: bool):
    out = []
    rng = np.random.default_rng(1)
    for boxes, scores, labels in _scene():
        emb = rng.normal(size=(len(boxes), 8)) if embeddings else None
        t = tracker.update(boxes, scores, labels, emb)
        out.append((t.track_ids.tolist(), t.boxes.round(3).tolist()))
    return out


def test_without_embeddings_the_appearance_tracker_is_bytetrack():
    assert _run(AppearanceTracker(), embeddings=False) == _run(ByteTracker(), embeddings=False)
    # and with appearance_weight 0 the embeddings change nothing
    assert _run(AppearanceTracker(appearance_weight=0.0), embeddings=True) == _run(ByteTracker(), embeddings=False)


@pytest.mark.parametrize("cls", [ByteTracker, AppearanceTracker])
def test_detection_box_option_reports_the_matched_detections(cls):
    tracker = cls(output_box="detection", min_box_area=0)
    for boxes, scores, labels in _scene(frames=12):
        tracks = tracker.update(boxes, scores, labels)
        # every reported box is one of this frame's detections, exactly
        for box in tracks.boxes:
            assert np.any(np.all(np.isclose(boxes, box, atol=1e-4), axis=1))


def test_parameters_are_checked_and_named():
    with pytest.raises(ConfigError, match="appearance_weight=1.5 must be in"):
        AppearanceTracker(appearance_weight=1.5)
    with pytest.raises(ConfigError, match="ema_momentum=1.0 must be in"):
        AppearanceTracker(ema_momentum=1.0)
    with pytest.raises(ConfigError, match="output_box='centre' is not one of"):
        ByteTracker(output_box="centre")
    with pytest.raises(ValueError, match=r"embeddings must be \(N, D\) with N = 2"):
        AppearanceTracker().update(np.zeros((2, 4)) + [0, 0, 5, 5], np.ones(2), np.ones(2), np.ones((3, 4)))


def test_bisoftmax_shares_the_score_between_look_alikes_and_gives_a_lone_candidate_all_of_it():
    from train.track.appearance import bisoftmax

    both = np.ones((1, 2), bool)
    # one track, two detections that look alike: half of the row's softmax each, all of each column's
    assert bisoftmax(np.array([[0.9, 0.9]]), both, 0.1).tolist() == [[0.75, 0.75]]
    distinct = bisoftmax(np.array([[0.9, 0.1]]), both, 0.1)[0]
    row = np.exp([9.0, 1.0]) / np.exp([9.0, 1.0]).sum()
    assert distinct == pytest.approx((row + 1.0) / 2.0)
    # pairs that are no candidates score 0 and do not take part in the softmax
    masked = bisoftmax(np.array([[0.9, 0.1], [0.2, 0.3]]), np.array([[True, False], [False, False]]), 0.1)
    assert masked.tolist() == [[1.0, 0.0], [0.0, 0.0]]
