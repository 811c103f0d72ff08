"""``python -m train.track``: run a stage's detector and the tracker over MOTChallenge-layout sequences.

Usage::

    python -m train.track --checkpoint runs/stage1/latest/best_model.pth \\
        --split-dir data/builds/demo_stage1/val --out runs/track/demo_stage1 [--seqs dancetrack__x ...]
    python -m train.track --checkpoint best_model.pth --root data/raw/MOT17 --split train --out runs/track/mot17
    python -m train.track ... --tracker high_thresh=0.6 track_buffer=60     # ByteTracker parameters

Writes ``<out>/<seq>.txt`` per sequence (rows ``frame,id,x,y,w,h,score,class,-1,-1``). Exit status: 0, 2 on
bad input (one ``error:`` line on stderr).
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path

from builder.errors import ArgumentParser
from train.config import merge_dotlist
from train.console import setup_logging
from train.errors import cli
from train.track.bytetrack import ByteTracker
from train.track.runner import DEFAULT_BATCH, detector_from_checkpoint, track_split


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m train.track", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True, type=Path, help="a stage run's best_model.pth")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--split-dir", type=Path, help="a split folder of sequences, e.g. data/builds/demo_stage1/val")
    src.add_argument("--root", type=Path, help="a raw MOTChallenge-layout dataset root: <root>/<split>/<seq>/img1")
    p.add_argument("--split", default="val", help="split of --root (default val)")
    p.add_argument("--out", required=True, type=Path, help="folder for the <seq>.txt result files")
    p.add_argument("--seqs", nargs="*", help="only these sequences")
    p.add_argument("--device", default="cpu")
    p.add_argument("--score-thresh", type=float, default=0.05, help="detections below are dropped")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    p.add_argument("--max-frames", type=int, help="only frames 1..N of each sequence (a quick look)")
    p.add_argument("--tracker", nargs="*", default=[], metavar="KEY=VALUE",
                   help="ByteTracker keyword arguments, e.g. high_thresh=0.6 track_buffer=60")
    return p


def tracker_params(pairs: Sequence[str]) -> dict:
    """``["high_thresh=0.6", "per_class=false"]`` -> ``{"high_thresh": 0.6, "per_class": False}``, parsed by
    OmegaConf against :class:`ByteTracker`'s parameters (an unknown name is an error listing the valid ones)."""
    hints = typing.get_type_hints(ByteTracker.__init__)
    fields = [(name, hints[name], dataclasses.field(default=p.default))
              for name, p in inspect.signature(ByteTracker).parameters.items() if p.default is not p.empty]
    merged = merge_dotlist(dataclasses.make_dataclass("ByteTrackerParams", fields), pairs, where="--tracker")
    return {k: v for k, v in merged.items() if k in {p.partition("=")[0] for p in pairs}}


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    split_dir = args.split_dir if args.split_dir else args.root / args.split
    params = tracker_params(args.tracker)
    detect, classes = detector_from_checkpoint(args.checkpoint, args.device, args.score_thresh)
    start = time.perf_counter()
    files = track_split(detect, split_dir, args.out, tracker_params=params, seqs=args.seqs, progress=True,
                        batch_size=args.batch_size, max_frames=args.max_frames, classes=classes)
    print(f"wrote {len(files)} result files to {args.out} in {time.perf_counter() - start:.1f} s "
          f"(classes: {', '.join(f'{i + 1}={c}' for i, c in enumerate(classes))})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0 ok, 2 bad input)."""
    return cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
