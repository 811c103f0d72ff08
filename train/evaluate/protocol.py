"""Benchmark protocols: how one benchmark is scored, registered by (benchmark, protocol name).

TrackEval's practice (``trackeval/datasets/_base_dataset.py`` vs ``metrics/hota.py``): one dataset class per
benchmark owns reading ground truth and results and the benchmark's preprocessing (which classes count, what is
ignored, the box convention); the metrics never know which benchmark they score. Here a :class:`Protocol`
subclass prepares :class:`train.evaluate.scoring.SequenceData` and :class:`~train.evaluate.scoring.EvalRules`,
and :func:`train.evaluate.scoring.evaluate_sequences` (TrackEval's HOTA / CLEAR / Identity code) scores them.

Protocols per benchmark (README "Numbers you can publish" has the rules and the official tool's file for each):

- ``official``: the benchmark's own tool: MOTChallenge (MOT15/16/17/20) and DanceTrack as TrackEval's
  ``MotChallenge2DBox`` scores them (:mod:`train.evaluate.motchallenge`), BDD100K as Scalabel's
  ``scalabel/eval/mot.py`` (:mod:`train.evaluate.bdd100k`), VisDrone2019-MOT as its toolkit
  (:mod:`train.evaluate.visdrone`);
- ``unified``: the project's unified classes (the class maps of ``conf/classmaps``), as builds are scored
  (:mod:`train.evaluate.unified`).

A protocol's result is a val-set entry ``{"protocol", "protocol_label", "combined", "per_class", "per_sequence",
"warnings"}`` (plus its own extras, e.g. BDD100K's ``class_mean``), metrics.json's per-val-set shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from builder.records import WarningCounter
from train.errors import EvaluationError

#: Raw benchmarks ``python -m train.evaluate --raw`` knows, in the order they are listed.
BENCHMARKS = ("mot15", "mot16", "mot17", "mot20", "dancetrack", "bdd100k", "visdrone")
#: Protocol names.
PROTOCOL_NAMES = ("official", "unified")


@dataclass
class ProtocolOptions:
    """What the command line may set for a protocol.

    Attributes:
        classes: the unified class list (``unified`` only; ids = 1-based position).
        result_classes: class names of column-8 ids 1..K in result files no sidecar covers (``--result-classes``).
        box_convention: BDD100K only: ``scalabel`` (width = x2 - x1 + 1, the default) or ``2020`` (x2 - x1).
        allow_missing: score a missing result file as empty output (warning) instead of raising.
        seqmap: a seqmap naming the sequences to score (default: the benchmark's own, else every sequence).
    """

    classes: list[str] | None = None
    result_classes: list[str] | None = None
    box_convention: str | None = None
    allow_missing: bool = False
    seqmap: Path | None = None
    warnings: WarningCounter = field(default_factory=WarningCounter)


class Protocol:
    """Base class: reads one raw benchmark split and its results, scores them (see the module docstring).

    Subclasses set :attr:`benchmark`, :attr:`name` and :attr:`label`, and implement :meth:`evaluate`.
    """

    benchmark: ClassVar[str] = ""
    name: ClassVar[str] = ""
    #: One line saying what the figures are, printed above every table and stored in the JSON.
    label: ClassVar[str] = ""

    def __init__(self, options: ProtocolOptions) -> None:
        self.options = options
        self.check_options()

    def check_options(self) -> None:
        """Raise EvaluationError for an option this protocol does not take (default: only ``--classes`` is
        refused, the official protocols' classes being the benchmark's own)."""
        if self.options.classes is not None and self.name == "official":
            raise EvaluationError(f"--classes does not apply to the official {self.benchmark} protocol (it scores "
                                  f"the benchmark's own classes); pass --protocol unified to score a class list")
        if self.options.box_convention is not None and self.benchmark != "bdd100k":
            raise EvaluationError(f"--box-convention applies to bdd100k only, not {self.benchmark}")

    def evaluate(self, root: Path, split: str, results_dir: Path) -> dict:
        """Score the result files in ``results_dir`` against ``<root>``'s ``split``; returns a val-set entry."""
        raise NotImplementedError

    def entry(self, scored: dict) -> dict:
        """``scored`` (from :func:`~train.evaluate.scoring.evaluate_sequences`) with the protocol's labels and
        warnings added."""
        return {"protocol": self.name, "protocol_label": self.label, **scored,
                "warnings": self.options.warnings.as_dict()}


#: Registered protocols: benchmark -> protocol name -> class.
PROTOCOLS: dict[str, dict[str, type[Protocol]]] = {}


def register(*benchmarks: str, name: str):
    """Class decorator registering a protocol class for ``benchmarks`` under ``name`` (one subclass per
    benchmark is made, with :attr:`Protocol.benchmark` set)."""

    def wrap(cls: type[Protocol]) -> type[Protocol]:
        for benchmark in benchmarks:
            table = PROTOCOLS.setdefault(benchmark, {})
            if name in table:
                raise ValueError(f"protocol {name!r} of {benchmark!r} is already registered by {table[name]}")
            table[name] = type(f"{cls.__name__}_{benchmark}", (cls,), {"benchmark": benchmark, "name": name})
        return cls

    return wrap


def get_protocol(benchmark: str, name: str) -> type[Protocol]:
    """The protocol class of ``benchmark`` named ``name``.

    Raises:
        EvaluationError: "benchmark 'x' is not registered! Available: ..." or the same for the protocol name.
    """
    if benchmark not in PROTOCOLS:
        raise EvaluationError(f"benchmark {benchmark!r} is not registered! Available: {', '.join(PROTOCOLS)}")
    if name not in PROTOCOLS[benchmark]:
        raise EvaluationError(f"protocol {name!r} of {benchmark} is not registered! Available: "
                              f"{', '.join(PROTOCOLS[benchmark])}")
    return PROTOCOLS[benchmark][name]


#: Metrics averaged over a benchmark's classes (Scalabel's METRIC_TO_AVERAGE IDF1, MOTA, MOTP; plus HOTA).
CLASS_MEAN_METRICS = ("HOTA", "MOTA", "IDF1", "MOTP")


def class_mean(per_class: dict[str, dict]) -> dict[str, float]:
    """``{metric: mean over the classes}`` for :data:`CLASS_MEAN_METRICS` (0-100), a class without ground truth or
    a NaN / infinite value counting 0: Scalabel's ``compute_average`` (scalabel/eval/mot.py: per-class values with
    ``np.nan_to_num(nan=0, posinf=0, neginf=0)``, then their mean; a class without ground truth has MOTA -inf or
    NaN there), and the VisDrone toolkit's per-category NaN -> 0 (evaluateTrackB.m)."""
    out = {}
    for metric in CLASS_MEAN_METRICS:
        v = np.array([m[metric] if m["GT_Dets"] > 0 else 0.0 for m in per_class.values()], np.float64)
        out[metric] = float(np.nan_to_num(v, nan=0.0, posinf=0.0, neginf=0.0).mean())
    return out
