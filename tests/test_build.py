"""Builds: layout, determinism, locked val/test stability, replay, digest checks, atomicity, CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import REALDATA, REPO, make_tiny_curriculum, write_recipe

import builder.writer
from builder.build import build
from builder.cli import main
from builder.errors import BuilderError
from builder.recipe import load_recipe
from builder.verify import verify_build


def _manifest(build_dir: Path) -> dict:
    return json.loads((build_dir / "build_manifest.json").read_text())


def _recipe_dict(path: Path) -> dict:
    import tomllib

    return tomllib.loads(path.read_text())


def test_layout_matches_contract(tiny_builds):
    b = tiny_builds[1]
    m = _manifest(b)
    assert sorted(os.listdir(b)) == ["annotations", "build_manifest.json", "seqmaps", "test", "train", "val"]
    for split in ("train", "val", "test"):
        assert sorted(os.listdir(b / split)) == sorted(m["splits"][split])
        assert (b / "seqmaps" / f"{split}.txt").read_text().split() == ["name", *sorted(m["splits"][split])]
    name, entry = sorted(m["splits"]["train"].items())[0]
    src, raw, first = name.split("__")
    assert (src, raw, int(first)) == (entry["source"], entry["raw_sequence"], entry["frames"][0])
    assert len(first) == 7
    links = sorted((b / "train" / name / "img1").iterdir())
    assert [p.stem for p in links] == [f"{k:08d}" for k in range(1, len(entry["frames"]) + 1)]
    target = Path(os.readlink(links[0]))
    assert target.is_absolute() and target.exists()
    info = (b / "train" / name / "seqinfo.ini").read_text()
    assert f"seqLength={len(entry['frames'])}" in info and f"rawSequence={raw}" in info
    for split in ("val", "test"):
        assert {d.split("__")[1] for d in m["splits"][split]} == {n for s in m["locked"].values() for n in s[split]}


def test_budgets_are_filled_exactly(tiny_builds, tiny_curriculum):
    for stage in (1, 2, 3):
        m = _manifest(tiny_builds[stage])
        for spec in load_recipe(tiny_curriculum[stage]).sources:
            assert m["counts"]["train"][spec.name]["frames"] == spec.frame_budget
            assert m["sources"][spec.name]["budget"]["filled"] == spec.frame_budget


def test_gt_rows_and_ignore_regions(tiny_builds):
    b = tiny_builds[1]
    m = _manifest(b)
    gt = np.concatenate([np.loadtxt(b / "val" / d / "gt" / "gt.txt", delimiter=",", ndmin=2)
                         for d in m["splits"]["val"]])
    ignore = gt[:, 6] == 0
    assert set(gt[ignore, 7]) <= {0} and set(gt[~ignore, 7]) <= {1, 2}
    assert int((~ignore).sum()) == sum(c["boxes"] for c in m["counts"]["val"].values())


def test_coco_json_loads_in_pycocotools(tiny_builds):
    from pycocotools.coco import COCO

    b = tiny_builds[1]
    m = _manifest(b)
    for split in ("train", "val", "test"):
        coco = COCO(str(b / "annotations" / f"{split}.json"))
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == m["classes"]
        frames = sum(c["frames"] for c in m["counts"][split].values())
        assert len(coco.getImgIds()) == frames
        positives = sum(c["boxes"] for c in m["counts"][split].values())
        ignore = sum(c["ignore"] for c in m["counts"][split].values())
        assert len(coco.getAnnIds(iscrowd=False)) == positives
        # an ignore region is written once per category (iscrowd = 1)
        assert len(coco.getAnnIds()) == positives + ignore * len(m["classes"])
        img = coco.loadImgs(coco.getImgIds()[0])[0]
        assert (b / img["file_name"]).exists()


def test_same_inputs_give_byte_identical_manifest(tiny_curriculum, tmp_path):
    a = build(tiny_curriculum[1], build_root=tmp_path / "a")
    b = build(tiny_curriculum[1], build_root=tmp_path / "b")
    assert (a / "build_manifest.json").read_bytes() == (b / "build_manifest.json").read_bytes()
    for split in ("train", "val", "test"):
        assert (a / "annotations" / f"{split}.json").read_bytes() == (b / "annotations" / f"{split}.json").read_bytes()


def test_other_seed_changes_train_not_val_test(tiny_curriculum, tiny_builds, tmp_path):
    other = _manifest(build(tiny_curriculum[1], build_root=tmp_path, seed=7))
    base = _manifest(tiny_builds[1])
    assert other["digests"]["train"] != base["digests"]["train"]
    assert sorted(other["splits"]["train"]) != sorted(base["splits"]["train"])
    assert (other["digests"]["val"], other["digests"]["test"]) == (base["digests"]["val"], base["digests"]["test"])


def test_stage1_and_stage2_share_val_test(tiny_builds, tiny_curriculum):
    m1, m2 = _manifest(tiny_builds[1]), _manifest(tiny_builds[2])
    assert m1["digests"]["val"] == m2["digests"]["val"] and m1["digests"]["test"] == m2["digests"]["test"]
    for src in ("bdd100k", "dancetrack"):
        assert m2["counts"]["train"][src]["frames"] == 3 * m1["counts"]["train"][src]["frames"]


def test_replay_draws_only_frames_of_the_earlier_build(tiny_builds):
    m2, m3 = _manifest(tiny_builds[2]), _manifest(tiny_builds[3])
    for src in ("bdd100k", "dancetrack"):
        earlier = {(e["raw_sequence"], f) for e in m2["splits"]["train"].values() if e["source"] == src
                   for f in e["frames"]}
        replayed = {(e["raw_sequence"], f) for e in m3["splits"]["train"].values() if e["source"] == src
                    for f in e["frames"]}
        assert replayed and replayed <= earlier
        assert m3["sources"][src]["replay_from"] == "tiny_stage2"


def test_locked_sequences_never_in_train(tiny_builds):
    for b in tiny_builds.values():
        m = _manifest(b)
        locked = {(s, n) for s, lk in m["locked"].items() for n in lk["val"] + lk["test"]}
        train = {(e["source"], e["raw_sequence"]) for e in m["splits"]["train"].values()}
        assert not locked & train


def test_changed_locked_sequence_stops_the_build(tiny_raw, tiny_curriculum, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(tiny_raw / "dancetrack", raw / "dancetrack", symlinks=True)
    recipe = _recipe_dict(tiny_curriculum[1])
    recipe["sources"] = {"dancetrack": recipe["sources"]["dancetrack"] | {"root": str(raw / "dancetrack")}}
    manifest = json.loads(Path(recipe["sources"]["dancetrack"]["manifest"]).read_text())
    victim = manifest["val"][0]["name"]
    gt = raw / "dancetrack" / "val" / victim / "gt" / "gt.txt"
    rows = gt.read_text().splitlines()
    first = rows[0].split(",")
    first[2] = str(float(first[2]) + 1)  # move one box by 1 px
    gt.write_text("\n".join([",".join(first), *rows[1:]]) + "\n")
    path = write_recipe(tmp_path / "r.toml", recipe)
    with pytest.raises(BuilderError) as err:
        build(path, build_root=tmp_path / "builds")
    msg = str(err.value)
    assert victim in msg and "changed" in msg and manifest["val"][0]["digest"] in msg
    assert recipe["sources"]["dancetrack"]["manifest"] in msg
    assert not (tmp_path / "builds" / recipe["name"]).exists()


def test_budget_over_pool_fails_and_partial_fills(tiny_curriculum, tmp_path):
    recipe = _recipe_dict(tiny_curriculum[1])
    recipe["sources"] = {"dancetrack": recipe["sources"]["dancetrack"] | {"frame_budget": 10_000}}
    with pytest.raises(BuilderError, match=r"frame_budget 10000 exceeds the training pool: \d+ frames"):
        build(write_recipe(tmp_path / "r.toml", recipe), build_root=tmp_path)
    recipe["sources"]["dancetrack"]["allow_partial"] = True
    m = _manifest(build(write_recipe(tmp_path / "r.toml", recipe), build_root=tmp_path))
    budget = m["sources"]["dancetrack"]["budget"]
    assert budget["partial"] and budget["filled"] == budget["available_frames"] < 10_000
    assert m["warnings"]["budget_partial"] == 1


def test_missing_image_is_an_error(tiny_raw, tiny_curriculum, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(tiny_raw / "dancetrack", raw / "dancetrack")
    recipe = _recipe_dict(tiny_curriculum[1])
    recipe["sources"] = {"dancetrack": recipe["sources"]["dancetrack"] | {"root": str(raw / "dancetrack")}}
    locked = json.loads(Path(recipe["sources"]["dancetrack"]["manifest"]).read_text())["test"][0]["name"]
    gt_rows = (raw / "dancetrack" / "val" / locked / "gt" / "gt.txt").read_text()
    frame = int(gt_rows.split(",")[0])
    image = raw / "dancetrack" / "val" / locked / "img1" / f"{frame:08d}.jpg"
    image.unlink()
    with pytest.raises(BuilderError, match=r"image file\(s\) missing, e\.g\. .*" + image.name):
        build(write_recipe(tmp_path / "r.toml", recipe), build_root=tmp_path / "b")


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_interrupted_build_leaves_earlier_build_intact(tiny_curriculum, tmp_path, monkeypatch, exc):
    good = build(tiny_curriculum[1], build_root=tmp_path)
    before = (good / "build_manifest.json").read_bytes()
    listing = sorted(str(p.relative_to(good)) for p in good.rglob("*"))
    calls = {"n": 0}
    real = builder.writer.write_sequence

    def failing(seq, root):
        calls["n"] += 1
        if calls["n"] == 3:
            raise exc
        return real(seq, root)

    monkeypatch.setattr(builder.writer, "write_sequence", failing)
    with pytest.raises(type(exc)):
        build(tiny_curriculum[1], build_root=tmp_path, seed=5)
    assert (good / "build_manifest.json").read_bytes() == before
    assert sorted(str(p.relative_to(good)) for p in good.rglob("*")) == listing
    assert sorted(p.name for p in tmp_path.iterdir()) == [good.name]  # no .tmp-* or .old-* left


def test_a_build_killed_between_the_two_renames_is_restored(tiny_curriculum, tmp_path):
    """A SIGKILL after the old build moved aside and before the new one moved in leaves only
    ``.old-<name>-*``: the next build of that name, or a build replaying it, puts the old one back first."""
    good = build(tiny_curriculum[1], build_root=tmp_path)
    before = (good / "build_manifest.json").read_bytes()
    aside = tmp_path / f".old-{good.name}-killed"
    os.replace(good, aside)  # the state a kill between the renames leaves
    assert builder.writer.recover_interrupted_swap(tmp_path, good.name) == good
    assert (good / "build_manifest.json").read_bytes() == before and not aside.exists()
    assert builder.writer.recover_interrupted_swap(tmp_path, good.name) is None  # nothing left to do

    os.replace(good, aside)
    stage2 = build(tiny_curriculum[2], build_root=tmp_path)  # stage 2 does not replay: stage 1 stays aside
    assert not good.exists()
    build(tiny_curriculum[3], build_root=tmp_path)  # stage 3 replays stage 2 ...
    assert stage2.is_dir()
    os.replace(stage2, tmp_path / f".old-{stage2.name}-killed")
    build(tiny_curriculum[3], build_root=tmp_path)  # ... and restores it when a kill left it aside
    assert (stage2 / "build_manifest.json").is_file()


def test_rebuild_replaces_earlier_build(tiny_curriculum, tmp_path):
    build(tiny_curriculum[1], build_root=tmp_path)
    out = build(tiny_curriculum[1], build_root=tmp_path, seed=3)
    assert _manifest(out)["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_unlocked_manifest_warns_and_records_digests(tiny_raw, tmp_path):
    paths = make_tiny_curriculum(tiny_raw, tmp_path / "cur")
    recipe = _recipe_dict(paths[1])
    mpath = Path(recipe["sources"]["dancetrack"]["manifest"])
    data = json.loads(mpath.read_text())
    expected = {e["name"]: e["digest"] for e in data["val"] + data["test"]}
    for e in data["val"] + data["test"]:
        e["digest"] = None
    mpath.write_text(json.dumps(data))
    m = _manifest(build(paths[1], build_root=tmp_path / "b"))
    assert m["warnings"]["manifest_unlocked"] == len(expected)
    assert m["locked"]["dancetrack"]["digests"] == expected
    assert m["locked"]["dancetrack"]["manifest_locked"] is False


def test_cli_exit_codes(tiny_curriculum, tiny_builds, tmp_path, capsys):
    assert main(["build", str(tiny_curriculum[1]), "--build-root", str(tmp_path), "--quiet"]) == 0
    assert main(["verify", str(tiny_builds[1])]) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nseed = 0\ncolour = "red"\n[sources.dancetrack]\n'
                   'root = "d"\nframe_budget = 1\nclip_length = 1\n')
    capsys.readouterr()
    assert main(["build", str(bad), "--build-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "colour" in err and "Traceback" not in err
    assert main(["lock", "nosuchsource", "--root", str(tmp_path)]) == 2
    assert "not registered" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "nothing")]) == 2
    capsys.readouterr()
    assert main(["build"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: python -m builder build: the following arguments")


def test_python_m_builder_runs(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "builder", "build", str(tmp_path / "none.toml")],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "recipe file not found" in out.stderr


@pytest.mark.skipif(not (REALDATA / "mot17-mini").is_dir(), reason="../shared/realdata not present")
def test_build_and_verify_real_mot17_frames(tmp_path):
    """Real MOT17 frames: lock 2 val + 1 test sequences from train, build 12 train frames, verify."""
    root = REALDATA / "mot17-mini"
    assert main(["lock", "mot17", "--root", str(root), "--manifest", str(tmp_path / "m.json"), "--split", "train",
                 "--val", "2", "--test", "1"]) == 0
    recipe = write_recipe(tmp_path / "r.toml", {"name": "real", "seed": 0, "sources": {"mot17": {
        "root": str(root), "manifest": str(tmp_path / "m.json"), "frame_budget": 12, "clip_length": 3}}})
    m = _manifest(build(recipe, build_root=tmp_path / "b"))
    assert m["counts"]["train"]["mot17"]["frames"] == 12
    assert (len(m["splits"]["val"]), len(m["splits"]["test"])) == (2, 1)
    assert verify_build(tmp_path / "b" / "real").ok


@pytest.mark.slow
def test_demo_curriculum_builds_on_synth_demo(tmp_path):
    """The README's demo path: synth demo data, then the three demo stages with the shipped demo manifests."""
    env_data, env_builds = tmp_path / "raw", tmp_path / "builds"
    assert main(["synth", str(env_data), "--scale", "demo"]) == 0
    for stage in (1, 2, 3):
        assert main(["build", str(REPO / "conf/curricula/demo" / f"stage{stage}.toml"), "--data-root",
                     str(env_data), "--build-root", str(env_builds), "--quiet"]) == 0
    assert main(["verify", str(env_builds / "demo_stage3")]) == 0


