"""Source adapters on tiny raw fixtures written in each official layout (no pixels are needed but headers)."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder.classmap import ClassMap, default_classmap_path
from builder.errors import BuilderError, NotRegisteredError
from builder.records import IGNORE, WarningCounter
from builder.sources import SOURCES, get_source, missing_images, register
from builder.sources.base import SourceAdapter

CLASSES = ("person", "vehicle")
PERSON, VEHICLE = 1, 2


def adapter(source: str, root: Path, warnings: WarningCounter | None = None):
    cmap = ClassMap.load(default_classmap_path(source), CLASSES)
    return get_source(source)(root, cmap, warnings if warnings is not None else WarningCounter())


def write_images(folder: Path, frames, digits: int, size=(64, 48), ext=".jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in frames:
        Image.new("RGB", size).save(folder / f"{i:0{digits}d}{ext}")


def write_mot_seq(root: Path, split: str, name: str, rows=None, *, images=(), digits=6, size=(64, 48),
                  seq_length=None, seqinfo_size=None, frame_rate=25) -> Path:
    """A MOTChallenge sequence: seqinfo.ini, img1/ with ``images`` frames, gt/gt.txt with ``rows``."""
    seq = root / split / name
    seq.mkdir(parents=True)
    w, h = seqinfo_size or size
    length = seq_length if seq_length is not None else max(images, default=1)
    (seq / "seqinfo.ini").write_text(f"[Sequence]\nname={name}\nimDir=img1\nframeRate={frame_rate}\n"
                                      f"seqLength={length}\nimWidth={w}\nimHeight={h}\nimExt=.jpg\n")
    write_images(seq / "img1", images, digits, size)
    if rows is not None:
        (seq / "gt").mkdir()
        (seq / "gt" / "gt.txt").write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
    return seq


def bdd_label(tid, cat, x1, y1, x2, y2, crowd=False, capital=False):
    attrs = {"occluded": False, "truncated": False, "crowd": crowd}
    if capital:
        attrs = {k.capitalize(): v for k, v in attrs.items()}
    return {"id": tid, "category": cat, "attributes": attrs, "box2d": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}}


def write_bdd_video(root: Path, split: str, video: str, frame_labels, fmt="scalabel") -> Path:
    """A BDD100K label file; ``frame_labels`` lists the labels of frames frameIndex 0, 1, ..."""
    keys = ("videoName", "frameIndex") if fmt == "scalabel" else ("video_name", "index")
    frames = [{"name": f"{video}-{i + 1:07d}.jpg", keys[0]: video, keys[1]: i, "labels": labels}
              for i, labels in enumerate(frame_labels)]
    folder = root / "labels" / "box_track_20" / split
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{video}.json"
    path.write_text(json.dumps(frames))
    return path


def write_visdrone_seq(root: Path, split: str, name: str, rows, *, images=(), size=(80, 60)) -> None:
    folder = root / f"VisDrone2019-MOT-{split}"
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    if rows is not None:
        (folder / "annotations" / f"{name}.txt").write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
    write_images(folder / "sequences" / name, images, 7, size)


def all_boxes(seq):
    """(frame index, track id, label, box) per box of a sequence, in frame order."""
    return [(f.index, int(t), int(lab), b.tolist())
            for f in seq.frames for t, lab, b in zip(f.track_ids, f.labels, f.boxes, strict=True)]


# -- registry ------------------------------------------------------------------------------------------

def test_registry_lists_builtin_sources():
    assert sorted(SOURCES) == ["bdd100k", "dancetrack", "mot15", "mot17", "visdrone"]
    assert all(issubclass(cls, SourceAdapter) and cls.name == name for name, cls in SOURCES.items())


def test_unknown_source_lists_available():
    with pytest.raises(NotRegisteredError) as err:
        get_source("kitti")
    assert str(err.value) == "source 'kitti' is not registered! Available: bdd100k, dancetrack, mot15, mot17, visdrone"


def test_register_refuses_a_taken_name():
    with pytest.raises(ValueError, match="already registered"):
        register("mot17")(type("Other", (SourceAdapter,), {}))


# -- MOTChallenge: mot17 / dancetrack -------------------------------------------------------------------

def test_mot17_records(tmp_path):
    rows = [
        (1, 1, 10, 5, 20, 30, 1, 1, 0.5),     # pedestrian -> person
        (1, 2, 0, 0, 8, 8, 0, 1, 1.0),        # conf 0 pedestrian -> ignore
        (1, 3, 30, 10, 8, 8, 0, 7, 1.0),      # static person -> ignore
        (1, 4, 40, 10, 8, 8, 0, 3, 1.0),      # car -> dropped
        (2, 1, 12, 5, 20, 30, 1, 1, 0.25),
    ]
    write_mot_seq(tmp_path, "train", "MOT17-02-FRCNN", rows, images=[1, 2, 3])
    write_mot_seq(tmp_path, "train", "MOT17-04-FRCNN", [], images=[1])
    src = adapter("mot17", tmp_path)
    assert src.splits() == ["train"]
    assert src.sequence_names("train") == ["MOT17-02-FRCNN", "MOT17-04-FRCNN"]
    seq = src.read_sequence("train", "MOT17-02-FRCNN")
    assert (seq.source, seq.split, seq.frame_rate, seq.width, seq.height) == ("mot17", "train", 25.0, 64, 48)
    assert [f.index for f in seq.frames] == [1, 2, 3] and seq.has_gt
    assert seq.frames[0].image == tmp_path / "train" / "MOT17-02-FRCNN" / "img1" / "000001.jpg"
    # xywh -> xyxy: (x, y, x + w, y + h)
    assert all_boxes(seq) == [(1, 1, PERSON, [10, 5, 30, 35]), (1, 2, IGNORE, [0, 0, 8, 8]),
                              (1, 3, IGNORE, [30, 10, 38, 18]), (2, 1, PERSON, [12, 5, 32, 35])]
    assert seq.frames[0].visibility.tolist() == [0.5, 1.0, 1.0]
    assert len(seq.frames[2]) == 0


def test_record_dtypes_and_shapes(tmp_path):
    write_mot_seq(tmp_path, "train", "s", [(1, 1, 1, 1, 5, 5, 1, 1, 1)], images=[1, 2])
    seq = adapter("mot17", tmp_path).read_sequence("train", "s")
    for f in seq.frames:
        n = len(f)
        assert f.boxes.shape == (n, 4) and f.boxes.dtype == np.float64
        assert f.track_ids.shape == (n,) and f.track_ids.dtype == np.int64
        assert f.labels.shape == (n,) and f.labels.dtype == np.int16
        assert f.visibility.shape == (n,) and f.visibility.dtype == np.float32


def test_dancetrack_digits_and_test_split_without_gt(tmp_path):
    write_mot_seq(tmp_path, "train", "dancetrack0001", [(1, 7, 1, 1, 10, 20, 1, 1, 1)], images=[1, 2], digits=8)
    write_mot_seq(tmp_path, "test", "dancetrack0003", None, images=[1, 2, 3], digits=8)
    src = adapter("dancetrack", tmp_path)
    assert src.splits() == ["train", "test"]
    seq = src.read_sequence("train", "dancetrack0001")
    assert seq.frames[1].image.name == "00000002.jpg"
    assert all_boxes(seq) == [(1, 7, PERSON, [1, 1, 11, 21])]
    test = src.read_sequence("test", "dancetrack0003")
    assert not test.has_gt and test.num_frames == 3 and all(len(f) == 0 for f in test.frames)
    assert src.label_files("test") == [tmp_path / "test" / "dancetrack0003" / "seqinfo.ini"]
    assert src.label_files("train") == sorted([tmp_path / "train" / "dancetrack0001" / "gt" / "gt.txt",
                                               tmp_path / "train" / "dancetrack0001" / "seqinfo.ini"])


def test_frames_are_images_union_gt_frames(tmp_path):
    """Images 1..3, gt on frames 2 and 5, seqLength 10: frames 1, 2, 3, 5; frame 5's image is missing."""
    rows = [(2, 1, 1, 1, 5, 5, 1, 1, 1), (5, 1, 1, 1, 5, 5, 1, 1, 1)]
    write_mot_seq(tmp_path, "train", "s", rows, images=[1, 2, 3], seq_length=10)
    warnings = WarningCounter()
    seq = adapter("mot17", tmp_path, warnings).read_sequence("train", "s")
    assert [f.index for f in seq.frames] == [1, 2, 3, 5]
    assert missing_images(seq) == [5]
    assert warnings.as_dict() == {"seqinfo_mismatch": 1}  # seqLength 10 vs 3 images


