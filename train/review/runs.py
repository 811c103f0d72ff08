"""One reader of stage run directories for every review tool (compare, dashboard, the demo table).

A run directory (docs/CONTRACTS.md "Run directory") holds ``model_info.json``, ``training_history.json``,
``metrics.json``, ``stopping_reason.txt`` and Hydra's ``.hydra/{config,hydra,overrides}.yaml``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from builder.errors import FormatError
from builder.formats.files import read_json
from train.config import default_tolerance, flatten
from train.errors import ReviewError

#: Files whose presence marks a directory as one run (a Hydra run dir of train/).
RUN_MARKERS = ("model_info.json", "training_history.json", ".hydra/config.yaml")


def is_run_dir(path: Path) -> bool:
    """True when ``path`` holds any of ``RUN_MARKERS`` (a run directory of train/)."""
    return any((path / marker).is_file() for marker in RUN_MARKERS)


def _child_sort_key(path: Path) -> tuple[int, int, str]:
    # Hydra numbers multirun jobs 0, 1, ..., 10: sort numerically, then by name.
    return (0, int(path.name), "") if path.name.isdigit() else (1, 0, path.name)


def discover_runs(paths: Iterable[Path | str]) -> list[Path]:
    """Expand run dirs, Hydra multirun dirs and stage dirs into a list of run directories.

    A path that is itself a run dir (see ``is_run_dir``) is kept; otherwise its immediate
    subdirectories that are run dirs are taken (a multirun dir's ``0/``, ``1/``, ... or a
    ``runs/stage<N>/`` dir's timestamps; the ``latest`` symlink is skipped so no run counts twice).

    Raises:
        ReviewError: a path does not exist, or holds no run directory.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise ReviewError(f"{path}: not a directory (expected a run dir or a multirun dir)")
        if is_run_dir(path):
            found.append(path)
            continue
        children = [c for c in sorted(path.iterdir(), key=_child_sort_key)
                    if c.is_dir() and not c.is_symlink() and is_run_dir(c)]
        if not children:
            raise ReviewError(f"{path}: no run directory found (expected one of {', '.join(RUN_MARKERS)} "
                               "here or in its numbered subdirectories)")
        found.extend(children)
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return unique


def _read_json(path: Path, notes: list[str] | None) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when absent. A malformed file is a note (``notes`` given) or an error.

    Raises:
        ReviewError: ``notes`` is None and the file is not a JSON object (names ``file:line:col``).
    """
    if not path.is_file():
        return None
    try:
        return read_json(path, what=f"the run record {path.name}")
    except (OSError, FormatError) as err:
        if notes is None:
            raise ReviewError(str(err)) from None
        notes.append(f"{path.name}: unreadable ({err})")
        return None





#: Suffix of the flat key holding a Hydra config group's chosen option (``"model (group)": "tiny"``).
GROUP_SUFFIX = " (group)"


def _group_choices(path: Path) -> dict[str, Any]:
    """``hydra.runtime.choices`` of ``.hydra/hydra.yaml`` as ``{"<group> (group)": option}``, without
    Hydra's own groups (``hydra``, ``hydra/...``)."""
    if not path.is_file():
        return {}
    choices = OmegaConf.select(OmegaConf.load(path), "hydra.runtime.choices", default=None)
    if choices is None:
        return {}
    plain = OmegaConf.to_container(choices, resolve=False)
    return {f"{group}{GROUP_SUFFIX}": option for group, option in plain.items()
            if group != "hydra" and not group.startswith("hydra/")}


def _read_hydra(run: Path, notes: list[str]) -> tuple[dict[str, Any] | None, list[str]]:
    """Flat ``.hydra/config.yaml`` plus the config group choices, and ``.hydra/overrides.yaml``."""
    config, overrides = None, []
    hydra = run / ".hydra"
    try:
        if (hydra / "config.yaml").is_file():
            # resolve=False: interpolations such as ${hydra:runtime.output_dir} need a live Hydra app.
            config = flatten(OmegaConf.to_container(OmegaConf.load(hydra / "config.yaml"), resolve=False))
            config.update(_group_choices(hydra / "hydra.yaml"))
        if (hydra / "overrides.yaml").is_file():
            overrides = [str(o) for o in (OmegaConf.to_container(OmegaConf.load(hydra / "overrides.yaml")) or [])]
    except Exception as err:  # omegaconf raises several yaml/parse error types
        notes.append(f".hydra: unreadable ({err})")
    return config, overrides


def finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def stopping_reason(run: Path) -> str:
    path = run / "stopping_reason.txt"
    if not path.is_file():
        return "unknown (no stopping_reason.txt)"
    lines = path.read_text(errors="replace").splitlines()
    first = lines[0].strip() if lines else ""
    return first.removeprefix("reason:").strip() or "unknown (empty stopping_reason.txt)"


def wall_time(info: dict[str, Any] | None, history: dict[str, Any] | None) -> float | None:
    value = finite((info or {}).get("wall_time_s"))
    if value is not None:
        return value
    times = [finite(r.get("epoch_time_s")) for r in (history or {}).get("epochs", []) if isinstance(r, dict)]
    times = [t for t in times if t is not None]
    return sum(times) if times else None



@dataclass
class RunRecords:
    """The records of one stage run directory (docs/CONTRACTS.md "Run directory"), each None when absent.

    Attributes:
        path: the run directory.
        info: model_info.json. history: training_history.json. metrics: metrics.json.
        regression: regression.json (the gate against the parent stage: rows with delta, interval, verdict).
        config: ``.hydra/config.yaml`` flattened (``{"optim.lr": ...}``) plus the config group choices
            (``{"model (group)": "tiny"}``). overrides: ``.hydra/overrides.yaml``.
        stopping_reason: first line of stopping_reason.txt without ``reason:``.
        notes: problems met while reading (only when read leniently).
    """

    path: Path
    info: dict[str, Any] | None = None
    history: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    regression: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    overrides: list[str] = field(default_factory=list)
    stopping_reason: str = "unknown"
    notes: list[str] = field(default_factory=list)

    @property
    def stage(self) -> int | None:
        """``model_info.json`` ``stage``, else ``stage.index`` of the config, else None."""
        for value in ((self.info or {}).get("stage"), (self.config or {}).get("stage.index")):
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None

    @property
    def tolerance(self) -> float:
        """The run's ``regression.tolerance`` (HOTA points): its config, its model_info hyperparameters, else
        conf/train.yaml's default."""
        for source in (self.config or {}, (self.info or {}).get("hyperparameters") or {}):
            value = finite(source.get("regression.tolerance"))
            if value is not None:
                return value
        return default_tolerance()


def read_run(run_dir: Path | str, *, lenient: bool = True) -> RunRecords:
    """Read a run directory's records (the one reader every review tool uses).

    Args:
        lenient: a malformed file becomes a note and None (so that a crashed run still ranks); False raises.

    Raises:
        ReviewError: ``run_dir`` is not a directory; with ``lenient=False`` also a malformed record.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise ReviewError(f"{run}: not a directory (expected a stage run dir holding training_history.json)")
    notes: list[str] = []
    sink = notes if lenient else None
    config, overrides = _read_hydra(run, notes)
    return RunRecords(path=run, info=_read_json(run / "model_info.json", sink),
                      history=_read_json(run / "training_history.json", sink),
                      metrics=_read_json(run / "metrics.json", sink),
                      regression=_read_json(run / "regression.json", sink), config=config, overrides=overrides,
                      stopping_reason=stopping_reason(run), notes=notes)


#: Default ranking metric: the monitored val set's HOTA (0-100 scale, TrackEval's HOTA definition).
DEFAULT_METRIC = "val/HOTA"


#: Metric names (last path component) for which a smaller value is better; everything else is maximised.
LOWER_IS_BETTER = frozenset({"loss", "IDSW", "FP", "FN", "Frag", "ML"})


def lower_is_better(metric: str) -> bool:
    """True for metrics to minimise (``val/loss``, ``.../IDSW``, ``FP``, ``FN``, ``Frag``, ``ML``)."""
    return metric.rsplit("/", 1)[-1] in LOWER_IS_BETTER


def _from_history(history: dict[str, Any] | None, metric: str) -> tuple[float | None, int | None]:
    """Best value of ``metric`` over the epochs' ``val`` dicts, and its epoch."""
    best: tuple[float | None, int | None] = (None, None)
    sign = -1.0 if lower_is_better(metric) else 1.0
    for row in (history or {}).get("epochs", []) or []:
        value = finite((row.get("val") or {}).get(metric)) if isinstance(row, dict) else None
        if value is not None and (best[0] is None or sign * value > sign * best[0]):
            best = (value, row.get("epoch"))
    return best


def _from_metrics(metrics: dict[str, Any] | None, metric: str) -> float | None:
    """``<set>/<name>`` (optionally prefixed ``final/``) from metrics.json ``val_sets[set].combined``."""
    key = metric.removeprefix("final/")
    if metrics is None or key.count("/") != 1:
        return None
    val_set, name = key.split("/")
    return finite(((metrics.get("val_sets") or {}).get(val_set) or {}).get("combined", {}).get(name))


def resolve_metric(info: dict[str, Any] | None, history: dict[str, Any] | None,
                   metrics: dict[str, Any] | None, metric: str | None
                   ) -> tuple[str, float | None, str, int | None]:
    """Find a run's value of ``metric``.

    ``metric=None`` means the run's monitored metric: ``model_info.json`` ``best`` when present, else
    the maximum of ``val/HOTA`` over ``training_history.json``. A named metric is looked up in
    ``model_info.best`` (when it names the same metric), then the history's ``val`` dicts (best epoch),
    then ``metrics.json`` as ``<val set>/<metric>`` (final evaluation of the best checkpoint).

    Returns:
        (metric key, value or None, where it came from, best epoch or None).
    """
    best = (info or {}).get("best") or {}
    if metric is None or best.get("metric") == metric:
        value = finite(best.get("value"))
        if value is not None:
            return str(best.get("metric", DEFAULT_METRIC)), value, "model_info.json best", best.get("epoch")
        metric = metric or DEFAULT_METRIC
    value, epoch = _from_history(history, metric)
    if value is not None:
        source = "training_history.json " + ("min" if lower_is_better(metric) else "max")
        return metric, value, source, epoch
    value = _from_metrics(metrics, metric)
    if value is not None:
        return metric, value, "metrics.json combined", best.get("epoch")
    return metric, None, "", None
