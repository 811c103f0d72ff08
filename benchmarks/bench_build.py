"""Benchmark: building a stage from a BDD100K-scale label set vs the floor (parsing the same label files).

Run (about a GB of JSON and a few minutes at full scale; ``--videos 100`` for a quick look)::

    .venv/bin/python benchmarks/bench_build.py                 # 1,400 train videos x 200 frames x ~20 boxes
    .venv/bin/python benchmarks/bench_build.py --videos 100    # smaller

What it does:

1. generates ``--videos`` train videos and ``--val-videos`` val videos in the box_track_20 Scalabel
   format (``labels/box_track_20/{train,val}/<video>.json``; no images: the build runs with
   ``check_images=False``, the only caller of that option) into a temporary folder;
2. locks ``--locked`` val + ``--locked`` test videos of the val split into a temporary manifest;
3. floor: ``json.load`` of every label file the build reads (all train videos + the locked val videos),
   in a fresh process;
4. build: a one-source stage (``--budget`` frames, clips of 10, plus the locked val/test videos), in a
   fresh process;
5. repeats 3-4 ``--repeat`` times, alternating, and keeps each phase's fastest run (the machine is shared);
6. prints both wall times, their ratio (target <= 1.5) and each process's peak resident memory
   (``resource.getrusage(...).ru_maxrss``, KiB on Linux).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CATEGORIES = ("car", "car", "car", "car", "pedestrian", "pedestrian", "truck", "bus", "rider", "bicycle")
WIDTH, HEIGHT = 1280, 720


def _video(rng: np.random.Generator, name: str, frames: int, boxes: int) -> list[dict]:
    """One synthetic Scalabel video: ``boxes`` tracks a frame, each replaced by a new identity every 50 frames."""
    start = rng.uniform([0, 0], [WIDTH - 200, HEIGHT - 150], size=(boxes, 2))
    size = rng.uniform([20, 20], [200, 150], size=(boxes, 2))
    speed = rng.normal(0, 2, size=(boxes, 2))
    cats = [CATEGORIES[i] for i in rng.integers(0, len(CATEGORIES), boxes)]
    out = []
    for f in range(frames):
        xy = np.clip(start + speed * f, 0, [WIDTH - 201, HEIGHT - 151])
        labels = [{"id": f"{k:03d}{f // 50:05d}", "category": cats[k],
                   "attributes": {"occluded": bool(k % 3 == 0), "truncated": False, "crowd": False},
                   "box2d": {"x1": round(float(x), 3), "y1": round(float(y), 3),
                             "x2": round(float(x + w), 3), "y2": round(float(y + h), 3)}}
                  for k, ((x, y), (w, h)) in enumerate(zip(xy, size, strict=True))]
        out.append({"name": f"{name}-{f + 1:07d}.jpg", "videoName": name, "frameIndex": f, "labels": labels})
    return out


def generate(root: Path, videos: int, val_videos: int, frames: int, boxes: int, seed: int = 0) -> None:
    """Write the label set under ``root/labels/box_track_20/{train,val}``."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", videos), ("val", val_videos)):
        folder = root / "labels" / "box_track_20" / split
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            name = f"{split[0]}{i:07x}-{int(rng.integers(0, 2**31)):08x}"
            (folder / f"{name}.json").write_text(json.dumps(_video(rng, name, frames, boxes)))


def _floor(files: list[Path]) -> None:
    for path in files:
        with path.open("rb") as fh:
            json.load(fh)


def _phase(args: argparse.Namespace) -> None:
    """Run one timed phase in this (fresh) process and print a JSON line."""
    work = Path(args.work)
    shutil.rmtree(work / "builds", ignore_errors=True)  # a fresh build, not a replacement of the last one
    t0 = time.perf_counter()
    if args.phase == "floor":
        manifest = json.loads((work / "manifest.json").read_text())
        locked = {e["name"] for e in manifest["val"] + manifest["test"]}
        label_dir = work / "raw" / "bdd100k" / "labels" / "box_track_20"
        files = sorted((label_dir / "train").glob("*.json")) + [label_dir / "val" / f"{n}.json" for n in sorted(locked)]
        _floor(files)
    else:
        from builder.build import build

        build(work / "recipe.toml", data_root=work / "raw", build_root=work / "builds", check_images=False)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def _run_phase(phase: str, work: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", phase, "--work", str(work)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _prepare(work: Path, args: argparse.Namespace) -> None:
    from builder.classmap import ClassMap, default_classmap_path
    from builder.manifest import lock_manifest
    from builder.records import WarningCounter
    from builder.sources import get_source

    raw = work / "raw" / "bdd100k"
    t0 = time.perf_counter()
    generate(raw, args.videos, args.val_videos, args.frames, args.boxes)
    print(f"generated {args.videos} + {args.val_videos} videos x {args.frames} frames x {args.boxes} boxes "
          f"in {time.perf_counter() - t0:.1f} s")
    classes = ("person", "vehicle")
    adapter = get_source("bdd100k")(raw, ClassMap.load(default_classmap_path("bdd100k"), classes), WarningCounter())
    lock_manifest(adapter, work / "manifest.json", source="bdd100k", classes=classes, n_val=args.locked,
                  n_test=args.locked, seed=0)
    (work / "recipe.toml").write_text(
        f'name = "bench"\nseed = 0\nclasses = ["person", "vehicle"]\n[sources.bdd100k]\nroot = "bdd100k"\n'
        f'manifest = "{work / "manifest.json"}"\nframe_budget = {args.budget}\nclip_length = 10\n')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=1400, help="train videos (BDD100K MOT: 1,400)")
    parser.add_argument("--val-videos", type=int, default=40, help="val videos to lock from")
    parser.add_argument("--frames", type=int, default=200, help="frames per video (BDD100K: ~200)")
    parser.add_argument("--boxes", type=int, default=20, help="boxes per frame")
    parser.add_argument("--locked", type=int, default=20, help="locked val and locked test videos each")
    parser.add_argument("--budget", type=int, default=5000, help="train frame budget of the stage")
    parser.add_argument("--repeat", type=int, default=2, help="alternating floor/build runs; the fastest counts")
    parser.add_argument("--keep", help="folder to generate into and keep (reused when it already holds a set)")
    parser.add_argument("--phase", choices=["floor", "build"], help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        _phase(args)
        return
    with tempfile.TemporaryDirectory(prefix="bench_build-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        if not (work / "recipe.toml").exists():
            _prepare(work, args)
        _run_phase("floor", work)  # warm the page cache so that both timed phases read from memory
        runs = [(_run_phase("floor", work), _run_phase("build", work)) for _ in range(args.repeat)]
        floor = min((f for f, _ in runs), key=lambda r: r["seconds"])  # min: the least disturbed run
        built = min((b for _, b in runs), key=lambda r: r["seconds"])
        print(f"floor (json.load of the label files): {floor['seconds']:.2f} s, peak RSS "
              f"{floor['maxrss_kib'] / 1024:.0f} MiB")
        print(f"build (stage of {args.budget} frames + locked val/test): {built['seconds']:.2f} s, peak RSS "
              f"{built['maxrss_kib'] / 1024:.0f} MiB")
        print(f"ratio build / floor: {built['seconds'] / floor['seconds']:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
