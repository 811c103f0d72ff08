"""The main job on the embedded default: synthetic data -> stage builds -> stage training -> per-stage table.

Run::

    python -m train.demo                       # make demo (it prints its own wall time at the end)
    python -m train.demo --stages 1            # only stage 1 (quick look)
    python -m train.demo -- trainer.max_epochs=2   # extra Hydra overrides for every training stage

Steps, each a subprocess of the project's own command line (so the demo runs exactly what a user runs):

1. ``python -m builder synth <synth root> --scale demo`` (skipped when every source is already there; the
   output is byte-identical per seed),
2. ``python -m builder build conf/curricula/demo/stage<N>.toml`` for N = 1, 2, 3 (atomic; replaces the last),
3. ``python -m train stage=<N> experiment=demo`` for N = 1, 2, 3: each stage starts from the previous stage's
   best weights (``init_from: auto``), evaluates the best checkpoint on every locked val set of its build and
   runs the regression gate against the previous stage,
4. an untrained model (same architecture, random init, seed 0) scored on the last stage's val sets: the floor
   the trained stages are compared with,
5. the per-stage table: HOTA / IDF1 / MOTA per locked val set and stage (each stage's metrics.json), with
   FORGETTING where HOTA dropped by more than that stage's ``regression.tolerance`` vs the stage before.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table
from rich.text import Text

from builder.errors import ArgumentParser
from builder.formats.build_layout import build_classes
from builder.formats.files import write_json
from train.config import CONF_DIR, compose
from train.console import table_console
from train.errors import TrainError, cli
from train.regression.gate import is_forgetting
from train.review.runs import read_run

REPO = CONF_DIR.parent
SYNTH_SOURCES = ("bdd100k", "dancetrack", "visdrone", "mot17")
#: Metrics shown per val set in the per-stage table (0-100 scale, TrackEval definitions).
TABLE_METRICS = ("HOTA", "IDF1", "MOTA")

console = table_console()


class StepFailed(TrainError):
    """A step of the demo (a subprocess) exited non-zero; the message names the command."""


@dataclass
class Row:
    """One row of the per-stage table: a model's metrics.json and the tolerance its stage was gated with
    (None for the untrained model, which is never compared)."""

    metrics: dict
    tolerance: float | None = None


def _run(cmd: list[str]) -> None:
    """Run one step; a failing step stops the demo with the command that failed."""
    console.rule(" ".join(cmd[2:]) if cmd[:2] == [sys.executable, "-m"] else " ".join(cmd))
    result = subprocess.run(cmd, cwd=REPO)
    if result.returncode != 0:
        raise StepFailed(f"demo: step failed (exit {result.returncode}): {' '.join(cmd)}")


def synth_step(synth_root: Path, seed: int) -> None:
    """Write the synthetic sources unless all of them are already there."""
    if all((synth_root / s).is_dir() and any((synth_root / s).iterdir()) for s in SYNTH_SOURCES):
        console.print(f"synthetic sources already in {synth_root} (byte-identical per seed): skipped")
        return
    _run([sys.executable, "-m", "builder", "synth", str(synth_root), "--scale", "demo", "--seed", str(seed),
          "--overwrite"])


def build_step(stage: int, synth_root: Path, build_root: Path) -> None:
    """Build ``conf/curricula/demo/stage<stage>.toml`` into ``<build_root>/demo_stage<stage>``."""
    _run([sys.executable, "-m", "builder", "build", str(CONF_DIR / "curricula" / "demo" / f"stage{stage}.toml"),
          "--data-root", str(synth_root), "--build-root", str(build_root)])


def train_step(stage: int, build_root: Path, runs: Path, overrides: list[str]) -> None:
    """Train one demo stage with ``experiment=demo`` (from the previous stage's best weights)."""
    _run([sys.executable, "-m", "train", f"stage={stage}", "experiment=demo", f"paths.build_root={build_root}",
          f"paths.runs_root={runs}", *overrides])


def untrained_baseline(build_dir: Path, out_dir: Path, overrides: list[str]) -> dict:
    """Score a randomly initialised model (the demo architecture, seed 0) on ``build_dir``'s val sets.

    Returns the metrics.json-shaped dict ``{"stage": 0, "val_sets": {...}}`` and writes it to
    ``out_dir/metrics.json``.
    """
    import torch
    from omegaconf import OmegaConf

    from train.evaluate.model import evaluate_model
    from train.stage.models import build_model

    cfg = compose(["stage=stage3_aerial", "experiment=demo", *overrides])
    classes = build_classes(build_dir)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg.pop("_target_", None)
    torch.manual_seed(0)
    model = build_model(**model_cfg, num_classes=len(classes)).eval()
    result = evaluate_model(model, build_dir, "val", out_dir / "eval", classes=classes,
                            tracker_params=OmegaConf.to_container(cfg.tracker, resolve=True),
                            score_thresh=float(cfg.eval.score_thresh), device="cpu")
    metrics = {"stage": 0, "val_sets": result["val_sets"]}
    write_json(out_dir / "metrics.json", metrics, sort_keys=True)
    return metrics


def stage_rows(runs: Path, stages: list[int]) -> dict[str, Row]:
    """``{"stage N": Row}`` of each stage's last successful run (``runs/stage<N>/latest``).

    Raises:
        StepFailed: a stage has no metrics.json (it did not finish successfully).
    """
    out = {}
    for n in stages:
        run = runs / f"stage{n}" / "latest"
        records = read_run(run, lenient=False) if run.is_dir() else None
        if records is None or records.metrics is None:
            raise StepFailed(f"demo: {run / 'metrics.json'} is missing: stage {n} did not finish successfully")
        out[f"stage {n}"] = Row(records.metrics, records.tolerance)
    return out


def per_stage_table(rows: dict[str, Row]) -> Table:
    """Rows = models in order, columns = val set x metric (combined over classes); FORGETTING where the val
    set's HOTA dropped by more than the row's tolerance vs the previous trained stage."""
    val_sets = sorted({vs for row in rows.values() for vs in row.metrics["val_sets"]})
    table = Table(title="Per-stage tracking metrics on the locked val sets (TrackEval, 0-100)")
    table.add_column("model")
    for vs in val_sets:
        for metric in TABLE_METRICS:
            table.add_column(f"{vs}\n{metric}", justify="right")
    previous: dict | None = None
    for name, row in rows.items():
        cells: list[str | Text] = []
        for vs in val_sets:
            combined = row.metrics["val_sets"].get(vs, {}).get("combined")
            for metric in TABLE_METRICS:
                if combined is None:
                    cells.append("-")
                    continue
                value = float(combined[metric])
                cell: str | Text = f"{value:.1f}"
                if metric == "HOTA" and previous is not None and vs in previous["val_sets"] and row.tolerance is not None:
                    before = float(previous["val_sets"][vs]["combined"]["HOTA"])
                    if is_forgetting(value - before, row.tolerance):
                        cell = Text(f"{value:.1f} FORGETTING ({value - before:+.1f})", style="bold red")
                cells.append(cell)
        table.add_row(name, *cells)
        if row.metrics.get("stage", 0) > 0:
            previous = row.metrics
    return table


def build_parser() -> ArgumentParser:
    """Command line of ``python -m train.demo`` (Hydra overrides for every stage go after ``--``)."""
    parser = ArgumentParser(prog="python -m train.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--synth-root", type=Path, default=Path("data/synth"))
    parser.add_argument("--build-root", type=Path, default=Path("data/builds"))
    parser.add_argument("--runs", type=Path, default=Path("runs/demo"))
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--stages", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3])
    parser.add_argument("--no-baseline", action="store_true", help="skip the untrained-model row")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every training stage (after --)")
    return parser


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    synth_root, build_root, runs = (p if p.is_absolute() else REPO / p
                                    for p in (args.synth_root, args.build_root, args.runs))
    synth_step(synth_root, args.seed)
    for n in args.stages:
        build_step(n, synth_root, build_root)
    for n in args.stages:
        train_step(n, build_root, runs, args.overrides)
    rows: dict[str, Row] = {}
    if not args.no_baseline:
        console.rule("untrained model (random init) on the last stage's val sets")
        rows["untrained"] = Row(untrained_baseline(build_root / f"demo_stage{max(args.stages)}",
                                                   runs / "untrained",
                                                   [f"paths.build_root={build_root}", f"paths.runs_root={runs}"]))
    rows.update(stage_rows(runs, args.stages))
    console.print(per_stage_table(rows))
    for n in args.stages:
        console.print(f"stage {n}: {runs / f'stage{n}' / 'latest' / 'report.md'}")
    console.print(f"demo wall time: {time.perf_counter() - t0:.0f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo's steps in order (see the module docstring); exit status 0, or 2 naming the failed step."""
    return cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
