"""Detection AP with pycocotools on small COCO-VID dicts shaped like a build's annotations/<split>.json."""

from __future__ import annotations

import json

import pytest

from train.errors import EvaluationError
from train.evaluate.coco import detections_to_coco, evaluate_detections, image_ids_by_frame, load_coco

PERSON = [10.0, 10.0, 40.0, 80.0]  # xywh, area 3200 px^2: "medium" (32^2 .. 96^2)
CAR = [200.0, 100.0, 120.0, 90.0]  # area 10800 px^2: "large"
IGNORE = [400.0, 50.0, 100.0, 100.0]


def coco_vid() -> dict:
    images = [{"id": i, "file_name": f"val/v__a/img1/{i:08d}.jpg", "video_id": 1, "frame_id": i,
               "width": 640, "height": 480} for i in (1, 2)]
    anns = []
    for im in (1, 2):
        anns.append({"image_id": im, "category_id": 1, "bbox": PERSON, "area": 3200, "iscrowd": 0, "instance_id": 1})
        anns.append({"image_id": im, "category_id": 2, "bbox": CAR, "area": 10800, "iscrowd": 0, "instance_id": 2})
        for cat in (1, 2):  # an ignore region is written once per category, iscrowd = 1
            anns.append({"image_id": im, "category_id": cat, "bbox": IGNORE, "area": 10000, "iscrowd": 1,
                         "instance_id": -1})
    for i, a in enumerate(anns, start=1):
        a.update(id=i, video_id=1)
    return {"videos": [{"id": 1, "name": "v__a"}], "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "vehicle"}]}


def det(image_id, cat, box, score=0.9):
    return {"image_id": image_id, "category_id": cat, "bbox": box, "score": score}


def test_perfect_detections_give_ap_100_and_ignore_regions_cost_nothing(tmp_path):
    path = tmp_path / "val.json"
    path.write_text(json.dumps(coco_vid()))
    dets = [det(i, c, b) for i in (1, 2) for c, b in ((1, PERSON), (2, CAR))]
    dets += [det(i, 1, IGNORE, 0.95) for i in (1, 2)]  # on the crowd region: matched to it, not an FP
    res = evaluate_detections(load_coco(path), dets)
    assert res["AP"] == pytest.approx(100.0) and res["AP50"] == pytest.approx(100.0)
    assert res["AR"] == pytest.approx(100.0)
    assert res["APm"] == pytest.approx(100.0) and res["APl"] == pytest.approx(100.0)
    assert res["APs"] is None  # no small ground truth: COCO's -1
    assert res["per_class"] == {"person": pytest.approx(100.0), "vehicle": pytest.approx(100.0)}


def test_missing_class_detections_halve_the_mean_ap():
    dets = [det(i, 1, PERSON) for i in (1, 2)]
    res = evaluate_detections(coco_vid(), dets)
    assert res["per_class"]["vehicle"] == 0.0
    assert res["AP"] == pytest.approx((100.0 + 0.0) / 2)


def test_false_positive_above_the_true_positive_lowers_ap():
    """One FP scored higher than the TP on one of 2 images: person precision drops below 1 at recall 1/2.."""
    dets = [det(1, 1, PERSON, 0.8), det(2, 1, PERSON, 0.8), det(1, 1, [300, 300, 40, 80], 0.9)]
    res = evaluate_detections(coco_vid(), dets)
    assert 0.0 < res["per_class"]["person"] < 100.0


def test_empty_detections():
    res = evaluate_detections(coco_vid(), [])
    assert res["AP"] == 0.0 and res["per_class"] == {"person": 0.0, "vehicle": 0.0}


def test_empty_detections_on_a_subset_judge_classes_by_that_subset():
    """No vehicle in image 3: with no detections its AP is undefined (None) there, not 0."""
    data = coco_vid()
    data["images"].append(dict(data["images"][0], id=3, frame_id=3))
    data["annotations"].append({"id": 99, "image_id": 3, "video_id": 1, "category_id": 1, "bbox": PERSON,
                                "area": 3200, "iscrowd": 0, "instance_id": 1})
    res = evaluate_detections(data, [det(1, 1, PERSON)], image_ids=[3])
    assert res["AP"] == 0.0 and res["per_class"] == {"person": 0.0, "vehicle": None}


def test_bad_detection_is_named():
    with pytest.raises(ValueError, match="detection 0: category_id 7"):
        evaluate_detections(coco_vid(), [det(1, 7, PERSON)])
    with pytest.raises(ValueError, match=r"missing key\(s\) \['score'\]"):
        evaluate_detections(coco_vid(), [{"image_id": 1, "category_id": 1, "bbox": PERSON}])


def test_restricting_image_ids_and_frame_lookup():
    coco = load_coco(coco_vid())
    assert image_ids_by_frame(coco, "v__a") == {1: 1, 2: 2}
    res = evaluate_detections(coco, [det(1, 1, PERSON), det(1, 2, CAR)], image_ids=[1])
    assert res["AP"] == pytest.approx(100.0)
    with pytest.raises(EvaluationError, match="nope"):
        image_ids_by_frame(coco, "nope")


def test_detections_to_coco_converts_xyxy_to_xywh():
    out = detections_to_coco(3, [[10, 20, 50, 100]], [0.5], [2])
    assert out == [{"image_id": 3, "category_id": 2, "bbox": [10.0, 20.0, 40.0, 80.0], "score": 0.5}]


# ------------------------------------------------------------------------------------------ --det from the CLI
def test_det_cli_on_a_build_split(tiny_builds, tmp_path, capsys):
    """The build's own ground truth as detections: AP 100 for every class with ground truth; a detection naming an
    image the split does not have is a clear error."""
    from train.evaluate.__main__ import main as evaluate_main

    gt = json.loads((tiny_builds[1] / "annotations" / "val.json").read_text())
    dets = [det(a["image_id"], a["category_id"], a["bbox"], 1.0) for a in gt["annotations"] if not a["iscrowd"]]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    assert evaluate_main(["--det", str(tmp_path / "dets.json"), "--build", str(tiny_builds[1]), "--split", "val",
                          "--json", str(tmp_path / "ap.json")]) == 0
    ap = json.loads((tmp_path / "ap.json").read_text())
    assert ap["AP"] == pytest.approx(100.0) and all(v == pytest.approx(100.0) for v in ap["per_class"].values())
    (tmp_path / "bad.json").write_text(json.dumps([det(10**9, 1, PERSON)]))
    capsys.readouterr()
    assert evaluate_main(["--det", str(tmp_path / "bad.json"), "--build", str(tiny_builds[1])]) == 2
    assert "names image_id 1000000000, not an image of val" in capsys.readouterr().err


def test_det_on_raw_bdd100k_labels_uses_scalabels_box_convention(tmp_path, capsys):
    """BDD100K detection labels: a car x1=100, x2=102 (height 10) and an 'other person' (an ignored region of class
    pedestrian). A car prediction at x1=101, x2=103 has IoU 2 * 11 / (3 * 11 * 2 - 2 * 11) = 0.5 with Scalabel's
    +1 widths: a match at IoU threshold 0.50 only, so AP50 = 100 and AP = 100 / 10 (one of the ten thresholds
    0.50:0.95); with the 2020 convention IoU = 1/3: AP 0. A pedestrian prediction on the ignored region costs nothing
    (pedestrian has no ground truth: None)."""
    from train.evaluate.__main__ import main as evaluate_main

    labels = [{"name": "a.jpg", "labels": [
        {"id": "1", "category": "car", "box2d": {"x1": 100, "y1": 50, "x2": 102, "y2": 60}},
        {"id": "2", "category": "other person", "box2d": {"x1": 300, "y1": 100, "x2": 340, "y2": 200}}]},
        {"name": "b.jpg", "labels": []}]
    preds = [{"name": "a.jpg", "labels": [
        {"category": "car", "score": 0.9, "box2d": {"x1": 101, "y1": 50, "x2": 103, "y2": 60}},
        {"category": "pedestrian", "score": 0.8, "box2d": {"x1": 300, "y1": 100, "x2": 340, "y2": 200}}]},
        {"name": "unlabelled.jpg", "labels": [{"category": "car", "score": 0.5,
                                               "box2d": {"x1": 1, "y1": 1, "x2": 9, "y2": 9}}]}]
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    (tmp_path / "preds.json").write_text(json.dumps(preds))
    args = ["--det", str(tmp_path / "preds.json"), "--raw", "bdd100k", "--labels", str(tmp_path / "labels.json")]
    assert evaluate_main([*args, "--json", str(tmp_path / "s.json")]) == 0
    scalabel = json.loads((tmp_path / "s.json").read_text())
    assert scalabel["AP50"] == pytest.approx(100.0) and scalabel["AP75"] == pytest.approx(0.0)
    assert scalabel["AP"] == pytest.approx(100.0 / 10) and scalabel["per_class"]["pedestrian"] is None
    assert scalabel["warnings"] == {"predictions_for_unlabelled_frames": 1}
    assert evaluate_main([*args, "--box-convention", "2020", "--json", str(tmp_path / "o.json")]) == 0
    assert json.loads((tmp_path / "o.json").read_text())["AP"] == pytest.approx(0.0)
    labels[0]["labels"][0]["category"] = "tram"
    (tmp_path / "labels.json").write_text(json.dumps(labels))
    capsys.readouterr()
    assert evaluate_main(args) == 2
    assert "frame 0 label 0: unknown raw category 'tram'" in capsys.readouterr().err
