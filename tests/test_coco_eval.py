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
