"""Raw benchmark splits scored by a named protocol (``python -m train.evaluate --raw <benchmark> --protocol``).

The protocols are registered by the modules imported here (:mod:`train.evaluate.protocol` explains the registry):
``official`` for every benchmark (:mod:`~train.evaluate.motchallenge`, :mod:`~train.evaluate.bdd100k`,
:mod:`~train.evaluate.visdrone`) and ``unified`` (:mod:`~train.evaluate.unified`).
"""

from __future__ import annotations

from pathlib import Path

from train.evaluate import bdd100k, motchallenge, unified, visdrone  # noqa: F401 - register the protocols
from train.evaluate.protocol import ProtocolOptions, get_protocol


def evaluate_raw(benchmark: str, root: Path | str, split: str, results_dir: Path | str, *,
                 protocol: str = "official", classes: list[str] | None = None,
                 seqmap: Path | str | None = None, allow_missing: bool = False,
                 result_classes: list[str] | None = None, box_convention: str | None = None) -> dict:
    """Score the result files in ``results_dir`` against a raw benchmark split with ``protocol``.

    Args:
        benchmark: one of :data:`train.evaluate.protocol.BENCHMARKS` (``mot17``, ``bdd100k``, ...).
        root: the benchmark's raw root (layouts in README "Raw downloads").
        split: the split to score (``val``, ``train``, ...).
        results_dir: the result files: ``<seq>.txt`` MOTChallenge rows (all benchmarks) or, for bdd100k, Scalabel
            JSON (a folder of ``<video>.json`` or one file of every video's frames).
        protocol: ``official`` (the benchmark's own tool) or ``unified`` (the project's classes).
        classes: unified class list (``unified`` only; default person, vehicle).
        seqmap: seqmap naming the sequences to score.
        allow_missing: score missing result files as empty output (warning).
        result_classes: class names of column-8 ids 1..K in result files without a sidecar.
        box_convention: bdd100k official only: ``scalabel`` (default) or ``2020``.

    Returns:
        ``{"val_sets": {benchmark: entry}}`` with the protocol's val-set entry.

    Raises:
        EvaluationError: an unknown benchmark, protocol or option (listing the valid ones); bad result files.
        MissingFileError / FormatError: missing or malformed ground truth (named).
    """
    options = ProtocolOptions(classes=list(classes) if classes else None,
                              result_classes=list(result_classes) if result_classes else None,
                              box_convention=box_convention, allow_missing=allow_missing,
                              seqmap=Path(seqmap) if seqmap else None)
    scorer = get_protocol(benchmark, protocol)(options)
    return {"val_sets": {benchmark: scorer.evaluate(Path(root), split, Path(results_dir))}}
