"""Runs that differ only by their seed, compared as one setting: mean over seeds and the seed-to-seed spread.

``python -m train -m stage=N seed=0,1,2`` (or ``seeds=3``) trains one setting several times. ``train.compare``
groups the runs whose hyperparameters agree on everything but ``seed`` and ranks the groups by their mean; two
settings are told apart only when the difference of their means exceeds both the regression tolerance and the
seed noise of that difference, z * sqrt(s_a^2 / n_a + s_b^2 / n_b) (Welch's standard error of a difference of
means; s the sample standard deviation over a group's seeds, z the normal quantile of the confidence level).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

#: The hyperparameter that names a run's seed (conf/train.yaml ``seed``).
SEED_KEY = "seed"


@dataclass
class SeedGroup:
    """Runs of one setting (equal hyperparameters but the seed).

    Attributes:
        name: the setting's differing hyperparameters as ``key=value, ...`` (``all runs`` when none differ).
        runs: the runs (``train.review.compare.RunSummary``), best first; values: their metric values.
    """

    name: str
    runs: list[Any] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        """Runs with a value."""
        return len(self.values)

    @property
    def mean(self) -> float | None:
        """Mean over seeds, None without values."""
        return float(np.mean(self.values)) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation over seeds (ddof = 1), None with fewer than two values."""
        return float(np.std(self.values, ddof=1)) if self.n > 1 else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {"name": self.name, "runs": [r.name for r in self.runs], "n": self.n, "mean": self.mean,
                "std": self.std, "min": min(self.values, default=None), "max": max(self.values, default=None)}


def seed_groups(ranked: Sequence[Any], differing: Sequence[str], *, lower_is_better: bool) -> list[SeedGroup]:
    """Group ranked runs by their differing hyperparameters other than ``seed``; groups sorted best mean first.

    Args:
        ranked: ``RunSummary`` objects (``name``, ``value``, ``hyperparameters``).
        differing: the flat keys whose value differs between the runs.
        lower_is_better: the ranking direction of the metric.
    """
    keys = [k for k in differing if k != SEED_KEY]
    groups: dict[tuple, SeedGroup] = {}
    for run in ranked:
        setting = tuple(str(run.hyperparameters.get(k)) for k in keys)
        name = ", ".join(f"{k}={v}" for k, v in zip(keys, setting, strict=True)) or "all runs"
        group = groups.setdefault(setting, SeedGroup(name))
        group.runs.append(run)
        if run.value is not None:
            group.values.append(float(run.value))
    sign = 1.0 if lower_is_better else -1.0
    return sorted(groups.values(), key=lambda g: (g.mean is None, sign * (g.mean or 0.0)))


def seed_noise(a: SeedGroup, b: SeedGroup, *, confidence: float) -> float:
    """Half-width of the interval of ``mean(a) - mean(b)`` from the seed spread alone (0 when a group has one
    run: its spread is unknown)."""
    var = sum(g.std ** 2 / g.n for g in (a, b) if g.std is not None)
    return float(norm.ppf(0.5 + confidence / 2)) * math.sqrt(var)
