"""Scoring folders of MOTChallenge result files: against a MOTChallenge-layout ground-truth folder
(:func:`evaluate_mot`) and against every val set of a build split (:func:`evaluate_build`).

Missing result files: an error naming every missing file, unless ``allow_missing=True`` (CLI
``--allow-missing``), which scores a missing file as an empty tracker output and logs a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from builder.formats.build_layout import build_classes, split_val_sets
from builder.formats.motchallenge import (
    NO_CLASS,
    MotTable,
    list_sequences,
    read_mot_file,
    read_seqinfo,
    read_seqmap,
)
from train.errors import EvaluationError
from train.evaluate.scoring import (
    BUILD_CROWD_RULES,
    BUILD_MATCH_RULES,
    SOURCE_IGNORE_RULE,
    EvalRules,
    SequenceData,
    evaluate_with_classes,
    truncate,
)

log = logging.getLogger(__name__)


def missing_results(results_dir: Path, names: Iterable[str], *, allow_missing: bool) -> list[str]:
    """Names whose ``<results_dir>/<name>.txt`` is missing; raises EvaluationError naming them all unless allowed."""
    missing = [n for n in names if not (Path(results_dir) / f"{n}.txt").is_file()]
    if missing and not allow_missing:
        raise EvaluationError(f"{results_dir}: no result file for {len(missing)} sequence(s): "
                              + ", ".join(f"{n}.txt" for n in missing)
                              + " (pass allow_missing / --allow-missing to score them as empty output)")
    return missing


def load_results(results_dir: Path, names: Iterable[str], *, allow_missing: bool) -> dict[str, MotTable]:
    """Read ``<results_dir>/<name>.txt`` for every sequence name.

    Raises:
        EvaluationError: result files are missing (all of them named) and ``allow_missing`` is False.
        FormatError: a malformed row (file:line).
    """
    results_dir = Path(results_dir)
    names = list(names)
    if not results_dir.is_dir():
        raise EvaluationError(f"{results_dir}: results folder not found (expected <seq>.txt files)")
    missing = missing_results(results_dir, names, allow_missing=allow_missing)
    for n in missing:
        log.warning("%s: no result file, scored as empty tracker output", results_dir / f"{n}.txt")
    return {n: (MotTable.empty(results_dir / f"{n}.txt") if n in missing else read_mot_file(results_dir / f"{n}.txt"))
            for n in names}


def evaluate_mot(gt_dir: Path | str, results_dir: Path | str, *, classes: list[str], seqmap: Path | str | None = None,
                 seqs: list[str] | None = None, rules: EvalRules = BUILD_MATCH_RULES,
                 eval_classes: list[str] | None = None, allow_missing: bool = False,
                 max_frames: int | None = None, warn_extra: bool = True) -> dict:
    """Evaluate one val set: MOTChallenge-layout gt folders against a folder of result files.

    Args:
        gt_dir: folder of sequences ``<seq>/{gt/gt.txt, seqinfo.ini}`` (a build split or a raw split).
        results_dir: folder of result files ``<seq>.txt`` (``frame,id,x,y,w,h,score,class,...``).
        classes: the class list; class id = 1-based position (``["person", "vehicle"]``).
        seqmap: TrackEval seqmap naming the sequences; default every sequence folder in ``gt_dir``.
        seqs: explicit sequence names (overrides ``seqmap``).
        rules: preprocessing rules (default: a build's ignore regions with the ``match`` rule).
        eval_classes: names of the classes to score; default the classes with gt boxes.
        allow_missing: score a missing result file as empty output (warning) instead of raising.
        max_frames: score only frames 1..max_frames of each sequence (quick evaluations during training;
            ground truth and results beyond are dropped).
        warn_extra: warn about result files of sequences not in ``names`` (see :func:`warn_unscored_files`);
            rows with unknown class ids are always warned about (:func:`warn_unscored_rows`).

    Returns:
        ``{"combined", "per_class", "per_sequence"}`` as :func:`evaluate_sequences` (the metrics.json val-set
        entry without ``detection``).

    Raises:
        FileNotFoundError / FormatError / EvaluationError naming the offending file.
    """
    gt_dir = Path(gt_dir)
    names = seqs or (read_seqmap(seqmap) if seqmap else list_sequences(gt_dir))
    if not names:
        raise EvaluationError(f"{gt_dir}: no sequence to evaluate (no seqinfo.ini found / empty seqmap)")
    results = load_results(Path(results_dir), names, allow_missing=allow_missing)
    if warn_extra:
        warn_unscored_files(Path(results_dir), names)
    warn_unscored_rows(results, len(classes))
    sequences = [SequenceData(n, read_seqinfo(gt_dir / n).length, read_mot_file(gt_dir / n / "gt" / "gt.txt"),
                              results[n]) for n in names]
    if max_frames:
        sequences = [truncate(s, max_frames) for s in sequences]
    return evaluate_with_classes(sequences, classes, rules, eval_classes)


def warn_unscored_files(results_dir: Path, names: Iterable[str]) -> list[str]:
    """``<seq>.txt`` files of ``results_dir`` whose sequence is not among ``names`` (not in the ground truth, so
    never scored), logged as one warning with their count; returns their names."""
    wanted = set(names)
    extra = sorted(p.stem for p in Path(results_dir).glob("*.txt") if p.stem not in wanted)
    if extra:
        log.warning("%s: %d result file(s) of sequences not in the ground truth, not scored: %s", results_dir,
                    len(extra), ", ".join(f"{n}.txt" for n in extra[:5]) + (" ..." if len(extra) > 5 else ""))
    return extra


def warn_unscored_rows(results: dict[str, MotTable], num_classes: int) -> int:
    """Result rows whose class id is neither 1..``num_classes`` nor absent (``NO_CLASS``: a file without a class
    column), never scored; one warning per file with its count; returns the total."""
    total = 0
    for table in results.values():
        bad = (table.classes != NO_CLASS) & ((table.classes < 1) | (table.classes > num_classes))
        if bad.any():
            total += int(bad.sum())
            where = f"{table.source}:{int(table.lines[bad.argmax()])}" if table.lines is not None else table.source
            log.warning("%s: %d result row(s) with class ids outside 1..%d, not scored (e.g. %s)", table.source,
                        int(bad.sum()), num_classes, where)
    return total


def rules_for_source(source: str) -> EvalRules:
    """A build val set's rules: its source benchmark's ignore rule (:data:`SOURCE_IGNORE_RULE`), class 0 ignored."""
    return BUILD_CROWD_RULES if SOURCE_IGNORE_RULE.get(source, "match") == "crowd" else BUILD_MATCH_RULES


def results_dir_for(results_dir: Path | str, val_set: str) -> Path:
    """Where a val set's result files are: ``<results>/<val set>/tracker/`` (a run's ``eval/`` layout),
    ``<results>/<val set>/``, or ``<results>/`` itself (one flat folder), the first that exists."""
    results_dir = Path(results_dir)
    for cand in (results_dir / val_set / "tracker", results_dir / val_set):
        if cand.is_dir():
            return cand
    return results_dir


def evaluate_build(build_dir: Path | str, split: str, results_dir: Path | str, *, val_sets: list[str] | None = None,
                   allow_missing: bool = False) -> dict:
    """Evaluate result files against every val set (source) of a build split.

    Args:
        build_dir: the build folder (``build_manifest.json``, ``<split>/``, ``seqmaps/``).
        split: ``val`` or ``test`` (or ``train``).
        results_dir: a flat folder of ``<seq>.txt``, or a run's ``eval/`` folder with
            ``<val set>/tracker/<seq>.txt`` (see :func:`results_dir_for`).
        val_sets: only these val sets (default all).
        allow_missing: see :func:`evaluate_mot`; without it every missing file of every val set is named
            in one error.

    Returns:
        ``{"val_sets": {set: {"combined", "per_class", "per_sequence"}}}``.

    Raises:
        EvaluationError: the results folder does not exist, result files are missing (all named), a
            requested val set is unknown, or a result file is inconsistent (duplicate ids, frames
            outside the sequence).
        FormatError: a malformed row (file:line). FileNotFoundError: the build has no manifest.
    """
    classes = build_classes(build_dir)
    groups = split_val_sets(build_dir, split, val_sets)
    if not Path(results_dir).is_dir():
        raise EvaluationError(f"{results_dir}: results folder not found (expected <seq>.txt files or "
                              "<val set>/tracker/<seq>.txt)")
    dirs = {vs: results_dir_for(results_dir, vs) for vs in groups}
    missing = [str(dirs[vs] / f"{n}.txt") for vs, names in groups.items() for n in names
               if not (dirs[vs] / f"{n}.txt").is_file()]
    if missing and not allow_missing:
        raise EvaluationError(f"no result file for {len(missing)} sequence(s): {', '.join(missing)} "
                              "(pass allow_missing / --allow-missing to score them as empty output)")
    for folder in set(dirs.values()):  # one flat folder may hold several val sets' files
        warn_unscored_files(folder, [n for vs, names in groups.items() if dirs[vs] == folder for n in names])
    out = {}
    for vs, names in groups.items():
        out[vs] = evaluate_mot(Path(build_dir) / split, dirs[vs], classes=classes, seqs=names,
                               rules=rules_for_source(vs), allow_missing=allow_missing, warn_extra=False)
    return {"val_sets": out}