def test_frame_index_fast_path_gives_the_same_build(tiny_curriculum, tiny_builds, tmp_path, monkeypatch):
    """An adapter's optional frame_indices() only saves work: without it the build is byte-identical."""
    from builder.sources import get_source

    cls = get_source("bdd100k")
    assert hasattr(cls, "frame_indices")
    monkeypatch.delattr(cls, "frame_indices")
    slow = build(tiny_curriculum[1], build_root=tmp_path)
    assert (slow / "build_manifest.json").read_bytes() == (tiny_builds[1] / "build_manifest.json").read_bytes()


def test_replay_of_frames_missing_from_the_source_fails(tiny_curriculum, tiny_builds, tmp_path):
    shutil.copytree(tiny_builds[2], tmp_path / "tiny_stage2", symlinks=True)
    path = tmp_path / "tiny_stage2" / "build_manifest.json"
    m = json.loads(path.read_text())
    for entry in m["splits"]["train"].values():
        entry["frames"] = [f + 1000 for f in entry["frames"]]
    path.write_text(json.dumps(m))
    with pytest.raises(BuilderError, match=r"frames \[10\d\d.* are not in the source .*replayed from build 'tiny_stage2'"):
        build(tiny_curriculum[3], build_root=tmp_path)


def _mot17_root(root: Path, names: list[str], frames: int = 3) -> Path:
    """A mot17 train split: each sequence ``frames`` 16x8 JPEGs and one person box per frame."""
    from PIL import Image

    for name in names:
        seq = root / "train" / name
        (seq / "img1").mkdir(parents=True)
        (seq / "gt").mkdir()
        (seq / "seqinfo.ini").write_text(f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={frames}\n"
                                         "imWidth=16\nimHeight=8\nimExt=.jpg\n")
        for k in range(1, frames + 1):
            Image.new("RGB", (16, 8)).save(seq / "img1" / f"{k:06d}.jpg")
        (seq / "gt" / "gt.txt").write_text("".join(f"{k},1,1,1,4,4,1,1,1\n" for k in range(1, frames + 1)))
    return root


