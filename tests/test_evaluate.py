"""Evaluation on scripted tracks whose metric values are written as formulas; MOT file reading and errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from builder.formats.build_layout import val_set_of
from builder.formats.motchallenge import (
    NO_CLASS,
    FormatError,
    MotTable,
    list_sequences,
    read_mot_file,
    read_seqinfo,
    read_seqmap,
    write_results,
    write_seqmap,
)
from builder.records import GT_FORMAT
from train.errors import EvaluationError
from train.evaluate.__main__ import main as evaluate_main
from train.evaluate.result_files import write_sidecar
from train.evaluate.results import evaluate_build, evaluate_mot
from train.evaluate.scoring import BUILD_CROWD_RULES, BUILD_MATCH_RULES

CLASSES = ["person", "vehicle"]
BOX = (100.0, 100.0, 40.0, 80.0)  # xywh pixels


def seqinfo_text(name: str, length: int) -> str:
    return (f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={length}\n"
            "imWidth=640\nimHeight=480\nimExt=.jpg\n")


def make_seq(split_dir: Path, name: str, gt_rows: list[tuple], length: int) -> Path:
    """A MOTChallenge sequence folder; gt rows are (frame, id, x, y, w, h, conf, class)."""
    seq = split_dir / name
    (seq / "gt").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text(seqinfo_text(name, length))
    (seq / "gt" / "gt.txt").write_text("".join(",".join(str(v) for v in r) + ",1\n" for r in gt_rows))
    return seq


def write_tracks(path: Path, rows: list[tuple], classes=CLASSES) -> None:
    """Result rows (frame, id, x, y, w, h, class) with score 1, listed in the folder's sidecar with ``classes``
    (the project's own result files), or without sidecar (another tracker's file) when ``classes`` is None."""
    m = np.array(rows, float).reshape(-1, 7)
    write_results(path, m[:, 0], m[:, 1], m[:, 2:6], np.ones(len(m)), m[:, 6])
    if classes is not None:
        write_sidecar(path.parent, classes, [path.stem])


def run(tmp_path: Path, gt_rows, trk_rows, length: int, **kw) -> dict:
    make_seq(tmp_path / "gt", "s1", gt_rows, length)
    write_tracks(tmp_path / "res" / "s1.txt", trk_rows)
    return evaluate_mot(tmp_path / "gt", tmp_path / "res", classes=CLASSES, **kw)


def line(t: int, tid: int, box=BOX, cls: int = 1, conf: int = 1) -> tuple:
    return (t, tid, *box, conf, cls)


def track(t: int, tid: int, box=BOX, cls: int = 1) -> tuple:
    return (t, tid, *box, cls)


# ------------------------------------------------------------------------------------------ metrics
def test_perfect_tracking_scores_100(tmp_path):
    length = 8
    gt = [line(t, i, (50 * i, 60, 30, 70)) for t in range(1, length + 1) for i in (1, 2)]
    trk = [track(t, 10 + i, (50 * i, 60, 30, 70)) for t in range(1, length + 1) for i in (1, 2)]
    m = run(tmp_path, gt, trk, length)["combined"]
    for key in ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDP", "IDR"):
        assert m[key] == pytest.approx(100.0), key
    assert (m["IDSW"], m["FP"], m["FN"], m["MT"], m["ML"]) == (0, 0, 0, 2, 0)


@pytest.mark.parametrize("switch_at", [3, 5, 7])
def test_one_id_switch_costs_exactly_one_idsw(tmp_path, switch_at):
    """One object over T frames; the tracker calls it id 1 for k frames, then id 2."""
    length, k = 10, switch_at
    gt = [line(t, 1) for t in range(1, length + 1)]
    trk = [track(t, 1 if t <= k else 2) for t in range(1, length + 1)]
    m = run(tmp_path, gt, trk, length)["combined"]
    assert m["IDSW"] == 1 and m["FP"] == 0 and m["FN"] == 0
    assert m["MOTA"] == pytest.approx(100 * (length - 0 - 1) / length)  # (TP - FP - IDSW) / GT
    idtp = max(k, length - k)  # the gt id is bound to the tracker id it shares most frames with
    idfp, idfn = length - idtp, length - idtp
    assert (m["IDTP"], m["IDFP"], m["IDFN"]) == (idtp, idfp, idfn)
    assert m["IDF1"] == pytest.approx(100 * 2 * idtp / (2 * idtp + idfp + idfn))
    # HOTA (Luiten et al. 2021): every TP has A = TPA / (TPA + FNA + FPA); DetA = 1 (exact boxes).
    ass_a = (k * (k / length) + (length - k) * ((length - k) / length)) / length
    assert m["DetA"] == pytest.approx(100.0)
    assert m["AssA"] == pytest.approx(100 * ass_a)
    assert m["HOTA"] == pytest.approx(100 * math.sqrt(1.0 * ass_a))


def test_prediction_on_ignore_region_is_not_a_false_positive(tmp_path):
    length = 4
    ignore = (300, 200, 50, 50)
    gt = [line(t, 1) for t in range(1, length + 1)] + [line(t, -1, ignore, cls=0, conf=0) for t in range(1, 5)]
    trk = [track(t, 1) for t in range(1, length + 1)] + [track(t, 7, (302, 201, 50, 50)) for t in range(1, 5)]
    m = run(tmp_path, gt, trk, length)["combined"]
    assert m["FP"] == 0 and m["MOTA"] == pytest.approx(100.0) and m["HOTA"] == pytest.approx(100.0)


def test_prediction_far_from_ignore_region_is_a_false_positive(tmp_path):
    length = 4
    gt = [line(t, 1) for t in range(1, length + 1)] + [line(t, -1, (300, 200, 50, 50), 0, 0) for t in range(1, 5)]
    trk = [track(t, 1) for t in range(1, length + 1)] + [track(t, 7, (500, 400, 50, 50)) for t in range(1, 5)]
    m = run(tmp_path, gt, trk, length)["combined"]
    assert m["FP"] == length
    assert m["MOTA"] == pytest.approx(100 * (length - length) / length)


def test_crowd_rule_removes_predictions_inside_a_large_ignore_region(tmp_path):
    """BDD100K-style crowd box: a small prediction inside it has IoU < 0.5 but IoA > 0.5."""
    crowd = (300, 100, 300, 300)
    inner = (350, 150, 40, 80)
    gt = [line(1, 1), line(1, -1, crowd, 0, 0)]
    trk = [track(1, 1), track(1, 2, inner)]
    assert run(tmp_path, gt, trk, 1, rules=BUILD_MATCH_RULES)["combined"]["FP"] == 1
    m = evaluate_mot(tmp_path / "gt", tmp_path / "res", classes=CLASSES, rules=BUILD_CROWD_RULES)
    assert m["combined"]["FP"] == 0


def test_ignore_regions_sharing_an_id_are_accepted_but_scored_duplicates_are_not(tmp_path):
    """VisDrone's ignored regions all carry id 0: several in one frame are fine; two scored boxes are not."""
    gt = [line(1, 1), line(1, 0, (300, 100, 60, 60), 0, 0), line(1, 0, (500, 300, 60, 60), 0, 0)]
    trk = [track(1, 1), track(1, 2, (305, 102, 60, 60))]
    for rules in (BUILD_MATCH_RULES, BUILD_CROWD_RULES):
        m = evaluate_mot(tmp_path / "gt", tmp_path / "res", classes=CLASSES, rules=rules) if (
            tmp_path / "gt").exists() else run(tmp_path, gt, trk, 1, rules=rules)
        assert m["combined"]["FP"] == 0 and m["combined"]["MOTA"] == pytest.approx(100.0)
    (tmp_path / "gt" / "s1" / "gt" / "gt.txt").write_text("1,1,100,100,40,80,1,1,1\n1,1,200,100,40,80,1,1,1\n")
    with pytest.raises(EvaluationError, match=r"gt\.txt: ground-truth id\(s\) \[1\] appear more than once"):
        evaluate_mot(tmp_path / "gt", tmp_path / "res", classes=CLASSES)


