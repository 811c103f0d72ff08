"""report.md of a stage run: stopping reason and best metric, each loss component's epoch mean in the first vs the
last epoch, the tracking metrics per val set (then the locked test sets and official splits,
:func:`train.evaluate.locked.report_lines`), and the regression gate against the parent stage (before, after,
delta, interval and verdict per val set, class and metric; FORGETTING lines first)."""

from __future__ import annotations

from pathlib import Path

from builder.formats.files import read_json, write_text_atomic
from train.evaluate.locked import report_lines as locked_report_lines
from train.regression.gate import Regression
from train.regression.render import render_markdown
from train.stage.records import StopInfo

#: Metrics shown per val set in report.md (TrackEval HOTA / CLEAR / Identity, 0-100 scale; IDSW a count).
REPORT_METRICS = ("HOTA", "DetA", "AssA", "IDF1", "MOTA", "IDSW")


def loss_breakdown(history: dict) -> list[tuple[str, float, float]]:
    """(component, first-epoch mean, last-epoch mean) for every training loss component."""
    epochs = history.get("epochs", [])
    if not epochs:
        return []
    first, last = epochs[0]["train"], epochs[-1]["train"]
    return [(k, first[k], last[k]) for k in first if k in last]


def write_report(run_dir: Path, *, stop: StopInfo, metrics: dict | None, regression: Regression | None,
                 stage: int) -> Path:
    """Write report.md (see the module docstring) and return its path."""
    history_path = run_dir / "training_history.json"
    history = read_json(history_path, what="training_history.json") if history_path.is_file() else {}
    best = stop.best
    lines = [f"# Stage {stage}: {run_dir.name}", "", f"- stopping reason: **{stop.reason}** ({'; '.join(stop.details)})",
             f"- best: {best.get('metric')} = {best.get('value')} at epoch {best.get('epoch')}", "",
             "## Loss components (epoch mean)", "", "| component | first epoch | last epoch | change |",
             "|---|---:|---:|---:|"]
    lines += [f"| {k} | {a:.4f} | {b:.4f} | {100 * (b - a) / a if a else float('nan'):+.1f}% |"
              for k, a, b in loss_breakdown(history)]
    lines += ["", "## Tracking metrics per val set (TrackEval, 0-100)", ""]
    if metrics:
        lines += ["| val set | " + " | ".join(REPORT_METRICS) + " |", "|---|" + "---:|" * len(REPORT_METRICS)]
        for name, m in metrics["val_sets"].items():
            lines.append(f"| {name} | " + " | ".join(f"{m['combined'].get(k, float('nan')):.2f}"
                                                     if k != "IDSW" else str(m["combined"].get(k))
                                                     for k in REPORT_METRICS) + " |")
    else:
        lines.append("not evaluated (eval.final=false)")
    lines += locked_report_lines(metrics or {})
    lines += ["", "## Regression vs the parent stage", ""]
    lines.append(render_markdown(regression) if regression is not None else "no regression table "
                 "(no parent metrics.json or no evaluation)")
    lines += ["", *stop.forgetting] if stop.forgetting else ["", "No FORGETTING (no HOTA drop beyond the tolerance "
                                                             "with an interval wholly below zero)."]
    path = run_dir / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
