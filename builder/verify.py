"""Re-check a build on disk against its build_manifest.json and the locked manifests.

``verify_build(build_dir)`` checks, and reports every problem it finds (it does not stop at the first):

- every sequence directory of ``splits`` exists, with ``seqLength`` frames in seqinfo.ini and img1/;
- every img1 link resolves to an existing image with a readable header (size > 0, a known format, a
  width and height);
- the content digest recomputed from the build alone (raw frame numbers from build_manifest.json,
  image names from the link targets, boxes/ids/classes from gt.txt) equals the recorded one, the
  split digests equal ``digests``, and each val/test digest equals the locked manifest's;
- counts recomputed from gt.txt equal ``counts`` (sequences, frames, boxes, ignore, identities,
  per class);
- annotations/<split>.json agrees with gt.txt (videos, images per video, positive boxes and ignore
  regions with their boxes and classes) and seqmaps/<split>.txt lists the split's directories;
- no train directory comes from a sequence that is locked (val/test) in build_manifest.json's
  ``locked`` or in the source's manifest file.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from builder.errors import BuilderError, FormatError
from builder.formats.build_layout import BUILD_SPLITS, MANIFEST_NAME, read_build_gt, read_build_manifest
from builder.formats.files import MissingFileError, read_json
from builder.formats.motchallenge import read_seqinfo, read_seqmap
from builder.manifest import combine_digests, default_manifest_path, load_manifest, sequence_digest
from builder.records import IGNORE, FrameRecord, name_problem
from builder.sources.images import check_image


@dataclass
class VerifyReport:
    """Result of ``verify_build``: ``problems`` (empty = the build is sound) and informational ``notes``."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    sequences: int = 0
    frames: int = 0

    @property
    def ok(self) -> bool:
        """True when no problem was found (notes do not count)."""
        return not self.problems


def _frames_from_gt(gt: np.ndarray, raw_frames: list[int], images: list[str]) -> list[FrameRecord]:
    frames = []
    for k, (raw, image) in enumerate(zip(raw_frames, images, strict=True), start=1):
        rows = gt[gt[:, 0] == k]
        xyxy = np.stack([rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]], axis=1)
        labels = np.where(rows[:, 6] == 0, IGNORE, rows[:, 7]).astype(np.int16)
        frames.append(FrameRecord(raw, Path(image), xyxy, rows[:, 1].astype(np.int64), labels,
                                  rows[:, 8].astype(np.float32)))
    return frames


#: What reading a damaged file of a build raises (reported as a problem of that file, never a crash).
_UNREADABLE = (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, BuilderError)
#: Top-level keys of build_manifest.json that ``verify`` reads.
_REQUIRED_KEYS = ("classes", "splits", "counts", "digests", "sources", "locked")


def _is_list_of(value: Any, kind: type) -> bool:
    return isinstance(value, list) and all(isinstance(v, kind) and not isinstance(v, bool) for v in value)


def _entry_problem(entry: Any) -> str | None:
    """What a ``splits.<split>.<dir>`` entry lacks, or None."""
    if not isinstance(entry, dict):
        return "expected an object"
    for key, kind in (("source", str), ("raw_sequence", str), ("digest", str)):
        if not isinstance(entry.get(key), kind):
            return f"key {key!r} must be a {kind.__name__}"
    return None if _is_list_of(entry.get("frames"), int) else "key 'frames' must be a list of frame numbers"


def check_manifest_shape(m: dict[str, Any], path: Path) -> None:
    """The keys and value types of build_manifest.json that ``verify`` reads (docs/CONTRACTS.md).

    Raises:
        FormatError: a missing key or a value of the wrong type, naming the dotted key; a sequence directory
            name that is not a safe name (it would lead ``verify`` outside the build).
    """
    missing = [k for k in _REQUIRED_KEYS if k not in m]
    if missing:
        raise FormatError(f"{path}: not a build manifest, lacks key(s) {', '.join(missing)}")
    bad = [f"{k}.{s}" for k in ("splits", "counts", "digests") for s in BUILD_SPLITS
           if not isinstance(m[k], dict) or s not in m[k]]
    if bad:
        raise FormatError(f"{path}: not a build manifest, lacks key(s) {', '.join(bad)}")
    shapes = [("classes", _is_list_of(m["classes"], str), "a list of class names"),
              ("sources", isinstance(m["sources"], dict) and all(isinstance(v, dict) and isinstance(v.get("manifest"), str)
                                                                 for v in m["sources"].values()),
               "{source: {manifest: path, ...}}"),
              ("locked", isinstance(m["locked"], dict) and all(
                  isinstance(v, dict) and all(_is_list_of(v.get(k, []), str) for k in ("val", "test"))
                  for v in m["locked"].values()), "{source: {val: [names], test: [names]}}")]
    shapes += [(f"digests.{s}", isinstance(m["digests"][s], str), "a sha256 hex string") for s in BUILD_SPLITS]
    shapes += [(f"splits.{s}", isinstance(m["splits"][s], dict), "{directory: entry}") for s in BUILD_SPLITS]
    wrong = next(((key, what) for key, ok, what in shapes if not ok), None)
    if wrong:
        raise FormatError(f"{path}: key {wrong[0]!r} must be {wrong[1]}")
    for split in BUILD_SPLITS:
        for name, entry in m["splits"][split].items():
            problem = name_problem(name) or _entry_problem(entry)
            if problem:
                raise FormatError(f"{path}: splits.{split}.{name!r}: {problem}")


