"""Confidence intervals of before/after deltas: a paired bootstrap over the locked val sequences, combined with
the seed-to-seed spread when a stage was trained with several seeds.

Paired bootstrap (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 6 and 13; Koehn, "Statistical
Significance Tests for Machine Translation Evaluation", EMNLP 2004, for the paired form in evaluation): draw the
val set's S sequences S times with replacement, B times; for each resample recompute the metric of the parent
stage and of this stage from the resampled sequences' summed TrackEval statistics (HOTA from summed counts, not
an average of per-sequence HOTA: :mod:`train.evaluate.stats`), and take their difference on the same resample.
The pairing is valid because a build's locked val sets are identical from stage to stage (the build manifest's
val digests); sequences are matched by name, and a val set whose sequences differ between the two runs gets no
interval. The interval is the percentile interval of the B differences; the draws come from
``numpy.random.default_rng(seed)``, so the same inputs and seed give the same interval.

Several seeds per stage (``python -m train -m stage=N seed=0,1,2``): the point estimate is the difference of the
means over seeds; the bootstrap resamples the mean over seeds of each side on shared resamples, and its variance is
added to the seed-to-seed variance of each mean (s^2 / n, the sample variance over that side's seeds), giving a
normal interval delta +- z * sqrt(var_bootstrap + s_before^2 / n_before + s_after^2 / n_after) (law of total
variance: sequence sampling and training seed are independent sources of noise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from train.errors import ConfigError
from train.evaluate.stats import FIELDS, metrics_from_sums, resample_sums, stack


@dataclass(frozen=True)
class BootstrapConfig:
    """``regression.bootstrap`` of the config: resamples B, the seed of the draws, the confidence level."""

    resamples: int
    seed: int
    confidence: float

    def __post_init__(self) -> None:
        if self.resamples < 1 or not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"regression.bootstrap: resamples must be >= 1 and 0 < confidence < 1, got "
                              f"resamples={self.resamples}, confidence={self.confidence}")

    @classmethod
    def from_config(cls, cfg: Mapping) -> BootstrapConfig:
        """From the ``regression.bootstrap`` mapping (keys resamples, seed, confidence)."""
        return cls(int(cfg["resamples"]), int(cfg["seed"]), float(cfg["confidence"]))


@dataclass(frozen=True)
class Interval:
    """A delta's interval (metric points, ``after - before``) and how it was made (``bootstrap`` or
    ``bootstrap+seeds``); ``n_before`` / ``n_after`` runs per side, ``sequences`` resampled."""

    low: float
    high: float
    method: str
    sequences: int
    n_before: int = 1
    n_after: int = 1


def class_stats(entry: Mapping, cls: str) -> tuple[list[str], dict[str, np.ndarray]] | None:
    """(sequence names sorted, stacked statistics) of one class of a metrics.json val-set entry; ``combined`` is
    the sum over its classes (detection-averaged). None when the entry has no ``sequence_stats`` (a metrics.json
    written before intervals existed) or no such class."""
    per_class = entry.get("sequence_stats")
    if not isinstance(per_class, Mapping) or not per_class:
        return None
    chosen = list(per_class) if cls == "combined" else [cls] if cls in per_class else []
    if not chosen:
        return None
    names = sorted(per_class[chosen[0]])
    if any(sorted(per_class[c]) != names for c in chosen):
        return None
    total = stack(per_class[chosen[0]], names)
    for c in chosen[1:]:
        total = {f: total[f] + stack(per_class[c], names)[f] for f in FIELDS}
    return names, total


def _resampled(stats: Sequence[dict[str, np.ndarray]], counts: np.ndarray, metric: str) -> np.ndarray:
    """(B,) mean over runs of ``metric`` recomputed on each resample."""
    return np.mean([metrics_from_sums(resample_sums(s, counts))[metric] for s in stats], axis=0)


def paired_interval(before: Sequence[Mapping], after: Sequence[Mapping], *, cls: str, metric: str,
                    point_before: Sequence[float], point_after: Sequence[float],
                    config: BootstrapConfig) -> Interval | None:
    """The interval of ``mean(after) - mean(before)`` for one val set, class and metric (see the module docstring).

    Args:
        before, after: the metrics.json val-set entries of each side's runs (one per seed).
        cls: a class name or ``combined``. metric: a key of :data:`train.evaluate.stats.METRICS`.
        point_before, point_after: each run's reported value (metrics.json), for the seed-to-seed spread.
        config: resamples, seed and confidence.

    Returns:
        the interval, or None when a run lacks sequence statistics or the two sides' sequences differ.
    """
    sides = [[class_stats(e, cls) for e in runs] for runs in (before, after)]
    if any(s is None for side in sides for s in side):
        return None
    names = {tuple(s[0]) for side in sides for s in side}
    if len(names) != 1:
        return None
    n_seq = len(next(iter(names)))
    rng = np.random.default_rng(config.seed)
    counts = rng.multinomial(n_seq, np.full(n_seq, 1.0 / n_seq), size=config.resamples).astype(np.float64)
    deltas = _resampled([s[1] for s in sides[1]], counts, metric) - _resampled([s[1] for s in sides[0]], counts, metric)
    alpha = 1.0 - config.confidence
    if len(before) == 1 and len(after) == 1:
        low, high = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
        return Interval(float(low), float(high), "bootstrap", n_seq)
    seed_var = sum(np.var(p, ddof=1) / len(p) for p in (point_before, point_after) if len(p) > 1)
    half = float(norm.ppf(1 - alpha / 2)) * float(np.sqrt(np.var(deltas, ddof=1) + seed_var))
    delta = float(np.mean(point_after) - np.mean(point_before))
    return Interval(delta - half, delta + half, "bootstrap+seeds", n_seq, len(before), len(after))


def interval_width(entry: Mapping, cls: str, metric: str, config: BootstrapConfig) -> float | None:
    """Width (metric points) of the bootstrap interval of one run's ``metric`` itself (not a delta): how much
    the figure moves with the choice of val sequences alone. None without sequence statistics."""
    found = class_stats(entry, cls)
    if found is None:
        return None
    n_seq = len(found[0])
    rng = np.random.default_rng(config.seed)
    counts = rng.multinomial(n_seq, np.full(n_seq, 1.0 / n_seq), size=config.resamples).astype(np.float64)
    values = metrics_from_sums(resample_sums(found[1], counts))[metric]
    alpha = 1.0 - config.confidence
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(high - low)
