"""Benchmark: ByteTracker.update time per frame at a given number of detections.

Scene: ``--objects`` objects (two classes) moving at constant velocity with 1 px detection noise, each
missed in 10 % of the frames, scores uniform in [0.05, 1], plus 10 % clutter detections; ``--frames``
frames after ``--warmup`` frames. Prints the mean / median / p95 time of ``update`` in milliseconds.

Usage::

    python benchmarks/bench_tracker.py                      # 100 detections per frame, 300 frames
    python benchmarks/bench_tracker.py --objects 10 50 100 200
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from train.track.bytetrack import ByteTracker


def scene(n_objects: int, n_frames: int, seed: int = 0):
    """Yield (boxes (N, 4) xyxy px, scores (N,), labels (N,)) per frame, about ``n_objects`` detections each."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 1800, (n_objects, 2))
    vel = rng.normal(0, 3, (n_objects, 2))
    size = np.where(rng.random((n_objects, 1)) < 0.5, [40.0, 90.0], [90.0, 45.0])
    labels = np.where(size[:, 0] < 50, 1, 2)
    for t in range(n_frames):
        xy = pos + vel * t + rng.normal(0, 1, pos.shape)
        seen = rng.random(n_objects) > 0.1
        n_clutter = n_objects // 10
        clutter = rng.uniform(0, 1800, (n_clutter, 2))
        boxes = np.concatenate([np.hstack([xy, xy + size])[seen], np.hstack([clutter, clutter + 50])])
        scores = np.concatenate([rng.uniform(0.05, 1, seen.sum()), rng.uniform(0.05, 0.4, n_clutter)])
        yield boxes, scores, np.concatenate([labels[seen], rng.integers(1, 3, n_clutter)])


def bench(n_objects: int, n_frames: int, warmup: int) -> tuple[np.ndarray, float]:
    """Per-frame update times (seconds) after ``warmup`` frames, and the mean detections per frame."""
    tracker = ByteTracker()
    times, counts = [], []
    for t, (boxes, scores, labels) in enumerate(scene(n_objects, n_frames + warmup)):
        start = time.perf_counter()
        tracker.update(boxes, scores, labels)
        if t >= warmup:
            times.append(time.perf_counter() - start)
            counts.append(len(boxes))
    return np.asarray(times), float(np.mean(counts))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--objects", type=int, nargs="*", default=[100])
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--warmup", type=int, default=30)
    args = p.parse_args()
    print(f"{'detections/frame':>17} {'mean ms':>8} {'median ms':>10} {'p95 ms':>7} {'frames/s':>9}")
    for n in args.objects:
        t, n_dets = bench(n, args.frames, args.warmup)
        t = t * 1000
        print(f"{n_dets:>17.0f} {t.mean():8.2f} {np.median(t):10.2f} {np.percentile(t, 95):7.2f} "
              f"{1000 / t.mean():9.0f}")


if __name__ == "__main__":
    main()
