"""Our evaluation equals trackeval's own MotChallenge2DBox runner on the same MOTChallenge files.

Ground truth: the real MOT17 sample (../shared/realdata/mot17-mini, with distractor classes and zero-marked
boxes, so TrackEval's preprocessing is exercised). Tracker output: that ground truth perturbed (jittered
boxes, dropped rows, swapped ids, false positives, predictions on distractors), written as result files.
The installed trackeval 1.3 runs on numpy 2 as is: no monkeypatching is needed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import trackeval  # a project dependency: the check against it is never skipped

from builder.formats.motchallenge import (
    MotTable,
    list_sequences,
    read_mot_file,
    read_seqinfo,
    write_results,
    write_seqmap,
)
from train.evaluate.benchmarks import evaluate_raw
from train.evaluate.reference import perturbed_mot_table, trackeval_mot17_reference
from train.evaluate.scoring import MOT17_RULES, SequenceData, evaluate_sequences

MOT17_MINI = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata" / "mot17-mini" / "train"
TRACKER = "perturbed"


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> Path:
    """TrackEval's folder layout: gt/MOT17-train/<seq>, gt/seqmaps, trackers/MOT17-train/<tracker>/data."""
    if not MOT17_MINI.is_dir():
        pytest.skip("../shared/realdata/mot17-mini not available")
    root = tmp_path_factory.mktemp("trackeval")
    rng = np.random.default_rng(0)
    seqs = list_sequences(MOT17_MINI)
    for seq in seqs:
        dst = root / "gt" / "MOT17-train" / seq
        (dst / "gt").mkdir(parents=True)
        shutil.copy(MOT17_MINI / seq / "seqinfo.ini", dst / "seqinfo.ini")
        shutil.copy(MOT17_MINI / seq / "gt" / "gt.txt", dst / "gt" / "gt.txt")
        t = perturbed_mot_table(read_mot_file(dst / "gt" / "gt.txt"), rng)
        write_results(root / "trackers" / "MOT17-train" / TRACKER / "data" / f"{seq}.txt", t.frames, t.ids,
                      t.boxes, t.conf, t.classes)
    write_seqmap(root / "gt" / "seqmaps" / "MOT17-train.txt", seqs)
    return root


def run_trackeval(root: Path) -> dict:
    """trackeval's own runner (Evaluator + MotChallenge2DBox), quiet; returns {seq: {metric: fields}}."""
    return trackeval_mot17_reference(root, TRACKER)


