"""train.review.viz: per-frame matching rules, rendered colours read back from the MP4, and the CLI."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from run_fixtures import moving_gt, write_sequence, write_tiny_build

from builder.formats.motchallenge import list_sequences, read_mot_file, write_results
from train.errors import ReviewError
from train.review.viz import (
    MIN_HEIGHT,
    FrameBoxes,
    count_video_frames,
    main,
    match_frame,
    render_sequence,
)

LENGTH = 6
HEIGHT = 120  # write_sequence's default frame size is 160x120
SCALE = -(-MIN_HEIGHT // HEIGHT)  # render_frame upscales by ceil(MIN_HEIGHT / H)
FP_FRAME = 3
FP_BOX = (5, 80, 40, 30)  # xywh, away from both people and the ignore region of moving_gt
SWITCH_FRAME = 4  # person 1 is tracked as id 101, then as id 102 from this frame on
MISS_FRAME = 2  # person 2 has no prediction in this frame


def _boxes(rows, cls=1):
    rows = np.asarray(rows, float).reshape(-1, 4)
    return FrameBoxes(rows, np.arange(1, len(rows) + 1), np.full(len(rows), cls))


def scripted_results(length: int = LENGTH) -> list[list[float]]:
    rows = []
    for f in range(1, length + 1):
        rows.append([f, 101 if f < SWITCH_FRAME else 102, 10 + 4 * (f - 1) + 1, 21, 20, 40, 0.9, 1, -1, -1])
        if f != MISS_FRAME:
            rows.append([f, 7, 120 - 4 * (f - 1), 30, 20, 40, 0.8, 1, -1, -1])
        rows.append([f, 50, 61, 81, 30, 30, 0.5, 1, -1, -1])  # on the ignore region (60, 80, 30, 30)
        if f == FP_FRAME:
            rows.append([f, 66, *FP_BOX, 0.7, 2, -1, -1])
    return rows


@pytest.fixture()
def scripted(tmp_path):
    seq = write_sequence(tmp_path / "seq", gt_rows=moving_gt(LENGTH), length=LENGTH)
    res = tmp_path / "res.txt"
    res.write_text("".join(",".join(f"{v:g}" for v in r) + "\n" for r in scripted_results()))
    return seq, res


def test_id_switch_costs_exactly_one():
    gt = FrameBoxes(np.array([[0, 0, 10, 20.0]]), np.array([1]), np.array([1]))
    last: dict[int, int] = {}
    switches = []
    for pid in (5, 5, 6, 6):  # the same box, predicted id changes once
        pred = FrameBoxes(np.array([[0, 0, 10, 20.0]]), np.array([pid]), np.array([1]))
        m, last = match_frame(gt, pred, np.zeros((0, 4)), last)
        switches.append(m.switched[0])
    assert switches == [None, None, 5, None]


def test_previous_match_kept_when_still_valid():
    # CLEAR MOT: pred 1 keeps GT 1 while IoU >= 0.5, even though pred 2 overlaps better.
    gt = _boxes([[0, 0, 10, 10]])
    pred = FrameBoxes(np.array([[0, 0, 10, 6.0], [0, 0, 10, 10.0]]), np.array([1, 2]), np.array([1, 1]))
    m, _ = match_frame(gt, pred, np.zeros((0, 4)), {1: 1})
    assert m.matched == [(0, 0)] and m.switched == [None] and m.false_positives == [1]


def test_only_the_previous_frames_pair_is_kept_as_in_trackeval_clear():
    """GT 1 matched to pred 1 at frame 1, unmatched at frame 2; at frame 3 pred 2 overlaps better than pred 1.
    TrackEval's CLEAR keeps only pairs of the immediately previous frame, so pred 2 wins: one ID switch."""
    gt = _boxes([[0, 0, 10, 10]])
    both = FrameBoxes(np.array([[0, 0, 10, 6.0], [0, 0, 10, 10.0]]), np.array([1, 2]), np.array([1, 1]))
    m, last = match_frame(gt, _boxes([[0, 0, 10, 6.0]]), np.zeros((0, 4)), {}, previous_frame={})
    assert m.matched == [(0, 0)] and last == {1: 1}
    m, last = match_frame(gt, _boxes([]), np.zeros((0, 4)), last, previous_frame={1: 1})
    assert m.missed == [0]
    m, _ = match_frame(gt, both, np.zeros((0, 4)), last, previous_frame={})
    assert m.matched == [(0, 1)] and m.switched == [1] and m.false_positives == [0]


