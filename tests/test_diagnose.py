"""builder.diagnose on a hand-made build (exact counts) and on the tiny curriculum builds (conftest)."""

from __future__ import annotations

import json

import cv2
import pytest
from run_fixtures import write_tiny_build

from builder.cli import main as builder_main
from builder.diagnose import MEDIUM_MAX_AREA, SMALL_MAX_AREA, diagnose, write_diagnostics
from builder.errors import BuilderError

LENGTH = 6  # frames per sequence of write_tiny_build


@pytest.fixture()
def hand_build(tmp_path):
    return write_tiny_build(tmp_path / "build", length=LENGTH)


def test_counts_of_hand_made_build(hand_build):
    s = diagnose(hand_build, images_per_seq=3)
    train, val = s["splits"]["train"], s["splits"]["val"]
    # synthB train: 2 people x 6 frames + 1 degenerate person box; 6 vehicle boxes + 1 out-of-frame one.
    assert train["class_balance"]["synthB"] == {"ignore": LENGTH, "person": 2 * LENGTH + 1, "vehicle": LENGTH + 1}
    assert train["class_balance"]["synthA"] == {"ignore": LENGTH, "person": 2 * LENGTH}
    assert (train["degenerate_boxes"], train["out_of_frame_boxes"]) == (1, 1)
    assert (val["degenerate_boxes"], val["out_of_frame_boxes"]) == (0, 0)
    assert any("degenerate" in e for e in train["examples"])
    # Boxes per frame: synthA 2 every frame; synthB 4, 4 then 3 (the two extra boxes sit in frames 1, 2).
    assert train["boxes_per_frame"]["mean"] == pytest.approx((2 * LENGTH + 4 + 4 + 3 * (LENGTH - 2)) / (2 * LENGTH),
                                                             abs=1e-3)
    assert train["boxes_per_frame"]["max"] == 4
    # People are 20x40 = 800 px^2 < 32^2 (small); the out-of-frame vehicle is 30x30 = 900 (small).
    assert 20 * 40 < SMALL_MAX_AREA < MEDIUM_MAX_AREA
    assert train["box_sizes"]["person"] == {"small": 2 * 2 * LENGTH + 1, "medium": 0, "large": 0}
    # Identities: 2 people per sequence; synthB adds vehicle 9 and the one-frame ids 10 and 11.
    assert train["identities"] == {"synthA": 2, "synthB": 5}
    assert train["short_tracks"] == 2
    assert train["images"] == {**train["images"], "sampled": 6, "missing": 0, "size_mismatch": 0,
                               "sizes": {"160x120": 6}}


def test_png_and_json_written(hand_build, tmp_path, capsys):
    out = tmp_path / "diag"
    assert write_diagnostics(hand_build, out=out) == 0
    image = cv2.imread(str(out / "diagnostics.png"))
    assert image is not None and image.shape == (900, 1600, 3)
    assert image.std() > 10  # not a blank canvas
    data = json.loads((out / "diagnostics.json").read_text())
    assert data["classes"] == ["person", "vehicle"]
    text = capsys.readouterr().out
    assert "degenerate boxes: 1" in text and "[val]" in text


def test_png_path_and_cli(hand_build, tmp_path):
    png = tmp_path / "x" / "d.png"
    assert builder_main(["diagnose", str(hand_build), "--out", str(png), "--images-per-seq", "1"]) == 0
    assert png.is_file() and png.with_suffix(".json").is_file()
    assert builder_main(["diagnose", str(tmp_path / "missing")]) == 2


def test_bad_build_errors_name_the_file(tmp_path, hand_build):
    (tmp_path / "empty").mkdir()
    with pytest.raises(BuilderError, match="no build manifest"):
        diagnose(tmp_path / "empty")
    gt = hand_build / "val" / "synthA__a2" / "gt" / "gt.txt"
    gt.write_text(gt.read_text() + "7,1,2,3\n")
    with pytest.raises(BuilderError, match=rf"{gt}:{3 * LENGTH + 1}: expected 9 to 10 columns"):
        diagnose(hand_build)


def test_tiny_build_matches_manifest_counts(tiny_builds, tmp_path):
    build = tiny_builds[1]
    s = diagnose(build, tmp_path / "d.png", images_per_seq=2)
    counts = json.loads((build / "build_manifest.json").read_text())["counts"]
    for split, summary in s["splits"].items():
        for source, balance in summary["class_balance"].items():
            expected = counts[split][source]
            assert {k: v for k, v in balance.items() if k != "ignore"} == \
                {k: v for k, v in expected["per_class"].items() if v}
            assert balance.get("ignore", 0) == expected["ignore"]
            assert summary["sequences"][source] == expected["sequences"]
            assert summary["frames"][source] == expected["frames"]
        assert summary["images"]["missing"] == 0
    assert cv2.imread(str(tmp_path / "d.png")).shape == (900, 1600, 3)