def test_labels_only_download_has_all_seqinfo_frames(tmp_path):
    write_mot_seq(tmp_path, "train", "s", [(2, 1, 1, 1, 5, 5, 1, 1, 1)], images=(), seq_length=4,
                  seqinfo_size=(100, 50))
    seq = adapter("mot17", tmp_path).read_sequence("train", "s")
    assert [f.index for f in seq.frames] == [1, 2, 3, 4]
    assert (seq.width, seq.height) == (100, 50)
    assert missing_images(seq) == [1, 2, 3, 4]


def test_seqinfo_size_disagreeing_with_image_header(tmp_path):
    write_mot_seq(tmp_path, "train", "s", [], images=[1], size=(64, 48), seqinfo_size=(1920, 1080))
    warnings = WarningCounter()
    seq = adapter("mot17", tmp_path, warnings).read_sequence("train", "s")
    assert (seq.width, seq.height) == (64, 48)  # the file wins
    assert warnings.counts["seqinfo_mismatch"] == 1
    assert "1920x1080" in warnings.examples["seqinfo_mismatch"][0]


# -- BDD100K --------------------------------------------------------------------------------------------

def bdd_frames(capital=False):
    return [
        [bdd_label("a-1", "car", 10, 20, 110, 80, capital=capital),
         bdd_label("b-7", "pedestrian", 5, 5, 15, 40, capital=capital),
         bdd_label("c-2", "bus", 0, 0, 50, 50, crowd=True, capital=capital)],
        [bdd_label("b-7", "rider", 6, 5, 16, 40, capital=capital),
         bdd_label("d-9", "trailer", 200, 100, 300, 200, capital=capital)],
        [],
    ]