def expected(fields: dict) -> dict:
    """TrackEval's fields in our keys and scale."""
    hota, clear, ident = fields["HOTA"], fields["CLEAR"], fields["Identity"]
    out = {k: 100 * float(np.mean(hota[k])) for k in ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr")}
    out.update(MOTA=100 * clear["MOTA"], MOTP=100 * clear["MOTP"], IDF1=100 * ident["IDF1"],
               IDP=100 * ident["IDP"], IDR=100 * ident["IDR"], IDSW=clear["IDSW"], FP=clear["CLR_FP"],
               FN=clear["CLR_FN"], Frag=clear["Frag"], MT=clear["MT"], PT=clear["PT"], ML=clear["ML"])
    return out


def test_equals_trackeval_runner(layout):
    official = run_trackeval(layout)
    ours = evaluate_raw("mot17", layout / "gt" / "MOT17-train" / "..", "MOT17-train",
                        layout / "trackers" / "MOT17-train" / TRACKER / "data",
                        seqmap=layout / "gt" / "seqmaps" / "MOT17-train.txt")["val_sets"]["mot17"]
    want = expected(official["COMBINED_SEQ"])
    assert want["IDSW"] > 0 and want["FP"] > 0 and want["FN"] > 0  # the perturbation exercises the metrics
    for key, value in want.items():
        assert ours["combined"][key] == pytest.approx(value, abs=1e-9), key
    for seq, fields in official.items():
        if seq == "COMBINED_SEQ":
            continue
        for key, value in expected(fields).items():
            assert ours["per_sequence"][seq][key] == pytest.approx(value, abs=1e-9), (seq, key)


def test_distractor_predictions_removed_like_trackeval(layout):
    """Removing the distractor rule changes the score, so the equality above really tests the preprocessing."""
    seq = "MOT17-02-FRCNN"  # has static persons (7) and distractors (8)
    gt_dir = layout / "gt" / "MOT17-train" / seq
    data = SequenceData(seq, read_seqinfo(gt_dir).length, read_mot_file(gt_dir / "gt" / "gt.txt"),
                        read_mot_file(layout / "trackers" / "MOT17-train" / TRACKER / "data" / f"{seq}.txt"))
    with_rule = evaluate_sequences([data], {"person": 1}, MOT17_RULES)["combined"]
    no_rule = evaluate_sequences([data], {"person": 1}, type(MOT17_RULES)("match", (), True))["combined"]
    assert no_rule["FP"] > with_rule["FP"]


# ------------------------------------------------------------------ BDD100K: crowd ignore regions
BDD_CLASSES = {"pedestrian": 1, "car": 2}  # TrackEval BDD100K class name -> our unified id (person, vehicle)


def _scripted_bdd_sequence(rng: np.random.Generator, frames: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """(gt rows, tracker rows) of one sequence as MOT matrices; crowd boxes are gt class 0, conf 0.

    Coordinates are multiples of 0.25 px so that xywh and xyxy describe the same boxes exactly (TrackEval's
    BDD100K reader computes IoU on x1,y1,x2,y2; ours on x,y,w,h).
    """
    q = lambda v: np.round(np.asarray(v) * 4) / 4  # noqa: E731
    crowds = [[400.0, 40.0, 160.0, 120.0], [60.0, 300.0, 120.0, 100.0]]
    gt, trk = [], []
    for f in range(1, frames + 1):
        for k in range(6):  # pedestrians walking right, cars driving left
            cls = 1 if k < 4 else 2
            box = q([20 + 9 * f + 60 * k, 150 + 25 * k, 30 if cls == 1 else 80, 70 if cls == 1 else 40])
            gt.append([f, k + 1, *box, 1, cls, 1])
            if rng.random() < 0.85:  # missed 15 %
                pid = k + 1 if f < 7 or k > 1 else 2 - k  # ids of objects 0 and 1 swap from frame 7
                trk.append([f, 100 + pid, *q(box + rng.normal(0, 3, 4)), 0.9, cls, -1])
        for c in crowds:
            gt.append([f, -1, *c, 0, 0, 1])
        # false positives: inside a crowd region (removed), half inside (kept: IoA 0.5 is not > 0.5), elsewhere
        x, y, w, h = crowds[f % 2]
        trk.append([f, 900, *q([x + 10, y + 10, 40, 60]), 0.5, 1, -1])
        trk.append([f, 901, *q([x - 20, y + 10, 40, 60]), 0.5, 2, -1])
        trk.append([f, 902, *q([700 + rng.uniform(0, 40), 400, 50, 50]), 0.5, 1 + f % 2, -1])
    return np.asarray(gt, float), np.asarray(trk, float)


def _scalabel(rows: np.ndarray, *, gt: bool, seq: str) -> list[dict]:
    """MOT rows -> BDD100K Scalabel frames as TrackEval's BDD100K dataset reads them (index 0-based)."""
    names = {v: k for k, v in BDD_CLASSES.items()}
    out = []
    for f in range(1, int(rows[:, 0].max()) + 1):
        labels = []
        for r in rows[rows[:, 0] == f]:
            crowd = gt and r[7] == 0
            lab = {"id": str(int(r[1])) if r[1] >= 0 else str(5000 + len(labels)),
                   "category": "pedestrian" if crowd else names[int(r[7])],
                   "box2d": {"x1": r[2], "y1": r[3], "x2": r[2] + r[4], "y2": r[3] + r[5]}}
            if gt:
                lab["attributes"] = {"Crowd": bool(crowd), "Occluded": False, "Truncated": False}
            else:
                lab["score"] = float(r[6])
            labels.append(lab)
        out.append({"name": f"{seq}-{f:07d}.jpg", "videoName": seq, "index": f - 1, "labels": labels})
    return out


def test_crowd_rule_equals_trackeval_bdd100k_runner(tmp_path):
    """BUILD_CROWD_RULES (class 0 = ignore region) gives TrackEval's BDD100K numbers per class."""
    import json

    from train.evaluate.scoring import BUILD_CROWD_RULES

    rng = np.random.default_rng(1)
    sequences = []
    for s in range(2):
        seq = f"b{s}"
        gt_rows, trk_rows = _scripted_bdd_sequence(rng)
        (tmp_path / "gt").mkdir(exist_ok=True)
        (tmp_path / "gt" / f"{seq}.json").write_text(json.dumps(_scalabel(gt_rows, gt=True, seq=seq)))
        data_dir = tmp_path / "trackers" / TRACKER / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / f"{seq}.json").write_text(json.dumps(_scalabel(trk_rows, gt=False, seq=seq)))
        sequences.append(SequenceData(seq, int(gt_rows[:, 0].max()), MotTable.from_matrix(gt_rows),
                                      MotTable.from_matrix(trk_rows)))
    ds_cfg = {"GT_FOLDER": str(tmp_path / "gt"), "TRACKERS_FOLDER": str(tmp_path / "trackers"),
              "TRACKERS_TO_EVAL": [TRACKER], "CLASSES_TO_EVAL": list(BDD_CLASSES), "PRINT_CONFIG": False}
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
               trackeval.metrics.Identity({"PRINT_CONFIG": False})]
    # TrackEval's own BDD100K reader and preprocessing, metric by metric (its Evaluator cannot combine the
    # empty BIKE super-category when only two classes are evaluated, so the loop it runs is written out here).
    dataset = trackeval.datasets.BDD100K(ds_cfg)
    raw = {seq: dataset.get_raw_seq_data(TRACKER, seq) for seq in dataset.seq_list}
    official = {cls: {m.get_name(): m.combine_sequences(
        {seq: m.eval_sequence(dataset.get_preprocessed_seq_data(r, cls)) for seq, r in raw.items()})
        for m in metrics} for cls in BDD_CLASSES}
    ours = evaluate_sequences(sequences, {"person": 1, "vehicle": 2}, BUILD_CROWD_RULES)["per_class"]
    for name, ours_name in (("pedestrian", "person"), ("car", "vehicle")):
        want = expected(official[name])
        assert want["FP"] > 0 and want["FN"] > 0 and (want["IDSW"] > 0 or name == "car"), name
        for key, value in want.items():
            assert ours[ours_name][key] == pytest.approx(value, abs=1e-9), (name, key)
    # the crowd rule matters here: without it the predictions inside the crowd regions are false positives
    no_rule = evaluate_sequences(sequences, {"person": 1, "vehicle": 2}, type(BUILD_CROWD_RULES)("crowd", ()))
    assert no_rule["per_class"]["person"]["FP"] > ours["person"]["FP"]
