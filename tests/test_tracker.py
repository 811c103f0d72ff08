"""ByteTracker behaviour on scripted detections: ids through occlusion and crossings, classes, low scores."""

from __future__ import annotations

import numpy as np
import pytest

from builder.errors import BuilderError
from train.errors import ConfigError
from train.track.bytetrack import ByteTracker, assign, box_iou
from train.track.kalman import KalmanFilterXYAH, xyah_to_xyxy, xyxy_to_xyah

W, H = 30.0, 70.0  # box size in pixels


def box_at(x: float, y: float = 50.0) -> list[float]:
    return [x, y, x + W, y + H]


def step(tracker: ByteTracker, boxes, scores=None, labels=None):
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    n = len(boxes)
    scores = np.full(n, 0.9) if scores is None else np.asarray(scores, float)
    labels = np.ones(n, int) if labels is None else np.asarray(labels, int)
    return tracker.update(boxes, scores, labels)


def ids_by_x(tracks) -> list[int]:
    return tracks.track_ids[np.argsort(tracks.boxes[:, 0])].tolist()


def test_constant_velocity_object_keeps_its_id_through_a_short_occlusion():
    tracker = ByteTracker()
    velocity = 6.0  # pixels per frame
    seen = set()
    for t in range(30):
        occluded = 10 <= t < 16  # 6 frames without detection, well inside the 30-frame buffer
        tracks = step(tracker, [] if occluded else [box_at(20 + velocity * t)])
        if not occluded:
            assert len(tracks) == 1
            seen.add(int(tracks.track_ids[0]))
        else:
            assert len(tracks) == 0  # lost tracks are not reported
    assert seen == {1}


def test_kalman_prediction_follows_constant_velocity():
    kf = KalmanFilterXYAH()
    mean, cov = kf.initiate(xyxy_to_xyah(np.array([box_at(0.0)])))
    for t in range(1, 20):
        mean, cov = kf.predict(mean, cov)
        mean, cov = kf.update(mean, cov, xyxy_to_xyah(np.array([box_at(5.0 * t)])))
    pred, _ = kf.predict(mean, cov)
    assert xyah_to_xyxy(pred)[0, 0] == pytest.approx(5.0 * 20, abs=0.5)
    assert pred[0, 4] == pytest.approx(5.0, abs=0.1)  # vx in pixels per frame


def test_kalman_update_equals_the_textbook_formulas_with_deepsort_noise():
    """One update equals K = P H^T (H P H^T + R)^-1 with R = diag(h/20, h/20, 0.1, h/20)^2 (DeepSORT)."""
    kf = KalmanFilterXYAH()
    mean, cov = kf.initiate(np.array([[100.0, 80.0, 0.5, 60.0], [10.0, 20.0, 2.0, 8.0]]))
    mean, cov = kf.predict(mean, cov)
    z = np.array([[104.0, 79.0, 0.55, 62.0], [11.0, 22.0, 1.8, 9.0]])
    got_mean, got_cov = kf.update(mean, cov, z)
    h_mat = np.eye(4, 8)
    for i in range(2):
        h = mean[i, 3]
        r = np.diag(np.square([h / 20, h / 20, 0.1, h / 20]))
        s = h_mat @ cov[i] @ h_mat.T + r
        gain = cov[i] @ h_mat.T @ np.linalg.inv(s)
        np.testing.assert_allclose(got_mean[i], mean[i] + gain @ (z[i] - h_mat @ mean[i]), rtol=1e-9)
        np.testing.assert_allclose(got_cov[i], cov[i] - gain @ s @ gain.T, rtol=1e-9, atol=1e-12)


def test_two_crossing_objects_keep_their_ids():
    tracker = ByteTracker()
    first = None
    for t in range(25):
        a, b = 20 + 8 * t, 212 - 8 * t  # they cross around t = 12, at different heights (partial overlap)
        tracks = step(tracker, [box_at(a, 50), box_at(b, 80)])
        assert len(tracks) == 2
        by_y = dict(zip(tracks.boxes[:, 1].round(-1).tolist(), tracks.track_ids.tolist(), strict=True))
        first = first or by_y
        assert by_y == first


def test_tracks_are_per_class():
    tracker = ByteTracker(per_class=True)
    step(tracker, [box_at(100)], labels=[1])
    tracks = step(tracker, [box_at(100)], labels=[2])  # same place, other class: no match
    assert len(tracks) == 0  # the new vehicle track is unconfirmed (born after frame 1)
    tracks = step(tracker, [box_at(100)], labels=[2])
    assert tracks.labels.tolist() == [2] and tracks.track_ids.tolist() == [2]
    merged = ByteTracker(per_class=False)
    step(merged, [box_at(100)], labels=[1])
    assert step(merged, [box_at(100)], labels=[2]).track_ids.tolist() == [1]


