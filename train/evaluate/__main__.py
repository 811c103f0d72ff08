"""``python -m train.evaluate``: score tracker results (or detections) with a benchmark's own protocol.

Usage::

    python -m train.evaluate --results runs/stage1/latest/eval --build data/builds/demo_stage1 --split val
    python -m train.evaluate --results my_tracker/ --raw mot17 --root data/raw/MOT17 --split train
    python -m train.evaluate --results preds.json --raw bdd100k --root data/raw/bdd100k --split val
    python -m train.evaluate --results out/ --raw dancetrack --root data/raw/dancetrack --protocol unified
    python -m train.evaluate --det dets.json --build data/builds/demo_stage1 --split val
    python -m train.evaluate --det preds.json --raw bdd100k --labels data/raw/bdd100k/labels/det_20/det_val.json

``--raw`` benchmarks are scored by their ``official`` protocol unless ``--protocol unified``; builds are scored
with the unified classes. Every table says which. Exit status: 0 scored, 2 bad input (one ``error:`` line).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from builder.errors import ArgumentParser
from builder.formats.files import write_json
from train.console import setup_logging, table_console
from train.errors import EvaluationError, cli
from train.evaluate.benchmarks import evaluate_raw
from train.evaluate.detection import evaluate_bdd100k_detections, evaluate_build_detections
from train.evaluate.protocol import BENCHMARKS, PROTOCOL_NAMES
from train.evaluate.results import evaluate_build
from train.evaluate.scoring import COUNT_KEYS

#: Columns of the printed tables, TrackEval's summary order.
TABLE_COLUMNS = ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDP", "IDR", "IDSW", "FP", "FN",
                 "Frag", "MT", "PT", "ML")
#: Columns of the detection table.
DET_COLUMNS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR")


def _fmt(key: str, value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if key not in COUNT_KEYS else str(int(value))


def render_tables(result: dict, per_sequence: bool = False):
    """rich Tables (one per val set) in TrackEval's layout: a row per class, the super categories, COMBINED and
    the class mean where the protocol has them; the title says which protocol the figures follow."""
    from rich.table import Table

    tables = []
    for vs, entry in result["val_sets"].items():
        table = Table(title=f"{vs}: HOTA / CLEAR / Identity (TrackEval metrics, 0-100)",
                      caption=_caption(entry))
        table.add_column("class / sequence")
        for key in TABLE_COLUMNS:
            table.add_column(key, justify="right")
        rows = list(entry["per_class"].items()) + list(entry.get("super_categories", {}).items())
        rows.append(("COMBINED", entry["combined"]))
        if per_sequence:
            rows = list(entry.get("per_sequence", {}).items()) + rows
        for name, m in rows:
            table.add_row(name, *(_fmt(k, m[k]) for k in TABLE_COLUMNS))
        if entry.get("class_mean"):
            n = len(entry["per_class"])
            table.add_row(f"mean of {n} classes (m*)",
                          *(_fmt(k, entry["class_mean"].get(k)) for k in TABLE_COLUMNS))
        tables.append(table)
    return tables


def _caption(entry: dict) -> str:
    label = entry.get("protocol_label", "")
    warnings = entry.get("warnings") or {}
    return label + ("\nwarnings: " + ", ".join(f"{k}={v}" for k, v in warnings.items()) if warnings else "")


def render_detection(result: dict, title: str):
    """A rich Table of COCO AP (overall and per class)."""
    from rich.table import Table

    table = Table(title=title, caption=_caption({"warnings": result.get("warnings")}))
    table.add_column("class")
    for key in DET_COLUMNS:
        table.add_column(key, justify="right")
    table.add_row("all", *(_fmt(k, result[k]) for k in DET_COLUMNS))
    for name, ap in result["per_class"].items():
        table.add_row(name, _fmt("AP", ap), *("" for _ in DET_COLUMNS[1:]))
    return table


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n")[0])
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--results", type=Path, help="tracker results: a folder of <seq>.txt MOTChallenge rows (with "
                      "the project's results.json sidecar where they are its own), or for bdd100k Scalabel JSON")
    what.add_argument("--det", type=Path, help="detections: COCO result JSON (with --build) or Scalabel JSON "
                      "(with --raw bdd100k --labels)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--build", type=Path, help="a build folder (ground truth of <build>/<split>, unified classes)")
    src.add_argument("--raw", choices=BENCHMARKS, help="a raw benchmark split")
    p.add_argument("--root", type=Path, help="raw dataset root (with --raw)")
    p.add_argument("--labels", type=Path, help="BDD100K detection labels, labels/det_20/det_<split>.json (--det)")
    p.add_argument("--split", default="val", help="split to evaluate (default val)")
    p.add_argument("--protocol", choices=PROTOCOL_NAMES, help="raw benchmarks: official (default) or unified")
    p.add_argument("--box-convention", choices=("scalabel", "2020"),
                   help="bdd100k: scalabel (w = x2 - x1 + 1, default) or 2020 (w = x2 - x1, TrackEval's BDD100K)")
    p.add_argument("--seqmap", type=Path, help="seqmap naming the sequences (raw splits)")
    p.add_argument("--val-sets", nargs="*", help="only these val sets of the build")
    p.add_argument("--classes", nargs="*", help="unified class list for --protocol unified (default person vehicle)")
    p.add_argument("--result-classes", nargs="*", metavar="NAME",
                   help="class names of column-8 ids 1..K in result files no results.json sidecar covers")
    p.add_argument("--allow-missing", action="store_true", help="score missing result files as empty output")
    p.add_argument("--per-seq", action="store_true", help="print a row per sequence too")
    p.add_argument("--json", type=Path, help="write the metrics to this JSON file")
    return p


def _tracking(args) -> dict:
    if args.build:
        if args.protocol == "official":
            raise EvaluationError("builds are scored with the unified classes (--protocol unified); score the raw "
                                  "benchmark split with --raw for the official protocol")
        return evaluate_build(args.build, args.split, args.results, val_sets=args.val_sets,
                              allow_missing=args.allow_missing, result_classes=args.result_classes)
    if args.root is None:
        raise EvaluationError("--raw needs --root (the dataset's root folder)")
    return evaluate_raw(args.raw, args.root, args.split, args.results, protocol=args.protocol or "official",
                        classes=args.classes, seqmap=args.seqmap, allow_missing=args.allow_missing,
                        result_classes=args.result_classes, box_convention=args.box_convention)


def _detection(args) -> tuple[dict, str]:
    if args.build:
        return (evaluate_build_detections(args.build, args.split, args.det),
                f"{args.build.name}/{args.split}: COCO detection AP (pycocotools, 0-100)")
    if args.raw != "bdd100k" or args.labels is None:
        raise EvaluationError("--det on a raw benchmark takes --raw bdd100k --labels <labels/det_20/det_<split>.json>")
    return (evaluate_bdd100k_detections(args.labels, args.det, box_convention=args.box_convention),
            f"bdd100k detection ({args.labels.name}): COCO AP as scalabel/eval/detect.py computes it (0-100)")


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    console = table_console()
    if args.det:
        result, title = _detection(args)
        console.print(render_detection(result, title))
    else:
        result = _tracking(args)
        for table in render_tables(result, per_sequence=args.per_seq):
            console.print(table)
    if args.json:
        write_json(args.json, result, sort_keys=True)
        console.print(f"wrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0 ok, 2 bad input)."""
    return cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