def test_per_class_and_detection_averaged_combination(tmp_path):
    """A vehicle predicted on a person box: a vehicle FP and a person FN; combined sums the counts."""
    length = 5
    car = (300, 300, 120, 60)
    gt = [line(t, 1) for t in range(1, length + 1)] + [line(t, 2, car, cls=2) for t in range(1, length + 1)]
    trk = [track(t, 1, cls=2) for t in range(1, length + 1)] + [track(t, 2, car, cls=2) for t in range(1, 6)]
    res = run(tmp_path, gt, trk, length)
    person, vehicle, comb = res["per_class"]["person"], res["per_class"]["vehicle"], res["combined"]
    assert (person["FN"], person["FP"], person["TP"]) == (length, 0, 0)
    assert (vehicle["FN"], vehicle["FP"], vehicle["TP"]) == (0, length, length)
    assert (comb["FN"], comb["FP"], comb["TP"]) == (length, length, length)
    assert comb["MOTA"] == pytest.approx(100 * (length - length) / (2 * length))
    assert comb["DetA"] == pytest.approx(100 * length / (length + length + length))


def test_classes_with_ground_truth_or_predictions_are_scored_by_default(tmp_path):
    res = run(tmp_path, [line(1, 1)], [track(1, 1)], 1)
    assert list(res["per_class"]) == ["person"] and res["protocol"] == "unified"


