"""The official protocols give the official tools' numbers: BDD100K (TrackEval's BDD100K runner per class, super
category and combined, on the real BDD100K val video of ../shared/realdata; class means and the box convention as
formulas), MOT15 (TrackEval's MOT15 handling), VisDrone2019-MOT (scripted cases, expected values written from the
toolkit's rules), absent-class false positives.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REALDATA

from builder.formats.motchallenge import write_results, write_seqmap
from train.evaluate.__main__ import main as evaluate_main
from train.evaluate.bdd100k import SUPER_CATEGORIES, TRACK_CLASSES
from train.evaluate.benchmarks import evaluate_raw
from train.evaluate.reference import (
    perturbed_scalabel_frames,
    trackeval_bdd100k_reference,
    trackeval_mot17_reference,
)

BDD_FILE = REALDATA / "bdd100k-boxtrack" / "b1c66a42-6f7d68ca.json"
TRACKER = "perturbed"


def official_fields(fields: dict) -> dict:
    """TrackEval's result fields in our keys and scale (0-100 ratios, integer counts)."""
    hota, clear, ident = fields["HOTA"], fields["CLEAR"], fields["Identity"]
    out = {k: 100 * float(np.mean(hota[k])) for k in ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr")}
    out.update(MOTA=100 * clear["MOTA"], MOTP=100 * clear["MOTP"], IDF1=100 * ident["IDF1"], IDP=100 * ident["IDP"],
               IDR=100 * ident["IDR"], IDSW=clear["IDSW"], FP=clear["CLR_FP"], FN=clear["CLR_FN"], TP=clear["CLR_TP"],
               Frag=clear["Frag"], MT=clear["MT"], PT=clear["PT"], ML=clear["ML"], IDTP=ident["IDTP"])
    return out


def assert_equal_fields(ours: dict, official: dict, where: str, skip: tuple[str, ...] = ()) -> None:
    for key, value in official_fields(official).items():
        if key not in skip:
            assert ours[key] == pytest.approx(value, abs=1e-9), (where, key)


#: Counts the BDD100K protocol takes from py-motmetrics, as Scalabel does (TrackEval's CLEAR defines them otherwise).
MOTMETRICS = ("MT", "PT", "ML", "Frag")


# ------------------------------------------------------------------------------------------------ BDD100K
def _to_2020(frames: list[dict], *, gt: bool) -> list[dict]:
    """BDD100K's 2020 format as TrackEval's BDD100K dataset reads it: ``index``, ``Crowd``, integer ids."""
    ids: dict[str, int] = {}
    out = []
    for f in frames:
        labels = []
        for lab in f["labels"]:
            new = {"id": ids.setdefault(lab["id"], len(ids) + 1), "category": lab["category"], "box2d": lab["box2d"]}
            if gt:
                new["attributes"] = {"Crowd": bool(lab["attributes"].get("crowd")), "Occluded": False}
            labels.append(new)
        out.append({"name": f["name"], "video_name": f["videoName"], "index": f["frameIndex"], "labels": labels})
    return out


@pytest.fixture(scope="module")
def bdd_case(tmp_path_factory) -> Path:
    """The real val video as a raw BDD100K root, perturbed predictions as Scalabel JSON, and both in TrackEval's
    BDD100K layout."""
    if not BDD_FILE.is_file():
        pytest.skip("../shared/realdata/bdd100k-boxtrack not available")
    root = tmp_path_factory.mktemp("bdd")
    frames = json.loads(BDD_FILE.read_text())
    video = frames[0]["videoName"]
    labels = root / "raw" / "labels" / "box_track_20" / "val"
    labels.mkdir(parents=True)
    shutil.copy(BDD_FILE, labels / f"{video}.json")
    preds = perturbed_scalabel_frames(frames)
    (root / "results").mkdir()
    (root / "results" / f"{video}.json").write_text(json.dumps(preds))
    (root / "te_gt").mkdir()
    (root / "te_gt" / f"{video}.json").write_text(json.dumps(_to_2020(frames, gt=True)))
    (root / "te_trk" / TRACKER / "data").mkdir(parents=True)
    (root / "te_trk" / TRACKER / "data" / f"{video}.json").write_text(json.dumps(_to_2020(preds, gt=False)))
    return root


def test_bdd100k_8_classes_equal_trackeval_bdd100k_runner(bdd_case):
    """2020 box convention (TrackEval's): every class, every super category and the combined row equal TrackEval's;
    mMOTA / mIDF1 / mHOTA are the mean over the 8 classes with absent classes 0 (scalabel/eval/mot.py)."""
    official = trackeval_bdd100k_reference(bdd_case / "te_gt", bdd_case / "te_trk", TRACKER)
    ours = evaluate_raw("bdd100k", bdd_case / "raw", "val", bdd_case / "results",
                        box_convention="2020")["val_sets"]["bdd100k"]
    assert list(ours["per_class"]) == list(TRACK_CLASSES) and ours["protocol"] == "official"
    for cls in TRACK_CLASSES:
        assert_equal_fields(ours["per_class"][cls], official[cls], cls, skip=MOTMETRICS)
    for sup in SUPER_CATEGORIES:
        assert_equal_fields(ours["super_categories"][sup], official[sup.upper()], sup, skip=MOTMETRICS)
    assert_equal_fields(ours["combined"], official["cls_comb_det_av"], "combined", skip=MOTMETRICS)
    comb = official_fields(official["cls_comb_det_av"])
    assert comb["IDSW"] > 0 and comb["FN"] > 0 and comb["FP"] > 0  # the perturbation exercises the metrics
    # class means: mean over the 8 classes, a class without ground truth counting 0
    present = {c: official[c]["CLEAR"]["CLR_TP"] + official[c]["CLEAR"]["CLR_FN"] > 0 for c in TRACK_CLASSES}
    assert not present["train"] and not present["bicycle"] and sum(present.values()) == 6
    for ours_key, metric, field in (("MOTA", "CLEAR", "MOTA"), ("IDF1", "Identity", "IDF1")):
        want = sum(100 * official[c][metric][field] if present[c] else 0.0 for c in TRACK_CLASSES) / 8
        assert ours["class_mean"][ours_key] == pytest.approx(want, abs=1e-9), ours_key
    want_hota = sum(100 * float(np.mean(official[c]["HOTA"]["HOTA"])) for c in TRACK_CLASSES if present[c]) / 8
    assert ours["class_mean"]["HOTA"] == pytest.approx(want_hota, abs=1e-9)


def test_bdd100k_absent_class_predictions_are_false_positives_like_trackeval(bdd_case):
    """The 'train' predictions (no 'train' ground truth): each is a false positive of 'train' and of the combined
    row, the count TrackEval's BDD100K runner gives; MOTA of 'train' is -100 * FP there, 0 in the class mean."""
    official = trackeval_bdd100k_reference(bdd_case / "te_gt", bdd_case / "te_trk", TRACKER)
    ours = evaluate_raw("bdd100k", bdd_case / "raw", "val", bdd_case / "results",
                        box_convention="2020")["val_sets"]["bdd100k"]
    n_train = sum(lab["category"] == "train" for f in json.loads(
        next((bdd_case / "results").glob("*.json")).read_text()) for lab in f["labels"])
    assert n_train == 202 and ours["per_class"]["train"]["FP"] == official["train"]["CLEAR"]["CLR_FP"] == n_train
    assert ours["combined"]["FP"] == official["cls_comb_det_av"]["CLEAR"]["CLR_FP"]
    assert ours["combined"]["FP"] >= n_train and ours["per_class"]["train"]["MOTA"] == pytest.approx(-100 * n_train)


def test_bdd100k_scalabel_box_convention_on_a_scripted_box(tmp_path):
    """One ground-truth car x1=100, x2=102 and a prediction x1=101, x2=103 (heights 10): without +1 the IoU is
    1 * 10 / (2 * 10 + 2 * 10 - 1 * 10) = 1/3 < 0.5 (a miss and a false positive); Scalabel's width x2 - x1 + 1
    gives 2 * 11 / (3 * 11 + 3 * 11 - 2 * 11) = 0.5, a match: MOTA 100 and MOTP = 100 * 0.5."""
    labels = tmp_path / "raw" / "labels" / "box_track_20" / "val"
    labels.mkdir(parents=True)
    box = {"x1": 100.0, "y1": 50.0, "x2": 102.0, "y2": 60.0}
    gt = [{"name": "v-0000001.jpg", "videoName": "v", "frameIndex": 0,
           "labels": [{"id": "1", "category": "car", "attributes": {"crowd": False}, "box2d": box}]}]
    (labels / "v.json").write_text(json.dumps(gt))
    pred = [dict(gt[0], labels=[{"id": "7", "category": "car", "score": 1.0,
                                 "box2d": dict(box, x1=101.0, x2=103.0)}])]
    (tmp_path / "preds.json").write_text(json.dumps(pred))
    scalabel = evaluate_raw("bdd100k", tmp_path / "raw", "val", tmp_path / "preds.json")["val_sets"]["bdd100k"]
    old = evaluate_raw("bdd100k", tmp_path / "raw", "val", tmp_path / "preds.json",
                       box_convention="2020")["val_sets"]["bdd100k"]
    car_s, car_o = scalabel["per_class"]["car"], old["per_class"]["car"]
    assert (car_s["TP"], car_s["FP"], car_s["FN"]) == (1, 0, 0) and car_s["MOTA"] == pytest.approx(100.0)
    assert car_s["MOTP"] == pytest.approx(100 * 0.5)
    assert (car_o["TP"], car_o["FP"], car_o["FN"]) == (0, 1, 1) and car_o["MOTA"] == pytest.approx(100 * (0 - 1) / 1)
    # one class of 8 present: mMOTA = MOTA_car / 8
    assert scalabel["class_mean"]["MOTA"] == pytest.approx(100.0 / 8)


def test_bdd100k_mostly_tracked_and_fragmentations_follow_motmetrics(tmp_path):
    """Scalabel takes MT / PT / ML and FM from py-motmetrics (motmetrics/metrics.py): a car tracked in exactly 4 of
    its 5 frames has tracked ratio 0.8 >= 0.8, mostly tracked (TrackEval's CLEAR: > 0.8, partially tracked); its one
    tracked -> missed -> tracked gap is one fragmentation; a second car annotated in frames 1, 2 and 4 (not in 3) and
    tracked in all three has no fragmentation (a frame without its annotation is no miss)."""
    labels = tmp_path / "raw" / "labels" / "box_track_20" / "val"
    labels.mkdir(parents=True)
    a, b = {"x1": 100.0, "y1": 50.0, "x2": 200.0, "y2": 120.0}, {"x1": 600.0, "y1": 50.0, "x2": 700.0, "y2": 120.0}
    gt, preds = [], []
    for k in range(5):
        objs = [("a", a)] + ([("b", b)] if k in (0, 1, 3) else [])
        gt.append({"name": f"v-{k}.jpg", "videoName": "v", "frameIndex": k, "labels": [
            {"id": i, "category": "car", "attributes": {}, "box2d": box} for i, box in objs]})
        tracked = [(i, box) for i, box in objs if not (i == "a" and k == 2)]
        preds.append(dict(gt[-1], labels=[{"id": f"p{i}", "category": "car", "box2d": box} for i, box in tracked]))
    (labels / "v.json").write_text(json.dumps(gt))
    (tmp_path / "preds.json").write_text(json.dumps(preds))
    car = evaluate_raw("bdd100k", tmp_path / "raw", "val", tmp_path / "preds.json")["val_sets"]["bdd100k"]["per_class"][
        "car"]
    assert (car["MT"], car["PT"], car["ML"], car["Frag"]) == (2, 0, 0, 1)
    assert (car["TP"], car["FN"], car["FP"], car["IDSW"]) == (4 + 3, 1, 0, 0)


def test_bdd100k_bad_results_are_clear_errors(tmp_path, capsys):
    labels = tmp_path / "raw" / "labels" / "box_track_20" / "val"
    labels.mkdir(parents=True)
    gt = [{"name": "v-1.jpg", "videoName": "v", "frameIndex": 0, "labels": []}]
    (labels / "v.json").write_text(json.dumps(gt))
    cases = {
        "unknown_video.json": ([dict(gt[0], videoName="w")], "video(s) not in the ground truth: w"),
        "unknown_cat.json": ([dict(gt[0], labels=[{"id": "1", "category": "tram", "box2d": {
            "x1": 1, "y1": 1, "x2": 5, "y2": 5}}])], "frame 0 label 0: unknown raw category 'tram'"),
        "bad_box.json": ([dict(gt[0], labels=[{"id": "1", "category": "car", "box2d": {"x1": 1}}])],
                         "frame 0 label 0: 'box2d' must be an object with x1, y1, x2, y2"),
        "bad_frame.json": ([dict(gt[0], frameIndex=5)], "frameIndex 5 is not a frame of video v"),
        "malformed.json": (None, "malformed JSON"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_text(json.dumps(content) if content is not None else '[{"name": ')
        assert evaluate_main(["--results", str(path), "--raw", "bdd100k", "--root", str(tmp_path / "raw")]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (name, err)
    assert evaluate_main(["--results", str(tmp_path), "--raw", "bdd100k", "--root", str(tmp_path / "raw"),
                          "--protocol", "bogus"]) == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err
    assert evaluate_main(["--results", str(tmp_path), "--raw", "mot17", "--root", str(tmp_path / "raw"),
                          "--classes", "person"]) == 2
    assert "--classes does not apply to the official mot17 protocol" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ MOT15
def _mot15_case(root: Path) -> None:
    """TrackEval's layout for one MOT15 sequence: 10-column gt (class -1, world coordinates -1; one row conf 0) and
    a tracker file whose columns 8-10 are -1."""
    seq = root / "gt" / "MOT15-train" / "PETS-like"
    (seq / "gt").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=PETS-like\nimDir=img1\nframeRate=7\nseqLength=6\n"
                                     "imWidth=768\nimHeight=576\nimExt=.jpg\n")
    rng = np.random.default_rng(3)
    gt, trk = [], []
    for t in range(1, 7):
        for k in range(4):
            x, y = 50 + 120 * k + 4 * t, 200 + 10 * k
            gt.append(f"{t},{k + 1},{x},{y},40,100,{0 if (k, t) == (3, 2) else 1},-1,-1,-1")
            if rng.random() < 0.85:
                tid = k + 1 if t < 4 or k > 1 else 2 - k
                trk.append(f"{t},{tid},{x + rng.normal(0, 3):.2f},{y + rng.normal(0, 3):.2f},40,100,0.9,-1,-1,-1")
        trk.append(f"{t},99,{600 + 5 * t},{100},40,100,0.3,-1,-1,-1")
    (seq / "gt" / "gt.txt").write_text("\n".join(gt) + "\n")
    data = root / "trackers" / "MOT15-train" / TRACKER / "data"
    data.mkdir(parents=True)
    (data / "PETS-like.txt").write_text("\n".join(trk) + "\n")
    write_seqmap(root / "gt" / "seqmaps" / "MOT15-train.txt", ["PETS-like"])


def test_mot15_equals_trackeval_mot15_handling(tmp_path):
    _mot15_case(tmp_path)
    official = trackeval_mot17_reference(tmp_path, TRACKER, benchmark="MOT15")
    ours = evaluate_raw("mot15", tmp_path / "gt", "MOT15-train", tmp_path / "trackers" / "MOT15-train" / TRACKER /
                        "data")["val_sets"]["mot15"]
    assert_equal_fields(ours["combined"], official["COMBINED_SEQ"], "combined")
    assert ours["combined"]["GT_Dets"] == 6 * 4 - 1 and ours["combined"]["IDSW"] > 0
    # a result file for a sequence the ground truth does not have is not scored, and counted
    data = tmp_path / "trackers" / "MOT15-train" / TRACKER / "data"
    shutil.copy(data / "PETS-like.txt", data / "Other.txt")
    again = evaluate_raw("mot15", tmp_path / "gt", "MOT15-train", data)["val_sets"]["mot15"]
    assert again["combined"] == ours["combined"] and again["warnings"] == {"results_not_in_ground_truth": 1}
    # as MOT17 the same files are refused (TrackEval: "invalid gt classes"), not scored HOTA 0 without a word
    assert evaluate_main(["--results", str(tmp_path / "trackers" / "MOT15-train" / TRACKER / "data"), "--raw",
                          "mot17", "--root", str(tmp_path / "gt"), "--split", "MOT15-train"]) == 2


# ------------------------------------------------------------------------------------------------ VisDrone
def _visdrone_root(root: Path, gt_rows: list[str]) -> Path:
    """A VisDrone2019-MOT val split of one 640x480 sequence with ``gt_rows`` (frame,id,x,y,w,h,score,cat,t,o)."""
    split = root / "VisDrone2019-MOT-val"
    (split / "annotations").mkdir(parents=True)
    (split / "sequences" / "s").mkdir(parents=True)
    cv2.imwrite(str(split / "sequences" / "s" / "0000001.jpg"), np.zeros((480, 640, 3), np.uint8))
    (split / "annotations" / "s.txt").write_text("\n".join(gt_rows) + "\n")
    return root


def _visdrone(root: Path, rows: list[tuple]) -> dict:
    """Score result rows (frame, id, x, y, w, h, category) with the official protocol."""
    m = np.array(rows, float).reshape(-1, 7)
    write_results(root / "res" / "s.txt", m[:, 0], m[:, 1], m[:, 2:6], np.ones(len(m)), m[:, 6])
    return evaluate_raw("visdrone", root, "val", root / "res")["val_sets"]["visdrone"]


def test_visdrone_toolkit_rules_on_scripted_cases(tmp_path):
    """Expected values from the toolkit's rules (eval/dropObjects.m, classEval.m, evaluateBenchmark.m):

    - ignored region (category 0) x=90, y=90, w=20, h=40 fills map columns 90..110, rows 90..130 (inclusive);
    - pedestrian A at x=100, y=100, 20 x 20: its count is rows 101..120 x columns 101..110 = 200 of 400 pixels,
      50 % -> removed from ground truth (neither TP nor FN), and the prediction on it removed as well;
    - a car prediction at x=200, y=300, 10 x 10 inside region B (x=196, y=296, w=10, h=20): 6 x 10 = 60 % inside
      -> removed (not a FP); one at x=400, y=300 with 4 of 10 columns in region C (x=407, y=296) -> 40 %, kept: FP;
    - a "people" box (category 2) with a "people" prediction on it: not scored (no class, no count);
    - a van with a van prediction on it: a TP of van; a truck and a car without prediction: FNs.
    """
    gt = ["1,1,90,90,20,40,0,0,0,0", "1,2,100,100,20,20,1,1,0,0", "1,3,196,296,10,20,0,0,0,0",
          "1,4,407,296,10,20,0,0,0,0", "1,5,300,50,30,30,1,2,0,0", "1,6,500,50,40,20,1,5,0,0",
          "1,7,500,200,40,20,1,6,0,0", "1,8,50,400,30,20,1,4,0,0"]
    root = _visdrone_root(tmp_path, gt)
    res = _visdrone(root, [(1, 11, 100, 100, 20, 20, 1), (1, 12, 200, 300, 10, 10, 4), (1, 13, 400, 300, 10, 10, 4),
                           (1, 14, 300, 50, 30, 30, 2), (1, 15, 500, 50, 40, 20, 5)])
    per = res["per_class"]
    assert list(per) == ["car", "bus", "truck", "pedestrian", "van"] and res["protocol"] == "official"
    assert (per["pedestrian"]["GT_Dets"], per["pedestrian"]["FP"], per["pedestrian"]["FN"]) == (0, 0, 0)
    assert (per["car"]["FP"], per["car"]["FN"], per["car"]["TP"]) == (1, 1, 0)
    assert per["car"]["MOTA"] == pytest.approx(100 * (1 - (1 + 1 + 0) / 1))
    assert (per["van"]["TP"], per["van"]["FP"], per["van"]["FN"]) == (1, 0, 0) and per["van"]["MOTA"] == 100.0
    assert (per["truck"]["FN"], per["truck"]["TP"]) == (1, 0)
    comb = res["combined"]  # evaluateBenchmark.m: counts summed over the classes
    assert (comb["TP"], comb["FP"], comb["FN"], comb["GT_Dets"]) == (1, 1, 2, 3)
    assert comb["MOTA"] == pytest.approx(100 * (1 - (2 + 1 + 0) / 3))
    # the class mean: van 100, truck 0 (a miss), car -100, bus / pedestrian without ground truth 0
    assert res["class_mean"]["MOTA"] == pytest.approx((100.0 + 0.0 - 100.0 + 0.0 + 0.0) / 5)


def test_visdrone_predictions_of_a_class_without_ground_truth_in_the_sequence_are_skipped(tmp_path):
    """classEval.m evaluates no (sequence, class) pair without ground truth: a bus prediction on a sequence without
    buses is not a false positive in the toolkit; it is counted as not scored."""
    root = _visdrone_root(tmp_path, ["1,1,100,100,30,30,1,4,0,0"])
    res = _visdrone(root, [(1, 1, 100, 100, 30, 30, 4), (1, 2, 300, 300, 50, 30, 9)])
    assert res["combined"]["FP"] == 0 and res["per_class"]["bus"]["FP"] == 0
    assert res["warnings"]["predictions_not_scored"] == 1


def test_visdrone_without_images_is_a_clear_error(tmp_path, capsys):
    root = _visdrone_root(tmp_path, ["1,1,100,100,30,30,1,4,0,0"])
    (root / "VisDrone2019-MOT-val" / "sequences" / "s" / "0000001.jpg").unlink()
    write_results(root / "res" / "s.txt", [1], [1], [[100, 100, 30, 30]], [1.0], [4])
    assert evaluate_main(["--results", str(root / "res"), "--raw", "visdrone", "--root", str(root)]) == 2
    assert "no image to take the frame size from" in capsys.readouterr().err