def test_mot17_detector_copies_of_a_locked_video_never_reach_train(tmp_path):
    """MOT17-02-DPM/-FRCNN/-SDP are one video: locking one keeps the other two out of the pool."""
    names = ["MOT17-02-DPM", "MOT17-02-FRCNN", "MOT17-02-SDP", "MOT17-04-FRCNN", "MOT17-04-SDP", "MOT17-05-SDP",
             "MOT17-09-DPM", "MOT17-09-FRCNN"]
    root = _mot17_root(tmp_path / "mot17", names)
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"source": "mot17", "official_split_of_locked": "train",
                                    "val": [{"name": "MOT17-02-FRCNN", "split": "train", "digest": None}],
                                    "test": [{"name": "MOT17-04-SDP", "split": "train", "digest": None}]}))
    recipe = write_recipe(tmp_path / "r.toml", {"name": "m", "seed": 0, "sources": {"mot17": {
        "root": str(root), "manifest": str(manifest), "frame_budget": 100, "clip_length": 1,
        "allow_partial": True}}})
    m = _manifest(build(recipe, build_root=tmp_path / "b"))
    assert {e["raw_sequence"] for e in m["splits"]["train"].values()} == {"MOT17-05-SDP", "MOT17-09-DPM"}
    assert m["sources"]["mot17"]["budget"]["filled"] == 2 * 3  # MOT17-09 once, not once per detection set
    assert m["warnings"]["duplicate_video"] == 1 and "MOT17-09-FRCNN" in m["warning_examples"]["duplicate_video"][0]