def test_predictions_of_a_class_absent_from_the_ground_truth_are_false_positives(tmp_path):
    """Two vehicle predictions on a person-only set: vehicle FP = 2 and combined FP = 2 (MOTA = (1 - 0 - 2) / 1)."""
    res = run(tmp_path, [line(1, 1)], [track(1, 1), track(1, 5, (300, 300, 60, 30), cls=2),
                                       track(1, 6, (400, 300, 60, 30), cls=2)], 1)
    assert sorted(res["per_class"]) == ["person", "vehicle"]
    vehicle, comb = res["per_class"]["vehicle"], res["combined"]
    assert (vehicle["GT_Dets"], vehicle["FP"], comb["FP"], comb["TP"]) == (0, 2, 2, 1)
    assert comb["MOTA"] == pytest.approx(100 * (1 - 2) / 1)


def test_another_trackers_file_is_never_read_as_classes(tmp_path):
    """Column 8 of a file no sidecar covers is a world coordinate: a 0 there (as MOTChallenge files have) does not
    make the rows class 0; with one class scored every row counts, with several the file is refused."""
    make_seq(tmp_path / "gt", "s1", [line(1, 1)], 1)
    write_tracks(tmp_path / "res" / "s1.txt", [track(1, 1, cls=0)], classes=None)
    assert evaluate_mot(tmp_path / "gt", tmp_path / "res", classes=CLASSES)["combined"]["TP"] == 1
    make_seq(tmp_path / "gt2", "s1", [line(1, 1), line(1, 2, (300, 300, 100, 50), cls=2)], 1)
    with pytest.raises(EvaluationError, match="--result-classes"):
        evaluate_mot(tmp_path / "gt2", tmp_path / "res", classes=CLASSES)
    with pytest.raises(EvaluationError, match=r"s1\.txt:1: class 0 is not in the class list of --result-classes"):
        evaluate_mot(tmp_path / "gt2", tmp_path / "res", classes=CLASSES, result_classes=["person", "vehicle"])
    write_tracks(tmp_path / "res" / "s1.txt", [track(1, 1, cls=7), track(1, 2, (300, 300, 100, 50), cls=9)],
                 classes=None)  # another tracker's own class ids, declared on the command line
    declared = evaluate_mot(tmp_path / "gt2", tmp_path / "res", classes=CLASSES,
                            result_classes=[*"abcdef", "person", "h", "vehicle"])
    assert declared["combined"]["TP"] == 2 and declared["combined"]["FP"] == 0


def test_empty_tracker_output(tmp_path):
    length = 3
    m = run(tmp_path, [line(t, 1) for t in range(1, length + 1)], [], length)["combined"]
    assert (m["FN"], m["TP"], m["HOTA"], m["MOTA"]) == (length, 0, 0.0, 0.0)


# ------------------------------------------------------------------------------------------ errors
def test_missing_result_file_is_an_error_naming_it(tmp_path):
    make_seq(tmp_path / "gt", "s1", [line(1, 1)], 1)
    (tmp_path / "res").mkdir()
    with pytest.raises(EvaluationError, match=r"s1\.txt"):
        evaluate_mot(tmp_path / "gt", tmp_path / "res", classes=CLASSES)
    m = evaluate_mot(tmp_path / "gt", tmp_path / "res", classes=CLASSES, allow_missing=True)
    assert m["combined"]["FN"] == 1


def test_duplicate_tracker_id_in_a_frame_is_an_error(tmp_path):
    with pytest.raises(EvaluationError, match=r"s1\.txt.*frame 1"):
        run(tmp_path, [line(1, 1)], [track(1, 3), track(1, 3, (0, 0, 10, 10))], 1)


def test_result_frame_beyond_sequence_length_is_an_error(tmp_path):
    with pytest.raises(EvaluationError, match=r"frame 9 .*1\.\.2"):
        run(tmp_path, [line(1, 1)], [track(9, 1)], 2)


