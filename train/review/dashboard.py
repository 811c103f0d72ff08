"""Training dashboard: one PNG with loss, learning rate, gradient norm and validation metrics per epoch.

Run::

    python -m train.dashboard runs/stage1/latest                          # one run
    python -m train.dashboard runs/stage1/latest runs/stage2/latest runs/stage3/latest --out curriculum.png

Given several runs, the runs are ordered by ``model_info.json`` ``stage`` (then path) and shown as one
curriculum: epochs are concatenated, each stage's start is marked and labelled, and the last panel shows
each locked val set's final HOTA (``metrics.json``, TrackEval HOTA on a 0-100 scale) stage after stage,
each labelled with the regression gate's change vs the parent stage and its 95% interval (the run's
regression.json); FORGETTING verdicts are ringed in red and listed in that panel's legend, GAINED labelled in
green, so forgetting is visible at a glance and told apart from noise.

Inputs: ``training_history.json``, ``model_info.json`` and ``metrics.json`` of each run directory, as
docs/CONTRACTS.md defines them. Rendering uses matplotlib's Agg canvas through a bare ``Figure`` (no display,
no pyplot state).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from builder.errors import ArgumentParser
from train.errors import ReviewError, cli
from train.regression.gate import FORGETTING, GAINED
from train.review.runs import read_run

#: Per-val-set metrics drawn per epoch, with their line styles (colour encodes the val set).
VAL_METRIC_STYLES = {"HOTA": "-", "IDF1": "--", "MOTA": ":"}
FIGSIZE_IN = (16.0, 9.0)
DPI = 100


@dataclass
class RunCurves:
    """Per-epoch curves and final metrics of one run directory.

    Attributes:
        path: the run directory.
        label: ``stage <N>`` when ``model_info.json`` names the stage, else the directory name.
        stage: the stage number or None.
        epochs: ``training_history.json`` ``epochs`` rows, in file order.
        best_epoch: ``model_info.json`` ``best.epoch`` (index into the recorded epoch numbers) or None.
        final: ``metrics.json`` ``val_sets`` (``{set: {"combined": {HOTA, ...}}}``), {} when absent.
        gate: the rows of the run's regression.json (the gate against its parent), [] when absent.
    """

    path: Path
    label: str
    stage: int | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    final: dict[str, Any] = field(default_factory=dict)
    gate: list[dict[str, Any]] = field(default_factory=list)





def load_run(run_dir: Path | str) -> RunCurves:
    """Read a run directory's history, model info and final metrics.

    Raises:
        ReviewError: the directory is missing, has no ``training_history.json``, or a file is not
            the documented JSON object (``epochs`` must be a list).
    """
    records = read_run(run_dir, lenient=False)
    run, history = records.path, records.history
    if history is None:
        raise ReviewError(f"{run / 'training_history.json'}: missing (the run never finished an epoch?)")
    epochs = history.get("epochs")
    if not isinstance(epochs, list):
        raise ReviewError(f"{run / 'training_history.json'}: key 'epochs' must be a list of epoch rows")
    info, metrics, stage = records.info or {}, records.metrics or {}, records.stage
    best = info.get("best") or {}
    return RunCurves(path=run, label=f"stage {stage}" if stage is not None else run.name, stage=stage,
                     epochs=[e for e in epochs if isinstance(e, dict)],
                     best_epoch=best.get("epoch") if isinstance(best.get("epoch"), int) else None,
                     final=metrics.get("val_sets") or {},
                     gate=list((records.regression or {}).get("rows") or []))


def _num(value: Any) -> float:
    """A finite float, or NaN (matplotlib leaves a gap) for missing / non-numeric values."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _series(runs: Sequence[RunCurves], getter) -> dict[str, tuple[list[float], list[float]]]:
    """``{name: (x, y)}`` over the concatenated epochs, x = 1-based global epoch.

    A NaN point at each stage boundary breaks the line there, so no segment joins two stages.
    """
    out: dict[str, tuple[list[float], list[float]]] = {}
    x0 = 0
    for run in runs:
        for xs, ys in out.values():
            xs.append(x0 + 0.5)
            ys.append(math.nan)
        for i, row in enumerate(run.epochs):
            for name, value in getter(row).items():
                xs, ys = out.setdefault(name, ([], []))
                xs.append(x0 + i + 1)
                ys.append(_num(value))
        x0 += len(run.epochs)
    return out


def _val_keys(row: dict[str, Any]) -> dict[str, Any]:
    """Per-set ``val/<set>/{HOTA,IDF1,MOTA}``; the monitored ``val/HOTA`` only when no set is named."""
    val = row.get("val") or {}
    per_set = {k: v for k, v in val.items()
               if k.count("/") == 2 and k.rsplit("/", 1)[1] in VAL_METRIC_STYLES}
    if per_set:
        return per_set
    return {k: v for k, v in val.items() if k in {f"val/{m}" for m in VAL_METRIC_STYLES}}