def test_bdd100k_records(tmp_path):
    write_bdd_video(tmp_path, "val", "b1c66a42-6f7d68ca", bdd_frames())
    write_bdd_video(tmp_path, "train", "a0000000-00000000", [[]])
    src = adapter("bdd100k", tmp_path)
    assert src.splits() == ["train", "val"]
    assert src.sequence_names("val") == ["b1c66a42-6f7d68ca"]
    assert src.label_files("val") == [tmp_path / "labels/box_track_20/val/b1c66a42-6f7d68ca.json"]
    seq = src.read_sequence("val", "b1c66a42-6f7d68ca")
    assert (seq.frame_rate, seq.width, seq.height, seq.num_frames) == (5.0, 1280, 720, 3)
    assert seq.frames[0].image == (tmp_path / "images/track/val/b1c66a42-6f7d68ca"
                                   / "b1c66a42-6f7d68ca-0000001.jpg")
    # string ids -> 1, 2, 3, 4 in order of first appearance; crowd bus and trailer -> ignore
    assert all_boxes(seq) == [(1, 1, VEHICLE, [10, 20, 110, 80]), (1, 2, PERSON, [5, 5, 15, 40]),
                              (1, 3, IGNORE, [0, 0, 50, 50]), (2, 2, PERSON, [6, 5, 16, 40]),
                              (2, 4, IGNORE, [200, 100, 300, 200])]
    assert [f.index for f in seq.frames] == [1, 2, 3]
    assert seq.frames[0].visibility.tolist() == [1.0, 1.0, 1.0]


def test_bdd100k_2020_release_reads_like_current(tmp_path):
    new, old = tmp_path / "new", tmp_path / "old"
    write_bdd_video(new, "val", "v", bdd_frames())
    write_bdd_video(old, "val", "v", bdd_frames(capital=True), fmt="2020")
    a = adapter("bdd100k", new).read_sequence("val", "v")
    b = adapter("bdd100k", old).read_sequence("val", "v")
    assert all_boxes(a) == all_boxes(b)
    assert [f.image.relative_to(new) for f in a.frames] == [f.image.relative_to(old) for f in b.frames]


def test_bdd100k_image_header_gives_size(tmp_path):
    write_bdd_video(tmp_path, "val", "v", [[bdd_label("x", "car", 1, 1, 5, 5)]])
    write_images(tmp_path / "images/track/val/v", [1], 7, size=(640, 360))
    (tmp_path / "images/track/val/v/0000001.jpg").rename(tmp_path / "images/track/val/v/v-0000001.jpg")
    seq = adapter("bdd100k", tmp_path).read_sequence("val", "v")
    assert (seq.width, seq.height) == (640, 360)
    assert missing_images(seq) == []


