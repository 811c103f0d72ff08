"""verify: a sound build passes; each kind of damage is reported (and the CLI exits 1)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from builder.cli import main
from builder.verify import verify_build


@pytest.fixture
def copy_of_build(tiny_builds, tmp_path) -> Path:
    dst = tmp_path / "b"
    shutil.copytree(tiny_builds[1], dst, symlinks=True)
    return dst


def _first(build: Path, split: str) -> Path:
    return build / split / sorted(os.listdir(build / split))[0]


def test_sound_builds_verify(tiny_builds):
    for b in tiny_builds.values():
        report = verify_build(b)
        assert report.ok, report.problems
        m = json.loads((b / "build_manifest.json").read_text())
        assert report.frames == sum(c["frames"] for s in m["counts"].values() for c in s.values())


def test_edited_gt_breaks_digest_counts_and_coco(copy_of_build, capsys):
    gt = _first(copy_of_build, "val") / "gt" / "gt.txt"
    rows = gt.read_text().splitlines()
    gt.write_text("\n".join(rows[1:]) + "\n")  # drop one box
    problems = verify_build(copy_of_build).problems
    text = "\n".join(problems)
    assert "content digest" in text and "counts of val" in text and "annotations of" in text
    assert "locked digest" in text  # and it no longer matches the manifest
    assert main(["verify", str(copy_of_build)]) == 1
    assert "problem(s)" in capsys.readouterr().err


def test_broken_link_is_reported(copy_of_build):
    link = sorted((_first(copy_of_build, "train") / "img1").iterdir())[0]
    link.unlink()
    link.symlink_to("/nonexistent/frame.jpg")
    assert any("do not resolve" in p for p in verify_build(copy_of_build).problems)


def test_missing_sequence_and_seqmap(copy_of_build):
    shutil.rmtree(_first(copy_of_build, "test"))
    (copy_of_build / "seqmaps" / "train.txt").write_text("name\n")
    problems = verify_build(copy_of_build).problems
    assert any("directory missing" in p for p in problems)
    assert any("train.txt" in p for p in problems)


def test_missing_files_are_problems_not_crashes(copy_of_build):
    (_first(copy_of_build, "val") / "gt" / "gt.txt").unlink()
    (copy_of_build / "annotations" / "test.json").unlink()
    problems = verify_build(copy_of_build).problems
    assert any("gt.txt" in p for p in problems) and any("test.json" in p for p in problems)


def test_locked_sequence_in_train_is_reported(copy_of_build):
    path = copy_of_build / "build_manifest.json"
    m = json.loads(path.read_text())
    entry = next(e for e in m["splits"]["train"].values() if e["source"] == "dancetrack")
    m["locked"]["dancetrack"]["val"].append(entry["raw_sequence"])
    path.write_text(json.dumps(m))
    problems = verify_build(copy_of_build).problems
    assert any(f"sequence {entry['raw_sequence']} is locked (val/test) and must never be in train" in p
               for p in problems), problems


def test_not_a_build_manifest_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "build_manifest.json").write_text('{"classes": ["person"]}')
    assert main(["verify", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a build manifest, lacks key(s) splits" in err and "Traceback" not in err


def test_missing_seqinfo_is_a_problem_not_a_crash(copy_of_build):
    seq = _first(copy_of_build, "val")
    (seq / "seqinfo.ini").unlink()
    problems = verify_build(copy_of_build).problems
    assert f"val/{seq.name}/seqinfo.ini: missing" in problems