def test_locked_sequences_leave_every_pool_split(tiny_curriculum, tmp_path):
    """pool_splits = ["train", "val"]: the unlocked val sequences join the pool, the locked ones never."""
    recipe = _recipe_dict(tiny_curriculum[1])
    shipped = json.loads(Path(recipe["sources"]["dancetrack"]["manifest"]).read_text())
    shipped["val"], shipped["test"] = shipped["val"][:1], shipped["test"][:1]  # 2 of the 4 val sequences
    (tmp_path / "m.json").write_text(json.dumps(shipped))
    recipe["sources"] = {"dancetrack": recipe["sources"]["dancetrack"] | {
        "manifest": str(tmp_path / "m.json"), "pool_splits": ["train", "val"], "frame_budget": 10_000,
        "allow_partial": True}}
    m = _manifest(build(write_recipe(tmp_path / "r.toml", recipe), build_root=tmp_path / "b"))
    locked = set(m["locked"]["dancetrack"]["val"] + m["locked"]["dancetrack"]["test"])
    train = {(e["raw_split"], e["raw_sequence"]) for e in m["splits"]["train"].values()}
    assert not {n for _, n in train} & locked
    assert {s for s, _ in train} == {"train", "val"}  # the val split did contribute its unlocked sequences
    assert verify_build(tmp_path / "b" / recipe["name"]).ok