def test_bdd100k_frames_sorted_by_frame_index(tmp_path):
    path = write_bdd_video(tmp_path, "val", "v", [[bdd_label("x", "car", 1, 1, 5, 5)], []])
    frames = json.loads(path.read_text())
    path.write_text(json.dumps(frames[::-1]))
    seq = adapter("bdd100k", tmp_path).read_sequence("val", "v")
    assert [(f.index, len(f)) for f in seq.frames] == [(1, 1), (2, 0)]


# -- VisDrone -------------------------------------------------------------------------------------------

def test_visdrone_records(tmp_path):
    rows = [
        (1, 1, 10, 10, 5, 12, 1, 1, 0, 0),   # pedestrian -> person, no occlusion
        (1, 2, 20, 10, 15, 8, 1, 4, 0, 1),   # car -> vehicle, partial occlusion
        (1, 3, 40, 10, 15, 8, 0, 4, 0, 2),   # car with score 0 -> ignore
        (1, 0, 0, 40, 20, 10, 0, 0, 0, 0),   # ignored region
        (2, 1, 11, 10, 5, 12, 1, 2, 0, 0),   # people -> person
        (2, 5, 50, 30, 10, 10, 1, 10, 0, 0),  # motor -> ignore
    ]
    write_visdrone_seq(tmp_path, "train", "uav0000013_00000_v", rows, images=[1, 2, 3])
    write_visdrone_seq(tmp_path, "test-dev", "uav0000009_03358_v", [], images=[1])
    src = adapter("visdrone", tmp_path)
    assert src.splits() == ["train", "test-dev"]
    seq = src.read_sequence("train", "uav0000013_00000_v")
    assert (seq.frame_rate, seq.width, seq.height, seq.num_frames) == (30.0, 80, 60, 3)
    assert seq.frames[0].image.name == "0000001.jpg"
    assert all_boxes(seq) == [(1, 1, PERSON, [10, 10, 15, 22]), (1, 2, VEHICLE, [20, 10, 35, 18]),
                              (1, 3, IGNORE, [40, 10, 55, 18]), (1, 0, IGNORE, [0, 40, 20, 50]),
                              (2, 1, PERSON, [11, 10, 16, 22]), (2, 5, IGNORE, [50, 30, 60, 40])]
    assert seq.frames[0].visibility.tolist() == [1.0, 0.5, 0.0, 1.0]
    assert src.label_files("train") == [tmp_path / "VisDrone2019-MOT-train/annotations/uav0000013_00000_v.txt"]


def test_visdrone_without_images(tmp_path):
    write_visdrone_seq(tmp_path, "val", "s", [(3, 1, 10, 10, 5, 12, 1, 1, 0, 0)])
    warnings = WarningCounter()
    seq = adapter("visdrone", tmp_path, warnings).read_sequence("val", "s")
    assert [f.index for f in seq.frames] == [1, 2, 3]
    assert (seq.width, seq.height) == (0, 0) and warnings.as_dict() == {"image_size_unknown": 1}
    assert missing_images(seq) == [1, 2, 3]


def test_sequences_iterates_in_name_order(tmp_path):
    for name in ("b", "a", "c"):
        write_mot_seq(tmp_path, "train", name, [], images=[1])
    assert [s.name for s in adapter("mot17", tmp_path).sequences("train")] == ["a", "b", "c"]


def test_unknown_split_lists_available(tmp_path):
    write_mot_seq(tmp_path, "train", "a", [], images=[1])
    with pytest.raises(BuilderError, match=r"split 'val' of source 'mot17' not found \(available: train\)"):
        adapter("mot17", tmp_path).sequence_names("val")


def test_bdd100k_2020_frame_without_name_gets_the_official_image_name(tmp_path):
    path = write_bdd_video(tmp_path, "train", "v", [[], []], fmt="2020")
    frames = [{k: v for k, v in f.items() if k != "name"} for f in json.loads(path.read_text())]
    path.write_text(json.dumps(frames))
    seq = adapter("bdd100k", tmp_path).read_sequence("train", "v")
    assert [f.image.name for f in seq.frames] == ["v-0000001.jpg", "v-0000002.jpg"]
