"""``python -m train.regression BEFORE AFTER``: the regression gate between two stages, from their run records.

BEFORE and AFTER are each a metrics.json file, a run directory, or a directory of runs (a Hydra multirun of one
stage over seeds, ``runs/stage<N>``): several runs on a side are compared as means over seeds with the
seed-to-seed spread added to the bootstrap interval (train/regression/bootstrap.py). BEFORE may be ``-`` for a
baseline table. ``--tolerance`` and the bootstrap settings default to ``regression`` of conf/train.yaml.

Exit status: 0, 1 when ``--fail`` and FORGETTING was found, 2 on bad input.

    python -m train.regression runs/stage2/latest runs/stage3/latest
    python -m train.regression runs/multirun/stage2/<time> runs/multirun/stage3/<time> --json regression.json
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from builder.errors import ArgumentParser
from builder.formats.files import read_json, write_json, write_text_atomic
from train.config import regression_defaults
from train.console import table_console
from train.errors import EvaluationError, cli
from train.regression.bootstrap import BootstrapConfig
from train.regression.gate import compare
from train.regression.render import render_markdown, render_rich


def build_parser() -> ArgumentParser:
    """Command-line interface of ``python -m train.regression``."""
    p = ArgumentParser(prog="python -m train.regression", description=__doc__.split("\n\n")[0])
    p.add_argument("previous", help="the parent stage: metrics.json, a run dir or a dir of runs; - for none")
    p.add_argument("current", help="this stage: metrics.json, a run dir or a dir of runs (one per seed)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="points a change must exceed to be FORGETTING / GAINED (default: regression.tolerance "
                        "of conf/train.yaml)")
    p.add_argument("--resamples", type=int, default=None, help="bootstrap resamples (default: the config's)")
    p.add_argument("--seed", type=int, default=None, help="seed of the bootstrap draws (default: the config's)")
    p.add_argument("--fail", action="store_true", help="exit 1 when FORGETTING is found")
    p.add_argument("--markdown", type=Path, help="also write the markdown table here")
    p.add_argument("--json", type=Path, help="also write regression.json here")
    return p


def load_side(arg: str) -> list[dict]:
    """The metrics.json dicts of one side: a file, a run dir, or every run of a directory of runs.

    Raises:
        EvaluationError: a run without metrics.json. MissingFileError / FormatError: unreadable files.
    """
    from train.review.runs import discover_runs

    path = Path(arg)
    if path.is_file() or path.suffix == ".json":
        return [read_json(path, expect=None, what="metrics.json")]
    runs = discover_runs([path])
    missing = [str(r / "metrics.json") for r in runs if not (r / "metrics.json").is_file()]
    if missing:
        raise EvaluationError(f"no metrics.json in {', '.join(missing)} (the run was not evaluated)")
    return [read_json(r / "metrics.json", expect=None, what="metrics.json") for r in runs]


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    defaults = regression_defaults()
    boot = dict(defaults["bootstrap"], **{k: v for k, v in (("resamples", args.resamples), ("seed", args.seed))
                                          if v is not None})
    prev = None if args.previous == "-" else load_side(args.previous)
    current = load_side(args.current)
    tolerance = args.tolerance if args.tolerance is not None else float(defaults["tolerance"])
    try:
        reg = compare(prev, current, tolerance=tolerance, bootstrap=BootstrapConfig.from_config(boot))
    except EvaluationError as exc:  # name the files: "previous metrics" / "current metrics" -> the path
        raise EvaluationError(str(exc).replace("previous metrics", f"{args.previous}")
                              .replace("current metrics", f"{args.current}")) from None
    table_console().print(render_rich(reg))
    if args.markdown:
        write_text_atomic(args.markdown, render_markdown(reg))
    if args.json:
        write_json(args.json, reg.to_dict())
    return 1 if args.fail and reg.forgetting else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 FORGETTING with ``--fail``, 2 bad input)."""
    return cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
