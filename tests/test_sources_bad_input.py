"""One test per case of the bad-input policy in builder/sources/base.py's module docstring."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from builder.classmap import ClassMap, default_classmap_path
from builder.errors import BuilderError
from builder.records import IGNORE, WarningCounter
from builder.sources import get_source
from builder.sources.base import duplicate_track_ids

W, H = 100, 50  # frame size of every fixture, from seqinfo.ini (no images: no header to read)


def mot_source(tmp_path: Path, gt_text: str, *, seq_length=5, name="seq", warnings=None):
    """A mot17 root with one train sequence whose gt.txt holds ``gt_text``; returns (adapter, gt path)."""
    seq = tmp_path / "train" / name
    (seq / "gt").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text(f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\n"
                                     f"seqLength={seq_length}\nimWidth={W}\nimHeight={H}\nimExt=.jpg\n")
    (seq / "gt" / "gt.txt").write_text(gt_text)
    cmap = ClassMap.load(default_classmap_path("mot17"), ["person", "vehicle"])
    return get_source("mot17")(tmp_path, cmap, warnings or WarningCounter()), seq / "gt" / "gt.txt"


def bdd_source(tmp_path: Path, content: str, warnings=None):
    folder = tmp_path / "labels" / "box_track_20" / "val"
    folder.mkdir(parents=True)
    (folder / "v.json").write_text(content)
    cmap = ClassMap.load(default_classmap_path("bdd100k"), ["person", "vehicle"])
    return get_source("bdd100k")(tmp_path, cmap, warnings or WarningCounter()), folder / "v.json"


def bdd_frames(*labels_per_frame):
    return json.dumps([{"name": f"v-{i + 1:07d}.jpg", "videoName": "v", "frameIndex": i, "labels": labels}
                       for i, labels in enumerate(labels_per_frame)], indent=1)


def car(x1, y1, x2, y2, tid="c1"):
    return {"id": tid, "category": "car", "attributes": {"crowd": False}, "box2d": dict(x1=x1, y1=y1, x2=x2, y2=y2)}


def boxes_of(seq):
    return [(f.index, int(t), b.tolist()) for f in seq.frames for t, b in zip(f.track_ids, f.boxes, strict=True)]


# -- errors ---------------------------------------------------------------------------------------------

def test_malformed_json_names_file_and_line(tmp_path):
    text = bdd_frames([car(1, 1, 5, 5)]).replace('"category"', '"category" :: ', 1)
    src, path = bdd_source(tmp_path, text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "::" in s)
    with pytest.raises(BuilderError, match=rf"{path}:{line}:\d+: malformed JSON"):
        src.read_sequence("val", "v")


def test_malformed_text_row_names_file_and_line(tmp_path):
    src, path = mot_source(tmp_path, "1,1,1,1,5,5,1,1,1\n1,2,1,abc,5,5,1,1,1\n")
    with pytest.raises(BuilderError, match=rf"{path}:2: column 'y' is not a number \('abc'\)"):
        src.read_sequence("train", "seq")


def test_wrong_column_count_names_line_and_expected_columns(tmp_path):
    src, path = mot_source(tmp_path, "1,1,1,1,5,5,1,1,1\n\n1,2,1,1,5,5,1\n")
    with pytest.raises(BuilderError, match=rf"{path}:3: expected 9 to 10 columns \(frame,id,x,y,w,h,conf,class,"
                                           r"visibility,extra\), got 7"):
        src.read_sequence("train", "seq")


def test_every_row_with_wrong_column_count(tmp_path):
    src, path = mot_source(tmp_path, "1,1,1,1,5,5,1\n")  # consistent but 7 columns: det.txt, not gt.txt
    with pytest.raises(BuilderError, match=rf"{path}:1: expected 9 to 10 columns"):
        src.read_sequence("train", "seq")


def test_non_integer_frame_is_an_error(tmp_path):
    src, path = mot_source(tmp_path, "1,1,1,1,5,5,1,1,1\n1.5,2,1,1,5,5,1,1,1\n")
    with pytest.raises(BuilderError, match=rf"{path}:2: column 'frame' must be an integer"):
        src.read_sequence("train", "seq")


def test_json_label_missing_key(tmp_path):
    label = car(1, 1, 5, 5)
    del label["box2d"]
    src, path = bdd_source(tmp_path, bdd_frames([], [car(1, 1, 5, 5), label]))
    # the second frame object (frameIndex 1) is frame 2, as in every other BDD100K message
    with pytest.raises(BuilderError, match=rf"{path}: frame 2 label 1: missing key 'box2d'"):
        src.read_sequence("val", "v")


@pytest.mark.parametrize(("key", "value"), [("id", ["c1"]), ("category", {"name": "car"})])
def test_json_label_with_unhashable_id_or_category(tmp_path, key, value):
    label = car(1, 1, 5, 5) | {key: value}
    src, path = bdd_source(tmp_path, bdd_frames([car(1, 1, 5, 5)], [label]))
    with pytest.raises(BuilderError, match=rf"{path}: frame 2 label 0: id must be a string or integer"):
        src.read_sequence("val", "v")


def test_json_frame_without_index_names_its_position(tmp_path):
    frames = json.loads(bdd_frames([], []))
    del frames[1]["frameIndex"]
    src, path = bdd_source(tmp_path, json.dumps(frames))
    with pytest.raises(BuilderError, match=rf"{path}: frame object 1 \(0-based position in the file\): "
                                           "expected an integer 'frameIndex'"):
        src.read_sequence("val", "v")


def test_json_not_a_frame_list(tmp_path):
    src, path = bdd_source(tmp_path, '{"frames": []}')
    with pytest.raises(BuilderError, match=rf"{path}: expected a JSON list of frame objects"):
        src.read_sequence("val", "v")


def test_unknown_category_in_text_names_file_line_and_category(tmp_path):
    src, path = mot_source(tmp_path, "1,1,1,1,5,5,1,1,1\n2,1,1,1,5,5,1,42,1\n")
    with pytest.raises(BuilderError, match=rf"{path}:2: unknown raw category '42'"):
        src.read_sequence("train", "seq")


def test_unknown_category_in_json_names_file_and_category(tmp_path):
    label = car(1, 1, 5, 5) | {"category": "scooter"}
    src, path = bdd_source(tmp_path, bdd_frames([car(1, 1, 5, 5)], [label]))
    with pytest.raises(BuilderError, match=rf"{path} frame 2: unknown raw category 'scooter'"):
        src.read_sequence("val", "v")


@pytest.mark.parametrize("name", ["../escape", "a/b", "a..b"])
def test_unsafe_sequence_name_is_an_error(tmp_path, name):
    src, _ = mot_source(tmp_path, "")
    with pytest.raises(BuilderError, match="not a safe directory name"):
        src.read_sequence("train", name)


def test_unsafe_video_name_inside_bdd_file(tmp_path):
    text = bdd_frames([car(1, 1, 5, 5)]).replace('"videoName": "v"', '"videoName": "../../etc"')
    src, _ = bdd_source(tmp_path, text)
    with pytest.raises(BuilderError, match="not a safe directory name"):
        src.read_sequence("val", "v")


def test_malformed_seqinfo_value_names_key(tmp_path):
    src, _ = mot_source(tmp_path, "")
    ini = tmp_path / "train" / "seq" / "seqinfo.ini"
    ini.write_text(ini.read_text().replace("seqLength=5", "seqLength=five"))
    with pytest.raises(BuilderError, match=rf"{ini}: \[Sequence\] seqLength='five' is not a number"):
        src.read_sequence("train", "seq")


def test_rule_on_an_attribute_the_source_lacks(tmp_path):
    cmap_path = tmp_path / "map.toml"
    cmap_path.write_text('[categories]\n"1" = "person"\n[[rules]]\nattribute = "crowd"\nequals = true\n'
                         'target = "ignore"\n')
    cmap = ClassMap.load(cmap_path, ["person"])
    with pytest.raises(BuilderError, match=r"map\.toml: rules read attribute\(s\) \['crowd'\] that source "
                                           r"'mot17' does not provide \(available: conf, visibility\)"):
        get_source("mot17")(tmp_path, cmap, WarningCounter())


# -- dropped, clipped or counted ------------------------------------------------------------------------

def test_nan_and_non_positive_sizes_are_dropped_and_counted(tmp_path):
    warnings = WarningCounter()
    gt = "1,1,1,1,5,5,1,1,1\n1,2,1,1,0,5,1,1,1\n1,3,1,1,5,-2,1,1,1\n1,4,1,1,nan,5,1,1,1\n"
    src, path = mot_source(tmp_path, gt, warnings=warnings)
    seq = src.read_sequence("train", "seq")
    assert boxes_of(seq) == [(1, 1, [1, 1, 6, 6])]
    assert warnings.as_dict() == {"box_invalid": 3}
    assert warnings.examples["box_invalid"] == [f"{path}:2"]


def test_null_coordinate_in_json_is_dropped_and_counted(tmp_path):
    warnings = WarningCounter()
    src, _ = bdd_source(tmp_path, bdd_frames([car(1, 1, 5, 5), car(None, 1, 5, 5, tid="c2")]), warnings)
    seq = src.read_sequence("val", "v")
    assert boxes_of(seq) == [(1, 1, [1, 1, 5, 5])]
    assert warnings.as_dict() == {"box_invalid": 1}


def test_partly_outside_boxes_are_kept_as_annotated_and_counted(tmp_path):
    warnings = WarningCounter()
    gt = f"1,1,-4,-3,10,10,1,1,1\n1,2,{W - 5},{H - 5},10,10,1,1,1\n1,3,10,10,5,5,1,1,1\n"
    src, path = mot_source(tmp_path, gt, warnings=warnings)
    seq = src.read_sequence("train", "seq")
    assert boxes_of(seq) == [(1, 1, [-4, -3, -4 + 10, -3 + 10]), (1, 2, [W - 5, H - 5, W + 5, H + 5]),
                             (1, 3, [10, 10, 15, 15])]
    assert warnings.as_dict() == {"box_partly_outside_frame": 2}
    assert warnings.examples["box_partly_outside_frame"] == [f"{path}:1"]


def test_wholly_outside_boxes_are_kept_and_counted(tmp_path):
    warnings = WarningCounter()
    gt = f"1,1,-20,5,10,10,1,1,1\n1,2,{W},5,10,10,1,1,1\n1,3,5,{H + 1},10,10,1,1,1\n1,4,5,5,10,10,1,1,1\n"
    src, _ = mot_source(tmp_path, gt, warnings=warnings)
    seq = src.read_sequence("train", "seq")
    assert [t for _, t, _ in boxes_of(seq)] == [1, 2, 3, 4]
    assert warnings.as_dict() == {"box_outside_frame": 3}


def test_duplicate_track_id_keeps_first_and_counts(tmp_path):
    warnings = WarningCounter()
    gt = "1,7,1,1,5,5,1,1,1\n1,7,20,20,5,5,1,1,1\n2,7,2,2,5,5,1,1,1\n1,7,30,30,5,5,1,1,1\n"
    src, path = mot_source(tmp_path, gt, warnings=warnings)
    seq = src.read_sequence("train", "seq")
    assert boxes_of(seq) == [(1, 7, [1, 1, 6, 6]), (2, 7, [2, 2, 7, 7])]
    assert warnings.as_dict() == {"duplicate_track_id": 2}
    assert warnings.examples["duplicate_track_id"] == [f"{path}:2"]


def test_ignore_regions_may_share_a_track_id(tmp_path):
    warnings = WarningCounter()  # class 8 (distractor) -> ignore; two of them with id 9 in frame 1
    src, _ = mot_source(tmp_path, "1,9,1,1,5,5,0,8,1\n1,9,20,20,5,5,0,8,1\n", warnings=warnings)
    seq = src.read_sequence("train", "seq")
    assert seq.frames[0].labels.tolist() == [IGNORE, IGNORE] and warnings.as_dict() == {}


def test_duplicate_string_track_id_in_json(tmp_path):
    warnings = WarningCounter()
    src, _ = bdd_source(tmp_path, bdd_frames([car(1, 1, 5, 5), car(10, 10, 20, 20)]), warnings)
    seq = src.read_sequence("val", "v")
    assert boxes_of(seq) == [(1, 1, [1, 1, 5, 5])]
    assert warnings.as_dict() == {"duplicate_track_id": 1}


def test_frame_out_of_range_is_dropped_and_counted(tmp_path):
    warnings = WarningCounter()
    src, _ = mot_source(tmp_path, "0,1,1,1,5,5,1,1,1\n3,1,1,1,5,5,1,1,1\n9,1,1,1,5,5,1,1,1\n", seq_length=5,
                        warnings=warnings)
    seq = src.read_sequence("train", "seq")
    assert boxes_of(seq) == [(3, 1, [1, 1, 6, 6])]
    assert seq.num_frames == 5
    assert warnings.as_dict() == {"frame_out_of_range": 2}


def test_duplicate_json_frame_keeps_first(tmp_path):
    warnings = WarningCounter()
    frames = json.loads(bdd_frames([car(1, 1, 5, 5)], []))
    frames.append(dict(frames[0], labels=[car(7, 7, 9, 9)]))
    src, _ = bdd_source(tmp_path, json.dumps(frames), warnings)
    seq = src.read_sequence("val", "v")
    assert boxes_of(seq) == [(1, 1, [1, 1, 5, 5])] and seq.num_frames == 2
    assert warnings.as_dict() == {"duplicate_frame": 1}


def test_empty_gt_file_gives_frames_without_boxes(tmp_path):
    src, _ = mot_source(tmp_path, "\n")
    seq = src.read_sequence("train", "seq")
    assert seq.num_frames == 5 and seq.has_gt and all(len(f) == 0 for f in seq.frames)


def test_sanitised_boxes_are_the_raw_boxes_exactly(tmp_path):
    """Random float boxes, many leaving the frame: every valid box comes back bit for bit (x2 = x + w in
    float64, as TrackEval computes it), none is clipped; invalid sizes are dropped and counted."""
    rng = np.random.default_rng(0)
    xywh = rng.uniform(-60, 160, size=(200, 4))
    gt = "".join(f"{i // 20 + 1},{i},{x!r},{y!r},{w!r},{h!r},1,1,1\n" for i, (x, y, w, h) in enumerate(xywh.tolist()))
    warnings = WarningCounter()
    src, _ = mot_source(tmp_path, gt, seq_length=10, warnings=warnings)
    boxes = np.concatenate([f.boxes for f in src.read_sequence("train", "seq").frames])
    valid = (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
    want = np.concatenate([xywh[valid, :2], xywh[valid, :2] + xywh[valid, 2:]], axis=1)
    assert boxes.dtype == np.float64 and np.array_equal(boxes, want)
    assert warnings.counts["box_invalid"] == int((~valid).sum())
    assert warnings.counts["box_partly_outside_frame"] + warnings.counts["box_outside_frame"] > 0


@pytest.mark.parametrize("source", ["mot17", "visdrone", "bdd100k"])
def test_missing_sequence_is_an_error(tmp_path, source):
    for folder in ("train/seq", "VisDrone2019-MOT-train/annotations", "labels/box_track_20/train"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "train" / "seq" / "seqinfo.ini").write_text("[Sequence]\nseqLength=1\n")
    cmap = ClassMap.load(default_classmap_path(source), ["person", "vehicle"])
    src = get_source(source)(tmp_path, cmap, WarningCounter())
    with pytest.raises(BuilderError, match="'nope'"):
        src.read_sequence("train", "nope")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 5), st.booleans()), max_size=40))
def test_duplicate_track_ids_matches_a_plain_loop(rows):
    """The vectorised check marks exactly the rows a first-come loop over (frame, track id) would drop."""
    seen, expected = set(), []
    for frame, tid, positive in rows:
        expected.append(positive and (frame, tid) in seen)
        if positive:
            seen.add((frame, tid))
    frames, tids, positives = (np.array([r[i] for r in rows], dtype) for i, dtype in
                               enumerate((np.int64, np.int64, bool)))
    assert duplicate_track_ids(frames, tids, positives).tolist() == expected
