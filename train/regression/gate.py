"""The per-stage regression gate: before / after / delta, its confidence interval and a verdict, per val set and
class.

``compare(previous, current, tolerance=..., bootstrap=...)`` takes the parent stage's and this stage's
``metrics.json`` dicts (docs/CONTRACTS.md; a list of them per side when the stage was trained with several seeds)
and lists, for every val set, every class and the ``combined`` entry, the metrics HOTA, DetA, AssA, IDF1 and MOTA
before and after, ``delta = after - before`` with its interval (:mod:`train.regression.bootstrap`) and a verdict:

- ``FORGETTING``: a drop beyond ``tolerance`` points whose interval lies wholly below zero;
- ``GAINED``: the symmetric case, a gain beyond ``tolerance`` whose interval lies wholly above zero;
- ``within noise``: anything else (the interval crosses zero, or the change is within the tolerance).

Without sequence statistics (a metrics.json written before intervals existed) there is no interval and the
verdict follows the tolerance alone. The gate fails a stage (``regression.fail=true``) only on a HOTA FORGETTING
of a class of a val set (``combined`` for a val set scored without per-class entries). The tolerance is the
config's ``regression.tolerance`` (conf/), the one place it is set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from train.errors import ConfigError, EvaluationError
from train.regression.bootstrap import BootstrapConfig, Interval, paired_interval

#: Metrics compared, in table order (all on the 0-100 scale of metrics.json).
GATE_METRICS = ("HOTA", "DetA", "AssA", "IDF1", "MOTA")
#: The metric whose FORGETTING fails a stage.
FORGETTING_METRIC = "HOTA"
FORGETTING, GAINED, WITHIN_NOISE = "FORGETTING", "GAINED", "within noise"
#: Float slack when comparing a change with the tolerance: 16.1 -> 15.1 is a 1.0-point drop (not beyond a
#: tolerance of 1.0) although 15.1 - 16.1 = -1.0000000000000018 in binary floating point.
_FLOAT_SLACK = 1e-9


def verdict(delta: float | None, interval: Interval | None, tolerance: float) -> str:
    """The verdict of a change (see the module docstring); ``""`` when either side is missing."""
    if delta is None:
        return ""
    drop, gain = delta < -tolerance - _FLOAT_SLACK, delta > tolerance + _FLOAT_SLACK
    if drop and (interval is None or interval.high < 0):
        return FORGETTING
    if gain and (interval is None or interval.low > 0):
        return GAINED
    return WITHIN_NOISE


@dataclass(frozen=True)
class Row:
    """One comparison: ``delta = after - before`` (None when either side is missing), its interval and verdict.

    ``before`` / ``after`` are means over the side's runs (one run per seed)."""

    val_set: str
    cls: str
    metric: str
    before: float | None
    after: float | None
    interval: Interval | None = None
    verdict: str = ""

    @property
    def delta(self) -> float | None:
        """``after - before`` in metric points, None when either side is missing."""
        return None if self.before is None or self.after is None else self.after - self.before

    def to_dict(self) -> dict:
        """The row of regression.json."""
        iv = self.interval
        return {"val_set": self.val_set, "class": self.cls, "metric": self.metric, "before": self.before,
                "after": self.after, "delta": self.delta, "ci_low": iv.low if iv else None,
                "ci_high": iv.high if iv else None, "ci_method": iv.method if iv else None, "verdict": self.verdict}


@dataclass
class Regression:
    """Result of :func:`compare`.

    Attributes:
        rows: every (val set, class or ``combined``, metric) comparison.
        tolerance: HOTA points (metric points for the other rows) a change must exceed to be more than noise.
        bootstrap: the interval settings, None when intervals were not computed.
        baseline: True when there was no previous stage (every ``before`` is None).
        missing: val sets the previous stage was evaluated on but this one was not.
        runs_before, runs_after: runs (seeds) per side.
    """

    rows: list[Row]
    tolerance: float
    bootstrap: BootstrapConfig | None = None
    baseline: bool = False
    missing: list[str] = field(default_factory=list)
    runs_before: int = 0
    runs_after: int = 1

    @property
    def gated(self) -> list[Row]:
        """The rows the gate decides on: HOTA of each class of each val set (``combined`` when a val set has no
        per-class entry)."""
        out = []
        for vs in dict.fromkeys(r.val_set for r in self.rows):
            rows = [r for r in self.rows if r.val_set == vs and r.metric == FORGETTING_METRIC]
            out += [r for r in rows if r.cls != "combined"] or rows
        return out

    @property
    def forgetting(self) -> list[Row]:
        """Gated rows with verdict FORGETTING."""
        return [r for r in self.gated if r.verdict == FORGETTING]

    @property
    def passed(self) -> bool:
        """No FORGETTING."""
        return not self.forgetting

    def to_dict(self) -> dict:
        """regression.json: settings, baseline, missing val sets, forgetting, and every row (``gated``: whether the
        gate decides on it, see :attr:`gated`)."""
        bs = self.bootstrap
        return {"tolerance": self.tolerance, "confidence": bs.confidence if bs else None,
                "resamples": bs.resamples if bs else None, "seed": bs.seed if bs else None,
                "runs_before": self.runs_before, "runs_after": self.runs_after, "baseline": self.baseline,
                "missing": self.missing, "passed": self.passed,
                "forgetting": [r.to_dict() for r in self.forgetting],
                "rows": [dict(r.to_dict(), gated=any(r is g for g in self.gated)) for r in self.rows]}


