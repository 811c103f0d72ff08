"""How well a checkpoint's appearance embedding tells identities apart, on ground-truth boxes.

Run (after ``make demo``; 2-core CPU, about a minute)::

    python benchmarks/bench_identity.py                       # runs/demo/stage{1,2,3}/latest, 12 held-out sequences
    python benchmarks/bench_identity.py --runs runs/demo --heldout 12 --seed 1 --gaps 1 10

Held-out DanceTrack-like sequences (synthetic seed ``--seed``; the demo trains on seed 0) are written as in
benchmarks/bench_association.py. Every ground-truth box of every 5th frame ``t`` and of frame ``t + gap`` is embedded
with the checkpoint's embedding branch (RoIAlign on the backbone features, :class:`train.track.public.BoxEmbedder`);
printed per stage and gap:

- top-1: the fraction of boxes of frame ``t + gap`` whose most similar box (cosine) in frame ``t`` has the same
  track id (chance about 1 / the dancers per frame);
- AUC: the probability that a same-identity pair is more similar than a different-identity pair (ROC-AUC over all
  pairs between the two frames);
- the mean cosine similarity of same- and of different-identity pairs.

A gap of 1 is what consecutive-frame association needs; a gap of 10 is what re-identifying a dancer after a
crossing or an occlusion needs.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
from bench_association import heldout_sequences

from builder.formats.motchallenge import read_mot_file, xywh_to_xyxy
from train.track.public import BoxEmbedder
from train.track.runner import detector_from_checkpoint, sequence_frames

REPO = Path(__file__).resolve().parent.parent


def _frame(gt, images: dict[int, Path], frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image BGR uint8, boxes (N, 4) xyxy px, track ids (N,)) of one frame."""
    keep = gt.frames == frame
    return cv2.imread(str(images[frame])), xywh_to_xyxy(gt.boxes[keep]), gt.ids[keep]


def identity_scores(embed: BoxEmbedder, seq_dirs: list[Path], gap: int) -> dict[str, float]:
    """top-1, AUC and mean cosine of same / different identities between frames ``gap`` apart."""
    hits = total = 0
    same_sims, other_sims = [], []
    for seq_dir in seq_dirs:
        gt = read_mot_file(seq_dir / "gt" / "gt.txt")
        images = {f: p for f, p in sequence_frames(seq_dir, None)[1] if p is not None}
        frames = set(gt.frames.tolist()) & set(images)
        for f in sorted(frames)[::5]:
            if f + gap not in frames:
                continue
            (img_a, box_a, id_a), (img_b, box_b, id_b) = _frame(gt, images, f), _frame(gt, images, f + gap)
            emb_a, emb_b = embed([img_a, img_b], [box_a, box_b])
            sim = emb_b @ emb_a.T
            same = id_b[:, None] == id_a[None, :]
            hits += int(same[np.arange(len(sim)), sim.argmax(axis=1)].sum())
            total += len(sim)
            same_sims += sim[same].tolist()
            other_sims += sim[~same].tolist()
    pos, neg = np.array(same_sims), np.array(other_sims)
    return {"top1": hits / total, "auc": float((pos[:, None] > neg[None, :]).mean()),
            "cos_same": float(pos.mean()), "cos_other": float(neg.mean())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=Path, default=REPO / "runs/demo", help="<runs>/stage<N>/latest/best_model.pth")
    p.add_argument("--stages", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--heldout", type=int, default=12, help="held-out DanceTrack-like sequences (<= 25)")
    p.add_argument("--seed", type=int, default=1, help="synthetic seed of the held-out sequences (demo: 0)")
    p.add_argument("--gaps", type=int, nargs="+", default=[1, 10])
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_identity_"))
    heldout = heldout_sequences(work, args.heldout, args.seed)
    seq_dirs = sorted(p for p in heldout.iterdir() if p.is_dir())
    for stage in args.stages:
        checkpoint = args.runs / f"stage{stage}" / "latest" / "best_model.pth"
        detect, _ = detector_from_checkpoint(checkpoint)
        if not detect.has_embedding:
            raise SystemExit(f"{checkpoint}: the detector has no embedding head")
        frame_range = detect.config.get("data", {}).get("frame_range", 1)
        for gap in args.gaps:
            r = identity_scores(BoxEmbedder(detect.model), seq_dirs, gap)
            print(f"stage {stage} (data.frame_range {frame_range}) gap {gap:>2}: top-1 {r['top1']:.3f}, "
                  f"AUC {r['auc']:.3f}, cosine same {r['cos_same']:.2f} / other {r['cos_other']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
