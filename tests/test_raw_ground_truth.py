"""Evaluation ground truth is the benchmark's own (issue 9): a build's val/test gt.txt holds the raw boxes bit for
bit (no clipping, no rounding), so scoring a result folder through a build equals scoring it on the raw split,
exactly, on the real MOT17 sample (boxes leave its frames) and on synthetic MOT17 (boxes leave the frame as objects
enter and leave); a build of an older builder is refused for evaluation, naming the rebuild command.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import REALDATA, write_recipe

from builder.build import build
from builder.classmap import ClassMap, default_classmap_path
from builder.formats.motchallenge import (
    read_mot_file,
    read_seqinfo,
    write_results,
    write_seqmap,
    xywh_to_xyxy,
)
from builder.manifest import lock_manifest
from builder.records import WarningCounter
from builder.sources import get_source
from train.errors import EvaluationError
from train.evaluate.__main__ import main as evaluate_main
from train.evaluate.benchmarks import evaluate_raw
from train.evaluate.result_files import write_sidecar
from train.evaluate.results import evaluate_build, evaluate_mot

MOT17_MINI = REALDATA / "mot17-mini"
CLASSES = ["person"]


def _build_mot17(root: Path, tmp: Path, n_val: int, n_test: int) -> Path:
    """Lock ``n_val`` + ``n_test`` sequences of the train split of a MOT17-layout ``root``; build them."""
    adapter = get_source("mot17")(root, ClassMap.load(default_classmap_path("mot17"), CLASSES), WarningCounter())
    manifest = tmp / "mot17.json"
    lock_manifest(adapter, manifest, source="mot17", classes=CLASSES, n_val=n_val, n_test=n_test, split="train")
    recipe = write_recipe(tmp / "r.toml", {"name": "raw_gt", "seed": 0, "classes": CLASSES, "sources": {"mot17": {
        "root": str(root), "manifest": str(manifest), "frame_budget": 1, "clip_length": 1}}})
    return build(recipe, build_root=tmp / "builds")


def _results(build_dir: Path, split: str, raw_root: Path, out: Path, rng: np.random.Generator) -> list[str]:
    """A tracker's output for every sequence of the build split, written twice with the same rows: under the
    build's names (``out/build``) and the raw names (``out/raw``), each with the project's sidecar. Boxes: the raw
    positives jittered (many still leaving the frame), 10 % dropped, plus false positives."""
    names = []
    for seq_dir in sorted((build_dir / split).iterdir()):
        raw_name = read_seqinfo(seq_dir).extra["rawSequence"]
        gt = read_mot_file(raw_root / "train" / raw_name / "gt" / "gt.txt")
        gt = gt.select((gt.conf != 0) & (gt.classes == 1) & (gt.frames <= read_seqinfo(seq_dir).length))
        keep = rng.random(len(gt)) > 0.1
        boxes = gt.boxes[keep] + rng.normal(0, 6, (int(keep.sum()), 4))
        n_fp = 5
        frames = np.concatenate([gt.frames[keep], rng.integers(1, read_seqinfo(seq_dir).length + 1, n_fp)])
        ids = np.concatenate([gt.ids[keep] + 100, 900 + np.arange(n_fp)])
        boxes = np.concatenate([boxes, np.column_stack([rng.uniform(-50, 600, (n_fp, 2)), np.full((n_fp, 2), 60.0)])])
        for folder, name in ((out / "build", seq_dir.name), (out / "raw", raw_name)):
            write_results(folder / f"{name}.txt", frames, ids, boxes, np.full(len(ids), 0.9), np.ones(len(ids)))
            write_sidecar(folder, CLASSES, [name])
        names.append(raw_name)
    return names


def _assert_build_equals_raw(build_dir: Path, raw_root: Path, tmp: Path) -> None:
    """Per split: scoring through the build == scoring the raw split (unified protocol), every number exactly."""
    for split in ("val", "test"):
        names = _results(build_dir, split, raw_root, tmp / split, np.random.default_rng(0))
        through_build = evaluate_build(build_dir, split, tmp / split / "build")["val_sets"]["mot17"]
        raw = evaluate_raw("mot17", raw_root, "train", tmp / split / "raw", protocol="unified", classes=CLASSES,
                           seqmap=write_seqmap(tmp / f"{split}.txt", names))["val_sets"]["mot17"]
        assert through_build["combined"] == raw["combined"] and through_build["per_class"] == raw["per_class"]
        assert {k.removeprefix("mot17__"): v for k, v in through_build["per_sequence"].items()} == raw["per_sequence"]
        assert raw["combined"]["TP"] > 0 and raw["combined"]["FP"] > 0


def _outside(build_dir: Path, split: str) -> int:
    """Positive gt boxes of a build split that extend beyond their frame."""
    n = 0
    for seq_dir in (build_dir / split).iterdir():
        info, gt = read_seqinfo(seq_dir), read_mot_file(seq_dir / "gt" / "gt.txt")
        b = xywh_to_xyxy(gt.boxes[gt.conf != 0])
        n += int(((b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > info.width) | (b[:, 3] > info.height)).sum())
    return n


def _gt_is_raw(build_dir: Path, raw_root: Path) -> None:
    """Every positive of the val/test gt.txt files is the raw gt.txt's pedestrian (class 1, conf 1) bit for bit:
    x, y read back, and x + w, y + h give the raw file's x + w, y + h (what TrackEval computes)."""
    for split in ("val", "test"):
        for seq_dir in (build_dir / split).iterdir():
            info = read_seqinfo(seq_dir)
            raw = read_mot_file(raw_root / "train" / info.extra["rawSequence"] / "gt" / "gt.txt")
            raw = raw.select((raw.classes == 1) & (raw.conf == 1) & (raw.frames <= info.length))
            got = read_mot_file(seq_dir / "gt" / "gt.txt")
            got = got.select(got.conf == 1)
            key = lambda t: np.lexsort((t.ids, t.frames))  # noqa: E731
            a, b = raw.select(key(raw)), got.select(key(got))
            assert np.array_equal(a.frames, b.frames) and np.array_equal(a.ids, b.ids), seq_dir.name
            assert np.array_equal(xywh_to_xyxy(a.boxes), xywh_to_xyxy(b.boxes)), seq_dir.name