def test_replayed_sequence_that_is_now_locked_is_skipped(tiny_curriculum, tiny_builds, tmp_path):
    """A sequence trained on by the earlier build but locked since then is not replayed."""
    shutil.copytree(tiny_builds[2], tmp_path / "tiny_stage2", symlinks=True)
    path = tmp_path / "tiny_stage2" / "build_manifest.json"
    m = json.loads(path.read_text())
    victim = m["locked"]["dancetrack"]["val"][0]
    for entry in m["splits"]["train"].values():
        if entry["source"] == "dancetrack":
            entry.update(raw_split="val", raw_sequence=victim)  # pretend the earlier build trained on it
            break
    path.write_text(json.dumps(m))
    m3 = _manifest(build(tiny_curriculum[3], build_root=tmp_path))
    assert victim not in {e["raw_sequence"] for e in m3["splits"]["train"].values()}


def test_malformed_replay_build_manifest_is_a_clear_error(tiny_curriculum, tmp_path):
    (tmp_path / "tiny_stage2").mkdir()
    path = tmp_path / "tiny_stage2" / "build_manifest.json"
    path.write_text("{")
    with pytest.raises(BuilderError, match=r"replay_from 'tiny_stage2': .*build_manifest\.json:1:2: malformed JSON"):
        build(tiny_curriculum[3], build_root=tmp_path)
    path.write_text('{"splits": {}}')
    with pytest.raises(BuilderError, match=r"replay_from 'tiny_stage2': .* is not a build manifest"):
        build(tiny_curriculum[3], build_root=tmp_path)


