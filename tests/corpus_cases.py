"""The cases of the bad-input corpus (tests/bad_input_corpus.py): builder inputs here, training inputs in
corpus_train_cases.py. Each setup prepares its bad input under ``tmp`` from the read-only :class:`Env`."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from bad_input_corpus import Call, Case, Env, copy_source, noise, recipe_with, same_files
from corpus_train_cases import TRAIN_CASES

BDD_LABELS = Path("labels") / "box_track_20"


def _bdd_label(root: Path, split: str = "train", index: int = 0) -> Path:
    return sorted((root / BDD_LABELS / split).glob("*.json"))[index]


def _mot_seq(root: Path, split: str = "train", index: int = 0) -> Path:
    return sorted(p for p in (root / split).iterdir() if p.is_dir())[index]


def _stats(source: str, root: Path) -> Call:
    return Call("builder", ["stats", source, str(root), "--json"])


# --------------------------------------------------------------------------------------- raw labels
def _bdd_stats(edit) -> Callable:
    def setup(env: Env, tmp: Path) -> Call:
        root = copy_source(env, tmp, "bdd100k")
        edit(root)
        return _stats("bdd100k", root)
    return setup


def _rewrite_bdd(change, split: str = "train") -> Callable:
    """Edit the first frame object of a BDD label file (``change(frames)`` mutates the parsed list)."""
    def edit(root: Path) -> None:
        path = _bdd_label(root, split)
        frames = json.loads(path.read_text())
        change(frames)
        path.write_text(json.dumps(frames))
    return edit


def _set(key: str, value, label: bool = False, every: bool = False):
    def change(frames: list) -> None:
        for frame in frames if every else frames[:1]:
            (frame["labels"][0] if label else frame)[key] = value
    return change


def _bdd_bytes(data: bytes) -> Callable:
    return lambda root: _bdd_label(root).write_bytes(data)


def _bdd_truncate(root: Path) -> None:
    path = _bdd_label(root)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _bdd_rename(new: str) -> Callable:
    return lambda root: _bdd_label(root).rename(_bdd_label(root).with_name(new + ".json"))


def _mot_stats(source: str, edit) -> Callable:
    def setup(env: Env, tmp: Path) -> Call:
        root = copy_source(env, tmp, source)
        edit(root)
        return _stats(source, root)
    return setup


def _seqinfo(key: str, value: str) -> Callable:
    def edit(root: Path) -> None:
        ini = _mot_seq(root) / "seqinfo.ini"
        lines = [f"{key}={value}" if ln.startswith(f"{key}=") else ln for ln in ini.read_text().splitlines()]
        ini.write_text("\n".join(lines) + "\n")
    return edit


def _gt(text: str | bytes, append: bool = False) -> Callable:
    def edit(root: Path) -> None:
        gt = _mot_seq(root) / "gt" / "gt.txt"
        data = text.encode() if isinstance(text, str) else text
        gt.write_bytes(gt.read_bytes() + data if append else data)
    return edit


def _rename_seq(new: str) -> Callable:
    return lambda root: _mot_seq(root).rename(_mot_seq(root).with_name(new))


def _visdrone(edit_text) -> Callable:
    def edit(root: Path) -> None:
        ann = sorted((root / "VisDrone2019-MOT-train" / "annotations").glob("*.txt"))[0]
        ann.write_text(edit_text(ann.read_text()))
    return edit


def _visdrone_rename(new: str) -> Callable:
    def edit(root: Path) -> None:
        ann = sorted((root / "VisDrone2019-MOT-train" / "annotations").glob("*.txt"))[0]
        seq = root / "VisDrone2019-MOT-train" / "sequences" / ann.stem
        ann.rename(ann.with_name(new + ".txt"))
        seq.rename(seq.with_name(new))
    return edit


def _first_row(change) -> Callable:
    def edit_text(text: str) -> str:
        rows = text.splitlines()
        rows[0] = change(rows[0].split(","))
        return "\n".join(rows) + "\n"
    return edit_text


SOURCE_CASES = [
    Case("bdd label file empty (0 bytes)", _bdd_stats(_bdd_bytes(b"")), words="empty file"),
    Case("bdd label file a JSON object, not a list", _bdd_stats(_bdd_bytes(b'{"frames": []}')), words="JSON list"),
    Case("bdd label file not UTF-8", _bdd_stats(_bdd_bytes(b'[{"name": "\xff\xfe"}]')), words="not UTF-8"),
    Case("bdd label file truncated", _bdd_stats(_bdd_truncate), words="malformed JSON"),
    Case("bdd label file an empty list", _bdd_stats(_bdd_bytes(b"[]")), status=0, words='"empty_label_file": 1'),
    Case("bdd frame name ../ outside the root", _bdd_stats(_rewrite_bdd(_set("name", "../../../../../etc/passwd"))),
         words="leads outside the source root"),
    Case("bdd frame name absolute", _bdd_stats(_rewrite_bdd(_set("name", "/etc/passwd"))),
         words="leads outside the source root"),
    Case("bdd frame name not a string", _bdd_stats(_rewrite_bdd(_set("name", 7))), words="'name' must be a string"),
    Case("bdd negative frameIndex", _bdd_stats(_rewrite_bdd(_set("frameIndex", -3))), status=0,
         words='"frame_out_of_range": 1'),
    Case("bdd frameIndex not a number", _bdd_stats(_rewrite_bdd(_set("frameIndex", "x"))), words="frameIndex"),
    Case("bdd labels not a list", _bdd_stats(_rewrite_bdd(_set("labels", 5))), words="'labels' must be a list"),
    Case("bdd videoName with ../", _bdd_stats(_rewrite_bdd(_set("videoName", "../../x", every=True))),
         words="not a safe directory name"),
    Case("bdd videoName with a newline", _bdd_stats(_rewrite_bdd(_set("videoName", "a\nb", every=True))),
         words="not a safe directory name"),
    Case("bdd label file name with a space", _bdd_stats(_bdd_rename("with space")), words="not a safe directory name"),
    Case("bdd label file name with a comma", _bdd_stats(_bdd_rename("a,b")), words="not a safe directory name"),
    Case("bdd box2d values strings", _bdd_stats(_rewrite_bdd(_set("box2d", {"x1": "a", "y1": 1, "x2": 2, "y2": 3},
                                                                    label=True))), words="box2d values must be numbers"),
    Case("bdd unknown category", _bdd_stats(_rewrite_bdd(_set("category", "scooter", label=True))),
         words="unknown raw category 'scooter'"),
    Case("bdd label id a list", _bdd_stats(_rewrite_bdd(_set("id", [1], label=True))), words="id must be"),
    Case("mot seqinfo imDir ../ outside the root", _mot_stats("dancetrack", _seqinfo("imDir", "../../../../..")),
         words="leads outside the source root"),
    Case("mot seqinfo imDir absolute", _mot_stats("dancetrack", _seqinfo("imDir", "/etc")),
         words="leads outside the source root"),
    Case("mot seqinfo imExt a path", _mot_stats("dancetrack", _seqinfo("imExt", "/../../../x")),
         words="expected an image extension"),
    Case("mot seqinfo seqLength negative", _mot_stats("mot17", _seqinfo("seqLength", "-5")), words="must be positive"),
    Case("mot seqinfo seqLength inf", _mot_stats("mot17", _seqinfo("seqLength", "inf")), words="not a finite number"),
    Case("mot seqinfo frameRate text", _mot_stats("dancetrack", _seqinfo("frameRate", "fast")), words="not a number"),
    Case("mot seqinfo not an ini file", _mot_stats("dancetrack", lambda r: (_mot_seq(r) / "seqinfo.ini").write_bytes(
        b"\x00\x01garbage")), words="seqinfo.ini"),
    Case("mot gt row not numbers", _mot_stats("dancetrack", _gt("1,2,three,4,5,6,1,1,1\n")), words="gt.txt:1"),
    Case("mot gt row too few columns", _mot_stats("dancetrack", _gt("1,2,3,4\n")), words="gt.txt:1"),
    Case("mot gt not UTF-8", _mot_stats("dancetrack", _gt(b"\xff\xfe1,2\n")), words="gt.txt"),
    Case("mot gt visibility 5", _mot_stats("mot17", _gt("1,77,10,10,20,40,1,1,5\n", append=True)), status=0,
         words='"visibility_out_of_range": 1'),
    Case("mot gt negative track id", _mot_stats("dancetrack", _gt("1,-4,10,10,20,40,1,1,1\n", append=True)), status=0,
         words='"negative_track_id": 1'),
    Case("mot gt unknown class", _mot_stats("mot17", _gt("1,78,10,10,20,40,1,99,1\n", append=True)),
         words="unknown raw category '99'"),
    Case("mot sequence folder with a space", _mot_stats("dancetrack", _rename_seq("dance 1")),
         words="not a safe directory name"),
    Case("mot sequence folder with a newline", _mot_stats("dancetrack", _rename_seq("dance\n1")),
         words="not a safe directory name"),
    Case("mot sequence folder with a comma", _mot_stats("mot17", _rename_seq("MOT17,02")),
         words="not a safe directory name"),
    Case("visdrone occlusion 7", _mot_stats("visdrone", _visdrone(_first_row(lambda r: ",".join(r[:9] + ["7"])))),
         words="occlusion must be 0, 1 or 2"),
    Case("visdrone frame not an integer", _mot_stats("visdrone", _visdrone(_first_row(lambda r: ",".join(["1.5"] + r[1:])))),
         words="annotations"),
    Case("visdrone sequence name with a tab", _mot_stats("visdrone", _visdrone_rename("uav\t1")),
         words="not a safe directory name"),
    Case("stats of an unknown source", lambda env, tmp: _stats("kitti", tmp), words="not registered"),
]


# --------------------------------------------------------------------------------------- builds
def _prior_build(env: Env, tmp: Path, name: str = "tiny_stage1") -> Path:
    """A copy of a good build under ``tmp/builds`` (what a failed build must leave as it was)."""
    return Path(shutil.copytree(env.builds / name, tmp / "builds" / name, symlinks=True))


def _build(env: Env, tmp: Path, recipe: Path, *extra: str) -> Call:
    """Build ``recipe`` over a prior good build; the prior build must stay byte-identical, no leftover stays."""
    prior = _prior_build(env, tmp)
    keep = same_files(prior)

    def check() -> list[str]:
        extra_entries = sorted(p.name for p in (tmp / "builds").iterdir() if p.name != prior.name)
        return keep() + ([f"leftovers in the build root: {extra_entries}"] if extra_entries else [])

    return Call("builder", ["build", str(recipe), "--build-root", str(tmp / "builds"), "--quiet", *extra],
                check=check)


def _pool_bdd(edit) -> Callable:
    def setup(env: Env, tmp: Path) -> Call:
        root = copy_source(env, tmp, "bdd100k")
        edit(root)
        return _build(env, tmp, recipe_with(env, tmp, bdd100k=root))
    return setup


def _locked_image(edit) -> Callable:
    """Damage the first image of the first locked val sequence of dancetrack (always linked by the build)."""
    def setup(env: Env, tmp: Path) -> Call:
        root = copy_source(env, tmp, "dancetrack")
        manifest = json.loads((env.recipes[1].parent / "manifests" / "dancetrack.json").read_text())
        entry = manifest["val"][0]
        image = sorted((root / entry["split"] / entry["name"] / "img1").iterdir())[1]  # the 1st gives the size
        edit(image)
        return _build(env, tmp, recipe_with(env, tmp, dancetrack=root))
    return setup


def _recipe_text(text: str | bytes) -> Callable:
    def setup(env: Env, tmp: Path) -> Call:
        path = tmp / "bad.toml"
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return _build(env, tmp, path)
    return setup


def _recipe_edit(change) -> Callable:
    def setup(env: Env, tmp: Path) -> Call:
        path = recipe_with(env, tmp)
        path.write_text(change(path.read_text()))
        return _build(env, tmp, path)
    return setup


def _manifest_edit(change) -> Callable:
    """A recipe whose dancetrack manifest is a changed copy of the locked one."""
    def setup(env: Env, tmp: Path) -> Call:
        data = json.loads((env.recipes[1].parent / "manifests" / "dancetrack.json").read_text())
        manifest = tmp / "dancetrack.json"
        manifest.write_text(change(data) if callable(change) else change)
        recipe = recipe_with(env, tmp)
        recipe.write_text(recipe.read_text().replace(str(env.recipes[1].parent / "manifests" / "dancetrack.json"),
                                                     str(manifest)))
        return _build(env, tmp, recipe)
    return setup


def _json_with(**changes) -> Callable:
    return lambda data: json.dumps(data | changes)


def _disk_full(target: str, after: int = 0):
    """A fault: the ``after``-th call (0-based) of ``target`` (module.attribute) and every later one raise ENOSPC."""
    def fault() -> contextlib.AbstractContextManager:
        import importlib
        from unittest import mock

        module, attr = target.rsplit(".", 1)
        real = getattr(importlib.import_module(module), attr)
        calls = {"n": 0}

        def full(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[0]) if args else None)
            return real(*args, **kwargs)

        return mock.patch(target, full)
    return fault


def _held_lock(env: Env, tmp: Path) -> Call:
    """Another process builds the same name: its lock file is flock-ed (here by this process, another fd)."""
    call = _build(env, tmp, env.recipes[1])
    lock = tmp / "builds" / ".lock-tiny_stage1"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    os.write(fd, b"pid 4242: python -m builder build stage1.toml\n")
    fcntl.flock(fd, fcntl.LOCK_EX)
    check = call.check

    def release() -> list[str]:
        os.close(fd)
        lock.unlink()
        return check()

    return Call(call.module, call.argv, check=release)


def _with_fault(setup, fault) -> Callable:
    def wrapped(env: Env, tmp: Path) -> Call:
        call = setup(env, tmp)
        return Call(call.module, call.argv, fault=fault, check=call.check)
    return wrapped


def _plain_build(env: Env, tmp: Path) -> Call:
    return _build(env, tmp, env.recipes[1])


BUILD_CASES = [
    Case("build: pool bdd label empty", _pool_bdd(_bdd_bytes(b"")), words="empty file"),
    Case("build: pool bdd label truncated", _pool_bdd(_bdd_truncate), words="malformed JSON"),
    Case("build: pool bdd label not UTF-8", _pool_bdd(_bdd_bytes(b"[\xff]")), words="not UTF-8"),
    Case("build: pool bdd label not a list", _pool_bdd(_bdd_bytes(b'"frames"')), words="JSON list"),
    Case("build: image of 0 bytes", _locked_image(lambda p: p.write_bytes(b"")), words="empty file (0 bytes)"),
    Case("build: image of random bytes", _locked_image(lambda p: p.write_bytes(noise(256))),
         words="unreadable image header"),
    Case("build: image missing", _locked_image(lambda p: p.unlink()), words="image file(s) missing"),
    Case("build: recipe is a directory", lambda env, tmp: _build(env, tmp, tmp), words="is a directory"),
    Case("build: recipe not UTF-8", _recipe_text(b"name = \"\xff\"\n"), words="not UTF-8"),
    Case("build: recipe not TOML", _recipe_text("name = [\n"), words="invalid TOML"),
    Case("build: recipe unknown key", _recipe_edit(lambda t: "colour = 1\n" + t), words="unknown key 'colour'"),
    Case("build: recipe seed a string", _recipe_edit(lambda t: t.replace("seed = 0", 'seed = "x"')),
         words="key 'seed' must be int"),
    Case("build: recipe name with a newline", _recipe_edit(lambda t: t.replace('name = "tiny_stage1"',
                                                                                'name = "tiny\\nstage"')),
         words="plain directory name"),
    Case("build: recipe missing", lambda env, tmp: _build(env, tmp, tmp / "nope.toml"), words="recipe file not found"),
    Case("build: --out with a slash", lambda env, tmp: _build(env, tmp, env.recipes[1], "--out", "a/b"),
         words="plain directory name"),
    Case("build: manifest seed a string", _manifest_edit(_json_with(seed="x")), words="key 'seed' must be a int"),
    Case("build: manifest source a number", _manifest_edit(_json_with(source=5)), words="key 'source' must be a str"),
    Case("build: manifest entry name a number", _manifest_edit(_json_with(val=[{"name": 3}])), words="val[0]"),
    Case("build: manifest malformed JSON", _manifest_edit('{"source": '), words="malformed JSON"),
    Case("build: manifest val not a list", _manifest_edit(_json_with(val="dancetrack0001")), words="must be a list"),
    Case("build: a second build of the same name", _held_lock, words="being written by another process (pid 4242"),
    Case("build: disk full writing gt.txt", _with_fault(_plain_build, _disk_full("builder.writer.write_sequence", 2)),
         words="could not write the build"),
    Case("build: disk full writing the manifest", _with_fault(_plain_build, _disk_full("builder.writer.write_json", 1)),
         words="No space left on device"),
]


# --------------------------------------------------------------------------------------- lock, verify, diagnose
def _lock(env: Env, tmp: Path, *, manifest_text: str | None = None) -> Call:
    manifest = tmp / "dancetrack.json"
    manifest.write_bytes((env.recipes[1].parent / "manifests" / "dancetrack.json").read_bytes()
                         if manifest_text is None else manifest_text.encode())
    keep = same_files(tmp)
    return Call("builder", ["lock", "dancetrack", "--root", str(env.raw / "dancetrack"), "--manifest", str(manifest),
                            "--force", "--seed", "3"], check=keep)


def _damaged_build(edit, name: str = "tiny_stage1") -> Callable:
    def setup(env: Env, tmp: Path) -> Call:
        build = _prior_build(env, tmp, name)
        edit(build)
        return Call("builder", ["verify", str(build)])
    return setup


def _manifest_json(change) -> Callable:
    def edit(build: Path) -> None:
        path = build / "build_manifest.json"
        data = json.loads(path.read_text())
        change(data)
        path.write_text(json.dumps(data))
    return edit


def _first_train(build: Path) -> Path:
    return sorted((build / "train").iterdir())[0]


def _replace_link_target(data: bytes) -> Callable:
    """Point the first frame of the first train clip at a new file holding ``data``."""
    def edit(build: Path) -> None:
        link = sorted((_first_train(build) / "img1").iterdir())[0]
        target = build.parent / "damaged.jpg"
        target.write_bytes(data)
        link.unlink()
        link.symlink_to(target)
    return edit


def _set_entry(key: str, value) -> Callable:
    def change(data: dict) -> None:
        entry = next(iter(data["splits"]["train"].values()))
        entry[key] = value
    return change


def _diagnostics_link(env: Env, tmp: Path) -> Call:
    build = _prior_build(env, tmp)
    outside = tmp / "outside"
    outside.mkdir()
    (build / "diagnostics").symlink_to(outside)
    return Call("builder", ["diagnose", str(build), "--images-per-seq", "1"], check=same_files(outside))


def _diagnostics_png_link(env: Env, tmp: Path) -> Call:
    build = _prior_build(env, tmp)
    outside = tmp / "victim.txt"
    outside.write_text("precious\n")
    (build / "diagnostics").mkdir()
    (build / "diagnostics" / "diagnostics.png").symlink_to(outside)
    (build / "diagnostics" / "diagnostics.json").symlink_to(outside)
    return Call("builder", ["diagnose", str(build), "--images-per-seq", "1"],
                check=lambda: [] if outside.read_text() == "precious\n" else [f"{outside} was overwritten"])


OTHER_BUILDER_CASES = [
    Case("lock: disk full writing the manifest", _with_fault(_lock, _disk_full("os.replace")),
         words="No space left on device"),
    Case("lock: manifest seed a string", lambda env, tmp: _lock(env, tmp, manifest_text='{"source": "dancetrack", '
                                                                '"seed": "x"}'), words="key 'seed' must be a int"),
    Case("lock: manifest a list", lambda env, tmp: _lock(env, tmp, manifest_text="[1, 2]"),
         words="unexpected manifest keys"),
    Case("verify: build_manifest.json malformed", _damaged_build(lambda b: (b / "build_manifest.json").write_text(
        '{"classes": [')), words="malformed JSON"),
    Case("verify: build_manifest.json a list", _damaged_build(lambda b: (b / "build_manifest.json").write_text("[]")),
         words="build manifest"),
    Case("verify: build_manifest.json classes a string", _damaged_build(_manifest_json(
        lambda d: d.update(classes="person"))), words="key 'classes' must be"),
    Case("verify: build_manifest.json frames a string", _damaged_build(_manifest_json(_set_entry("frames", "1-4"))),
         words="'frames' must be a list"),
    Case("verify: build_manifest.json digest missing", _damaged_build(_manifest_json(_set_entry("digest", None))),
         words="'digest' must be a str"),
    Case("verify: build_manifest.json sequence ../..", _damaged_build(_manifest_json(
        lambda d: d["splits"]["train"].update({"../../etc": next(iter(d["splits"]["train"].values()))}))),
         words="expected no path separator"),
    Case("verify: build_manifest.json locked val a string", _damaged_build(_manifest_json(
        lambda d: d["locked"]["dancetrack"].update(val="x"))), words="key 'locked' must be"),
    Case("verify: a frame of 0 bytes", _damaged_build(_replace_link_target(b"")), status=1, words="empty file"),
    Case("verify: a frame of random bytes", _damaged_build(_replace_link_target(noise(300))), status=1,
         words="unreadable image header"),
    Case("verify: a broken link", _damaged_build(lambda b: os.unlink(sorted((_first_train(b) / "img1").iterdir())[0])),
         status=1, words="img1"),
    Case("verify: seqmap not UTF-8", _damaged_build(lambda b: (b / "seqmaps" / "train.txt").write_bytes(b"\xff\xfe")),
         status=1, words="seqmaps/train.txt"),
    Case("verify: COCO bbox null", _damaged_build(lambda b: (b / "annotations" / "train.json").write_text(
        (b / "annotations" / "train.json").read_text().replace('"bbox":[', '"bbox":null,"x":[', 1))),
         status=1, words="annotations/train.json"),
    Case("verify: gt.txt garbage", _damaged_build(lambda b: (_first_train(b) / "gt" / "gt.txt").write_text("x,y\n")),
         status=1, words="gt.txt"),
    Case("verify: not a build", lambda env, tmp: Call("builder", ["verify", str(tmp)]), words="no build manifest"),
    Case("diagnose: diagnostics is a symlink out of the build", _diagnostics_link, words="is a symlink"),
    Case("diagnose: diagnostics.png is a symlink", _diagnostics_png_link, status=0, words="wrote"),
    Case("diagnose: build_manifest.json malformed", lambda env, tmp: _diagnose_damaged(env, tmp),
         words="malformed JSON"),
]


def _diagnose_damaged(env: Env, tmp: Path) -> Call:
    build = _prior_build(env, tmp)
    (build / "build_manifest.json").write_text("{")
    return Call("builder", ["diagnose", str(build)])


CASES: list[Case] = SOURCE_CASES + BUILD_CASES + OTHER_BUILDER_CASES + TRAIN_CASES
assert len({c.name for c in CASES}) == len(CASES), "case names must be unique"
__all__ = ["CASES"]