def test_unclassed_rows_count_for_a_single_class_only(tmp_path):
    make_seq(tmp_path / "gt", "s1", [line(1, 1), line(1, 2, (300, 300, 100, 50), cls=2)], 1)
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "s1.txt").write_text("1,1,100,100,40,80,0.9\n")  # 7 columns: no class
    one = evaluate_mot(tmp_path / "gt", tmp_path / "res", classes=CLASSES, eval_classes=["person"])
    assert one["combined"]["TP"] == 1
    with pytest.raises(EvaluationError, match="class"):
        evaluate_mot(tmp_path / "gt", tmp_path / "res", classes=CLASSES)


# ------------------------------------------------------------------------------------------ mot_io
def test_read_mot_file_tolerates_real_world_quirks(tmp_path):
    p = tmp_path / "r.txt"
    p.write_text("1,1,10,20,30,40,0.9,1,-1,-1,\n\n2 2 10 20 30 40\r\n3,3,1,2,3,4,0.5,\n")
    t = read_mot_file(p)
    assert t.frames.tolist() == [1, 2, 3] and t.ids.tolist() == [1, 2, 3]
    assert t.boxes[0].tolist() == [10, 20, 30, 40]
    assert t.conf.tolist() == [0.9, 1.0, 0.5]
    assert t.classes.tolist() == [1, NO_CLASS, NO_CLASS]


@pytest.mark.parametrize("text, msg", [
    ("1,1,10,20,30,40\n1,2,3\n", r"r\.txt:2: expected 6 to 10 columns"),
    ("1,1,10,20,30,40\n\n1,x,3,4,5,6\n", r"r\.txt:3: column 'id' is not a number"),
    ("1.5,1,10,20,30,40\n", r"r\.txt:1: column 'frame' must be an integer"),
    ("1,1,nan,20,30,40\n", r"r\.txt:1: non-finite"),
    ("1,1,10,20,30,40,0.9,1\n1,2,10,20,30,40,0.9,1.5,-1,-1\n", r"r\.txt:2: column 'class' must be an integer"),
    ("1,1,10,20,30,40,0.9,inf,-1,-1\n", r"r\.txt:1: column 'class' must be an integer"),
    ("1,1,10,20,30,40,0.9,nan,-1,-1\n", r"r\.txt:1: column 'class' must be an integer"),
    ("1,1,10,20,30,40,inf,1,-1,-1\n", r"r\.txt:1: non-finite value \(NaN or inf\) in frame,id,x,y,w,h,conf"),
])
def test_read_mot_file_errors_name_file_and_line(tmp_path, text, msg):
    p = tmp_path / "r.txt"
    p.write_text(text)
    with pytest.raises(FormatError, match=msg):
        read_mot_file(p)


def test_read_mot_file_binary_file_is_a_clear_error(tmp_path):
    p = tmp_path / "r.txt"
    p.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(FormatError, match=r"r\.txt: not a text file"):
        read_mot_file(p)


def test_write_then_read_results_round_trip(tmp_path):
    p = write_results(tmp_path / "a" / "s.txt", [2, 1], [5, 4], [[1, 2, 3, 4], [5, 6, 7, 8]], [0.5, 0.25], [2, 1])
    t = read_mot_file(p)
    assert t.frames.tolist() == [1, 2] and t.ids.tolist() == [4, 5] and t.classes.tolist() == [1, 2]
    assert p.read_text().splitlines()[0] == "1,4,5.00,6.00,7.00,8.00,0.2500,1,-1,-1"
    assert len(read_mot_file(write_results(tmp_path / "e.txt", [], [], np.zeros((0, 4)), [], []))) == 0


def test_seqinfo_seqmap_and_listing(tmp_path):
    make_seq(tmp_path, "b", [line(1, 1)], 7)
    make_seq(tmp_path, "a", [line(1, 1)], 3)
    info = read_seqinfo(tmp_path / "b")
    assert (info.name, info.length, info.width, info.height, info.frame_rate) == ("b", 7, 640, 480, 30.0)
    assert info.image_path(tmp_path / "b", 3).name == "00000003.jpg"
    assert list_sequences(tmp_path) == ["a", "b"]
    assert read_seqmap(write_seqmap(tmp_path / "m.txt", ["b", "a"])) == ["b", "a"]
    (tmp_path / "bad.ini").write_text("[Sequence]\nname=x\nseqLength=3\n")
    with pytest.raises(FormatError, match=r"bad\.ini.*frameRate"):
        read_seqinfo(tmp_path / "bad.ini")


