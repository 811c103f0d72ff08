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
5. the per-stage table: HOTA / AssA / IDF1 / MOTA per locked val set and stage (each stage's metrics.json), and
   the gate's table: each stage's HOTA change vs its parent per val set with the 95% paired bootstrap interval
   and the verdict (FORGETTING / within noise / GAINED), read from each stage's regression.json.
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
from train.regression.gate import FORGETTING, GAINED
from train.review.runs import read_run

REPO = CONF_DIR.parent
SYNTH_SOURCES = ("bdd100k", "dancetrack", "visdrone", "mot17")
#: Metrics shown per val set in the per-stage table (0-100 scale, TrackEval definitions).
TABLE_METRICS = ("HOTA", "AssA", "IDF1", "MOTA")

console = table_console()


class StepFailed(TrainError):
    """A step of the demo (a subprocess) exited non-zero; the message names the command."""


@dataclass
class Row:
    """One row of the per-stage table: a model's metrics.json and its stage's regression.json (None for the
    untrained model and for a stage without a parent)."""

    metrics: dict
    regression: dict | None = None


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
        out[f"stage {n}"] = Row(records.metrics, records.regression)
    return out


def per_stage_table(rows: dict[str, Row]) -> Table:
    """Rows = models in order, columns = val set x metric (TrackEval's combined over classes)."""
    val_sets = sorted({vs for row in rows.values() for vs in row.metrics["val_sets"]})
    table = Table(title="Per-stage tracking metrics on the locked val sets (unified protocol: the build's classes, "
                        "TrackEval metrics, 0-100; not the benchmarks' own figures)")
    table.add_column("model")
    for vs in val_sets:
        for metric in TABLE_METRICS:
            table.add_column(f"{vs}\n{metric}", justify="right")
    for name, row in rows.items():
        cells = []
        for vs in val_sets:
            combined = row.metrics["val_sets"].get(vs, {}).get("combined")
            cells += ["-" if combined is None else f"{float(combined[m]):.1f}" for m in TABLE_METRICS]
        table.add_row(name, *cells)
    return table


def gate_table(rows: dict[str, Row]) -> Table | None:
    """Each stage's HOTA change vs its parent per val set and class, the rows the gate decides on:
    ``delta [interval] verdict`` from its regression.json; None when no stage had a parent."""
    gated = {name: row.regression for name, row in rows.items() if row.regression and not row.regression["baseline"]}
    if not gated:
        return None
    val_sets = sorted({r["val_set"] for reg in gated.values() for r in reg["rows"]})
    first = next(iter(gated.values()))
    level = f"{100 * first['confidence']:g}%" if first.get("confidence") else ""
    table = Table(title=f"HOTA change vs the previous stage, {level} paired bootstrap interval over the val "
                        f"sequences, verdict (tolerance {first['tolerance']:g})")
    table.add_column("stage")
    table.add_column("class")
    for vs in val_sets:
        table.add_column(vs, justify="right")
    for name, reg in gated.items():
        decided = {(r["val_set"], r["class"]): r for r in reg["rows"] if r.get("gated")}
        for cls in dict.fromkeys(c for _, c in decided):
            cells = ["-" if (vs, cls) not in decided or decided[vs, cls]["delta"] is None
                     else _gate_cell(decided[vs, cls]) for vs in val_sets]
            table.add_row(name, cls, *cells)
    return table



def _gate_cell(row: dict) -> Text:
    interval = "" if row["ci_low"] is None else f" [{row['ci_low']:+.1f}, {row['ci_high']:+.1f}]"
    style = {FORGETTING: "bold red", GAINED: "green"}.get(row["verdict"])
    return Text(f"{row['delta']:+.1f}{interval} {row['verdict']}", style=style)


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
    gates = gate_table(rows)
    if gates is not None:
        console.print(gates)
    for n in args.stages:
        console.print(f"stage {n}: {runs / f'stage{n}' / 'latest' / 'report.md'}")
    console.print(f"demo wall time: {time.perf_counter() - t0:.0f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo's steps in order (see the module docstring); exit status 0, or 2 naming the failed step."""
    return cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