def test_empty_input_works():
    tracker = ByteTracker()
    tracks = tracker.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))
    assert len(tracks) == 0 and tracks.boxes.shape == (0, 4)
    step(tracker, [box_at(10)])
    assert len(tracker.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))) == 0


def test_low_score_detections_recover_a_track():
    """Second association: a tracked object seen only with score 0.3 (< high_thresh) keeps its id."""
    tracker = ByteTracker(high_thresh=0.5, low_thresh=0.1)
    for t in range(5):
        step(tracker, [box_at(10 + 4 * t)], scores=[0.9])
    for t in range(5, 10):
        tracks = step(tracker, [box_at(10 + 4 * t)], scores=[0.3])
        assert tracks.track_ids.tolist() == [1]
    alone = ByteTracker()
    assert len(step(alone, [box_at(10)], scores=[0.3])) == 0  # a low score never starts a track


def test_births_need_new_track_thresh_and_confirmation():
    tracker = ByteTracker(new_track_thresh=0.6)
    assert len(step(tracker, [box_at(10)], scores=[0.55])) == 0  # high (>= 0.5) but below 0.6: no birth
    assert len(step(tracker, [box_at(10)], scores=[0.9])) == 0  # born on frame 2: unconfirmed
    assert step(tracker, [box_at(10)], scores=[0.9]).track_ids.tolist() == [1]  # confirmed


def test_lost_track_dies_after_buffer_scaled_by_frame_rate():
    tracker = ByteTracker(track_buffer=30, frame_rate=10)  # int(10 / 30 * 30) = 10 frames
    assert tracker.max_time_lost == 10
    step(tracker, [box_at(10)])
    for _ in range(11):
        step(tracker, [])
    assert step(tracker, [box_at(10)]).track_ids.tolist() == []  # old track gone; new one unconfirmed
    assert step(tracker, [box_at(10)]).track_ids.tolist() == [2]


def test_reset_restarts_ids_per_instance():
    a, b = ByteTracker(), ByteTracker()
    step(a, [box_at(10), box_at(200)])
    assert step(b, [box_at(10)]).track_ids.tolist() == [1]  # no global counter shared between instances
    a.reset()
    assert step(a, [box_at(10)]).track_ids.tolist() == [1] and a.frame_id == 1


def test_bad_input_raises():
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        ByteTracker().update(np.zeros((2, 3)), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="lengths differ"):
        ByteTracker().update(np.zeros((2, 4)), np.zeros(1), np.zeros(2))
    with pytest.raises(ConfigError, match="low_thresh"):
        ByteTracker(low_thresh=0.7, high_thresh=0.5)


def test_assign_respects_max_cost_and_iou_values():
    cost = np.array([[0.1, 0.9], [0.95, 0.99]])
    matches, rows, cols = assign(cost, 0.8)
    assert matches.tolist() == [[0, 0]] and rows.tolist() == [1] and cols.tolist() == [1]
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30]]))
    assert iou[0].tolist() == pytest.approx([50 / 150, 0.0])


# ------------------------------------------------------------------------------ tracking build sequences
def oracle_detector(seq_dir, noise_px: float = 1.0, seed: int = 0):
    """A detect(image) that returns the sequence's positive gt boxes frame after frame (slightly jittered)."""
    from builder.formats.motchallenge import read_mot_file, xywh_to_xyxy

    gt = read_mot_file(seq_dir / "gt" / "gt.txt")
    gt = gt.select(gt.conf != 0)
    rng = np.random.default_rng(seed)
    state = {"frame": 0}

    def detect(image_bgr):
        assert image_bgr.dtype == np.uint8 and image_bgr.ndim == 3
        state["frame"] += 1
        rows = gt.frames == state["frame"]
        boxes = xywh_to_xyxy(gt.boxes[rows]) + rng.normal(0, noise_px, (int(rows.sum()), 4))
        return boxes.astype(np.float32), np.full(int(rows.sum()), 0.9, np.float32), gt.classes[rows]

    return detect


def test_oracle_detections_tracked_on_a_tiny_build_score_high(tiny_builds, tmp_path):
    from builder.formats.motchallenge import list_sequences, read_mot_file
    from train.evaluate.results import evaluate_build
    from train.track.runner import track_sequence

    split = tiny_builds[1] / "val"
    for name in list_sequences(split):
        out = track_sequence(oracle_detector(split / name), split / name, tmp_path / f"{name}.txt",
                             classes=["person", "vehicle"])  # the sidecar says column 8 is the class
        rows = read_mot_file(out)
        assert len(rows) > 0 and set(np.unique(rows.classes)) <= {1, 2}
    result = evaluate_build(tiny_builds[1], "val", tmp_path)["val_sets"]
    for vs, entry in result.items():
        # an oracle detector only loses the birth frame of each track (confirmation) and Kalman smoothing
        assert entry["combined"]["MOTA"] > 80, vs
        assert entry["combined"]["HOTA"] > 70, vs


