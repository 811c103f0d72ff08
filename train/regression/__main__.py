"""``python -m train.regression PREVIOUS.json CURRENT.json``: the regression gate on two metrics.json files.

Prints the before / after / delta table; ``--tolerance`` defaults to ``regression.tolerance`` of conf/train.yaml.
Exit status: 0, 1 when ``--fail`` and FORGETTING was found, 2 on bad input. PREVIOUS may be ``-`` for a
baseline table.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from builder.errors import ArgumentParser
from builder.formats.files import read_json, write_text_atomic
from train.config import default_tolerance
from train.console import table_console
from train.errors import EvaluationError, cli
from train.regression.gate import compare


def build_parser() -> ArgumentParser:
    """Command-line interface of ``python -m train.regression``."""
    p = ArgumentParser(prog="python -m train.regression", description="Compare two metrics.json files.")
    p.add_argument("previous", help="the parent stage's metrics.json, or - for none (baseline)")
    p.add_argument("current", help="this stage's metrics.json")
    p.add_argument("--tolerance", type=float, default=None,
                   help="HOTA points a class may drop before it is FORGETTING (default: regression.tolerance "
                        "of conf/train.yaml)")
    p.add_argument("--fail", action="store_true", help="exit 1 when FORGETTING is found")
    p.add_argument("--markdown", type=Path, help="also write the markdown table here")
    return p


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    prev = None if args.previous == "-" else read_json(args.previous, expect=None, what="metrics.json")
    current = read_json(args.current, expect=None, what="metrics.json")
    tolerance = args.tolerance if args.tolerance is not None else default_tolerance()
    try:
        reg = compare(prev, current, tolerance=tolerance)
    except EvaluationError as exc:  # name the files: "previous metrics" / "current metrics" -> the path
        raise EvaluationError(str(exc).replace("previous metrics", f"{args.previous}")
                              .replace("current metrics", f"{args.current}")) from None
    table_console().print(reg.render_rich())
    if args.markdown:
        write_text_atomic(args.markdown, reg.render_markdown())
    return 1 if args.fail and reg.forgetting else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 FORGETTING with ``--fail``, 2 bad input)."""
    return cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
