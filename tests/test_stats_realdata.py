"""``stats`` on real samples (../shared/realdata) matches the files' own counts; and on a synthetic fixture."""

import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from builder.errors import NotRegisteredError
from builder.stats import compute_stats, render_stats

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
MOT17_MINI = REALDATA / "mot17-mini"
BDD_FILE = REALDATA / "bdd100k-boxtrack" / "b1c66a42-6f7d68ca.json"

needs_realdata = pytest.mark.skipif(not MOT17_MINI.is_dir() or not BDD_FILE.is_file(),
                                    reason="../shared/realdata is not present")


@needs_realdata
def test_mot17_mini_counts():
    """7 sequences, 39 frames (the images; seqinfo.ini keeps the full seqLength), 814 person boxes
    (class 1, conf 1), 137 identities, 136 ignore boxes (classes 2, 7, 8, 12), no missing image."""
    stats = compute_stats("mot17", MOT17_MINI)
    train = stats["splits"]["train"]
    assert list(stats["splits"]) == ["train"]
    assert train["sequences"] == 7 and train["frames"] == 39
    assert train["per_class"] == {"person": 814, "vehicle": 0} and train["boxes"] == 814
    assert train["identities"] == 137 and train["ignore"] == 136
    assert train["missing_images"] == 0 and train["sequences_without_gt"] == 0
    # every sequence's seqLength disagrees with its image count: one warning each
    assert train["warnings"]["seqinfo_mismatch"] == 7
    # boxes leaving the frame are counted, not clipped: the boxes above are the raw ones
    assert train["warnings"]["box_partly_outside_frame"] == 98 and "box_outside_frame" not in train["warnings"]


@needs_realdata
def test_bdd100k_file_counts(tmp_path):
    """202 frames, 310 person (pedestrian + rider), 2680 vehicle (car + truck + bus, crowd excluded),
    251 ignore (motorcycle + crowd cars), 202 missing images (no image exists)."""
    labels = tmp_path / "labels" / "box_track_20" / "val"
    labels.mkdir(parents=True)
    shutil.copy(BDD_FILE, labels / BDD_FILE.name)
    stats = compute_stats("bdd100k", tmp_path)
    val = stats["splits"]["val"]
    assert list(stats["splits"]) == ["val"]
    assert val["sequences"] == 1 and val["frames"] == 202
    assert val["per_class"] == {"person": 310, "vehicle": 2680} and val["boxes"] == 310 + 2680
    assert val["ignore"] == 251 and val["missing_images"] == 202
    assert val["warnings"] == {}


def test_stats_on_synthetic_visdrone(tmp_path):
    """Identities are distinct (sequence, track id) positives; ignore boxes and warnings are per split."""
    folder = tmp_path / "VisDrone2019-MOT-train" / "annotations"
    folder.mkdir(parents=True)
    (folder / "a.txt").write_text("1,1,10,10,5,5,1,1,0,0\n2,1,11,10,5,5,1,1,0,0\n1,2,30,10,5,5,1,4,0,0\n"
                                  "1,0,0,0,9,9,0,0,0,0\n")
    (folder / "b.txt").write_text("1,1,10,10,5,5,1,1,0,0\n1,1,10,10,5,5,1,1,0,0\n")
    (tmp_path / "VisDrone2019-MOT-val" / "sequences" / "c").mkdir(parents=True)
    stats = compute_stats("visdrone", tmp_path, classes=["person", "vehicle"])
    train = stats["splits"]["train"]
    assert train["identities"] == 2 + 1  # a: ids 1 and 2; b: id 1
    assert train["per_class"] == {"person": 3, "vehicle": 1} and train["ignore"] == 1
    assert train["frames"] == 2 + 1 and train["missing_images"] == 3
    assert train["warnings"] == {"duplicate_track_id": 1, "image_size_unknown": 2}
    val = stats["splits"]["val"]
    assert (val["sequences"], val["sequences_without_gt"], val["frames"]) == (1, 1, 0)
    json.dumps(stats)  # plain JSON types only (the CLI's --json)


def test_render_stats_has_a_row_per_split(tmp_path):
    seq = tmp_path / "train" / "s"
    (seq / "gt").mkdir(parents=True)
    (seq / "gt" / "gt.txt").write_text("1,1,1,1,5,5,1,1,1\n")
    (seq / "seqinfo.ini").write_text("[Sequence]\nseqLength=1\nimWidth=10\nimHeight=10\n")
    table = render_stats(compute_stats("dancetrack", tmp_path, classes=["person"]))
    assert table.row_count == 1
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "person" in text and "train" in text


def test_unknown_source():
    with pytest.raises(NotRegisteredError, match="Available: bdd100k, dancetrack, mot15, mot17, visdrone"):
        compute_stats("kitti", ".")