def test_track_cli_with_a_checkpoint(tiny_builds, tmp_path):
    import torch

    from builder.formats.motchallenge import list_sequences
    from train.stage.models import build_model
    from train.track.__main__ import main

    cfg = {"_target_": "train.stage.models.build_model", "arch": "fasterrcnn", "backbone": "tiny", "min_size": 128,
           "max_size": 256, "weights_path": "not/needed.pth", "fpn_channels": 16, "tiny_channels": [8, 16, 32],
           "box_head_dim": 32}
    torch.manual_seed(0)
    model = build_model(**{k: v for k, v in cfg.items() if k not in ("_target_", "weights_path")}, num_classes=2)
    ckpt = tmp_path / "best_model.pth"
    torch.save({"state_dict": model.state_dict(), "classes": ["person", "vehicle"], "config": {"model": cfg},
                "stage": 1}, ckpt)
    split = tiny_builds[1] / "val"
    seq = list_sequences(split)[0]
    assert main(["--checkpoint", str(ckpt), "--split-dir", str(split), "--out", str(tmp_path / "out"),
                 "--seqs", seq, "--max-frames", "2", "--tracker", "high_thresh=0.3", "per_class=true"]) == 0
    assert (tmp_path / "out" / f"{seq}.txt").is_file()
    assert main(["--checkpoint", str(tmp_path / "nope.pth"), "--split-dir", str(split), "--out", str(tmp_path)]) == 2


def test_track_split_handles_mot17_names_and_missing_frames(tmp_path):
    """MOT17 names frames 000001.jpg; a missing image is tracked with no detections; later frames stop."""
    import cv2

    from builder.formats.motchallenge import read_mot_file
    from train.track.runner import track_split

    seq = tmp_path / "split" / "MOT17-XX"
    (seq / "img1").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=MOT17-XX\nimDir=img1\nframeRate=30\nseqLength=9\n"
                                     "imWidth=64\nimHeight=48\nimExt=.jpg\n")
    for f in (1, 2, 4, 5):  # frame 3 missing, frames 6..9 beyond the images
        cv2.imwrite(str(seq / "img1" / f"{f:06d}.jpg"), np.zeros((48, 64, 3), np.uint8))
    calls = []

    def detect(image):
        calls.append(image.shape)
        return np.array([[10.0, 5.0, 30.0, 40.0]]), np.array([0.9]), np.array([1])

    (out,) = track_split(detect, tmp_path / "split", tmp_path / "out", tracker_params={"min_box_area": 0})
    assert calls == [(48, 64, 3)] * 4
    rows = read_mot_file(out)
    assert rows.frames.tolist() == [1, 2, 4, 5] and set(rows.ids.tolist()) == {1}
    with pytest.raises(FileNotFoundError, match="nope"):
        track_split(detect, tmp_path / "split", tmp_path / "out", tracker_params={}, seqs=["nope"])


def test_make_tracker_names_unknown_parameters():
    from train.errors import ConfigError
    from train.track.runner import make_tracker

    assert make_tracker({"track_buffer": 60}, 15.0).max_time_lost == 30  # int(15 / 30 * 60)
    with pytest.raises(ConfigError, match=r"\['hi_thresh'\] not known to ByteTracker; valid: \['high_thresh'"):
        make_tracker({"hi_thresh": 0.3}, 30.0)
    assert type(make_tracker({"name": "appearance", "appearance_weight": 0.5}, 30.0)).__name__ == "AppearanceTracker"
    with pytest.raises(ConfigError, match="appearance_weight.*not known to ByteTracker"):
        make_tracker({"appearance_weight": 0.5}, 30.0)
    with pytest.raises(BuilderError, match="tracker 'sort' is not registered! Available: appearance, bytetrack"):
        make_tracker({"name": "sort"}, 30.0)


def test_tracker_overrides_parse_values_and_name_a_bad_one():
    from train.errors import ConfigError
    from train.track.__main__ import tracker_params

    assert tracker_params(["high_thresh=0.6", "track_buffer=60", "per_class=False"]) == {
        "name": "bytetrack", "high_thresh": 0.6, "track_buffer": 60, "per_class": False}
    # a checkpoint's tracker config is the base; naming another tracker starts from that tracker's defaults
    base = {"name": "appearance", "appearance_weight": 0.3}
    assert tracker_params(["ema_momentum=0.8"], base) == {"name": "appearance", "appearance_weight": 0.3,
                                                         "ema_momentum": 0.8}
    assert tracker_params(["name=bytetrack"], base) == {"name": "bytetrack"}
    with pytest.raises(ConfigError, match="Key 'appearance_weight' not in"):
        tracker_params(["appearance_weight=0.5"])
    with pytest.raises(ConfigError, match="'abc' of type 'str' could not be converted to Float; full_key: high_thresh"):
        tracker_params(["high_thresh=abc"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        tracker_params(["high_thresh"])
    with pytest.raises(ConfigError, match="Key 'nope' not in .*valid keys: \\['frame_rate'"):
        tracker_params(["nope=1"])