def test_mottable_by_frame_groups_rows():
    t = MotTable.from_matrix(np.array([[2, 1, 0, 0, 1, 1], [1, 1, 0, 0, 1, 1], [2, 2, 0, 0, 1, 1]], float))
    groups = t.by_frame(3)
    assert [g.tolist() for g in groups] == [[1], [0, 2], []]


# ------------------------------------------------------------------------------------------ builds + CLI
def make_build(root: Path) -> Path:
    build = root / "build"
    (build / "val").mkdir(parents=True)
    (build / "build_manifest.json").write_text(json.dumps({"classes": CLASSES, "gt_format": GT_FORMAT}))
    make_seq(build / "val", "dancetrack__d1", [line(t, 1) for t in range(1, 4)], 3)
    make_seq(build / "val", "bdd100k__b1", [line(1, 1), line(1, 2, (300, 300, 100, 50), cls=2)], 1)
    write_seqmap(build / "seqmaps" / "val.txt", ["bdd100k__b1", "dancetrack__d1"])
    return build


def test_evaluate_build_groups_val_sets_and_cli_writes_json(tmp_path, capsys):
    build = make_build(tmp_path)
    res = tmp_path / "res"
    write_tracks(res / "dancetrack__d1.txt", [track(t, 1) for t in range(1, 4)])
    write_tracks(res / "bdd100k__b1.txt", [track(1, 1), track(1, 2, (300, 300, 100, 50), cls=2)])
    out = evaluate_build(build, "val", res)["val_sets"]
    assert sorted(out) == ["bdd100k", "dancetrack"]
    assert sorted(out["bdd100k"]["per_class"]) == ["person", "vehicle"]
    assert out["dancetrack"]["combined"]["HOTA"] == pytest.approx(100.0)
    assert evaluate_main(["--results", str(res), "--build", str(build), "--split", "val",
                    "--json", str(tmp_path / "m.json")]) == 0
    assert "COMBINED" in capsys.readouterr().out
    assert json.loads((tmp_path / "m.json").read_text())["val_sets"]["bdd100k"]["combined"]["MOTA"] == 100.0
    run_eval = tmp_path / "eval"  # a run's eval/<val set>/tracker/<seq>.txt layout is found too
    for f in res.glob("*.txt"):
        (run_eval / val_set_of(f.stem) / "tracker").mkdir(parents=True, exist_ok=True)
        f.rename(run_eval / val_set_of(f.stem) / "tracker" / f.name)
        write_sidecar(run_eval / val_set_of(f.stem) / "tracker", CLASSES, [f.stem])
    assert evaluate_build(build, "val", run_eval)["val_sets"] == out


def test_cli_reports_missing_file_and_exits_2(tmp_path, capsys):
    build = make_build(tmp_path)
    (tmp_path / "res").mkdir()
    assert evaluate_main(["--results", str(tmp_path / "res"), "--build", str(build)]) == 2
    assert "dancetrack__d1.txt" in capsys.readouterr().err
    assert evaluate_main(["--results", str(tmp_path / "nope"), "--build", str(build)]) == 2
    assert "nope: results folder not found" in capsys.readouterr().err


def test_cli_reports_a_malformed_result_file_by_file_and_line(tmp_path, capsys):
    build = make_build(tmp_path)
    res = tmp_path / "res"
    write_tracks(res / "dancetrack__d1.txt", [track(t, 1) for t in range(1, 4)])
    (res / "bdd100k__b1.txt").write_text("1,1,10,20,30,40,0.9,1,-1,-1\n1,2,10,20,30,40,0.9,x,-1,-1\n")
    assert evaluate_main(["--results", str(res), "--build", str(build)]) == 2
    err = capsys.readouterr().err
    assert "bdd100k__b1.txt:2: column 'class' is not a number" in err and len(err.splitlines()) == 1
    (res / "bdd100k__b1.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff")
    assert evaluate_main(["--results", str(res), "--build", str(build)]) == 2
    assert "not a text file" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ stage evaluation
