"""``python -m train.evaluate``: score tracker result files with the benchmarks' own metrics and preprocessing.

Usage::

    python -m train.evaluate --results runs/stage1/latest/eval/dancetrack/tracker \\
        --build data/builds/demo_stage1 --split val --json metrics.json
    python -m train.evaluate --results my_tracker/ --raw mot17 --root data/raw/MOT17 --split train

Exit status: 0 scored, 2 bad input (one ``error:`` line on stderr).
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
from train.evaluate.results import evaluate_build
from train.evaluate.scoring import COUNT_KEYS

#: Columns of the printed tables, TrackEval's summary order.
TABLE_COLUMNS = ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDP", "IDR", "IDSW", "FP", "FN",
                 "Frag", "MT", "PT", "ML")


def _fmt(key: str, value) -> str:
    return f"{value:.3f}" if key not in COUNT_KEYS else str(int(value))


def render_tables(result: dict, per_sequence: bool = False):
    """rich Tables (one per val set) in TrackEval's layout: a row per class and COMBINED."""
    from rich.table import Table

    tables = []
    for vs, entry in result["val_sets"].items():
        table = Table(title=f"{vs}: HOTA / CLEAR / Identity (TrackEval metrics, 0-100)")
        table.add_column("class / sequence")
        for key in TABLE_COLUMNS:
            table.add_column(key, justify="right")
        rows = list(entry["per_class"].items()) + [("COMBINED", entry["combined"])]
        if per_sequence:
            rows = list(entry.get("per_sequence", {}).items()) + rows
        for name, m in rows:
            table.add_row(name, *(_fmt(k, m[k]) for k in TABLE_COLUMNS))
        tables.append(table)
    return tables


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--results", required=True, type=Path,
                   help="folder of <seq>.txt result files (MOTChallenge rows frame,id,x,y,w,h,score,class,...)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--build", type=Path, help="a build folder (ground truth of <build>/<split>)")
    src.add_argument("--raw", choices=["mot17", "mot20", "dancetrack", "visdrone", "bdd100k"],
                     help="a raw benchmark split")
    p.add_argument("--root", type=Path, help="raw dataset root (with --raw)")
    p.add_argument("--split", default="val", help="split to evaluate (default val)")
    p.add_argument("--seqmap", type=Path, help="seqmap naming the sequences (raw splits)")
    p.add_argument("--val-sets", nargs="*", help="only these val sets of the build")
    p.add_argument("--classes", nargs="*", default=["person", "vehicle"],
                   help="class list for raw splits (ids = 1-based position); builds use their manifest's")
    p.add_argument("--allow-missing", action="store_true", help="score missing result files as empty output")
    p.add_argument("--per-seq", action="store_true", help="print a row per sequence too")
    p.add_argument("--json", type=Path, help="write the metrics to this JSON file")
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    if args.build:
        result = evaluate_build(args.build, args.split, args.results, val_sets=args.val_sets,
                                allow_missing=args.allow_missing)
    else:
        if args.root is None:
            raise EvaluationError("--raw needs --root (the dataset's root folder)")
        result = evaluate_raw(args.raw, args.root, args.split, args.results, classes=args.classes,
                              seqmap=args.seqmap, allow_missing=args.allow_missing)
    console = table_console()
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
