"""Manifest lock: content digests, seeded draw, idempotence, refusal to change silently, shipped manifests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REALDATA, REPO

from builder.cli import main
from builder.errors import BuilderError
from builder.manifest import draw_locked, load_manifest, sequence_digest
from builder.records import FrameRecord
from builder.synth import get_scale, sequence_names


def _frame(boxes, ids, labels, index=1, image="x/000001.jpg") -> FrameRecord:
    n = len(ids)
    return FrameRecord(index, Path(image), np.asarray(boxes, np.float64).reshape(n, 4), np.asarray(ids, np.int64),
                       np.asarray(labels, np.int16), np.ones(n, np.float32))


def test_digest_canonical_form():
    boxes, ids, labels = [[0, 0, 10, 20], [5.004, 5, 15, 25]], [1, 2], [1, 0]
    d = sequence_digest([_frame(boxes, ids, labels)], ("person", "vehicle"))
    # box order within a frame does not matter; label names, not ids, are hashed
    assert d == sequence_digest([_frame(boxes[::-1], ids[::-1], labels[::-1])], ("person", "vehicle"))
    assert d == sequence_digest([_frame(boxes, ids, [2, 0])], ("vehicle", "person"))
    # boxes are rounded to 0.01 px: 0.001 px is invisible, 0.01 px is not
    assert d == sequence_digest([_frame([[0, 0, 10.001, 20], boxes[1]], ids, labels)], ("person", "vehicle"))
    assert d != sequence_digest([_frame([[0, 0, 10.01, 20], boxes[1]], ids, labels)], ("person", "vehicle"))
    # the image directory is not part of it, the file name is; so are the frame number and the track ids
    assert d == sequence_digest([_frame(boxes, ids, labels, image="/elsewhere/000001.jpg")], ("person", "vehicle"))
    assert d != sequence_digest([_frame(boxes, ids, labels, image="x/000002.jpg")], ("person", "vehicle"))
    assert d != sequence_digest([_frame(boxes, ids, labels, index=2)], ("person", "vehicle"))
    assert d != sequence_digest([_frame(boxes, [1, 3], labels)], ("person", "vehicle"))


def test_draw_rule_is_seeded_and_disjoint():
    names = [f"s{i}" for i in range(10)]
    val, test = draw_locked(names, 3, 4, seed=0, source="x")
    assert len(val) == 3 and len(test) == 4 and not set(val) & set(test)
    assert (val, test) == draw_locked(list(reversed(names)), 3, 4, seed=0, source="x")
    assert (val, test) != draw_locked(names, 3, 4, seed=1, source="x")
    with pytest.raises(BuilderError, match="cannot lock 6 val \\+ 5 test sequences from 10"):
        draw_locked(names, 6, 5, seed=0, source="x")


def _lock(tiny_raw, path, *extra) -> int:
    return main(["lock", "bdd100k", "--root", str(tiny_raw / "bdd100k"), "--manifest", str(path), *extra])


def test_lock_is_idempotent_and_never_changes_silently(tiny_raw, tmp_path, capsys):
    path = tmp_path / "bdd100k.json"
    assert _lock(tiny_raw, path, "--val", "2", "--test", "1") == 0
    first = path.read_bytes()
    m = load_manifest(path, "bdd100k")
    assert (len(m.val), len(m.test), m.is_locked) == (2, 1, True)
    assert {e.name for e in m.entries} <= set(sequence_names("bdd100k", get_scale("tiny"), 0)["val"])
    assert _lock(tiny_raw, path) == 0 and path.read_bytes() == first
    assert "unchanged" in capsys.readouterr().out
    # other counts: refused without --force, redrawn with it
    assert _lock(tiny_raw, path, "--val", "3") == 2 and path.read_bytes() == first
    assert "--force" in capsys.readouterr().err
    assert _lock(tiny_raw, path, "--val", "3", "--force") == 0
    assert len(load_manifest(path).val) == 3


def test_lock_refuses_changed_content_without_force(tiny_raw, tmp_path, capsys):
    path = tmp_path / "bdd100k.json"
    assert _lock(tiny_raw, path, "--val", "1", "--test", "1") == 0
    data = json.loads(path.read_text())
    name, good = data["val"][0]["name"], data["val"][0]["digest"]
    data["val"][0]["digest"] = "0" * 64  # as if the raw labels had changed since the lock
    path.write_text(json.dumps(data))
    capsys.readouterr()
    assert _lock(tiny_raw, path) == 2
    err = capsys.readouterr().err
    assert name in err and "0" * 64 in err and good in err
    assert _lock(tiny_raw, path, "--force") == 0
    assert load_manifest(path).val[0].digest == good


def test_digests_of_an_older_version_are_refused_naming_the_command(tiny_raw, tmp_path, capsys):
    """Digest v3 hashes raw boxes (v2: clipped); a manifest of v2 digests (no digest_version key) is refused by
    lock and build with the command that re-records it, and --force re-records it as v3."""
    from builder.build import build
    from builder.manifest import DIGEST_VERSION

    path = tmp_path / "bdd100k.json"
    assert _lock(tiny_raw, path, "--val", "1", "--test", "1") == 0
    data = json.loads(path.read_text())
    assert data["digest_version"] == DIGEST_VERSION == "v3"
    del data["digest_version"]  # as written before the key existed: v2 digests
    path.write_text(json.dumps(data))
    capsys.readouterr()
    assert _lock(tiny_raw, path) == 2
    err = capsys.readouterr().err
    assert "version v2" in err and f"python -m builder lock bdd100k --manifest {path} --force" in err
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'name = "r"\nseed = 0\nclasses = ["person", "vehicle"]\n[sources.bdd100k]\n'
                      f'root = "{tiny_raw / "bdd100k"}"\nmanifest = "{path}"\nframe_budget = 4\nclip_length = 2\n')
    with pytest.raises(BuilderError, match="version v2 .* this builder computes v3"):
        build(recipe, build_root=tmp_path / "builds")
    assert _lock(tiny_raw, path, "--force") == 0
    assert load_manifest(path).digest_version == "v3" and load_manifest(path).stale_digests is None


def test_lock_fills_digests_of_a_named_manifest(tiny_raw, tmp_path):
    names = sequence_names("dancetrack", get_scale("tiny"), 0)["val"]
    path = tmp_path / "dancetrack.json"
    path.write_text(json.dumps({"source": "dancetrack", "seed": 0, "val": [{"name": names[0], "split": "val"}],
                                "test": [{"name": names[1], "split": "val", "digest": None}]}))
    assert main(["lock", "dancetrack", "--root", str(tiny_raw / "dancetrack"), "--manifest", str(path)]) == 0
    m = load_manifest(path)
    assert [e.name for e in m.entries] == names[:2] and m.is_locked


def test_manifest_errors(tmp_path):
    bad = tmp_path / "m.json"
    bad.write_text('{"source": "x",\n "vall": []}')
    with pytest.raises(BuilderError, match="unexpected manifest keys \\['vall'\\]; valid keys"):
        load_manifest(bad)
    bad.write_text('{"source": "x",\n "val": [}')
    with pytest.raises(BuilderError, match=r"m\.json:2:\d+: malformed JSON"):
        load_manifest(bad)
    bad.write_text('{"source": "x"}')
    with pytest.raises(BuilderError, match="for source 'x', expected 'y'"):
        load_manifest(bad, "y")


def test_shipped_dancetrack_manifest_holds_the_official_val_split():
    m = load_manifest(REPO / "manifests" / "dancetrack.json", "dancetrack")
    names = sorted(e.name for e in m.entries)
    assert (len(m.val), len(m.test)) == (13, 12)
    assert all(e.split == "val" for e in m.entries)
    assert ([e.name for e in m.val], [e.name for e in m.test]) == draw_locked(names, 13, 12, seed=0,
                                                                                source="dancetrack")
    seqmap = REALDATA / "dancetrack-seqmaps" / "val_seqmap.txt"
    if seqmap.exists():
        assert names == sorted(seqmap.read_text().split()[1:])
    for source in ("bdd100k", "visdrone"):
        assert load_manifest(REPO / "manifests" / f"{source}.json", source).entries == ()


def test_demo_manifests_lock_synth_demo_val_sequences():
    real = load_manifest(REPO / "manifests" / "dancetrack.json")
    for source in ("bdd100k", "dancetrack", "visdrone"):
        m = load_manifest(REPO / "manifests" / "demo" / f"{source}.json", source)
        assert m.is_locked and len(m.val) >= 2 and len(m.test) >= 2
        assert {e.name for e in m.entries} <= set(sequence_names(source, get_scale("demo"), 0)["val"])
    demo = load_manifest(REPO / "manifests" / "demo" / "dancetrack.json")
    # the demo keeps the real manifest's division of the synthetic (= official) val names
    assert {e.name for e in demo.val} <= {e.name for e in real.val}
    assert {e.name for e in demo.test} <= {e.name for e in real.test}


def test_lock_from_train_split_for_mot17(tiny_raw, tmp_path, capsys):
    """MOT17 has no official val split: lock draws from train, and the build then keeps them out of train."""
    path = tmp_path / "mot17.json"
    args = ["lock", "mot17", "--root", str(tiny_raw / "mot17"), "--manifest", str(path), "--val", "2", "--test", "1"]
    assert main([*args, "--split", "train"]) == 0
    m = load_manifest(path, "mot17")
    assert m.official_split_of_locked == "train" and {e.split for e in m.entries} == {"train"}
    assert main([*args, "--split", "val"]) == 2  # another split would change the lock
    assert "--force" in capsys.readouterr().err


def test_lock_refuses_sequences_without_ground_truth(tiny_raw, tmp_path, capsys):
    """mot17's test split has no gt.txt: locking it would only make every later build fail."""
    path = tmp_path / "mot17.json"
    assert main(["lock", "mot17", "--root", str(tiny_raw / "mot17"), "--manifest", str(path), "--split", "test",
                 "--val", "1", "--test", "0"]) == 2
    err = capsys.readouterr().err
    assert "has no ground truth and cannot be a locked val/test sequence" in err and str(path) in err
    assert not path.exists()