def test_evaluate_model_writes_eval_layout_and_metrics(tiny_builds, tmp_path):
    import torch

    from train.evaluate.model import evaluate_model
    from train.stage.models import build_model

    torch.manual_seed(0)
    model = build_model(arch="fasterrcnn", backbone="tiny", num_classes=2, min_size=128, max_size=256,
                        fpn_channels=16, tiny_channels=(8, 16, 32), box_head_dim=32, score_thresh=0.0)
    result = evaluate_model(model, tiny_builds[1], "val", tmp_path, classes=CLASSES, tracker_params={},
                            score_thresh=0.0, val_sets=["dancetrack"], max_frames=3)
    entry = result["val_sets"]["dancetrack"]
    assert list(result["val_sets"]) == ["dancetrack"]
    assert set(entry) >= {"combined", "per_class", "per_sequence", "detection"}
    assert set(entry["detection"]) >= {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR", "per_class"}
    assert json.loads((tmp_path / "dancetrack" / "metrics.json").read_text())["combined"] == entry["combined"]
    files = sorted((tmp_path / "dancetrack" / "tracker").glob("*.txt"))
    assert files and all(f.name.startswith("dancetrack__") for f in files)
    assert all(read_mot_file(f).frames.max(initial=0) <= 3 for f in files)  # max_frames honoured
    assert entry["combined"]["GT_Dets"] > 0


@pytest.mark.parametrize("source", ["visdrone", "bdd100k", "dancetrack", "mot17"])
def test_raw_sources_ground_truth_as_results_scores_100(tiny_raw, tmp_path, source):
    """--raw --protocol unified reads each official layout through the adapters; gt in = perfect out."""
    from builder.classmap import ClassMap, default_classmap_path
    from builder.records import WarningCounter
    from builder.sources import get_source

    adapter = get_source(source)(tiny_raw / source, ClassMap.load(default_classmap_path(source), CLASSES),
                                 WarningCounter())
    split = adapter.splits()[0]
    names = adapter.sequence_names(split)[:2]
    for name in names:
        if source in ("mot17", "dancetrack"):  # the official gt.txt as is (the adapter clips boxes to the frame)
            gt = read_mot_file(tiny_raw / source / split / name / "gt" / "gt.txt")
            gt = gt.select((gt.conf != 0) & (gt.classes == 1))
            rows = np.column_stack([gt.frames, gt.ids, gt.boxes, gt.classes])
        else:
            rows = [(f.index, tid, x0, y0, x1 - x0, y1 - y0, lab)
                    for f in adapter.read_sequence(split, name).frames
                    for (x0, y0, x1, y1), tid, lab in zip(f.boxes.tolist(), f.track_ids.tolist(),
                                                          f.labels.tolist(), strict=True) if lab != 0]
        write_tracks(tmp_path / "res" / f"{name}.txt", rows)
    seqmap = write_seqmap(tmp_path / "seqmap.txt", names)
    assert evaluate_main(["--results", str(tmp_path / "res"), "--raw", source, "--root", str(tiny_raw / source),
                          "--split", split, "--seqmap", str(seqmap), "--protocol", "unified",
                          "--json", str(tmp_path / "m.json")]) == 0
    comb = json.loads((tmp_path / "m.json").read_text())["val_sets"][source]["combined"]
    assert comb["HOTA"] == pytest.approx(100.0) and comb["IDSW"] == 0 and comb["GT_Dets"] > 0


def test_tables_say_which_protocol_and_builds_take_only_unified(tmp_path, capsys):
    build = make_build(tmp_path)
    res = tmp_path / "res"
    write_tracks(res / "dancetrack__d1.txt", [track(t, 1) for t in range(1, 4)])
    write_tracks(res / "bdd100k__b1.txt", [track(1, 1)])
    assert evaluate_main(["--results", str(res), "--build", str(build)]) == 0
    assert "unified protocol" in capsys.readouterr().out
    assert evaluate_main(["--results", str(res), "--build", str(build), "--protocol", "official"]) == 2
    assert "builds are scored with the unified classes" in capsys.readouterr().err


def test_a_malformed_sidecar_is_a_clear_error(tmp_path, capsys):
    build = make_build(tmp_path)
    res = tmp_path / "res"
    write_tracks(res / "dancetrack__d1.txt", [track(t, 1) for t in range(1, 4)])
    write_tracks(res / "bdd100k__b1.txt", [track(1, 1)])
    (res / "results.json").write_text(json.dumps({"format": "motcurriculum-results-v1", "classes": "person",
                                                  "sequences": [], "class_column": 8}))
    assert evaluate_main(["--results", str(res), "--build", str(build)]) == 2
    assert "results.json: key 'classes' must be a list of names" in capsys.readouterr().err
