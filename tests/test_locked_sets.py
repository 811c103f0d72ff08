"""The official split a stage reports (train.evaluate.locked): locked val + test that are the whole DanceTrack val
split (25 sequences) are scored with the official protocol, equal to scoring the raw split with
``--raw dancetrack``, and labelled comparable; a class map that changes the ground truth, or a split of another
size, is labelled not comparable."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from builder.formats.motchallenge import write_results
from builder.records import GT_FORMAT
from train.evaluate.benchmarks import evaluate_raw
from train.evaluate.locked import official_unions
from train.evaluate.result_files import write_sidecar

REPO = Path(__file__).resolve().parents[1]
NAMES = [f"dancetrack{k:04d}" for k in range(1, 26)]


def _seq(folder: Path, rng: np.random.Generator) -> np.ndarray:
    """A 3-frame sequence of 2 dancers (gt rows); returns a tracker's rows (jittered, one missed, one extra)."""
    (folder / "gt").mkdir(parents=True)
    (folder / "seqinfo.ini").write_text("[Sequence]\nname=s\nimDir=img1\nframeRate=20\nseqLength=3\nimWidth=640\n"
                                        "imHeight=480\nimExt=.jpg\n")
    gt = np.array([[t, k, 50 + 200 * k + 5 * t, 100, 60, 150, 1, 1, 1] for t in (1, 2, 3) for k in (1, 2)], float)
    (folder / "gt" / "gt.txt").write_text("".join(",".join(f"{v:g}" for v in r) + "\n" for r in gt))
    trk = gt[1:].copy()
    trk[:, 2:4] += rng.normal(0, 2, (len(trk), 2))
    return np.concatenate([trk, [[2, 9, 500, 300, 40, 40, 1, 1, 1]]])


def _case(tmp: Path, classmap: Path, names: list[str]) -> tuple[Path, dict[str, Path], Path]:
    """A build whose dancetrack val / test are ``names`` split 13 / 12, results for them, and the raw split."""
    rng = np.random.default_rng(0)
    build, raw, results = tmp / "build", tmp / "raw", {"val": tmp / "eval", "test": tmp / "eval_test"}
    locked = {"val": names[:13], "test": names[13:]}
    for split, seqs in locked.items():
        for name in seqs:
            trk = _seq(build / split / f"dancetrack__{name}", rng)
            _seq(raw / "val" / name, np.random.default_rng(1))  # the same ground truth as the raw split
            for folder, file in ((results[split] / "dancetrack" / "tracker", f"dancetrack__{name}"),
                                 (tmp / "raw_results", name)):
                write_results(folder / f"{file}.txt", trk[:, 0], trk[:, 1], trk[:, 2:6], np.ones(len(trk)),
                              np.ones(len(trk)))
                write_sidecar(folder, ["person", "vehicle"], [file])
    manifest = {"gt_format": GT_FORMAT, "classes": ["person", "vehicle"],
                "sources": {"dancetrack": {"classmap": str(classmap),
                                           "classmap_sha256": hashlib.sha256(classmap.read_bytes()).hexdigest()}},
                "locked": {"dancetrack": {**locked, "official_split": {"split": "val", "sequences": names}}}}
    (build / "build_manifest.json").write_text(json.dumps(manifest))
    return build, results, raw


def test_whole_dancetrack_val_is_scored_officially_and_labelled_comparable(tmp_path):
    build, results, raw = _case(tmp_path, REPO / "conf" / "classmaps" / "dancetrack.toml", NAMES)
    union = official_unions(build, results, ["person", "vehicle"])["dancetrack"]
    assert (union["protocol"], union["sequences"]) == ("official", 25)
    assert union["label"] == "comparable with published DanceTrack val"
    official = evaluate_raw("dancetrack", raw, "val", tmp_path / "raw_results")["val_sets"]["dancetrack"]
    assert union["combined"] == official["combined"] and union["combined"]["GT_Dets"] == 25 * 6
    assert union["combined"]["FP"] == 25 and union["combined"]["FN"] == 25


def test_a_class_map_that_changes_the_ground_truth_is_not_called_comparable(tmp_path):
    changed = tmp_path / "dancetrack_ignore.toml"
    changed.write_text('[categories]\n"1" = "person"\n"2" = "ignore"\n')
    build, results, _ = _case(tmp_path, changed, NAMES)
    union = official_unions(build, results, ["person", "vehicle"])["dancetrack"]
    assert union["protocol"] == "unified" and "not comparable with published figures" in union["label"]


def test_a_split_that_is_not_whole_gives_no_union(tmp_path):
    build, results, _ = _case(tmp_path, REPO / "conf" / "classmaps" / "dancetrack.toml", NAMES)
    manifest = json.loads((build / "build_manifest.json").read_text())
    manifest["locked"]["dancetrack"]["official_split"]["sequences"] = [*NAMES, "dancetrack0099"]
    (build / "build_manifest.json").write_text(json.dumps(manifest))
    assert official_unions(build, results, ["person", "vehicle"]) == {}
