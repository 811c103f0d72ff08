"""The per-stage regression gate: before / after / delta of tracking metrics per val set and class.

``compare(previous, current)`` takes two ``metrics.json`` dicts (the parent stage's and this stage's, see
docs/CONTRACTS.md) and lists, for every val set, every class and the ``combined`` entry, the metrics
HOTA, DetA, AssA, IDF1 and MOTA before and after. A HOTA drop of more than ``tolerance`` points on a
class of a val set is FORGETTING; drops within the tolerance are not flagged. The tolerance is the config's
``regression.tolerance`` (conf/train.yaml), the one place it is set.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from train.errors import ConfigError, EvaluationError

#: Metrics compared, in table order (all on the 0-100 scale of metrics.json).
GATE_METRICS = ("HOTA", "DetA", "AssA", "IDF1", "MOTA")
#: The metric whose drop is forgetting.
FORGETTING_METRIC = "HOTA"
#: Float slack when comparing a drop with the tolerance: 16.1 -> 15.1 is a 1.0-point drop (not forgetting at
#: tolerance 1.0) although 15.1 - 16.1 = -1.0000000000000018 in binary floating point.
_FLOAT_SLACK = 1e-9


def is_forgetting(delta: float | None, tolerance: float) -> bool:
    """Whether a HOTA change ``delta = after - before`` (points) is a drop beyond ``tolerance`` points."""
    return delta is not None and delta < -tolerance - _FLOAT_SLACK


@dataclass(frozen=True)
class Row:
    """One comparison: ``delta = after - before`` (None when either side is missing)."""

    val_set: str
    cls: str
    metric: str
    before: float | None
    after: float | None

    @property
    def delta(self) -> float | None:
        """``after - before`` in metric units (HOTA points), None when either side is missing."""
        return None if self.before is None or self.after is None else self.after - self.before


@dataclass
class Regression:
    """Result of :func:`compare`.

    Attributes:
        rows: every (val set, class or ``combined``, metric) comparison.
        forgetting: ``(val set, class, HOTA delta)`` for every class whose HOTA dropped by more than
            ``tolerance`` (classes of a val set; ``combined`` only for a val set without per-class entries).
        tolerance: HOTA points of noise allowed.
        baseline: True when there was no previous stage (every ``before`` is None).
        missing: val sets the previous stage was evaluated on but this one was not.
    """

    rows: list[Row]
    tolerance: float
    forgetting: list[tuple[str, str, float]] = field(default_factory=list)
    baseline: bool = False
    missing: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No forgetting flagged."""
        return not self.forgetting

    def _flag(self, row: Row) -> str:
        if row.metric != FORGETTING_METRIC or row.delta is None:
            return "new" if row.before is None and not self.baseline else ""
        if (row.val_set, row.cls, row.delta) in self.forgetting:
            return "FORGETTING"
        return "drop" if is_forgetting(row.delta, self.tolerance) else "ok"

    def render_markdown(self) -> str:
        """Markdown: a loud FORGETTING block (if any), then a before / after / delta table."""
        lines = []
        if self.baseline:
            lines += ["Baseline: no previous stage to compare with (first stage or parent not evaluated).", ""]
        for vs, cls, delta in self.forgetting:
            lines.append(f"> **FORGETTING**: `{vs}` / `{cls}`: HOTA {delta:+.2f} points "
                         f"(beyond the {self.tolerance:.1f}-point tolerance)")
        for vs in self.missing:
            lines.append(f"> **WARNING**: val set `{vs}` was evaluated in the previous stage but not in this one")
        if lines and not self.baseline:
            lines.append("")
        lines += [f"HOTA tolerance: {self.tolerance:.1f} points (regression.tolerance).", "",
                  "| val set | class | metric | before | after | delta | flag |", "|---|---|---|---:|---:|---:|---|"]
        for row in self.rows:
            flag = self._flag(row)
            lines.append(f"| {row.val_set} | {row.cls} | {row.metric} | {_num(row.before)} | {_num(row.after)} "
                         f"| {_num(row.delta, signed=True)} | {'**' + flag + '**' if flag == 'FORGETTING' else flag} |")
        return "\n".join(lines) + "\n"

    def render_rich(self):
        """A rich Table (FORGETTING rows in bold red) for the terminal."""
        from rich.table import Table

        title = "Regression gate: baseline (no previous stage)" if self.baseline else (
            f"Regression gate vs previous stage (HOTA tolerance {self.tolerance:.1f})"
            + (" - FORGETTING" if self.forgetting else " - passed"))
        table = Table(title=title)
        for name, justify in (("val set", "left"), ("class", "left"), ("metric", "left"), ("before", "right"),
                              ("after", "right"), ("delta", "right"), ("flag", "left")):
            table.add_column(name, justify=justify)
        for row in self.rows:
            flag = self._flag(row)
            table.add_row(row.val_set, row.cls, row.metric, _num(row.before), _num(row.after),
                          _num(row.delta, signed=True), flag,
                          style="bold red" if flag == "FORGETTING" else ("yellow" if flag == "drop" else None))
        return table

    def to_dict(self) -> dict:
        """JSON-ready: tolerance, baseline, forgetting, missing, rows."""
        return {"tolerance": self.tolerance, "baseline": self.baseline, "missing": self.missing,
                "forgetting": [{"val_set": v, "class": c, "delta": d} for v, c, d in self.forgetting],
                "rows": [{"val_set": r.val_set, "class": r.cls, "metric": r.metric, "before": r.before,
                          "after": r.after, "delta": r.delta} for r in self.rows]}


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _entries(val_set_entry: dict) -> dict[str, dict]:
    """{class name or 'combined': metrics} of one val-set entry (per-class entries first)."""
    out = dict(val_set_entry.get("per_class", {}))
    if "combined" in val_set_entry:
        out["combined"] = val_set_entry["combined"]
    return out