def test_out_name_of_the_replayed_build_is_refused(tiny_curriculum, tmp_path):
    with pytest.raises(BuilderError, match="'tiny_stage2' is the build this recipe replays from"):
        build(tiny_curriculum[3], build_root=tmp_path, out_name="tiny_stage2")


def test_rebuild_over_a_symlinked_build_replaces_the_link_only(tiny_curriculum, tmp_path):
    elsewhere = build(tiny_curriculum[1], build_root=tmp_path / "elsewhere")
    root = tmp_path / "builds"
    root.mkdir()
    (root / elsewhere.name).symlink_to(elsewhere, target_is_directory=True)
    out = build(tiny_curriculum[1], build_root=root, seed=3)
    assert out.is_dir() and not out.is_symlink() and _manifest(out)["seed"] == 3
    assert _manifest(elsewhere)["seed"] != 3  # the link's target was not touched
    assert sorted(p.name for p in root.iterdir()) == [out.name]


def test_one_sequence_name_in_two_pool_splits_is_an_error(tmp_path):
    root = _mot17_root(tmp_path / "mot17", ["MOT17-05-SDP", "MOT17-09-DPM"])
    shutil.copytree(root / "train" / "MOT17-09-DPM", root / "val" / "MOT17-09-DPM")
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"source": "mot17", "val": [{"name": "MOT17-05-SDP", "split": "train"}]}))
    recipe = write_recipe(tmp_path / "r.toml", {"name": "m", "seed": 0, "sources": {"mot17": {
        "root": str(root), "manifest": str(manifest), "frame_budget": 1, "clip_length": 1,
        "pool_splits": ["train", "val"]}}})
    with pytest.raises(BuilderError, match="'MOT17-09-DPM' appears in splits 'train' and 'val'"):
        build(recipe, build_root=tmp_path / "b")


def test_cli_error_keeps_the_recipe_table_name(tmp_path, capsys):
    """The one-line error names ``[sources.<name>]`` verbatim (rich markup must not swallow it)."""
    recipe = write_recipe(tmp_path / "r.toml", {"name": "r", "seed": 0, "sources": {"dancetrack": {
        "root": "nowhere", "manifest": str(tmp_path / "m.json"), "frame_budget": 1, "clip_length": 1}}})
    assert main(["build", str(recipe), "--data-root", str(tmp_path)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "[sources.dancetrack] root" in err and "does not exist" in err
