"""Benchmark: our evaluation (train.evaluate.scoring) vs trackeval's own MotChallenge2DBox runner on the same files.

Writes a MOT17-style ground truth in TrackEval's folder layout (``--seqs`` sequences x ``--frames`` frames x
``--objects`` pedestrians moving linearly, plus 10 % distractor boxes of classes 2/7/8/12 and 5 % zero-marked
rows) and a tracker output (the ground truth jittered, 10 % dropped, ids swapped every 100 frames, 10 %
false positives), then times both evaluators (HOTA + CLEAR + Identity, one process, no output files) and
checks that they agree on HOTA, MOTA and IDF1.

Usage::

    python benchmarks/bench_eval.py                         # 7 sequences x 600 frames x 30 objects
    python benchmarks/bench_eval.py --seqs 2 --frames 200   # quicker
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from builder.formats.motchallenge import write_seqmap
from train.evaluate.benchmarks import evaluate_raw
from train.evaluate.reference import trackeval_mot17_reference

TRACKER = "bench"
DISTRACTORS = (2, 7, 8, 12)


def _rows(n_frames: int, n_objects: int, rng: np.random.Generator) -> np.ndarray:
    """gt rows frame,id,x,y,w,h,conf,class,visibility for one sequence."""
    start = rng.uniform(0, 1700, (n_objects, 2))
    vel = rng.normal(0, 2, (n_objects, 2))
    size = np.column_stack([rng.uniform(30, 60, n_objects), rng.uniform(70, 160, n_objects)])
    cls = np.where(rng.random(n_objects) < 0.1, rng.choice(DISTRACTORS, n_objects), 1)
    frames = np.repeat(np.arange(1, n_frames + 1), n_objects)
    ids = np.tile(np.arange(1, n_objects + 1), n_frames)
    xy = start[ids - 1] + vel[ids - 1] * frames[:, None]
    conf = np.where(cls[ids - 1] == 1, (rng.random(len(ids)) > 0.05).astype(float), 0.0)
    return np.column_stack([frames, ids, xy, size[ids - 1], conf, cls[ids - 1], np.ones(len(ids))])


def _tracker(gt: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Tracker rows frame,id,x,y,w,h,score,class,-1,-1 from gt rows."""
    keep = rng.random(len(gt)) > 0.1
    t = gt[keep].copy()
    t[:, 2:6] += rng.normal(0, 3, (len(t), 4))
    t[:, 1] = t[:, 1] + 1000 * (t[:, 0] // 100)  # a new identity every 100 frames: ID switches
    n_fp = len(t) // 10
    fp = np.column_stack([rng.choice(gt[:, 0], n_fp), 900000 + np.arange(n_fp), rng.uniform(0, 1800, (n_fp, 2)),
                          np.full((n_fp, 2), 50.0), np.ones(n_fp), np.ones(n_fp), np.ones(n_fp)])
    rows = np.concatenate([t[:, :7], fp[:, :7]])
    return np.column_stack([rows, np.ones(len(rows)), -np.ones((len(rows), 2))])


def write_layout(root: Path, n_seqs: int, n_frames: int, n_objects: int, seed: int = 0) -> list[str]:
    """TrackEval's layout: gt/MOT17-train/<seq>/{gt/gt.txt, seqinfo.ini}, seqmaps, trackers/.../data."""
    rng = np.random.default_rng(seed)
    names = [f"SEQ-{i:02d}" for i in range(n_seqs)]
    for name in names:
        seq = root / "gt" / "MOT17-train" / name
        (seq / "gt").mkdir(parents=True)
        (seq / "seqinfo.ini").write_text(f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={n_frames}\n"
                                         "imWidth=1920\nimHeight=1080\nimExt=.jpg\n")
        gt = _rows(n_frames, n_objects, rng)
        np.savetxt(seq / "gt" / "gt.txt", gt, fmt="%d,%d,%.2f,%.2f,%.2f,%.2f,%d,%d,%.2f")
        out = root / "trackers" / "MOT17-train" / TRACKER / "data"
        out.mkdir(parents=True, exist_ok=True)
        np.savetxt(out / f"{name}.txt", _tracker(gt, rng), fmt="%d,%d,%.2f,%.2f,%.2f,%.2f,%.2f,%d,%d,%d")
    write_seqmap(root / "gt" / "seqmaps" / "MOT17-train.txt", names)
    return names


def run_trackeval(root: Path) -> dict:
    """trackeval.Evaluator + MotChallenge2DBox (MOT17 preprocessing), quiet, single process."""
    comb = trackeval_mot17_reference(root, TRACKER)["COMBINED_SEQ"]
    return {"HOTA": 100 * float(np.mean(comb["HOTA"]["HOTA"])), "MOTA": 100 * float(comb["CLEAR"]["MOTA"]),
            "IDF1": 100 * float(comb["Identity"]["IDF1"])}


def run_ours(root: Path) -> dict:
    """train.evaluate's official MOT17 protocol on the same files."""
    res = evaluate_raw("mot17", root / "gt", "MOT17-train", root / "trackers" / "MOT17-train" / TRACKER / "data",
                       seqmap=root / "gt" / "seqmaps" / "MOT17-train.txt")
    comb = res["val_sets"]["mot17"]["combined"]
    return {k: comb[k] for k in ("HOTA", "MOTA", "IDF1")}


def _best_of(fn, root: Path, repeats: int) -> tuple[float, dict]:
    times, out = [], {}
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(root)
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seqs", type=int, default=7)
    p.add_argument("--frames", type=int, default=600)
    p.add_argument("--objects", type=int, default=30)
    p.add_argument("--repeats", type=int, default=2, help="best of N runs each")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_layout(root, args.seqs, args.frames, args.objects)
        n_rows = sum(1 for f in (root / "gt").rglob("gt.txt") for _ in f.open())
        print(f"{args.seqs} sequences x {args.frames} frames, {n_rows} gt rows")
        run_ours(root)  # warm imports for both (trackeval is imported by ours too)
        t_ref, ref = _best_of(run_trackeval, root, args.repeats)
        t_ours, ours = _best_of(run_ours, root, args.repeats)
    print(f"trackeval runner : {t_ref:7.2f} s  {ref}")
    print(f"train.evaluate.scoring   : {t_ours:7.2f} s  {ours}")
    print(f"speed-up         : {t_ref / t_ours:7.2f}x (target >= 1.0)")
    agree = all(abs(ref[k] - ours[k]) < 1e-9 for k in ref)
    print(f"numbers agree    : {agree}")


if __name__ == "__main__":
    main()
