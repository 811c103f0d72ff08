"""The regression gate as text: report.md's markdown table, the terminal's rich table, FORGETTING lines."""

from __future__ import annotations

from rich.table import Table

from train.regression.gate import FORGETTING, GAINED, Regression, Row


def num(value: float | None, signed: bool = False) -> str:
    """``12.34`` / ``+1.20`` (2 decimals), ``-`` for None."""
    if value is None:
        return "-"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def interval_text(row: Row) -> str:
    """``[-2.10, -0.40]`` (metric points), ``-`` without an interval."""
    iv = row.interval
    return "-" if iv is None else f"[{iv.low:+.2f}, {iv.high:+.2f}]"


def method_line(reg: Regression) -> str:
    """One sentence saying how the intervals were made."""
    bs = reg.bootstrap
    if bs is None:
        return "No intervals (regression.bootstrap unset): verdicts follow the tolerance alone."
    seeds = (f"; {reg.runs_before} vs {reg.runs_after} runs (seeds): means over seeds, seed-to-seed variance added"
             if max(reg.runs_before, reg.runs_after) > 1 else "")
    return (f"Intervals: {100 * bs.confidence:g}% paired bootstrap over the locked val sequences "
            f"({bs.resamples} resamples, seed {bs.seed}){seeds}. Verdict: FORGETTING / GAINED when the change is "
            f"beyond the {reg.tolerance:g}-point tolerance (regression.tolerance) and its interval excludes zero; "
            "else within noise.")


def forgetting_lines(reg: Regression | None) -> list[str]:
    """``FORGETTING: <val set> / <class>: HOTA <delta> points, 95% CI [...] vs the parent stage (tolerance t)``."""
    if reg is None:
        return []
    level = f"{100 * reg.bootstrap.confidence:g}% CI " if reg.bootstrap else "CI "
    return [f"FORGETTING: {r.val_set} / {r.cls}: HOTA {r.delta:+.2f} points, {level}{interval_text(r)} vs the "
            f"parent stage (tolerance {reg.tolerance:g})" for r in reg.forgetting]


def verdict_lines(reg: Regression | None) -> list[str]:
    """One line per gated row (HOTA per class and val set): ``<val set> / <class>: HOTA <delta> [ci] <verdict>``."""
    if reg is None or reg.baseline:
        return []
    return [f"{r.val_set} / {r.cls}: HOTA {num(r.delta, signed=True)} {interval_text(r)} {r.verdict or '-'}"
            for r in reg.gated]


def render_markdown(reg: Regression) -> str:
    """Markdown: a loud FORGETTING block (if any), then a before / after / delta / interval / verdict table."""
    lines = []
    if reg.baseline:
        lines += ["Baseline: no previous stage to compare with (first stage or parent not evaluated).", ""]
    for line in forgetting_lines(reg):
        lines.append(f"> **{line.replace('FORGETTING:', 'FORGETTING**:', 1)}")
    for vs in reg.missing:
        lines.append(f"> **WARNING**: val set `{vs}` was evaluated in the previous stage but not in this one")
    if lines and not reg.baseline:
        lines.append("")
    level = f"{100 * reg.bootstrap.confidence:g}% CI" if reg.bootstrap else "CI"
    lines += [method_line(reg), "", f"| val set | class | metric | before | after | delta | {level} | verdict |",
              "|---|---|---|---:|---:|---:|---:|---|"]
    for r in reg.rows:
        verdict = f"**{r.verdict}**" if r.verdict in (FORGETTING, GAINED) else r.verdict
        lines.append(f"| {r.val_set} | {r.cls} | {r.metric} | {num(r.before)} | {num(r.after)} "
                     f"| {num(r.delta, signed=True)} | {interval_text(r)} | {verdict} |")
    return "\n".join(lines) + "\n"


def render_rich(reg: Regression) -> Table:
    """A rich Table (FORGETTING rows bold red, GAINED green) for the terminal."""
    title = "Regression gate: baseline (no previous stage)" if reg.baseline else (
        f"Regression gate vs previous stage (tolerance {reg.tolerance:g})"
        + (" - FORGETTING" if reg.forgetting else " - passed"))
    table = Table(title=title, caption=method_line(reg))
    for name in ("val set", "class", "metric", "before", "after", "delta", "interval", "verdict"):
        table.add_column(name, justify="right" if name in ("before", "after", "delta", "interval") else "left")
    for r in reg.rows:
        style = "bold red" if r.verdict == FORGETTING else "green" if r.verdict == GAINED else None
        table.add_row(r.val_set, r.cls, r.metric, num(r.before), num(r.after), num(r.delta, signed=True),
                      interval_text(r), r.verdict, style=style)
    return table
