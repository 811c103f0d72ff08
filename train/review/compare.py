"""Rank training runs by a metric and name the hyperparameters that differ between them.

Run::

    python -m train.compare runs/multirun/2026-01-01/12-00-00          # a Hydra multirun dir
    python -m train.compare runs/stage1/run_a runs/stage1/run_b --metric val/dancetrack/IDF1
    python -m train.compare runs/stage1 --out reports/stage1           # every run under a stage dir

Inputs follow the run-directory contract of docs/CONTRACTS.md: ``model_info.json`` (``best {metric,
value, epoch}``, ``hyperparameters``, ``wall_time_s``), ``training_history.json`` (per-epoch ``val``
metrics), ``metrics.json`` (per val set ``combined`` metrics), ``stopping_reason.txt`` (first line
``reason: ...``) and ``.hydra/config.yaml`` + ``.hydra/overrides.yaml``.

Outputs: a ranked table on the terminal (rich) and ``best_model_selection.md`` / ``.json`` in ``--out``
naming the winner, the metric, the margin over the runner-up and whether that margin is within the
run-to-run noise (``--noise``; default: the runs' own ``regression.tolerance``, from conf/train.yaml).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.table import Table

from builder.errors import ArgumentParser
from builder.formats.files import write_json, write_text_atomic
from train.config import default_tolerance, regression_defaults
from train.console import table_console
from train.errors import ReviewError, cli
from train.review.runs import (
    DEFAULT_METRIC,
    GROUP_SUFFIX,
    discover_runs,
    lower_is_better,
    read_run,
    resolve_metric,
    wall_time,
)
from train.review.seeds import SeedGroup, seed_groups, seed_noise


@dataclass
class RunSummary:
    """What ``compare`` knows about one run directory.

    Attributes:
        path: the run directory.
        name: short display name (path relative to the common parent of all compared runs).
        stage: ``model_info.json`` ``stage`` (None when absent).
        metric: the ranking metric key, e.g. ``val/HOTA`` (0-100 scale for ratios).
        value: the run's value of ``metric`` (its best over epochs), None when the run lacks it.
        source: where ``value`` came from (``model_info.json best``, ``training_history.json max``, ...).
        best_epoch: epoch of ``value`` (0-based as recorded by training), None when unknown.
        stopping_reason: first line of ``stopping_reason.txt`` without the ``reason:`` prefix.
        wall_time_s: ``model_info.json`` ``wall_time_s``, else the sum of ``epoch_time_s`` (seconds).
        hyperparameters: flat ``{"group.key": value}`` from ``.hydra/config.yaml`` (else
            ``model_info.json`` ``hyperparameters``).
        overrides: ``.hydra/overrides.yaml`` (the command-line overrides of the run), [] when absent.
        notes: problems found while reading the run (missing metric, unreadable file, ...).
        tolerance: the run's ``regression.tolerance`` (HOTA points), the noise level it was gated with.
    """

    path: Path
    name: str
    stage: int | None = None
    metric: str = DEFAULT_METRIC
    value: float | None = None
    source: str = ""
    best_epoch: int | None = None
    stopping_reason: str = "unknown"
    wall_time_s: float | None = None
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tolerance: float | None = None


def load_run(run: Path | str, metric: str | None = None) -> RunSummary:
    """Read one run directory into a ``RunSummary``; never raises for a missing or broken file.

    Missing files and a missing metric become entries of ``notes`` so that a crashed run still ranks
    (last) instead of stopping the comparison.
    """
    records = read_run(run)
    info, history, notes = records.info, records.history, records.notes
    key, value, source, epoch = resolve_metric(info, history, records.metrics, metric)
    if value is None:
        notes.append(f"metric {key!r} not found (looked in model_info.json best, training_history.json "
                     "val, metrics.json val_sets); ranked last")
    hparams = records.config if records.config is not None else dict((info or {}).get("hyperparameters") or {})
    return RunSummary(path=records.path, name=records.path.name, stage=records.stage, metric=key, value=value,
                      source=source, best_epoch=epoch if isinstance(epoch, int) else None,
                      stopping_reason=records.stopping_reason, wall_time_s=wall_time(info, history),
                      hyperparameters=hparams, overrides=records.overrides, notes=notes, tolerance=records.tolerance)


def rank_runs(runs: Sequence[RunSummary]) -> list[RunSummary]:
    """Runs sorted best first by ``value`` (direction from ``lower_is_better``); runs without a value last.

    Ties keep the input order (stable sort), so the ranking is deterministic.
    """
    def key(run: RunSummary) -> tuple[int, float]:
        if run.value is None:
            return (1, 0.0)
        return (0, run.value if lower_is_better(run.metric) else -run.value)

    return sorted(runs, key=key)


_MISSING = "<missing>"


def differing_hyperparameters(runs: Sequence[RunSummary]) -> list[str]:
    """Sorted flat keys whose value is not the same in every run (a key absent from a run differs).

    When a config group's option differs (``model (group)``: ``tiny`` vs ``fasterrcnn_resnet50``), the
    group's own keys (``model.*``) are left out: the option names the difference, its keys only repeat it.
    """
    keys = sorted({k for run in runs for k in run.hyperparameters})
    diff = [k for k in keys
            if len({json.dumps(r.hyperparameters.get(k, _MISSING), sort_keys=True, default=str)
                    for r in runs}) > 1]
    groups = [k.removesuffix(GROUP_SUFFIX).replace("/", ".") for k in diff if k.endswith(GROUP_SUFFIX)]
    return [k for k in diff
            if k.endswith(GROUP_SUFFIX) or not any(k == g or k.startswith(g + ".") for g in groups)]


def _name_runs(runs: Sequence[RunSummary]) -> None:
    """Display names: the path relative to the runs' common parent (``0``, ``stage1/2026-..``)."""
    if len(runs) < 2:
        return
    parts = [r.path.parts for r in runs]
    common = 0
    while all(len(p) > common + 1 for p in parts) and len({p[common] for p in parts}) == 1:
        common += 1
    for run, p in zip(runs, parts, strict=True):
        run.name = "/".join(p[common:])