def _mark_stages(ax: Axes, runs: Sequence[RunCurves]) -> None:
    """Dotted vertical line at each stage's first epoch; stage labels on a top axis over each stage's span."""
    if len(runs) < 2:
        return
    x0, centres = 0, []
    for run in runs:
        ax.axvline(x0 + 0.5, color="0.4", linestyle=":", linewidth=1.2)
        centres.append(x0 + 0.5 + len(run.epochs) / 2)
        x0 += len(run.epochs)
    top = ax.secondary_xaxis("top")
    top.set_xticks(centres, [run.label for run in runs], fontsize=9, color="0.25")
    top.tick_params(length=0)


def _finish(ax: Axes, title: str, ylabel: str, runs: Sequence[RunCurves], *, legend: bool = True) -> None:
    ax.set_title(title, fontsize=11)
    # Records are written at epoch end: x = 1 is the state after the first epoch (Lightning's epoch 0).
    ax.set_xlabel("epochs completed (concatenated over stages)" if len(runs) > 1 else "epochs completed")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _mark_stages(ax, runs)
    if not ax.lines:
        ax.text(0.5, 0.5, "no data recorded", transform=ax.transAxes, ha="center", va="center", color="0.5")
    elif legend:
        _headroom(ax)
        ax.legend(fontsize=8, loc="upper right")


def _headroom(ax: Axes, fraction: float = 0.4) -> None:
    """Raise the y limit so a legend in the upper corner sits above the data instead of over it."""
    low, high = ax.get_ylim()
    if ax.get_yscale() == "log":
        ax.set_ylim(low, high * (high / low) ** fraction)
    else:
        ax.set_ylim(low, high + fraction * (high - low))


def plot_losses(ax: Axes, runs: Sequence[RunCurves]) -> None:
    """Each training loss component's epoch mean (``train`` dict), one line per component."""
    for name, (xs, ys) in sorted(_series(runs, lambda r: r.get("train") or {}).items()):
        ax.plot(xs, ys, marker=".", label=name, linewidth=2.2 if name == "loss" else 1.3)
    _finish(ax, "Training loss components (epoch mean)", "loss (unitless)", runs)


#: LR ratio (max / min over the plot) beyond which the LR axis is logarithmic.
LOG_LR_RATIO = 20.0


def plot_lr(ax: Axes, runs: Sequence[RunCurves]) -> None:
    """Learning rate per parameter group at each epoch; log axis when all LRs are > 0 and span > 20x.

    Groups get different line styles so that groups sharing one LR stay visible on top of each other.
    """
    styles = ("-", "--", ":", "-.")
    values = []
    for i, (name, (xs, ys)) in enumerate(sorted(_series(runs, lambda r: r.get("lr") or {}).items())):
        ax.plot(xs, ys, styles[i % len(styles)], marker=".", label=name, drawstyle="steps-mid", linewidth=1.8)
        values += [y for y in ys if not math.isnan(y)]
    log = bool(values) and min(values) > 0 and max(values) / min(values) > LOG_LR_RATIO
    if log:
        ax.set_yscale("log")
    _finish(ax, "Learning rate per parameter group", "learning rate" + (" (log scale)" if log else ""), runs)


def plot_grad_norm(ax: Axes, runs: Sequence[RunCurves]) -> None:
    """Total gradient L2 norm per epoch (``grad_norm``)."""
    for name, (xs, ys) in _series(runs, lambda r: {"grad norm": r.get("grad_norm")}).items():
        ax.plot(xs, ys, marker=".", color="tab:purple", label=name)
    _finish(ax, "Gradient norm", "L2 norm (unitless)", runs, legend=False)