def _entries(val_set_entry: Mapping) -> dict[str, Mapping]:
    """{class name or 'combined': metrics} of one val-set entry (per-class entries first)."""
    out = dict(val_set_entry.get("per_class", {}))
    if "combined" in val_set_entry:
        out["combined"] = val_set_entry["combined"]
    return out


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


def _values(entries: Sequence[Mapping], cls: str, metric: str) -> list[float] | None:
    """``metric`` of class ``cls`` in every run's val-set entry, None when any run lacks it."""
    out = []
    for e in entries:
        value = _entries(e).get(cls, {}).get(metric)
        if value is None:
            return None
        out.append(float(value))
    return out


def _row(vs: str, cls: str, metric: str, before: list[dict], after: list[dict], tolerance: float,
         bootstrap: BootstrapConfig | None) -> Row:
    b, a = _values(before, cls, metric) if before else None, _values(after, cls, metric) if after else None
    mean_b, mean_a = (float(np.mean(v)) if v else None for v in (b, a))
    interval = None
    if b and a and bootstrap is not None:
        interval = paired_interval(before, after, cls=cls, metric=metric, point_before=b, point_after=a,
                                   config=bootstrap)
    delta = None if mean_b is None or mean_a is None else mean_a - mean_b
    return Row(vs, cls, metric, mean_b, mean_a, interval, verdict(delta, interval, tolerance))


def _as_runs(metrics: Mapping | Sequence[Mapping] | None, which: str) -> list[dict[str, dict]]:
    if metrics is None:
        return []
    runs = [metrics] if isinstance(metrics, Mapping) else list(metrics)
    return [_val_sets(m, f"{which}" if len(runs) == 1 else f"{which} (run {i + 1})") for i, m in enumerate(runs)]


def compare(previous: Mapping | Sequence[Mapping] | None, current: Mapping | Sequence[Mapping], *,
            tolerance: float, bootstrap: BootstrapConfig | None = None) -> Regression:
    """Compare the parent stage's metrics.json with this stage's (each a dict, or a list of them: one per seed).

    Args:
        previous: the parent stage's metrics.json (or its seeds' list), None for the first stage (baseline).
        current: this stage's metrics.json (or its seeds' list).
        tolerance: points a change must exceed to be FORGETTING / GAINED (>= 0).
        bootstrap: interval settings; None computes no interval (the verdict then follows the tolerance alone).

    Returns:
        :class:`Regression` with rows for every val set of ``current`` (and of ``previous``), every class and
        ``combined``, and the metrics :data:`GATE_METRICS`.

    Raises:
        ConfigError: negative tolerance.
        EvaluationError: a metrics dict not in the metrics.json shape (names which one and the key).
    """
    if tolerance < 0:
        raise ConfigError(f"regression.tolerance must be >= 0, got {tolerance}")
    after_runs, before_runs = _as_runs(current, "current"), _as_runs(previous, "previous")
    if not after_runs:
        raise EvaluationError("current metrics: no run to compare")
    after_sets = {vs for run in after_runs for vs in run}
    before_sets = {vs for run in before_runs for vs in run}
    reg = Regression(rows=[], tolerance=tolerance, bootstrap=bootstrap, baseline=not before_runs,
                     missing=sorted(before_sets - after_sets), runs_before=len(before_runs),
                     runs_after=len(after_runs))
    order = list(dict.fromkeys([vs for run in after_runs for vs in run] + sorted(before_sets - after_sets)))
    for vs in order:
        before = [run[vs] for run in before_runs if vs in run]
        after = [run[vs] for run in after_runs if vs in run]
        classes = list(dict.fromkeys([c for e in after + before for c in _entries(e)]))
        classes = [c for c in classes if c != "combined"] + (["combined"] if "combined" in classes else [])
        for cls in classes:
            for metric in GATE_METRICS:
                reg.rows.append(_row(vs, cls, metric, before if len(before) == len(before_runs) else [],
                                     after if len(after) == len(after_runs) else [], tolerance, bootstrap))
    return reg
