"""Benchmark: how much the demo's per-stage figures move with the training seed and with the choice of val sequences.

Trains the three demo stages (the `make demo` chain: synthetic data, CPU) once per seed, each seed its own chain
(stage 2 from that seed's stage 1, stage 3 from its stage 2), then prints per stage and locked val set:

- the seed-to-seed standard deviation (sample sd, ddof 1) of HOTA, IDF1 and MOTA (TrackEval, 0-100);
- the width of the 95% bootstrap interval of HOTA over the val sequences (train/regression/bootstrap.py), the
  mean over seeds: how much the figure moves with the sequences alone;
- for stages 2 and 3, the sd over seeds of the HOTA change vs the stage before, and the mean width of the
  gate's paired interval of that change;

and the tolerance these figures suggest: 1.96 * sd(dHOTA), the 95% half-width of the seed-to-seed spread of the
very quantity the gate judges (a stage's HOTA change from its own parent), from the largest per-set sd (the value
`conf/experiment/demo.yaml` sets as ``regression.tolerance``, rounded up to half a point). The spread of HOTA
itself, 1.96 * sqrt(2) * sd(HOTA), is printed for comparing two independent runs: a stage and its own parent are
not independent (the child starts from the parent's weights), so the gate uses the change's own spread.

Usage::

    python benchmarks/bench_noise.py                        # seeds 0 1 2 into runs/bench_noise
    python benchmarks/bench_noise.py --seeds 0 1 2 3 --runs runs/bench_noise --reuse   # reuse finished chains

Every chain is a subprocess of ``python -m train.demo`` (the exact `make demo` steps); ``--reuse`` skips seeds
whose stage-3 run already finished.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from train.config import regression_defaults
from train.regression.bootstrap import BootstrapConfig, interval_width
from train.review.runs import read_run

REPO = Path(__file__).resolve().parents[1]
STAGES = (1, 2, 3)
METRICS = ("HOTA", "IDF1", "MOTA")


def run_chain(seed: int, runs: Path, build_root: Path, synth_root: Path) -> float:
    """Train the three demo stages with ``seed``; returns the wall time in seconds."""
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "train.demo", "--runs", str(runs / f"seed{seed}"), "--build-root", str(build_root),
           "--synth-root", str(synth_root), "--no-baseline", "--", f"seed={seed}"]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def collect(runs: Path, seeds: list[int]) -> dict[int, dict[int, object]]:
    """``{stage: {seed: RunRecords}}`` of every finished chain."""
    return {n: {s: read_run(runs / f"seed{s}" / f"stage{n}" / "latest", lenient=False) for s in seeds}
            for n in STAGES}


def _sd(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def report(records: dict[int, dict[int, object]], boot: BootstrapConfig) -> tuple[float, float]:
    """Print the table; return the largest per-set sd over seeds of HOTA and of the gate's HOTA change."""
    header = ["stage", "val set", *(f"sd {m}" for m in METRICS), "boot width HOTA", "sd dHOTA", "gate width dHOTA"]
    print(" | ".join(header))
    worst = worst_delta = 0.0
    for n in STAGES:
        runs = records[n]
        sets = sorted({vs for r in runs.values() for vs in r.metrics["val_sets"]})
        for vs in sets:
            entries = [r.metrics["val_sets"][vs] for r in runs.values()]
            sds = [_sd([e["combined"][m] for e in entries]) for m in METRICS]
            worst = max(worst, sds[0])
            widths = [interval_width(e, "combined", "HOTA", boot) for e in entries]
            gate = [next((row for row in (r.regression or {}).get("rows", []) if row["val_set"] == vs
                          and row["class"] == "combined" and row["metric"] == "HOTA" and row["delta"] is not None),
                         None) for r in runs.values()]
            deltas = [g["delta"] for g in gate if g]
            gate_widths = [g["ci_high"] - g["ci_low"] for g in gate if g and g["ci_low"] is not None]
            if len(deltas) > 1:
                worst_delta = max(worst_delta, _sd(deltas))
            cells = [f"{n}", vs, *(f"{v:.2f}" for v in sds), f"{np.mean([w for w in widths if w is not None]):.2f}",
                     f"{_sd(deltas):.2f}" if deltas else "-",
                     f"{np.mean(gate_widths):.2f}" if gate_widths else "-"]
            print(" | ".join(cells))
    return worst, worst_delta


def main() -> int:
    """Run the chains (unless reused) and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "bench_noise")
    parser.add_argument("--build-root", type=Path, default=REPO / "data" / "builds")
    parser.add_argument("--synth-root", type=Path, default=REPO / "data" / "synth")
    parser.add_argument("--reuse", action="store_true", help="skip seeds whose stage 3 already finished")
    args = parser.parse_args()
    for seed in args.seeds:
        if args.reuse and (args.runs / f"seed{seed}" / "stage3" / "latest" / "metrics.json").is_file():
            print(f"seed {seed}: reused {args.runs / f'seed{seed}'}")
            continue
        print(f"seed {seed}: trained the 3 demo stages in {run_chain(seed, args.runs, args.build_root, args.synth_root):.0f} s")
    boot = BootstrapConfig.from_config(regression_defaults()["bootstrap"])
    worst, worst_delta = report(collect(args.runs, args.seeds), boot)
    print(f"largest seed-to-seed sd of HOTA: {worst:.2f} points, of the gate's HOTA change: {worst_delta:.2f} "
          f"points, over {len(args.seeds)} seeds")
    half = 1.96 * worst_delta
    print(f"suggested regression.tolerance = 1.96 * sd(dHOTA) = {half:.2f} -> {math.ceil(2 * half) / 2:.1f} "
          "(rounded up to half a point)")
    independent = 1.96 * math.sqrt(2.0) * worst
    print(f"(two independent runs, not a stage and its own parent: 1.96 * sqrt(2) * sd(HOTA) = {independent:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