def test_ignore_region_and_class_rules():
    gt = _boxes([[0, 0, 10, 10]], cls=1)
    ignore = np.array([[50, 50, 70, 70.0]])
    pred = FrameBoxes(np.array([[0, 0, 10, 10], [51, 51, 70, 70], [100, 100, 110, 110.0]]),
                      np.array([1, 2, 3]), np.array([2, 1, 1]))
    m, _ = match_frame(gt, pred, ignore, {})
    assert m.matched == []  # class 2 prediction cannot match a class 1 GT
    assert m.missed == [0]
    assert m.ignored == [1]  # on the ignore region: not a false positive
    assert m.false_positives == [0, 2]
    unknown = FrameBoxes(pred.boxes[:1], np.array([1]), np.array([-1]))  # class -1 matches any class
    assert match_frame(gt, unknown, ignore, {})[0].matched == [(0, 0)]


def test_empty_frames():
    m, last = match_frame(_boxes([]), _boxes([]), np.zeros((0, 4)), {3: 4})
    assert (m.matched, m.missed, m.false_positives, m.ignored, last) == ([], [], [], [], {3: 4})


def _frame(video, index):
    cap = cv2.VideoCapture(str(video))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = cap.read()
    cap.release()
    assert ok
    return image


def _edge_colour(image, xywh, *, edge="bottom"):
    x, y, w, h = (v * SCALE for v in xywh)
    if edge == "bottom":
        pixels = image[y + h - 1:y + h + 2, x + 8:x + w - 8].reshape(-1, 3)
    else:  # left edge, below the label tab
        pixels = image[y + 8:y + h - 8, x - 1:x + 2].reshape(-1, 3)
    return np.median(pixels, axis=0)  # BGR


def test_video_frames_totals_and_colours(scripted, tmp_path):
    seq, res = scripted
    out = tmp_path / "out.mp4"
    totals = render_sequence(seq, res, out)
    # 2 people x L frames, one miss and one FP, one switch, the ignore-region prediction in every frame.
    assert totals == {"frames": LENGTH, "TP": 2 * LENGTH - 1, "FP": 1, "FN": 1, "IDSW": 1, "ignored": LENGTH}
    assert count_video_frames(out) == LENGTH
    b, g, r = _edge_colour(_frame(out, FP_FRAME - 1), FP_BOX)
    assert r > 170 and g < 80 and b < 80, (b, g, r)  # red, with tolerance for mp4v loss
    b, g, r = _edge_colour(_frame(out, 0), (11, 21, 20, 40), edge="left")
    assert g > 140 and r < 80 and b < 80, (b, g, r)  # green: person 1, stable id
    b, g, r = _edge_colour(_frame(out, SWITCH_FRAME - 1), (10 + 4 * (SWITCH_FRAME - 1) + 1, 21, 20, 40), edge="left")
    assert r > 170 and 90 < g < 190 and b < 80, (b, g, r)  # orange: the switch
    b, g, r = _edge_colour(_frame(out, FP_FRAME - 1), (61, 81, 30, 30))
    assert abs(b - g) < 40 and abs(g - r) < 40 and g > 120, (b, g, r)  # grey: prediction on ignore region


def test_cli_build_form_and_errors(tmp_path, capsys):
    build = write_tiny_build(tmp_path / "b", length=4)
    results = tmp_path / "res"
    results.mkdir()
    gt = read_mot_file(build / "val" / "synthA__a2" / "gt" / "gt.txt")
    keep = gt.conf != 0
    write_results(results / "synthA__a2.txt", gt.frames[keep], gt.ids[keep], gt.boxes[keep], gt.conf[keep],
                  gt.classes[keep])
    out = tmp_path / "v.mp4"
    assert main(["--build", str(build), "--split", "val", "--seq", "synthA__a2", "--results-dir", str(results),
                 "--out", str(out)]) == 0
    assert count_video_frames(out) == 4
    assert "FP 0" in capsys.readouterr().out
    assert main(["--build", str(build), "--results-dir", str(results), "--out", str(out)]) == 0  # seq: the one with results
    assert main(["--gt", str(build / "val" / "synthA__a2")]) == 2
    assert main(["--build", str(build), "--results-dir", str(tmp_path)]) == 2
    (build / "val" / "synthA__a2" / "img1" / "00000002.jpg").unlink()
    with pytest.raises(ReviewError, match="00000002.jpg: image missing"):
        render_sequence(build / "val" / "synthA__a2", results / "synthA__a2.txt", out)


def test_perfect_tracker_on_tiny_build(tiny_builds, tmp_path):
    split = tiny_builds[1] / "val"
    name = list_sequences(split)[0]
    gt = read_mot_file(split / name / "gt" / "gt.txt")
    keep = gt.conf != 0
    res = write_results(tmp_path / f"{name}.txt", gt.frames[keep], gt.ids[keep], gt.boxes[keep],
                        np.ones(int(keep.sum())), gt.classes[keep])
    totals = render_sequence(split / name, res, tmp_path / "v.mp4")
    assert totals["TP"] == int(keep.sum())
    assert (totals["FP"], totals["FN"], totals["IDSW"]) == (0, 0, 0)
    assert count_video_frames(tmp_path / "v.mp4") == totals["frames"]
