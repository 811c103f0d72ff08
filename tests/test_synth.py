"""Tests of builder.synth: the synthetic raw datasets in the official layouts of four sources.

Everything is generated in code at the "tiny" scale (the whole of write_synth takes about a second).
"""

from __future__ import annotations

import configparser
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from builder import synth
from builder.cli import main as builder_main
from builder.errors import BuilderError, NotRegisteredError
from builder.synth import DANCETRACK_SPLITS, SCALES, SOURCES, get_scale, write_synth, writers
from builder.synth.draw import draw_instance
from builder.synth.scene import AERIAL_SHAPES, GROUND_SHAPES, ActorType, Instance, Look

TINY = SCALES["tiny"]
SEQINFO_KEYS = ["name", "imdir", "framerate", "seqlength", "imwidth", "imheight", "imext"]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "raw"
    write_synth(out, scale="tiny", seed=0)
    return out


def _tree_digest(folder: Path, pattern: str = "**/*") -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob(pattern)) if p.is_file()}


def _rows(path: Path, columns: int) -> np.ndarray:
    table = np.loadtxt(path, delimiter=",", ndmin=2)
    assert table.shape[1] == columns, f"{path}: {table.shape[1]} columns"
    return table


def _seqinfo(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(path)
    return parser["Sequence"]


def _mot_sequences(root: Path, source: str, split: str) -> list[Path]:
    return sorted(p for p in (root / source / split).iterdir() if p.is_dir())


def _bdd_frames(root: Path) -> dict[Path, list[dict]]:
    return {p: json.loads(p.read_text()) for p in sorted((root / "bdd100k" / "labels").rglob("*.json"))}


def _ground_truth_tables(root: Path) -> dict[str, list[tuple[np.ndarray, tuple[int, int]]]]:
    """Per source: (xyxy boxes with frame, id, category columns, frame size) of every annotated sequence.

    Rows: frame, id, x1, y1, x2, y2, category (bdd100k: 1 person-like, 2 vehicle-like).
    """
    out: dict[str, list] = {s: [] for s in SOURCES}
    for frames in _bdd_frames(root).values():
        rows = [(f["frameIndex"] + 1, int(lab["id"]), lab["box2d"]["x1"], lab["box2d"]["y1"], lab["box2d"]["x2"],
                 lab["box2d"]["y2"], 2 if lab["category"] in ("car", "truck", "bus") else 1)
                for f in frames for lab in f["labels"] if not lab["attributes"]["crowd"]]
        out["bdd100k"].append((np.array(rows, float).reshape(-1, 7), TINY.ground_size))
    for source, splits in (("dancetrack", ("train", "val")), ("mot17", ("train",))):
        for split in splits:
            for seq in _mot_sequences(root, source, split):
                t = _rows(seq / "gt" / "gt.txt", 9)
                xyxy = np.c_[t[:, :4], t[:, 2:4] + t[:, 4:6], t[:, 7]]
                out[source].append((xyxy, TINY.ground_size))
    for ann in sorted((root / "visdrone").glob("*/annotations/*.txt")):
        t = _rows(ann, 10)
        t = t[t[:, 7] != 0]
        out["visdrone"].append((np.c_[t[:, :4], t[:, 2:4] + t[:, 4:6], t[:, 7]], TINY.aerial_size))
    return out


# --- scales and arguments ----------------------------------------------------------------------------------
def test_scales_are_frozen_and_follow_the_plan() -> None:
    demo = get_scale("demo")
    assert (demo.ground_size, demo.aerial_size) == ((320, 192), (320, 240))
    planned = {s: {p.split: (p.sequences, p.frames) for p in demo.plan(s)} for s in SOURCES}
    assert planned["bdd100k"] == {"train": (16, 40), "val": (6, 40)}
    assert planned["dancetrack"] == {"train": (10, 40), "val": (6, 40), "test": (2, 40)}
    assert planned["visdrone"] == {"train": (10, 40), "val": (4, 40), "test-dev": (2, 40)}
    assert planned["mot17"]["train"] == (4, 30)
    with pytest.raises(AttributeError):
        demo.jpeg_quality = 50  # type: ignore[misc]
    with pytest.raises(TypeError):
        SCALES["huge"] = demo  # type: ignore[index]


def test_unknown_scale_and_source_list_the_valid_names(tmp_path: Path) -> None:
    with pytest.raises(NotRegisteredError, match="synth scale 'huge' is not registered! Available: demo, tiny"):
        write_synth(tmp_path, scale="huge")
    with pytest.raises(NotRegisteredError, match="Available: bdd100k, dancetrack, mot17, visdrone"):
        write_synth(tmp_path, sources=["kitti"])
    assert list(tmp_path.iterdir()) == []


# --- determinism -------------------------------------------------------------------------------------------
def test_same_seed_gives_identical_bytes(root: Path, tmp_path: Path) -> None:
    again = write_synth(tmp_path / "again", scale="tiny", seed=0)
    assert set(again) == set(SOURCES)
    for source in SOURCES:
        assert _tree_digest(root / source) == _tree_digest(again[source]), source


def test_other_seed_changes_labels_and_images(root: Path, tmp_path: Path) -> None:
    other = write_synth(tmp_path / "other", scale="tiny", seed=1)
    # Same names (the official ones) for DanceTrack, different content.
    a, b = _tree_digest(root / "dancetrack", "*/*/gt/gt.txt"), _tree_digest(other["dancetrack"], "*/*/gt/gt.txt")
    assert a.keys() == b.keys() and all(a[k] != b[k] for k in a)
    a, b = _tree_digest(root / "dancetrack", "*/*/img1/*.jpg"), _tree_digest(other["dancetrack"], "*/*/img1/*.jpg")
    assert all(a[k] != b[k] for k in a)
    # Names drawn from the seed change with it.
    assert _tree_digest(root / "bdd100k").keys().isdisjoint(_tree_digest(other["bdd100k"]).keys())


def test_a_source_does_not_depend_on_the_others_written(root: Path, tmp_path: Path) -> None:
    alone = write_synth(tmp_path / "alone", scale="tiny", seed=0, sources=["mot17"])
    assert list(alone) == ["mot17"]
    assert _tree_digest(alone["mot17"]) == _tree_digest(root / "mot17")


# --- official layouts --------------------------------------------------------------------------------------
def test_bdd100k_layout(root: Path) -> None:
    bdd = root / "bdd100k"
    assert sorted(p.name for p in (bdd / "labels" / "box_track_20").iterdir()) == ["train", "val"]
    categories, crowd = set(), 0
    for split in ("train", "val"):
        labels = sorted((bdd / "labels" / "box_track_20" / split).glob("*.json"))
        assert len(labels) == 4
        for path in labels:
            video = path.stem
            assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{8}", video)
            frames = json.loads(path.read_text())
            assert [f["frameIndex"] for f in frames] == list(range(12))
            for f in frames:
                assert set(f) == {"name", "videoName", "frameIndex", "labels"}
                assert f["videoName"] == video and f["name"] == f"{video}-{f['frameIndex'] + 1:07d}.jpg"
                assert (bdd / "images" / "track" / split / video / f["name"]).is_file()
                for lab in f["labels"]:
                    assert set(lab) == {"id", "category", "attributes", "box2d"} and isinstance(lab["id"], str)
                    assert set(lab["attributes"]) == {"occluded", "truncated", "crowd"}
                    assert set(lab["box2d"]) == {"x1", "y1", "x2", "y2"}
                    categories.add(lab["category"])
                    crowd += lab["attributes"]["crowd"]
    assert categories == {"pedestrian", "rider", "car", "truck", "bus", "bicycle", "motorcycle"}
    assert crowd > 0


def test_motchallenge_layouts(root: Path) -> None:
    expected = {"dancetrack": (("train", 4), ("val", 4), ("test", 1)), "mot17": (("train", 8), ("test", 1))}
    for source, splits in expected.items():
        assert sorted(p.name for p in (root / source).iterdir()) == sorted(s for s, _ in splits)
        for split, count in splits:
            seqs = _mot_sequences(root, source, split)
            assert len(seqs) == count
            for seq in seqs:
                info = _seqinfo(seq / "seqinfo.ini")
                assert list(info) == SEQINFO_KEYS and info["name"] == seq.name and info["imDir"] == "img1"
                assert (int(info["imWidth"]), int(info["imHeight"]), info["imExt"]) == (*TINY.ground_size, ".jpg")
                digits = 8 if source == "dancetrack" else 6
                names = sorted(p.name for p in (seq / "img1").iterdir())
                assert names == [f"{k:0{digits}d}.jpg" for k in range(1, int(info["seqLength"]) + 1)]
                assert (seq / "gt" / "gt.txt").is_file() == (split != "test")
                pattern = r"dancetrack\d{4}" if source == "dancetrack" else r"MOT17-\d{2}-SYN"
                assert re.fullmatch(pattern, seq.name)
                if source == "dancetrack":
                    assert int(seq.name[-4:]) in DANCETRACK_SPLITS[split]


def test_dancetrack_rows_are_people_with_ones(root: Path) -> None:
    for seq in _mot_sequences(root, "dancetrack", "train"):
        t = _rows(seq / "gt" / "gt.txt", 9)
        assert (t[:, 6:9] == 1).all()
        order = np.lexsort((t[:, 1], t[:, 0]))
        assert (order == np.arange(len(t))).all()  # sorted by frame, then id


def test_mot17_class_and_conf_semantics(root: Path) -> None:
    t = np.concatenate([_rows(seq / "gt" / "gt.txt", 9) for seq in _mot_sequences(root, "mot17", "train")])
    conf, cls, vis = t[:, 6], t[:, 7], t[:, 8]
    assert set(np.unique(cls)) == {1, 3, 7, 8}
    assert (conf == (cls == 1)).all()  # pedestrians conf 1, static persons / distractors / cars conf 0
    assert ((vis >= 0) & (vis <= 1)).all() and (vis < 1).any()


def test_visdrone_layout_and_columns(root: Path) -> None:
    vis = root / "visdrone"
    expected = {"train": 4, "val": 4, "test-dev": 1}
    assert sorted(p.name for p in vis.iterdir()) == sorted(f"VisDrone2019-MOT-{s}" for s in expected)
    rows = []
    for split, count in expected.items():
        split_dir = vis / f"VisDrone2019-MOT-{split}"
        seqs = sorted(p.name for p in (split_dir / "sequences").iterdir())
        assert len(seqs) == count and all(re.fullmatch(r"uav\d{7}_\d{5}_v", s) for s in seqs)
        assert sorted(p.stem for p in (split_dir / "annotations").iterdir()) == seqs
        for seq in seqs:
            names = sorted(p.name for p in (split_dir / "sequences" / seq).iterdir())
            assert names == [f"{k:07d}.jpg" for k in range(1, len(names) + 1)]
            rows.append(_rows(split_dir / "annotations" / f"{seq}.txt", 10))
    t = np.concatenate(rows)
    score, cat, trunc, occ = t[:, 6], t[:, 7], t[:, 8], t[:, 9]
    assert set(np.unique(cat)) == {0, 1, 2, 3, 4, 5, 6, 9, 10}
    assert (score[cat == 0] == 0).all() and (t[cat == 0, 1] == 0).all()  # ignored regions: id 0, score 0
    assert (score[cat != 0] == 0).any()  # a few score-0 objects
    assert set(np.unique(trunc)) <= {0, 1} and set(np.unique(occ)) <= {0, 1, 2} and (occ > 0).any()


# --- geometry and tracks -----------------------------------------------------------------------------------
def test_boxes_inside_the_frame(root: Path) -> None:
    tables = _ground_truth_tables(root)
    for source, seqs in tables.items():
        for t, (w, h) in seqs:
            x1, y1, x2, y2 = t[:, 2], t[:, 3], t[:, 4], t[:, 5]
            assert ((x2 - x1 >= 2) & (y2 - y1 >= 2)).all(), source
            overlaps = (x2 > 0) & (y2 > 0) & (x1 < w) & (y1 < h)
            assert overlaps.all(), source
            inside = (x1 >= 0) & (y1 >= 0) & (x2 <= w) & (y2 <= h)
            if source != "mot17":
                assert inside.all(), source
    # MOT17 writes boxes unclipped, as the official ground truth does: some reach out of the frame.
    assert any(not ((t[:, 2] >= 0) & (t[:, 4] <= w)).all() for t, (w, _) in tables["mot17"])


def test_track_ids_are_unique_per_frame_and_contiguous(root: Path) -> None:
    for source, seqs in _ground_truth_tables(root).items():
        for t, _ in seqs:
            pairs = t[:, :2].astype(int)
            assert len({tuple(p) for p in pairs}) == len(pairs), source
            for tid in np.unique(pairs[:, 1]):
                frames = np.sort(pairs[pairs[:, 1] == tid, 0])
                # A track id names one object: one run of frames (it may be unlabelled while wholly hidden).
                assert (np.unique(t[t[:, 1] == tid, 6]).size == 1), (source, tid)
                assert frames[-1] - frames[0] + 1 >= len(frames)


def test_objects_enter_and_leave_through_the_borders(root: Path) -> None:
    for source in ("bdd100k", "mot17", "visdrone"):
        late_starts = early_ends = 0
        for t, _ in _ground_truth_tables(root)[source]:
            for tid in np.unique(t[:, 1]):
                frames = t[t[:, 1] == tid, 0]
                late_starts += frames.min() > 1
                early_ends += frames.max() < 12
        assert late_starts > 0 and early_ends > 0, source


def test_people_are_tall_vehicles_wide_and_aerial_objects_small(root: Path) -> None:
    tables = _ground_truth_tables(root)

    def boxes(source: str, classes: tuple[int, ...]) -> np.ndarray:
        t = np.concatenate([t for t, _ in tables[source]])
        t = t[np.isin(t[:, 6], classes)]
        return np.c_[t[:, 4] - t[:, 2], t[:, 5] - t[:, 3]]

    for source, people, vehicles in (("bdd100k", (1,), (2,)), ("visdrone", (1,), (4, 5, 6, 9))):
        p, v = boxes(source, people), boxes(source, vehicles)
        assert np.median(p[:, 0] / p[:, 1]) < 0.6 and np.median(v[:, 0] / v[:, 1]) > 1.4, source
    # Median box area as a fraction of the image area (the aerial frames are the larger ones).
    ground = [np.median(np.prod(boxes(s, (1, 2)), axis=1)) / np.prod(TINY.ground_size) for s in ("bdd100k", "dancetrack")]
    aerial = np.median(np.prod(boxes("visdrone", (1, 2, 4, 5, 6, 9)), axis=1)) / np.prod(TINY.aerial_size)
    assert aerial < min(ground) / 3


def test_ground_views_have_perspective(root: Path) -> None:
    """Lower in the image (larger bottom y) means nearer, hence taller: a strong positive correlation."""
    for source in ("dancetrack", "mot17"):
        t = np.concatenate([t for t, _ in _ground_truth_tables(root)[source]])
        t = t[(t[:, 6] == 1) & (t[:, 5] < TINY.ground_size[1])]  # people not cut by the bottom edge
        assert np.corrcoef(t[:, 5], t[:, 5] - t[:, 3])[0, 1] > 0.5, source


@pytest.mark.parametrize("style", ["street", "aerial"])
def test_drawn_extents_equal_the_box(style: str) -> None:
    """Boxes are tight: every kind, drawn on black, covers exactly its box's first and last rows and columns."""
    look = Look((40, 200, 230), (200, 210, 220), (90, 130, 180), parts=((0.0, 0.0, 0.5, 1.0, 200, 30, 30),
                                                                        (0.5, 0.1, 1.0, 1.0, 30, 200, 30)))
    kinds = AERIAL_SHAPES if style == "aerial" else GROUND_SHAPES
    for kind, (_, aspect) in kinds.items():
        h = 30
        box = (7, 5, 7 + max(int(h * aspect), 3), 5 + h)
        img = np.zeros((60, 140, 3), np.uint8)
        draw_instance(img, Instance(1, "x", kind, box, 0.0, look, frozenset()), style)
        ys, xs = np.nonzero(img.any(axis=2))
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == box, kind


# --- writing -----------------------------------------------------------------------------------------------
def test_refuses_to_overwrite_and_replaces_on_request(tmp_path: Path) -> None:
    first = write_synth(tmp_path, sources=["dancetrack"], seed=0)
    before = _tree_digest(first["dancetrack"])
    with pytest.raises(BuilderError, match="refusing to overwrite"):
        write_synth(tmp_path, sources=["dancetrack"], seed=1)
    assert _tree_digest(first["dancetrack"]) == before
    write_synth(tmp_path, sources=["dancetrack"], seed=1, overwrite=True)
    assert _tree_digest(first["dancetrack"]) != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dancetrack"]  # no .tmp-* left behind


def test_a_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = writers._write_source

    def failing(source: str, *args, **kwargs) -> None:
        if source == "visdrone":
            raise RuntimeError("disk full")
        real(source, *args, **kwargs)

    monkeypatch.setattr(writers, "_write_source", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        write_synth(tmp_path, sources=["dancetrack", "visdrone"])
    assert list(tmp_path.iterdir()) == []


def test_written_frames_match_the_plan(root: Path) -> None:
    """The tiny scale writes exactly its planned frames (so its cost is bounded by the plan)."""
    counts = {
        "bdd100k": len(list((root / "bdd100k" / "images").rglob("*.jpg"))),
        "dancetrack": len(list((root / "dancetrack").rglob("*.jpg"))),
        "visdrone": len(list((root / "visdrone").rglob("*.jpg"))),
        "mot17": len(list((root / "mot17").rglob("*.jpg"))),
    }
    assert counts == {s: sum(p.sequences * p.frames for p in TINY.plan(s)) for s in SOURCES}


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert builder_main(["synth", str(tmp_path), "--seed", "3", "--sources", "mot17", "--quiet"]) == 0
    assert "mot17: " in capsys.readouterr().out
    assert (tmp_path / "mot17" / "train").is_dir()
    assert builder_main(["synth", str(tmp_path), "--sources", "mot17", "--quiet"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


def test_scene_spec_rejects_a_kind_its_style_cannot_draw() -> None:
    from builder.synth.scene import SceneSpec

    with pytest.raises(ValueError, match="valid kinds"):
        SceneSpec("aerial", (ActorType("x", "crowd", 1.0),), (1, 2), 0.01)


# --- the real adapters read the output ---------------------------------------------------------------------
def test_every_adapter_reads_the_output(root: Path) -> None:
    sources = pytest.importorskip("builder.sources", reason="source adapters (builder/sources/) not written yet")
    from builder.classmap import ClassMap, default_classmap_path
    from builder.records import WarningCounter

    classes = ["person", "vehicle"]
    for source in SOURCES:
        warnings = WarningCounter()
        adapter = sources.get_source(source)(root / source, ClassMap.load(default_classmap_path(source), classes),
                                             warnings)
        counts = np.zeros(3, int)  # ignore, person, vehicle
        for split in adapter.splits():
            for seq in adapter.sequences(split):
                assert sources.missing_images(seq) == [], (source, seq.name)
                assert (seq.width, seq.height) == (TINY.aerial_size if source == "visdrone" else TINY.ground_size)
                for frame in seq.frames:
                    counts += np.bincount(frame.labels, minlength=3)[:3]
        # MOT17 boxes are written unclipped (as MOT17's are): clipping them is the only warning.
        assert set(warnings.as_dict()) <= ({"box_partly_outside_frame"} if source == "mot17" else set()), (source, warnings)
        assert counts[1] > 0, source
        if source in ("bdd100k", "visdrone"):
            assert counts[2] > 0 and counts[0] > 0, source


# --- the demo manifests lock sequences of the demo-scale output --------------------------------------------
DEMO_MANIFESTS = Path(__file__).resolve().parents[1] / "manifests" / "demo"


def _demo_manifests() -> dict:
    manifest = pytest.importorskip("builder.manifest", reason="builder/manifest.py not written yet")
    found = {p.stem: manifest.load_manifest(p, p.stem) for p in sorted(DEMO_MANIFESTS.glob("*.json"))}
    if not found:
        pytest.skip(f"no demo manifests in {DEMO_MANIFESTS}")
    return found


def test_demo_manifests_name_sequences_the_demo_scale_writes() -> None:
    """Cheap (no rendering): every locked name exists in the demo-scale names of seed 0, in its split."""
    for source, m in _demo_manifests().items():
        names = synth.sequence_names(source, get_scale("demo"), 0)
        for entry in m.entries:
            assert entry.name in names[entry.split], (source, entry.name)


@pytest.mark.slow
def test_demo_manifest_digests_match_the_demo_scale_output(tmp_path: Path) -> None:
    """Any change to the rendering or motion changes these digests: re-lock manifests/demo/ when it fails
    (``python -m builder synth D --scale demo`` then ``python -m builder lock S --root D/S --manifest
    manifests/demo/S.json --force`` per source S)."""
    from builder.classmap import ClassMap, default_classmap_path
    from builder.manifest import sequence_digest
    from builder.records import WarningCounter
    from builder.sources import get_source

    manifests = _demo_manifests()
    roots = write_synth(tmp_path, scale="demo", seed=0, sources=list(manifests))
    classes = ["person", "vehicle"]
    for source, m in manifests.items():
        adapter = get_source(source)(roots[source], ClassMap.load(default_classmap_path(source), classes),
                                     WarningCounter())
        for entry in m.entries:
            digest = sequence_digest(adapter.read_sequence(entry.split, entry.name).frames, classes)
            assert digest == entry.digest, (source, entry.name)


# --- the DanceTrack-like stage: appearance is necessary ---------------------------------------------------------
def test_dancers_wear_distinct_costumes_until_the_palette_is_used_up() -> None:
    from builder.synth.dance import HUE_SLOTS, PATTERNS, Costumes

    costumes = Costumes(40, np.random.default_rng(0))
    looks = [costumes.next_look() for _ in range(HUE_SLOTS * len(PATTERNS))]
    assert len({(lk.main, lk.pattern, lk.accent) for lk in looks}) == len(looks)
    assert {lk.second for lk in looks} == {looks[0].second} and {lk.skin for lk in looks} == {looks[0].skin}
    assert costumes.next_look() == looks[0]  # then the palette cycles


@pytest.mark.parametrize("probability,turned", [(1.0, True), (0.0, False)])
def test_dancers_meeting_head_on_bump_or_pass(probability: float, turned: bool) -> None:
    from types import SimpleNamespace

    from builder.synth.dance import Bumps

    a = SimpleNamespace(tid=1, x=100.0, vx=4.0, vy=1.0)
    b = SimpleNamespace(tid=2, x=104.0, vx=-4.0, vy=0.5)
    box_of = {1: (85, 20, 115, 90), 2: (89, 21, 119, 91)}
    bumps = Bumps(probability, np.random.default_rng(0))
    bumps([a, b], lambda d: box_of[d.tid])
    assert (a.vx < 0 and b.vx > 0) == turned and (a.vy, b.vy) == ((-1.0, -0.5) if turned else (1.0, 0.5))
    bumps([a, b], lambda d: box_of[d.tid])  # one meeting, one decision
    assert (a.vx < 0) == turned


def test_dancers_have_one_size_and_one_speed() -> None:
    from builder.synth.motion import simulate
    from builder.synth.scene import scene_spec

    sim = simulate(scene_spec("dancetrack", (4, 10)), (320, 192), 40, np.random.default_rng(3))
    # one size: the box height is a function of the foot row alone (perspective), whoever the dancer is
    heights: dict[int, set[int]] = {}
    for frame in sim.frames:
        for inst in frame:
            heights.setdefault(inst.box[3], set()).add(inst.box[3] - inst.box[1])
    assert all(max(h) - min(h) <= 1 for h in heights.values())
    assert len({inst.tid for frame in sim.frames for inst in frame}) >= 5
    # one speed: every new heading keeps the magnitude, within 0.5 rad of the horizontal, the given way
    from builder.synth.dance import MAX_ANGLE, uniform_velocity

    for direction in (-1.0, 1.0):
        vx, vy = uniform_velocity(3.84, direction, np.random.default_rng(7))
        assert np.hypot(vx, vy) == pytest.approx(3.84) and np.sign(vx) == direction
        assert abs(np.arctan2(vy, abs(vx))) <= MAX_ANGLE