def plot_val_metrics(ax: Axes, runs: Sequence[RunCurves]) -> None:
    """Val HOTA / IDF1 / MOTA per epoch and val set (colour = set, line style = metric); best epochs starred."""
    series = _series(runs, _val_keys)
    sets = sorted({k.split("/")[1] if k.count("/") == 2 else "monitored" for k in series})
    colours = {s: colormaps["tab10"](i % 10) for i, s in enumerate(sets)}
    for key, (xs, ys) in sorted(series.items()):
        parts = key.split("/")
        vset, metric = (parts[1], parts[2]) if len(parts) == 3 else ("monitored", parts[1])
        ax.plot(xs, ys, VAL_METRIC_STYLES[metric], color=colours[vset], marker=".", label=f"{vset} {metric}")
    x0 = 0
    for run in runs:
        idx = [i for i, row in enumerate(run.epochs) if row.get("epoch") == run.best_epoch]
        hota = _num((run.epochs[idx[0]].get("val") or {}).get("val/HOTA")) if idx else math.nan
        if idx and not math.isnan(hota):
            ax.plot([x0 + idx[0] + 1], [hota], "*", color="gold", markeredgecolor="black", markersize=13,
                    label="best checkpoint (val/HOTA)" if x0 == 0 else None)
        x0 += len(run.epochs)
    _finish(ax, "Validation tracking metrics per epoch (TrackEval HOTA, IDF1, MOTA)", "score (0-100)", runs,
            legend=False)
    _score_limits(ax, [y for _, ys in series.values() for y in ys])
    if ax.lines:  # legend outside, right of the panel: the curves stay uncovered
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


#: Vertical gap between stacked value labels in the final-HOTA panel, as a fraction of the y range
#: (about one 8 pt text line on the 16x9 in figure's lower-right panel).
LABEL_GAP_FRACTION = 0.065


def _stack_labels(values: Sequence[float], gap: float) -> list[float]:
    """Label heights for points at ``values`` (one stage): each label at least ``gap`` from the next.

    Labels keep the points' order; a group pushed apart is re-centred on the points' middle so that no
    label drifts far from its point. Returns one height per value, in the input order.
    """
    order = sorted(range(len(values)), key=lambda i: values[i])
    placed: list[float] = []
    for i in order:
        placed.append(values[i] if not placed else max(values[i], placed[-1] + gap))
    if placed:
        shift = ((placed[0] + placed[-1]) - (values[order[0]] + values[order[-1]])) / 2
        placed = [p - shift for p in placed]
    out = [0.0] * len(values)
    for i, p in zip(order, placed, strict=True):
        out[i] = p
    return out


def _gate_label(value: float, row: dict | None) -> str:
    """``68.7`` or ``68.7 (+6.7 [+2.1, +11.0])``: the value and its change vs the parent with the interval."""
    if row is None or row.get("delta") is None:
        return f"{value:.1f}"
    interval = "" if row.get("ci_low") is None else f" [{row['ci_low']:+.1f}, {row['ci_high']:+.1f}]"
    return f"{value:.1f} ({row['delta']:+.1f}{interval})"


def plot_final_by_stage(ax: Axes, runs: Sequence[RunCurves]) -> None:
    """Each locked val set's final HOTA (metrics.json) per run/stage, labelled with the gate's change vs the
    parent stage and its interval (the run's regression.json); FORGETTING in red, GAINED in green.

    Value labels sit right of their points, stacked so that close values never overlap (a thin leader line
    joins a moved label to its point). A val set with a FORGETTING verdict (any class) gets a red ring on the
    point and a legend entry ``FORGETTING: <set> / <class> <delta> [interval] at <stage>``.
    """
    sets = sorted({s for run in runs for s in run.final})
    xs = list(range(1, len(runs) + 1))
    labels: dict[int, list[tuple[float, str, Any, bool]]] = {}  # stage index -> (HOTA, text, colour, bold)
    forgetting: list[str] = []
    for i, vset in enumerate(sets):
        ys = [_num(((run.final.get(vset) or {}).get("combined") or {}).get("HOTA")) for run in runs]
        colour = colormaps["tab10"](i % 10)
        ax.plot(xs, ys, "-o", color=colour, label=vset, linewidth=2)
        for k, run in enumerate(runs):
            if math.isnan(ys[k]):
                continue
            rows = [r for r in run.gate if r["val_set"] == vset and r["metric"] == "HOTA"]
            combined = next((r for r in rows if r["class"] == "combined"), None)
            forgot = [r for r in rows if r.get("gated") and r["verdict"] == FORGETTING]
            gained = combined is not None and combined["verdict"] == GAINED
            for r in forgot:
                forgetting.append(f"FORGETTING: {vset} / {r['class']} {_gate_label(r['after'], r).split(' ', 1)[1]}"
                                  f" at {run.label}")
            if forgot:
                ax.plot([xs[k]], [ys[k]], "o", markersize=13, markerfacecolor="none", markeredgecolor="red",
                        markeredgewidth=2, zorder=4)
            col = "red" if forgot else "green" if gained else colour
            labels.setdefault(k, []).append((ys[k], _gate_label(ys[k], combined), col, bool(forgot or gained)))
    ax.set_xticks(xs, [run.label for run in runs])
    ax.set_xlim(0.6, len(runs) + 0.95)  # room right of the last stage for its labels
    what = "per stage" if len(runs) > 1 else "of this run"
    ax.set_title(f"Locked val sets: final HOTA {what}\n(change vs parent [95% CI]; red = FORGETTING, green = "
                 "GAINED)", fontsize=11)
    ax.set_xlabel("stage (best checkpoint, metrics.json)")
    ax.set_ylabel("HOTA (0-100)")
    ax.grid(True, alpha=0.3)
    if not sets:
        ax.text(0.5, 0.5, "no metrics.json in these runs", transform=ax.transAxes, ha="center", color="0.5")
        return
    _score_limits(ax, [y for line in ax.lines for y in line.get_ydata()], top_pad=0.25)
    _place_labels(ax, xs, labels)
    handles, names = ax.get_legend_handles_labels()
    for note in forgetting:  # the forgetting notes live in the legend, away from the crowded points
        handles.append(Line2D([], [], marker="o", linestyle="none", markersize=9, markerfacecolor="none",
                              markeredgecolor="red", markeredgewidth=2))
        names.append(note)
    legend = ax.legend(handles, names, fontsize=8, loc="lower left")
    for text in legend.get_texts()[len(sets):]:
        text.set_color("red")
        text.set_fontweight("bold")