def _seed_reason(groups: list[SeedGroup], noise: float, confidence: float) -> tuple[str, bool] | None:
    """The selection sentence about settings trained over several seeds, and whether their order is noise."""
    if not any(g.n > 1 for g in groups):
        return None
    first = groups[0]
    spread = f"mean {first.mean:.2f}, sd {first.std:.2f} over {first.n} seeds" if first.std is not None else \
        f"{first.mean:.2f}, one seed"
    if len(groups) == 1:
        return (f"; every run has the same setting ({spread}): the order of the runs is seed noise, the winner is "
                "the best seed"), True
    second = groups[1]
    margin = abs(first.mean - second.mean)
    threshold = max(noise, seed_noise(first, second, confidence=confidence))
    within = margin <= threshold
    text = (f"; by setting, {first.name} leads ({spread}) by {margin:.2f} over {second.name} (mean "
            f"{second.mean:.2f}, {second.n} seed(s))")
    if within:
        text += f", within the noise ({threshold:.2f}: tolerance or seed spread): a tie"
    return text, within


def select_best(ranked: Sequence[RunSummary], *, noise: float | None = None,
                groups: list[SeedGroup] | None = None) -> dict[str, Any]:
    """The winner of a ranking and why, as a JSON-able dict.

    Keys: ``metric``, ``winner`` {name, path, value, best_epoch}, ``runner_up`` (same or None),
    ``margin`` (|winner - runner-up|, metric units, None without a runner-up), ``noise``,
    ``within_noise`` (margin <= noise), ``reason`` (one sentence; it warns when the runs were ranked on
    different metrics, e.g. the monitored HOTA of different val sets), ``notes``, ``seed_groups``. When runs
    share a setting over several seeds (``groups``, :mod:`train.review.seeds`), the settings are compared by
    their means and the seed spread joins the noise; the winner is the best run of the best setting.

    Raises:
        ReviewError: no run has a value of the metric.
    """
    scored = [r for r in ranked if r.value is not None]
    if not scored:
        raise ReviewError("no run has the metric " + repr(ranked[0].metric if ranked else DEFAULT_METRIC)
                           + "; nothing to select (see the notes per run)")
    groups = [g for g in groups or [] if g.n]
    if len(groups) > 1 and any(g.n > 1 for g in groups):  # the best run of the best setting
        scored = [r for r in groups[0].runs if r.value is not None] + \
                 [r for r in scored if r not in groups[0].runs]
    win, runner = scored[0], (scored[1] if len(scored) > 1 else None)
    noise = noise if noise is not None else (win.tolerance if win.tolerance is not None else default_tolerance())
    margin = abs(win.value - runner.value) if runner is not None else None
    within = margin is not None and margin <= noise
    by_seed = _seed_reason(groups, noise, float(regression_defaults()["bootstrap"]["confidence"]))
    word = "lowest" if lower_is_better(win.metric) else "highest"
    reason = f"{win.name} has the {word} {win.metric} ({win.value:.2f})"
    if runner is not None:
        reason += f", {margin:.2f} ahead of {runner.name} ({runner.value:.2f})"
        if within:
            reason += (f"; the margin is within the run-to-run noise ({noise:g} points): treat the two as "
                       "tied and prefer a rerun with another seed before trusting the order")
    else:
        reason += "; no other run has the metric"
    if by_seed is not None:
        reason += by_seed[0]
        within = by_seed[1]
    metrics = sorted({r.metric for r in scored})
    if len(metrics) > 1:  # metric=None: each run's own monitored metric, which may differ between stages
        reason += (f"; caution: the runs monitor different metrics ({', '.join(metrics)}), so the values are "
                   "not comparable: pass --metric to rank every run on one")

    def brief(r: RunSummary | None) -> dict[str, Any] | None:
        return None if r is None else {"name": r.name, "path": str(r.path), "value": r.value,
                                       "best_epoch": r.best_epoch}

    return {"metric": win.metric, "winner": brief(win), "runner_up": brief(runner), "margin": margin,
            "noise": noise, "within_noise": within, "reason": reason + ".",
            "notes": {r.name: r.notes for r in ranked if r.notes},
            "seed_groups": [g.as_dict() for g in groups] if by_seed is not None else []}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if 0 < abs(value) < 1e-2 or abs(value) >= 1e4 else f"{value:.2f}"
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _rows(ranked: Sequence[RunSummary], diff_keys: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    header = ["rank", "run", "stage", ranked[0].metric if ranked else DEFAULT_METRIC, "best epoch (0-based)",
              "stopping reason", "wall time (s)", *diff_keys]
    rows = []
    for i, r in enumerate(ranked, 1):
        rows.append([str(i), r.name, _fmt(r.stage), _fmt(r.value), _fmt(r.best_epoch), r.stopping_reason,
                     _fmt(r.wall_time_s), *[_fmt(r.hyperparameters.get(k)) for k in diff_keys]])
    return header, rows


def render_table(ranked: Sequence[RunSummary], diff_keys: Sequence[str]) -> Table:
    """A rich ``Table``: rank, run, stage, metric, best epoch, stopping reason, wall time, differing keys."""
    header, rows = _rows(ranked, diff_keys)
    table = Table(title=f"Runs ranked by {header[3]} (best first)")
    for i, name in enumerate(header):
        table.add_column(name, justify="right" if i in (0, 2, 3, 4, 6) else "left")
    for row, run in zip(rows, ranked, strict=True):
        table.add_row(*row, style="dim" if run.value is None else None)
    return table


def render_markdown(ranked: Sequence[RunSummary], diff_keys: Sequence[str], selection: dict[str, Any]) -> str:
    """``best_model_selection.md``: the decision, the ranked table and per-run notes."""
    header, rows = _rows(ranked, diff_keys)
    win = selection["winner"]
    lines = ["# Best model selection", "", f"**Winner: {win['name']}** (`{win['path']}`)", "",
             selection["reason"], "",
             f"Metric: `{selection['metric']}`; noise threshold {selection['noise']:g} points.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    lines.append("")
    lines.append("Differing hyperparameters: " + (", ".join(f"`{k}`" for k in diff_keys) or "none") + ".")
    if selection.get("seed_groups"):
        lines += ["", "## Settings over seeds", "", "| setting | seeds | mean | sd | min | max |", "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {g['name']} | {g['n']} | {_fmt(g['mean'])} | {_fmt(g['std'])} | {_fmt(g['min'])} | "
                  f"{_fmt(g['max'])} |" for g in selection["seed_groups"]]
    if selection["notes"]:
        lines += ["", "## Notes", ""]
        lines += [f"- {name}: {note}" for name, notes in selection["notes"].items() for note in notes]
    return "\n".join(lines) + "\n"


@dataclass
class Comparison:
    """The result of ``compare_runs``: runs best first, the keys that differ, and the selection dict."""

    ranked: list[RunSummary]
    differing_keys: list[str]
    selection: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """``best_model_selection.json``: the selection plus ``differing_keys`` and ``ranking`` (best first)."""
        ranking = [{**asdict(r), "path": str(r.path),
                    "hyperparameters": {k: r.hyperparameters.get(k) for k in self.differing_keys}}
                   for r in self.ranked]
        return {**self.selection, "differing_keys": self.differing_keys, "ranking": ranking}

    def table(self) -> Table:
        """The ranked rich table (see ``render_table``)."""
        return render_table(self.ranked, self.differing_keys)

    def markdown(self) -> str:
        """``best_model_selection.md`` (see ``render_markdown``)."""
        return render_markdown(self.ranked, self.differing_keys, self.selection)

    def write(self, out_dir: Path | str) -> tuple[Path, Path]:
        """Write ``best_model_selection.md`` and ``.json`` into ``out_dir`` (created); return both paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        md, js = out / "best_model_selection.md", out / "best_model_selection.json"
        write_text_atomic(md, self.markdown())
        write_json(js, self.as_dict(), default=str)
        return md, js


def compare_runs(paths: Iterable[Path | str], *, metric: str | None = None,
                 noise: float | None = None) -> Comparison:
    """Load, rank and select among runs.

    Args:
        paths: run dirs, multirun dirs or stage dirs (see ``discover_runs``).
        metric: ranking metric key (``val/HOTA``, ``val/dancetrack/IDF1``, ``dancetrack/HOTA`` from
            metrics.json); None = each run's monitored metric.
        noise: margin (metric units) under which the winner is reported as tied with the runner-up
            (None: the winner's ``regression.tolerance``).

    Raises:
        ReviewError: no run found, or no run has the metric.
    """
    runs = [load_run(p, metric) for p in discover_runs(paths)]
    _name_runs(runs)
    ranked = rank_runs(runs)
    differing = differing_hyperparameters(ranked)
    groups = seed_groups(ranked, differing, lower_is_better=bool(ranked) and lower_is_better(ranked[0].metric))
    return Comparison(ranked, differing, select_best(ranked, noise=noise, groups=groups))


def build_parser() -> ArgumentParser:
    """Command-line interface of ``python -m train.compare``."""
    parser = ArgumentParser(prog="python -m train.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="run dirs, Hydra multirun dirs or runs/stage<N>")
    parser.add_argument("--metric", default=None,
                        help="ranking metric (default: each run's monitored metric, model_info.json best, "
                             "else max val/HOTA)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write best_model_selection.{md,json} (default: the first path)")
    parser.add_argument("--noise", type=float, default=None,
                        help="margin under which the top two are called tied (default: the winner's "
                             "regression.tolerance, HOTA points)")
    parser.add_argument("--promote", action="store_true",
                        help="point runs/stage<N>/latest at the winner, so the next stage starts from it "
                             "(multirun jobs never move latest themselves)")
    return parser


def promote(winner: Path) -> Path:
    """Point ``<paths.runs_root>/stage<N>/latest`` of the winning run at it; return the link.

    ``paths.runs_root`` and ``stage.index`` come from the winner's ``.hydra/config.yaml`` (a relative
    runs root is taken from the current directory, as training resolved it).

    Raises:
        ReviewError: the winner has no ``.hydra/config.yaml`` with those keys, or no best_model.pth.
    """
    from train.stage.chaining import update_latest

    config_path = winner / ".hydra" / "config.yaml"
    try:
        config = yaml.safe_load(config_path.read_text())
        runs_root, stage = Path(config["paths"]["runs_root"]), int(config["stage"]["index"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as err:
        raise ReviewError(f"{config_path}: cannot promote the winner: expected paths.runs_root and stage.index "
                           f"({err})") from None
    if not (winner / "best_model.pth").is_file():
        raise ReviewError(f"{winner}: cannot promote a run without best_model.pth")
    return update_latest(runs_root / f"stage{stage}", winner)


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    console = table_console()
    out = args.out if args.out is not None else args.paths[0]
    comparison = compare_runs(args.paths, metric=args.metric, noise=args.noise)
    console.print(comparison.table())
    if comparison.selection["seed_groups"]:
        groups = Table(title="Settings over seeds (mean and sample sd of the metric)")
        for name in ("setting", "seeds", "mean", "sd", "min", "max"):
            groups.add_column(name, justify="left" if name == "setting" else "right")
        for g in comparison.selection["seed_groups"]:
            groups.add_row(g["name"], str(g["n"]), *(_fmt(g[k]) for k in ("mean", "std", "min", "max")))
        console.print(groups)
    console.print(comparison.selection["reason"])
    for name, notes in comparison.selection["notes"].items():
        for note in notes:
            console.print(f"note {name}: {note}")
    md, js = comparison.write(out)
    console.print(f"wrote {md} and {js}")
    if args.promote:
        link = promote(Path(comparison.selection["winner"]["path"]))
        console.print(f"promoted: {link} -> {comparison.selection['winner']['path']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 2 bad input)."""
    return cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