def _value(metrics: dict | None, key: str) -> float | None:
    if metrics is None or metrics.get(key) is None:
        return None
    return float(metrics[key])


def _val_sets(metrics: object, which: str) -> dict[str, dict]:
    """``metrics["val_sets"]`` checked to be ``{set: {"combined": {...}, "per_class": {name: {...}}}}``.

    Raises:
        EvaluationError: naming ``which`` (previous / current) and the key that does not have that shape.
    """
    if not isinstance(metrics, dict) or not isinstance(metrics.get("val_sets"), dict):
        raise EvaluationError(f"{which} metrics: expected a JSON object with a 'val_sets' mapping (metrics.json format)")
    for vs, entry in metrics["val_sets"].items():
        if not isinstance(entry, dict):
            raise EvaluationError(f"{which} metrics: val_sets.{vs} must be an object with 'combined' / 'per_class'")
        for key in ("combined", "per_class"):
            if key in entry and not isinstance(entry[key], dict):
                raise EvaluationError(f"{which} metrics: val_sets.{vs}.{key} must be an object")
        for cls, values in entry.get("per_class", {}).items():
            if not isinstance(values, dict):
                raise EvaluationError(f"{which} metrics: val_sets.{vs}.per_class.{cls} must be an object of metrics")
    return metrics["val_sets"]


def compare(previous: dict | None, current: dict, *, tolerance: float) -> Regression:
    """Compare two metrics.json dicts (``{"val_sets": {set: {"combined", "per_class"}}}``).

    Args:
        previous: the parent stage's metrics.json, or None for the first stage (baseline table).
        current: this stage's metrics.json.
        tolerance: HOTA points a class may drop before it is FORGETTING (>= 0).

    Returns:
        :class:`Regression` with rows for every val set of ``current`` (and of ``previous``), every class
        and ``combined``, and the metrics :data:`GATE_METRICS`.

    Raises:
        ConfigError: negative tolerance.
        EvaluationError: ``previous`` / ``current`` not in the metrics.json shape (the message names which one
            and the key).
    """
    if tolerance < 0:
        raise ConfigError(f"regression.tolerance must be >= 0, got {tolerance}")
    after_sets = _val_sets(current, "current")
    before_sets = _val_sets(previous, "previous") if previous is not None else {}
    reg = Regression(rows=[], tolerance=tolerance, baseline=previous is None,
                     missing=sorted(set(before_sets) - set(after_sets)))
    for vs in list(after_sets) + [v for v in before_sets if v not in after_sets]:
        before, after = _entries(before_sets.get(vs, {})), _entries(after_sets.get(vs, {}))
        classes = list(after) + [c for c in before if c not in after]
        for cls in classes:
            for metric in GATE_METRICS:
                reg.rows.append(Row(vs, cls, metric, _value(before.get(cls), metric), _value(after.get(cls), metric)))
        per_class = [c for c in classes if c != "combined"] or ["combined"]
        for cls in per_class:
            row = Row(vs, cls, FORGETTING_METRIC, _value(before.get(cls), FORGETTING_METRIC),
                      _value(after.get(cls), FORGETTING_METRIC))
            if is_forgetting(row.delta, tolerance):
                reg.forgetting.append((vs, cls, row.delta))
    return reg
