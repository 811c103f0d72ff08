"""The main job on the embedded default: synthetic data -> stage builds -> stage training -> per-stage table.

Run::

    python -m train.demo                       # make demo: about 10 minutes on 2 CPU cores
    python -m train.demo --stages 1            # only stage 1 (quick look)
    python -m train.demo -- trainer.max_epochs=2   # extra Hydra overrides for every training stage

Steps, each a subprocess of the project's own command line (so the demo runs exactly what a user runs):

1. ``python -m builder synth <synth root> --scale demo`` (skipped when every source is already there; the
   output is byte-identical per seed),
2. ``python -m builder build conf/curricula/demo/stage<N>.toml`` for N = 1, 2, 3 (atomic; replaces the last),
3. ``python -m train stage=<N> experiment=demo`` for N = 1, 2, 3: each stage starts from the previous stage's
   best weights (``init_from: auto``), evaluates the best checkpoint on every locked val set of its build and
   runs the regression gate against the previous stage,
4. an untrained model (same architecture, random init, seed 0) scored on the stage-3 val sets: the floor
   the trained stages are compared with,
5. the per-stage table: HOTA / IDF1 / MOTA per locked val set and stage (from each stage's metrics.json),
   with FORGETTING marked where HOTA dropped by more than ``regression.tolerance`` (1.0) vs the stage before.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from train.regression import is_forgetting

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"
SYNTH_SOURCES = ("bdd100k", "dancetrack", "visdrone", "mot17")
#: Metrics shown per val set in the per-stage table (0-100 scale, TrackEval definitions).
TABLE_METRICS = ("HOTA", "IDF1", "MOTA")
#: HOTA points; the published run-to-run spread of HOTA on DanceTrack (DESIGN.md), as regression.tolerance.
TOLERANCE = 1.0

# wide enough for the per-stage table when piped (rich falls back to 80 columns there)
console = Console(width=None if sys.stdout.isatty() else 200)


def _run(cmd: list[str]) -> None:
    """Run one step; a failing step stops the demo with the command that failed."""
    console.rule(" ".join(cmd[2:]) if cmd[:2] == [sys.executable, "-m"] else " ".join(cmd))
    result = subprocess.run(cmd, cwd=REPO)
    if result.returncode != 0:
        raise SystemExit(f"demo: step failed (exit {result.returncode}): {' '.join(cmd)}")


def synth_step(synth_root: Path, seed: int) -> None:
    """Write the synthetic sources unless all of them are already there."""
    if all((synth_root / s).is_dir() and any((synth_root / s).iterdir()) for s in SYNTH_SOURCES):
        console.print(f"synthetic sources already in {synth_root} (byte-identical per seed): skipped")
        return
    _run([sys.executable, "-m", "builder", "synth", str(synth_root), "--scale", "demo", "--seed", str(seed),
          "--overwrite"])


def build_step(stage: int, synth_root: Path, build_root: Path) -> None:
    """Build ``conf/curricula/demo/stage<stage>.toml`` into ``<build_root>/demo_stage<stage>``."""
    _run([sys.executable, "-m", "builder", "build", str(CONF / "curricula" / "demo" / f"stage{stage}.toml"),
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
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from train.models import build_model
    from train.stage_eval import evaluate_model

    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["stage=stage3_aerial", "experiment=demo", *overrides])
    classes = json.loads((build_dir / "build_manifest.json").read_text())["classes"]
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg.pop("_target_", None)
    torch.manual_seed(0)
    model = build_model(**model_cfg, num_classes=len(classes)).eval()
    result = evaluate_model(model, build_dir, "val", out_dir / "eval", classes=classes,
                            tracker_params=OmegaConf.to_container(cfg.tracker, resolve=True),
                            score_thresh=float(cfg.eval.score_thresh), device="cpu")
    metrics = {"stage": 0, "val_sets": result["val_sets"]}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


def stage_metrics(runs: Path, stages: list[int]) -> dict[str, dict]:
    """``{"stage N": metrics.json}`` of each stage's last successful run (``runs/stage<N>/latest``)."""
    out = {}
    for n in stages:
        path = runs / f"stage{n}" / "latest" / "metrics.json"
        if not path.is_file():
            raise SystemExit(f"demo: {path} is missing: stage {n} did not finish successfully")
        out[f"stage {n}"] = json.loads(path.read_text())
    return out


def per_stage_table(rows: dict[str, dict], *, tolerance: float = TOLERANCE) -> Table:
    """Rows = stages (in order), columns = val set x metric (combined over classes); FORGETTING where the
    val set's HOTA dropped by more than ``tolerance`` points vs the previous trained stage."""
    val_sets = sorted({vs for m in rows.values() for vs in m["val_sets"]})
    table = Table(title="Per-stage tracking metrics on the locked val sets (TrackEval, 0-100)")
    table.add_column("model")
    for vs in val_sets:
        for metric in TABLE_METRICS:
            table.add_column(f"{vs}\n{metric}", justify="right")
    previous: dict | None = None
    for name, metrics in rows.items():
        cells = []
        for vs in val_sets:
            combined = metrics["val_sets"].get(vs, {}).get("combined")
            for metric in TABLE_METRICS:
                if combined is None:
                    cells.append("-")
                    continue
                value = float(combined[metric])
                cell = f"{value:.1f}"
                if metric == "HOTA" and previous is not None and vs in previous["val_sets"]:
                    before = float(previous["val_sets"][vs]["combined"]["HOTA"])
                    if is_forgetting(value - before, tolerance):
                        cell = f"[bold red]{value:.1f} FORGETTING ({value - before:+.1f})[/]"
                cells.append(cell)
        table.add_row(name, *cells)
        if metrics.get("stage", 0) > 0:
            previous = metrics
    return table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line of ``python -m train.demo`` (Hydra overrides for every stage go after ``--``)."""
    parser = argparse.ArgumentParser(prog="python -m train.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--synth-root", type=Path, default=Path("data/synth"))
    parser.add_argument("--build-root", type=Path, default=Path("data/builds"))
    parser.add_argument("--runs", type=Path, default=Path("runs/demo"))
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--stages", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3])
    parser.add_argument("--no-baseline", action="store_true", help="skip the untrained-model row")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every training stage (after --)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the demo's steps in order (see the module docstring); exit code 0, or SystemExit naming the failed step."""
    args = parse_args(argv)
    t0 = time.perf_counter()
    synth_root, build_root, runs = (p if p.is_absolute() else REPO / p
                                    for p in (args.synth_root, args.build_root, args.runs))
    synth_step(synth_root, args.seed)
    for n in args.stages:
        build_step(n, synth_root, build_root)
    for n in args.stages:
        train_step(n, build_root, runs, args.overrides)
    rows = {}
    if not args.no_baseline:
        console.rule("untrained model (random init) on the last stage's val sets")
        rows["untrained"] = untrained_baseline(build_root / f"demo_stage{max(args.stages)}", runs / "untrained",
                                               [f"paths.build_root={build_root}", f"paths.runs_root={runs}"])
    rows.update(stage_metrics(runs, args.stages))
    console.print(per_stage_table(rows))
    for n in args.stages:
        report = runs / f"stage{n}" / "latest" / "report.md"
        console.print(f"stage {n}: {report}")
    console.print(f"demo wall time: {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
