"""Association: one detector checkpoint tracked motion-only vs with its trained appearance embeddings.

Run (after ``make demo``; 2-core CPU, about a minute)::

    python benchmarks/bench_association.py                         # runs/demo/stage2/latest, data/builds/demo_stage2
    python benchmarks/bench_association.py --checkpoint runs/demo/stage3/latest/best_model.pth \\
        --build data/builds/demo_stage3 --heldout 25 --seed 1

The detector runs once per sequence; both trackers are fed exactly the same detections:

- ``motion``: ``bytetrack`` (train/track/bytetrack.py) with the checkpoint's tracker parameters that it knows,
- ``appearance``: the checkpoint's own ``appearance`` tracker config (train/track/appearance.py), which also gets
  the detections' embeddings.

Sequences: (1) the build's locked DanceTrack-like val set (the demo's, never trained on) and (2) ``--heldout``
further DanceTrack-like sequences written by the synthetic generator with another seed (same distribution, new
content; the demo trains on seed 0). Printed side by side: HOTA, AssA, IDF1, IDSW (TrackEval, DanceTrack's MOT17
rules), then the paired bootstrap over the held-out sequences (``--resamples`` draws of sequences with
replacement; statistic: the mean per-sequence gain) with its 95 % interval. The gain exceeds the noise when the
interval's lower end is above zero.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from builder.formats.build_layout import build_classes, split_val_sets
from builder.synth import SynthScale, write_synth
from builder.synth.scales import SplitPlan
from train.evaluate.results import evaluate_mot, rules_for_source
from train.track.runner import (
    TorchDetector,
    detector_from_checkpoint,
    make_tracker,
    run_tracker,
    sequence_frames,
    tracker_class,
    tracker_parameters,
)

METRICS = ("HOTA", "AssA", "IDF1", "IDSW")
REPO = Path(__file__).resolve().parent.parent


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, default=REPO / "runs/demo/stage2/latest/best_model.pth")
    p.add_argument("--build", type=Path, default=REPO / "data/builds/demo_stage2")
    p.add_argument("--val-set", default="dancetrack")
    p.add_argument("--heldout", type=int, default=25, help="held-out DanceTrack-like sequences (<= 25)")
    p.add_argument("--seed", type=int, default=1, help="synthetic seed of the held-out sequences (demo: 0)")
    p.add_argument("--resamples", type=int, default=2000)
    return p.parse_args(argv)


def detect_sequence(detect: TorchDetector, seq_dir: Path, batch: int = 8) -> tuple[float, list]:
    """(frame rate, [(frame, (boxes, scores, labels, embeddings))]) of every frame of a sequence folder."""
    rate, frames = sequence_frames(seq_dir, None)
    out = []
    for start in range(0, len(frames), batch):
        chunk = frames[start:start + batch]
        out += zip([f for f, _ in chunk], detect.batch([cv2.imread(str(p)) for _, p in chunk]), strict=True)
    return rate, out


def trackers(config: dict) -> dict[str, dict]:
    """The two trackers compared: ``motion`` = bytetrack with the parameters of ``config`` it knows."""
    appearance = {**config, "name": "appearance"}
    known = tracker_parameters(tracker_class("bytetrack"))
    return {"motion": {"name": "bytetrack", **{k: v for k, v in config.items() if k in known}},
            "appearance": appearance}


def track_all(detect: TorchDetector, seq_dirs: list[Path], out: Path, params: dict[str, dict]) -> None:
    """Detect each sequence once; write ``out/<tracker>/<seq>.txt`` for every tracker."""
    for seq_dir in seq_dirs:
        rate, dets = detect_sequence(detect, seq_dir)
        for name, p in params.items():
            run_tracker(make_tracker(p, rate), dets, out / name / f"{seq_dir.name}.txt")


def score(gt_dir: Path, results: Path, names: list[str], classes: list[str]) -> dict:
    return evaluate_mot(gt_dir, results, classes=classes, seqs=names, rules=rules_for_source("dancetrack"))


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``b - a`` over sequences and its 95 % percentile interval under resampling sequences."""
    delta = b - a
    rng = np.random.default_rng(seed)
    means = delta[rng.integers(0, len(delta), (resamples, len(delta)))].mean(axis=1)
    return float(delta.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def print_table(title: str, results: dict[str, dict]) -> None:
    print(f"\n{title}")
    print(f"  {'tracker':<11}" + "".join(f"{m:>8}" for m in METRICS))
    for name, r in results.items():
        print(f"  {name:<11}" + "".join(f"{r['combined'][m]:>8.1f}" if m != "IDSW" else
                                       f"{int(r['combined'][m]):>8d}" for m in METRICS))
    gain = {m: results["appearance"]["combined"][m] - results["motion"]["combined"][m] for m in METRICS}
    print(f"  {'gain':<11}" + "".join(f"{gain[m]:>+8.1f}" if m != "IDSW" else f"{int(gain[m]):>+8d}"
                                      for m in METRICS))


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    detect, classes = detector_from_checkpoint(args.checkpoint)
    if not detect.has_embedding:
        raise SystemExit(f"{args.checkpoint}: the detector has no embedding head (model.embedding.enabled=false)")
    params = trackers(dict(detect.config.get("tracker") or {}))
    emb = detect.config["model"]["embedding"]
    print(f"checkpoint {args.checkpoint} (embedding: {emb['loss']}, {emb['dim']}-d); trackers {params}")
    build_classes(args.build)  # a readable build
    val_names = split_val_sets(args.build, "val")[args.val_set]
    work = Path(tempfile.mkdtemp(prefix="bench_association_"))
    track_all(detect, [args.build / "val" / n for n in val_names], work / "val", params)
    val = {t: score(args.build / "val", work / "val" / t, val_names, classes) for t in params}
    print_table(f"locked {args.val_set} val set of {args.build.name}: {len(val_names)} sequences", val)

    scale = SynthScale(name="heldout", ground_size=(320, 192), aerial_size=(320, 240), objects=(4, 10),
                       plans=(("dancetrack", (SplitPlan("val", args.heldout, 40),)),))
    root = write_synth(work / "synth", scale=scale, seed=args.seed, sources=["dancetrack"])["dancetrack"] / "val"
    names = sorted(p.name for p in root.iterdir())
    track_all(detect, [root / n for n in names], work / "heldout", params)
    held = {t: score(root, work / "heldout" / t, names, classes) for t in params}
    print_table(f"held-out DanceTrack-like sequences (synthetic seed {args.seed}): {len(names)} sequences", held)
    print(f"\npaired bootstrap over the {len(names)} held-out sequences ({args.resamples} resamples), mean "
          "per-sequence gain of appearance over motion [95% interval]:")
    for m in ("AssA", "IDF1", "HOTA"):
        a, b = (np.array([held[t]["per_sequence"][n][m] for n in names]) for t in ("motion", "appearance"))
        mean, lo, hi = paired_bootstrap(a, b, args.resamples)
        print(f"  {m:<5} {mean:+6.2f} [{lo:+6.2f}, {hi:+6.2f}]  "
              f"{'gain beyond the interval' if lo > 0 else 'within noise'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
