"""``python -m train.track --public-detections``: the real MOT17 sample's det/det.txt tracked and scored; motion only
it is exactly the ByteTracker fed the same boxes; with a checkpoint that has an embedding head the boxes are embedded
from the frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from builder.formats.motchallenge import read_mot_file, xywh_to_xyxy
from train.evaluate.benchmarks import evaluate_raw
from train.stage.models import build_model
from train.track.__main__ import main as track_main
from train.track.bytetrack import ByteTracker

MOT17 = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "mot17-mini"
needs_mot17 = pytest.mark.skipif(not MOT17.is_dir(), reason="../shared/realdata/mot17-mini not present")
TINY = {"arch": "fasterrcnn", "backbone": "tiny", "min_size": 96, "max_size": 160, "fpn_channels": 32,
        "tiny_channels": [16, 32, 64], "box_head_dim": 32,
        "embedding": {"enabled": True, "dim": 8, "convs": 0, "fc_dim": 32}}


def _bytetrack_on_det_file(seq_dir: Path) -> list[tuple]:
    """ByteTracker fed det/det.txt frame by frame (frames 1..last image), rows as written to a result file."""
    det = read_mot_file(seq_dir / "det" / "det.txt")
    last = max(int(p.stem) for p in (seq_dir / "img1").glob("*.jpg"))
    tracker, rows = ByteTracker(frame_rate=30.0), []
    for f in range(1, last + 1):
        keep = det.frames == f
        tracks = tracker.update(xywh_to_xyxy(det.boxes[keep]), det.conf[keep], np.ones(keep.sum(), int))
        rows += [(f, int(i), *np.round(b, 2)) for i, b in zip(tracks.track_ids, tracks.boxes, strict=True)]
    return rows


def _result_rows(path: Path) -> list[tuple]:
    res = read_mot_file(path)
    return [(int(f), int(i), *np.round(b, 2)) for f, i, b in zip(res.frames, res.ids, xywh_to_xyxy(res.boxes),
                                                                  strict=True)]


@needs_mot17
def test_motion_only_public_detections_equal_bytetrack_fed_the_same_boxes_and_score(tmp_path):
    out = tmp_path / "out"
    assert track_main(["--public-detections", "--root", str(MOT17), "--split", "train", "--out", str(out),
                       "--tracker", "name=bytetrack"]) == 0
    seqs = sorted(p.name for p in (MOT17 / "train").iterdir())
    assert sorted(p.stem for p in out.glob("*.txt")) == seqs
    for name in seqs:
        ours, reference = _result_rows(out / f"{name}.txt"), _bytetrack_on_det_file(MOT17 / "train" / name)
        assert len(ours) > 0 and len(ours) == len(reference), name
        assert np.allclose(np.array(ours, float), np.array(reference, float), atol=0.011), name
    combined = evaluate_raw("mot17", MOT17, "train", out)["val_sets"]["mot17"]["combined"]
    assert 20.0 < combined["HOTA"] <= 100.0 and combined["TP"] > 0  # FRCNN public boxes find most pedestrians


@needs_mot17
def test_public_detections_with_an_embedding_checkpoint_use_the_frames(tmp_path):
    torch.manual_seed(0)
    model = build_model(**TINY, num_classes=1)
    ckpt = tmp_path / "best_model.pth"
    torch.save({"state_dict": model.state_dict(), "classes": ["person"], "stage": 1,
                "config": {"model": TINY, "tracker": {"name": "appearance"}}}, ckpt)
    out, seq = tmp_path / "out", "MOT17-05-FRCNN"  # 640 x 480, 6 frames
    assert track_main(["--public-detections", "--checkpoint", str(ckpt), "--root", str(MOT17), "--split", "train",
                       "--out", str(out), "--seqs", seq]) == 0
    rows = read_mot_file(out / f"{seq}.txt")
    assert len(rows) > 0 and rows.frames.max() <= 6 and set(rows.classes.tolist()) == {1}


def test_missing_det_file_and_missing_checkpoint_are_one_line_errors(tmp_path, capsys):
    seq = tmp_path / "train" / "SEQ-01"
    (seq / "img1").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=SEQ-01\nimDir=img1\nframeRate=30\nseqLength=3\n"
                                     "imWidth=64\nimHeight=48\nimExt=.jpg\n")
    assert track_main(["--public-detections", "--root", str(tmp_path), "--split", "train", "--out",
                       str(tmp_path / "o")]) == 2
    assert "SEQ-01/det/det.txt: public detections not found" in capsys.readouterr().err
    assert track_main(["--root", str(tmp_path), "--split", "train", "--out", str(tmp_path / "o")]) == 2
    assert "--checkpoint is required" in capsys.readouterr().err
