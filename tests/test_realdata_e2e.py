"""End to end on real frames (issue 4): MOT17 -> build -> train -> track -> evaluate the locked val sequences.

../shared/realdata/mot17-mini holds 7 real MOT17 sequences (39 frames with images, gt, seqinfo.ini that
keeps the full seqLength). Two sequences of the official train split are locked as val (and one as test);
the rest is the training pool. A few epochs of the tiny demo model cannot learn MOT17, so this test checks
the wiring and the records on data nobody on the team wrote, not the accuracy: every val sequence gets a
result file, the metrics are the evaluator's own numbers on those files, and the run records are complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_recipe
from omegaconf import open_dict
from train_helpers import compose_stage

from builder.build import build
from builder.cli import main as builder_main
from builder.formats.motchallenge import read_mot_file, read_seqinfo
from train.evaluate.results import evaluate_build
from train.stage.app import run_stage

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "mot17-mini"
pytestmark = pytest.mark.skipif(not REALDATA.is_dir(), reason="../shared/realdata/mot17-mini not present")

#: Real 1080p frames (and one 640x480 sequence) shrunk to a 288 px shortest side for a CPU run of seconds.
REAL_SHRINK = ["data.scales=[288]", "data.eval_size=288", "data.max_size=512", "trainer.max_epochs=2",
               "trainer.limit_train_batches=3", "eval.final=true", "stage.monitor_set=mot17",
               "stage.watch=[mot17]"]


def test_mot17_real_frames_build_train_track_evaluate(tmp_path):
    manifest = tmp_path / "manifests" / "mot17.json"
    assert builder_main(["lock", "mot17", "--root", str(REALDATA), "--manifest", str(manifest), "--split", "train",
                         "--val", "2", "--test", "1", "--classes", "person"]) == 0
    locked = json.loads(manifest.read_text())
    val_names = sorted(entry["name"] for entry in locked["val"])
    assert len(val_names) == 2

    recipe = write_recipe(tmp_path / "real_mot17.toml", {"name": "real_mot17", "seed": 0, "classes": ["person"],
                          "sources": {"mot17": {"root": str(REALDATA), "manifest": str(manifest),
                                                "frame_budget": 12, "clip_length": 2}}})
    build_root = tmp_path / "builds"
    build_dir = build(recipe, build_root=build_root)
    build_manifest = json.loads((build_dir / "build_manifest.json").read_text())
    assert build_manifest["counts"]["train"]["mot17"]["frames"] == 12
    assert not set(build_manifest["splits"]["train"]) & set(build_manifest["splits"]["val"])

    cfg = compose_stage(1, build_root, tmp_path / "runs", *REAL_SHRINK)
    with open_dict(cfg):
        cfg.data.build_dir = str(build_dir)
    result = run_stage(cfg)
    run_dir = Path(result["run_dir"])

    # Tracking: one MOTChallenge result file per locked val sequence, rows in the documented layout.
    tracker_dir = run_dir / "eval" / "mot17" / "tracker"
    seq_dirs = sorted((build_dir / "val").iterdir())
    assert [p.name for p in seq_dirs] == [f"mot17__{n}" for n in val_names]
    for seq_dir in seq_dirs:
        table = read_mot_file(tracker_dir / f"{seq_dir.name}.txt")
        length = read_seqinfo(seq_dir).length
        assert table.frames.size == 0 or (table.frames.min() >= 1 and table.frames.max() <= length)

    # Evaluation: metrics.json holds the evaluator's numbers on exactly those files.
    metrics = json.loads((run_dir / "metrics.json").read_text())
    combined = metrics["val_sets"]["mot17"]["combined"]
    rescored = evaluate_build(build_dir, "val", run_dir / "eval")["val_sets"]["mot17"]["combined"]
    for key in ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW", "FP", "FN"):
        assert combined[key] == pytest.approx(rescored[key])
    gt_rows = sum(int((read_mot_file(d / "gt" / "gt.txt").conf > 0).sum()) for d in seq_dirs)
    assert combined["FN"] + combined["TP"] == gt_rows  # every positive gt box is either found or missed
    assert 0.0 <= combined["HOTA"] <= 100.0

    # Run records of the stage.
    for name in ("best_model.pth", "model_info.json", "training_history.json", "stopping_reason.txt", "report.md"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "stopping_reason.txt").read_text().startswith("reason: max_epochs")
    assert json.loads((run_dir / "model_info.json").read_text())["classes"] == ["person"]
