"""Association: one detector checkpoint tracked motion-only vs with its trained appearance embeddings.

Run (after ``make demo``; 2-core CPU, a few minutes)::

    python benchmarks/bench_association.py          # every demo stage: runs/demo/stage<N>/latest, data/builds/demo_stage<N>
    python benchmarks/bench_association.py --stages 2 --heldout 25 --seed 1 --runs runs/demo --builds data/builds

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

from builder.formats.build_layout import split_val_sets
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
    p.add_argument("--runs", type=Path, default=REPO / "runs/demo", help="<runs>/stage<N>/latest/best_model.pth")
    p.add_argument("--builds", type=Path, default=REPO / "data/builds", help="<builds>/demo_stage<N>")
    p.add_argument("--stages", type=int, nargs="+", default=[1, 2, 3])
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


def heldout_sequences(work: Path, count: int, seed: int) -> Path:
    """Write ``count`` DanceTrack-like sequences (demo size, 40 frames) of synthetic seed ``seed``; their folder."""
    scale = SynthScale(name="heldout", ground_size=(320, 192), aerial_size=(320, 240), objects=(4, 10),
                       plans=(("dancetrack", (SplitPlan("val", count, 40),)),))
    return write_synth(work / "synth", scale=scale, seed=seed, sources=["dancetrack"])["dancetrack"] / "val"


def bench_stage(stage: int, args: argparse.Namespace, heldout: Path, work: Path) -> None:
    """Both trackers on one stage's checkpoint: the locked val set, the held-out set, the paired bootstrap."""
    checkpoint = args.runs / f"stage{stage}" / "latest" / "best_model.pth"
    build = args.builds / f"demo_stage{stage}"
    detect, classes = detector_from_checkpoint(checkpoint)
    if not detect.has_embedding:
        raise SystemExit(f"{checkpoint}: the detector has no embedding head (model.embedding.enabled=false)")
    params = trackers(dict(detect.config.get("tracker") or {}))
    emb = detect.config["model"]["embedding"]
    print(f"\n=== stage {stage}: {checkpoint} (embedding {emb['loss']}, {emb['dim']}-d)\n  trackers: {params}")
    val_names = split_val_sets(build, "val")[args.val_set]
    out = work / f"stage{stage}"
    track_all(detect, [build / "val" / n for n in val_names], out / "val", params)
    val = {t: score(build / "val", out / "val" / t, val_names, classes) for t in params}
    print_table(f"locked {args.val_set} val set of {build.name}: {len(val_names)} sequences", val)
    names = sorted(p.name for p in heldout.iterdir())
    track_all(detect, [heldout / n for n in names], out / "heldout", params)
    held = {t: score(heldout, out / "heldout" / t, names, classes) for t in params}
    print_table(f"held-out DanceTrack-like sequences (synthetic seed {args.seed}): {len(names)} sequences", held)
    print(f"  paired bootstrap over the {len(names)} held-out sequences ({args.resamples} resamples), mean "
          "per-sequence gain [95% interval]:")
    for m in ("AssA", "IDF1", "HOTA"):
        a, b = (np.array([held[t]["per_sequence"][n][m] for n in names]) for t in ("motion", "appearance"))
        mean, lo, hi = paired_bootstrap(a, b, args.resamples)
        print(f"  {m:<5} {mean:+6.2f} [{lo:+6.2f}, {hi:+6.2f}]  "
              f"{'gain beyond the interval' if lo > 0 else 'within noise'}")


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_association_"))
    heldout = heldout_sequences(work, args.heldout, args.seed)
    done = 0
    for stage in args.stages:
        if not (args.runs / f"stage{stage}" / "latest" / "best_model.pth").is_file():
            print(f"stage {stage}: no {args.runs}/stage{stage}/latest/best_model.pth (run `make demo`): skipped")
            continue
        bench_stage(stage, args, heldout, work)
        done += 1
    return 0 if done else 2


if __name__ == "__main__":
    raise SystemExit(main())