def _place_labels(ax: Axes, xs: list[int], labels: dict[int, list[tuple[float, str, Any, bool]]]) -> None:
    """Annotate each point right of it, stacked so that close values never overlap."""
    low, high = ax.get_ylim()
    for k, items in labels.items():
        heights = _stack_labels([v for v, *_ in items], LABEL_GAP_FRACTION * (high - low))
        for (value, text, col, bold), y in zip(items, heights, strict=True):
            ax.annotate(text, (xs[k], value), xytext=(xs[k] + 0.12, y), textcoords="data", fontsize=8,
                        ha="left", va="center", color=col, fontweight="bold" if bold else "normal",
                        bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                              "alpha": 0.8},
                        arrowprops={"arrowstyle": "-", "color": col, "linewidth": 0.6, "shrinkA": 0,
                                    "shrinkB": 4}, zorder=5)


def _score_limits(ax: Axes, values: Sequence[float], *, top_pad: float = 0.1) -> None:
    """Y range for 0-100 scores: from min(0, data) (MOTA can be negative) to the data max plus padding."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return
    low, high = min(0.0, min(finite)), max(1.0, max(finite))
    ax.set_ylim(low - 0.05 * (high - low), high + top_pad * (high - low))


def order_runs(runs: Sequence[RunCurves]) -> list[RunCurves]:
    """Curriculum order: by stage (runs without a stage after those with one), then by path."""
    return sorted(runs, key=lambda r: (r.stage is None, r.stage or 0, str(r.path)))


def build_figure(runs: Sequence[RunCurves]) -> Figure:
    """The dashboard figure (16x9 in): loss | LR | grad norm on top; val metrics | final HOTA with the gate's intervals below."""
    # A bare Figure (not pyplot) renders with the Agg canvas and touches no global backend state.
    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    top, bottom = fig.subfigures(2, 1)  # rows lay out independently (the val legend sits outside its panel)
    loss_ax, lr_ax, grad_ax = top.subplots(1, 3)
    plot_losses(loss_ax, runs)
    plot_lr(lr_ax, runs)
    plot_grad_norm(grad_ax, runs)
    grid = bottom.add_gridspec(1, 2)  # the final-HOTA panel is half the width: its labels carry intervals
    plot_val_metrics(bottom.add_subplot(grid[0, 0]), runs)
    plot_final_by_stage(bottom.add_subplot(grid[0, 1]), runs)
    title = "Curriculum: " + " -> ".join(r.label for r in runs) if len(runs) > 1 else f"Run {runs[0].path}"
    fig.suptitle(title, fontsize=13, fontweight="bold")
    return fig


def make_dashboard(run_dirs: Sequence[Path | str], out_png: Path | str) -> Path:
    """Render the dashboard of one run, or the curriculum view of several, to ``out_png`` (1600x900 px).

    Raises:
        ReviewError: no run given, or a run directory is unreadable (see ``load_run``).
    """
    if not run_dirs:
        raise ReviewError("no run directory given")
    runs = order_runs([load_run(r) for r in run_dirs])
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    build_figure(runs).savefig(out, dpi=DPI)
    return out


def build_parser() -> ArgumentParser:
    """Command-line interface of ``python -m train.dashboard``."""
    parser = ArgumentParser(prog="python -m train.dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories (several = curriculum view)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output PNG (default: <first run>/dashboard.png)")
    return parser


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out if args.out is not None else args.runs[0] / "dashboard.png"
    print(f"wrote {make_dashboard(args.runs, out)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m train.dashboard``; returns the exit code (0 ok, 2 bad input)."""
    return cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