@pytest.mark.skipif(not MOT17_MINI.is_dir(), reason="../shared/realdata/mot17-mini not present")
def test_real_mot17_through_a_build_equals_the_raw_split(tmp_path):
    build_dir = _build_mot17(MOT17_MINI, tmp_path, 4, 2)
    assert _outside(build_dir, "val") + _outside(build_dir, "test") > 0  # the real sample leaves its frames
    _gt_is_raw(build_dir, MOT17_MINI)
    _assert_build_equals_raw(build_dir, MOT17_MINI, tmp_path)


def test_synthetic_mot17_through_a_build_equals_the_raw_split(tiny_raw, tmp_path):
    """Synthetic MOT17 writes boxes that leave the frame; before issue 9 the build clipped them, and scoring the
    build's val set then differs from scoring the raw boxes (checked below by clipping a copy)."""
    build_dir = _build_mot17(tiny_raw / "mot17", tmp_path, 2, 1)
    assert _outside(build_dir, "val") > 0
    _gt_is_raw(build_dir, tiny_raw / "mot17")
    _assert_build_equals_raw(build_dir, tiny_raw / "mot17", tmp_path)
    clipped = tmp_path / "clipped"  # the old builder's ground truth: clipped to the frame, rounded to 0.01 px
    shutil.copytree(build_dir / "val", clipped, symlinks=True)
    for seq_dir in clipped.iterdir():
        info, gt = read_seqinfo(seq_dir), read_mot_file(seq_dir / "gt" / "gt.txt")
        b = np.round(np.clip(xywh_to_xyxy(gt.boxes), 0, [info.width, info.height] * 2), 2)
        rows = np.column_stack([gt.frames, gt.ids, b[:, :2], b[:, 2:] - b[:, :2], gt.conf, gt.classes, gt.visibility])
        (seq_dir / "gt" / "gt.txt").write_text("".join(",".join(f"{v:g}" for v in r) + "\n" for r in rows))
    old = evaluate_mot(clipped, tmp_path / "val" / "build", classes=CLASSES)["combined"]
    assert old != evaluate_build(build_dir, "val", tmp_path / "val" / "build")["val_sets"]["mot17"]["combined"]


def test_a_build_of_an_older_builder_is_refused_naming_the_rebuild_command(tiny_builds, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(tiny_builds[1], old, symlinks=True)
    manifest = json.loads((old / "build_manifest.json").read_text())
    assert manifest["gt_format"] == "raw-boxes-v1"
    del manifest["gt_format"]
    (old / "build_manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "res").mkdir()
    with pytest.raises(EvaluationError, match=f"python -m builder build {manifest['recipe']['path']}"):
        evaluate_build(old, "val", tmp_path / "res")
    assert evaluate_main(["--results", str(tmp_path / "res"), "--build", str(old)]) == 2
    err = capsys.readouterr().err
    assert "clipped to the frame and rounded to 0.01 px" in err and len(err.strip().splitlines()) == 1