class _Verifier:
    def __init__(self, build_dir: Path):
        self.dir = build_dir
        self.m: dict[str, Any] = read_build_manifest(build_dir)
        check_manifest_shape(self.m, build_dir / MANIFEST_NAME)
        self.classes = self.m["classes"]
        self.report = VerifyReport()
        self.gt: dict[tuple[str, str], np.ndarray] = {}

    def problem(self, msg: str) -> None:
        """Record one problem (a line of the report)."""
        self.report.problems.append(msg)

    def check_sequence(self, split: str, name: str, entry: dict) -> str | None:
        """Check one directory (seqinfo, links, gt frame range, digest); its recomputed digest or None."""
        d = self.dir / split / name
        if not d.is_dir():
            self.problem(f"{split}/{name}: directory missing")
            return None
        n = len(entry["frames"])
        try:
            info = read_seqinfo(d / "seqinfo.ini")
        except MissingFileError:
            self.problem(f"{split}/{name}/seqinfo.ini: missing")
            return None
        if info.length != n:
            self.problem(f"{split}/{name}/seqinfo.ini: seqLength {info.length}, manifest has {n} frames")
        ext = info.im_ext or ""
        links = [d / "img1" / f"{k:08d}{ext}" for k in range(1, n + 1)]
        if len(os.listdir(d / "img1")) != n:
            self.problem(f"{split}/{name}/img1: {len(os.listdir(d / 'img1'))} files, expected {n}")
        broken = [p for p in links if not p.exists()]
        if broken:
            self.problem(f"{split}/{name}/img1: {len(broken)} link(s) do not resolve, e.g. {broken[0]}")
            return None
        unreadable = [(p, r) for p in links if isinstance(r := check_image(p), str)]
        if unreadable:
            self.problem(f"{split}/{name}/img1: {len(unreadable)} image(s) cannot be read, e.g. "
                         f"{unreadable[0][0]} -> {os.readlink(unreadable[0][0])}: {unreadable[0][1]}")
        gt = read_build_gt(d / "gt" / "gt.txt")
        if len(gt) and (gt[:, 0].min() < 1 or gt[:, 0].max() > n):
            self.problem(f"{split}/{name}/gt/gt.txt: frame numbers outside 1..{n}")
        self.gt[split, name] = gt
        digest = sequence_digest(_frames_from_gt(gt, entry["frames"], [os.readlink(p) for p in links]),
                                 self.classes)
        if digest != entry["digest"]:
            self.problem(f"{split}/{name}: content digest {digest} differs from build_manifest.json "
                         f"({entry['digest']})")
        self.report.sequences += 1
        self.report.frames += n
        return digest

    def manifest_path(self, source: str) -> Path:
        """The source's locked manifest as recorded in build_manifest.json (relative: cwd, else the repo)."""
        stored = self.m["sources"][source]["manifest"]
        path = Path(stored)
        if not path.is_absolute() and not path.exists():
            path = default_manifest_path(source).parents[1] / stored
        return path

    def check_locked(self, split: str, name: str, entry: dict, digest: str) -> None:
        """A val/test directory must be a locked sequence of its source's manifest, with the same digest."""
        src = entry["source"]
        path = self.manifest_path(src)
        try:
            locked = {e.name: e for e in load_manifest(path, src).entries}
        except BuilderError as exc:
            self.problem(f"{split}/{name}: {exc}")
            return
        e = locked.get(entry["raw_sequence"])
        if e is None:
            self.problem(f"{split}/{name}: {entry['raw_sequence']} is not locked in {path}")
        elif e.digest is None:
            self.report.notes.append(f"{path}: {e.name} has no digest (run `python -m builder lock {src}`)")
        elif e.digest != digest:
            self.problem(f"{split}/{name}: digest {digest} differs from the locked digest {e.digest} in {path}")

    def check_counts(self, split: str) -> None:
        """``counts.<split>`` recomputed from the gt.txt files read by ``check_sequence``."""
        counts: dict[str, dict] = {}
        for name, entry in self.m["splits"][split].items():
            gt = self.gt.get((split, name))
            if gt is None:
                return  # already reported
            c = counts.setdefault(entry["source"], {"sequences": 0, "frames": 0, "boxes": 0, "ignore": 0,
                                                    "identities": 0, "per_class": {n: 0 for n in self.classes}})
            pos = gt[:, 6] != 0
            c["sequences"] += 1
            c["frames"] += len(entry["frames"])
            c["boxes"] += int(pos.sum())
            c["ignore"] += int((~pos).sum())
            c["identities"] += len(np.unique(gt[pos, 1]))
            for i, cls in enumerate(self.classes, start=1):
                c["per_class"][cls] += int((pos & (gt[:, 7] == i)).sum())
        if counts != self.m["counts"][split]:
            self.problem(f"counts of {split}: gt.txt gives {counts}, build_manifest.json has {self.m['counts'][split]}")

    def check_coco(self, split: str) -> None:
        """annotations/<split>.json: videos, images per video and boxes agree with gt.txt."""
        path = self.dir / "annotations" / f"{split}.json"
        coco = read_json(path, what="COCO-VID annotations")
        videos = {v["id"]: v["name"] for v in coco["videos"]}
        if sorted(videos.values()) != sorted(self.m["splits"][split]):
            self.problem(f"{path}: videos differ from the {split} sequences")
            return
        images = {im["id"]: (videos[im["video_id"]], im["frame_id"]) for im in coco["images"]}
        got: dict[str, Counter] = {v: Counter() for v in videos.values()}
        for a in coco["annotations"]:
            vid, frame = images[a["image_id"]]
            cls = 0 if a["iscrowd"] else a["category_id"]
            got[vid][(frame, cls, *(round(x, 2) for x in a["bbox"]))] += 1
        ncls = len(self.classes)
        for name, gt in self.gt.items():
            if name[0] != split:
                continue
            want = Counter()
            for r in gt:
                cls = 0 if r[6] == 0 else int(r[7])
                want[(int(r[0]), cls, *(round(float(x), 2) for x in r[2:6]))] += ncls if cls == 0 else 1
            if want != got[name[1]]:
                self.problem(f"{path}: annotations of {name[1]} disagree with its gt.txt")
        per_video = Counter(v for v, _ in images.values())
        for name, entry in self.m["splits"][split].items():
            if per_video[name] != len(entry["frames"]):
                self.problem(f"{path}: {per_video[name]} images for {name}, expected {len(entry['frames'])}")

    def check_seqmap(self, split: str) -> None:
        """seqmaps/<split>.txt: a ``name`` header, then exactly the split's directories."""
        path = self.dir / "seqmaps" / f"{split}.txt"
        header = path.read_text(encoding="utf-8").splitlines()[:1] if path.is_file() else []
        names = read_seqmap(path) if header == ["name"] else None
        if names is None or sorted(names) != sorted(self.m["splits"][split]):
            self.problem(f"{path}: does not list the {split} sequences under a 'name' header")

    def check_no_locked_in_train(self) -> None:
        """Report every train directory whose raw sequence is locked (build record or manifest file)."""
        locked: dict[str, set[str]] = {}
        for src, lk in self.m["locked"].items():
            locked.setdefault(src, set()).update(lk.get("val", []), lk.get("test", []))
        for src in {e["source"] for e in self.m["splits"]["train"].values()}:
            try:
                locked.setdefault(src, set()).update(load_manifest(self.manifest_path(src), src).names)
            except (BuilderError, KeyError):
                pass  # a missing or unreadable manifest is reported by check_locked
        for name, entry in sorted(self.m["splits"]["train"].items()):
            if entry["raw_sequence"] in locked.get(entry["source"], ()):
                self.problem(f"train/{name}: {entry['source']} sequence {entry['raw_sequence']} is locked "
                             "(val/test) and must never be in train")

    def run(self) -> VerifyReport:
        """Run every check of the module docstring; return the report."""
        self.check_no_locked_in_train()
        for split in BUILD_SPLITS:
            digests = []
            for name, entry in sorted(self.m["splits"][split].items()):
                try:
                    digest = self.check_sequence(split, name, entry)
                except _UNREADABLE as exc:
                    self.problem(f"{split}/{name}: {exc}")
                    continue
                if digest is None:
                    continue
                digests.append((name, digest))
                if split != "train":
                    self.check_locked(split, name, entry, digest)
            if len(digests) == len(self.m["splits"][split]) and combine_digests(digests) != self.m["digests"][split]:
                self.problem(f"digest of {split}: recomputed {combine_digests(digests)}, "
                             f"build_manifest.json has {self.m['digests'][split]}")
            self.check_counts(split)
            try:
                self.check_coco(split)
            except _UNREADABLE as exc:
                self.problem(f"annotations/{split}.json: unreadable or inconsistent ({exc!r})")
            try:
                self.check_seqmap(split)
            except _UNREADABLE as exc:
                self.problem(f"seqmaps/{split}.txt: unreadable ({exc})")
        return self.report


def verify_build(build_dir: str | Path) -> VerifyReport:
    """Check the build at ``build_dir`` (see the module docstring); problems are returned, not raised.

    Raises:
        BuilderError: ``build_dir`` holds no readable build_manifest.json, or one whose keys do not have the
            documented types (``FormatError`` naming the key).
    """
    return _Verifier(Path(build_dir)).run()
