"""``python -m train.track``: run a stage's detector and a tracker over MOTChallenge-layout sequences.

Usage::

    python -m train.track --checkpoint runs/stage1/latest/best_model.pth \\
        --split-dir data/builds/demo_stage1/val --out runs/track/demo_stage1 [--seqs dancetrack__x ...]
    python -m train.track --checkpoint best_model.pth --root data/raw/MOT17 --split train --out runs/track/mot17
    python -m train.track ... --tracker name=appearance appearance_weight=0.5   # tracker (conf/tracker/) + parameters
    python -m train.track --public-detections --root data/raw/MOT17 --split train --out out/   # det/det.txt boxes,
        # motion only; add --checkpoint <best_model.pth with an embedding head> to embed them from the frames

Default tracker: the checkpoint's own ``tracker`` config when it has one (a stage run's), else ``bytetrack``.

Writes ``<out>/<seq>.txt`` per sequence (rows ``frame,id,x,y,w,h,score,class,-1,-1``). Exit status: 0, 2 on
bad input (one ``error:`` line on stderr).
"""

from __future__ import annotations

import dataclasses
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path

from builder.errors import ArgumentParser
from train.config import merge_dotlist
from train.console import setup_logging
from train.errors import ConfigError, cli
from train.track.public import BoxEmbedder, track_public_split
from train.track.runner import (
    DEFAULT_BATCH,
    DEFAULT_TRACKER,
    detector_from_checkpoint,
    track_split,
    tracker_class,
    tracker_parameters,
)


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m train.track", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, help="a stage run's best_model.pth (optional with --public-detections)")
    p.add_argument("--public-detections", action="store_true",
                   help="track each sequence's det/det.txt instead of running the detector")
    p.add_argument("--det-class", type=int, help="class id of public detections (default: the checkpoint's "
                   "'person', else 1)")
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
                   help="tracker name (bytetrack | appearance) and keyword arguments, e.g. name=appearance "
                        "high_thresh=0.6 track_buffer=60")
    return p


def tracker_params(pairs: Sequence[str], base: dict | None = None) -> dict:
    """``["name=appearance", "high_thresh=0.6", "per_class=false"]`` over ``base`` (e.g. a checkpoint's tracker
    config) -> ``{"name": "appearance", "high_thresh": 0.6, "per_class": False, ...}``: values parsed by OmegaConf
    against the named tracker's parameters (an unknown name or key is an error listing the valid ones)."""
    base = dict(base or {})
    names = [p.partition("=")[2] for p in pairs if p.partition("=")[0] == "name"]
    name = names[-1] if names else base.get("name", DEFAULT_TRACKER)
    cls = tracker_class(name)
    if base.get("name", DEFAULT_TRACKER) != name:
        base = {}  # another tracker: the base's parameters may not apply
    hints = {}
    for klass in cls.__mro__[::-1]:
        if "__init__" in vars(klass):
            hints.update(typing.get_type_hints(klass.__init__))
    fields = [(n, hints[n], dataclasses.field(default=base.get(n, p.default)))
              for n, p in tracker_parameters(cls).items()]
    schema = dataclasses.make_dataclass(f"{cls.__name__}Params", fields)
    merged = merge_dotlist(schema, [p for p in pairs if p.partition("=")[0] != "name"], where="--tracker")
    given = {p.partition("=")[0] for p in pairs} | set(base)
    return {"name": name, **{k: v for k, v in merged.items() if k in given and k != "name"}}


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    split_dir = args.split_dir if args.split_dir else args.root / args.split
    tracker_params(args.tracker)  # a bad --tracker fails before any model is loaded
    if args.checkpoint is None and not args.public_detections:
        raise ConfigError("--checkpoint is required (without --public-detections there is no detector to run)")
    detect, classes = (detector_from_checkpoint(args.checkpoint, args.device, args.score_thresh)
                       if args.checkpoint else (None, ["person"]))
    params = tracker_params(args.tracker, detect.config.get("tracker") if detect is not None else None)
    start = time.perf_counter()
    if args.public_detections:
        embed = BoxEmbedder(detect.model, args.device) if detect is not None and detect.has_embedding else None
        det_class = args.det_class or (classes.index("person") + 1 if "person" in classes else 1)
        files = track_public_split(split_dir, args.out, seqs=args.seqs, embedder=embed, tracker_params=params,
                                   det_class=det_class, max_frames=args.max_frames, batch_size=args.batch_size, classes=classes)
        what = "public detections, " + ("embedded by the checkpoint" if embed else "motion only")
    else:
        files = track_split(detect, split_dir, args.out, tracker_params=params, seqs=args.seqs, progress=True,
                            batch_size=args.batch_size, max_frames=args.max_frames, classes=classes)
        what = "detector"
    print(f"wrote {len(files)} result files to {args.out} in {time.perf_counter() - start:.1f} s ({what}; tracker "
          f"{params['name']}; classes: {', '.join(f'{i + 1}={c}' for i, c in enumerate(classes))})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0 ok, 2 bad input)."""
    return cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
