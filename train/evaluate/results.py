"""Scoring folders of result files with the unified protocol: against a MOTChallenge-layout ground-truth folder
(:func:`evaluate_mot`) and against every val set of a build split (:func:`evaluate_build`).

A build's val/test ground truth is the raw annotation's (``gt_format`` in its manifest, issue 9); a build without
it (its boxes clipped to the frame and rounded to 0.01 px by an older builder) is refused with the command that
rebuilds it (:func:`check_build_ground_truth`). Result files are read by the rules of
:mod:`train.evaluate.result_files` (a sidecar names the project's class column; other trackers' files are not
guessed). Missing result files: an error naming every missing file, unless ``allow_missing=True`` (CLI
``--allow-missing``), which scores a missing file as an empty tracker output and logs a warning.
"""

from __future__ import annotations

from pathlib import Path

from builder.formats.build_layout import MANIFEST_NAME, build_classes, read_build_manifest, split_val_sets
from builder.formats.motchallenge import list_sequences, read_mot_file, read_seqinfo, read_seqmap
from builder.records import GT_FORMAT, WarningCounter
from train.errors import EvaluationError
from train.evaluate.result_files import load_result_files
from train.evaluate.scoring import BUILD_MATCH_RULES, EvalRules, SequenceData, evaluate_with_classes, truncate
from train.evaluate.unified import UNIFIED_LABEL, rules_for_source, unified_tracker


def evaluate_mot(gt_dir: Path | str, results_dir: Path | str, *, classes: list[str], seqmap: Path | str | None = None,
                 seqs: list[str] | None = None, rules: EvalRules = BUILD_MATCH_RULES,
                 eval_classes: list[str] | None = None, allow_missing: bool = False,
                 max_frames: int | None = None, result_classes: list[str] | None = None,
                 known: list[str] | None = None) -> dict:
    """Evaluate one val set (unified protocol): MOTChallenge-layout gt folders against a folder of result files.

    Args:
        gt_dir: folder of sequences ``<seq>/{gt/gt.txt, seqinfo.ini}`` (a build split; gt class = unified id).
        results_dir: folder of result files ``<seq>.txt`` (``frame,id,x,y,w,h,score,class,...``), with the
            project's sidecar where they are its own (:mod:`train.evaluate.result_files`).
        classes: the class list; class id = 1-based position (``["person", "vehicle"]``).
        seqmap: TrackEval seqmap naming the sequences; default every sequence folder in ``gt_dir``.
        seqs: explicit sequence names (overrides ``seqmap``).
        rules: preprocessing rules (default: a build's ignore regions with the ``match`` rule).
        eval_classes: names of the classes to score; default the classes with gt boxes or predictions.
        allow_missing: score a missing result file as empty output (warning) instead of raising.
        max_frames: score only frames 1..max_frames of each sequence (quick evaluations during training;
            ground truth and results beyond are dropped).
        result_classes: class names of column-8 ids in result files no sidecar covers (``--result-classes``).
        known: every sequence name results may be given for (a build split's, default the scored ones); other
            ``<seq>.txt`` files in ``results_dir`` are counted as ``results_not_in_ground_truth``.

    Returns:
        ``{"protocol": "unified", "protocol_label", "combined", "per_class", "per_sequence", "warnings"}``: the
        metrics.json val-set entry without ``detection``.

    Raises:
        FileNotFoundError / FormatError / EvaluationError naming the offending file.
    """
    gt_dir = Path(gt_dir)
    names = seqs or (read_seqmap(seqmap) if seqmap else list_sequences(gt_dir))
    if not names:
        raise EvaluationError(f"{gt_dir}: no sequence to evaluate (no seqinfo.ini found / empty seqmap)")
    warnings = WarningCounter()
    files = load_result_files(results_dir, names, declared=result_classes, allow_missing=allow_missing,
                              warnings=warnings, known=known)
    sequences = [SequenceData(n, read_seqinfo(gt_dir / n).length, read_mot_file(gt_dir / n / "gt" / "gt.txt"),
                              unified_tracker(files[n], classes, warnings)) for n in names]
    if max_frames:
        sequences = [truncate(s, max_frames) for s in sequences]
    scored = evaluate_with_classes(sequences, classes, rules, eval_classes)
    return {"protocol": "unified", "protocol_label": UNIFIED_LABEL, **scored, "warnings": warnings.as_dict()}


def check_build_ground_truth(build_dir: Path | str) -> dict:
    """The build manifest, after checking that its gt.txt files hold the raw ground truth (``gt_format``).

    Raises:
        EvaluationError: a build written by an older builder (boxes clipped to the frame and rounded to 0.01 px:
            its figures are not the benchmark's), naming the command that rebuilds it.
        MissingFileError / FormatError: no or a malformed build manifest.
    """
    manifest = read_build_manifest(build_dir)
    if manifest.get("gt_format") != GT_FORMAT:
        recipe = (manifest.get("recipe") or {}).get("path") or "<its recipe>"
        raise EvaluationError(
            f"{Path(build_dir) / MANIFEST_NAME}: written by builder {manifest.get('builder_version', '(unknown)')}, "
            f"whose val/test gt.txt boxes are clipped to the frame and rounded to 0.01 px (gt_format "
            f"{manifest.get('gt_format')!r}, expected {GT_FORMAT!r}): its scores would not be the benchmark's. "
            f"Rebuild it with `python -m builder build {recipe}`")
    return manifest


def results_dir_for(results_dir: Path | str, val_set: str) -> Path:
    """Where a val set's result files are: ``<results>/<val set>/tracker/`` (a run's ``eval/`` layout),
    ``<results>/<val set>/``, or ``<results>/`` itself (one flat folder), the first that exists."""
    results_dir = Path(results_dir)
    for cand in (results_dir / val_set / "tracker", results_dir / val_set):
        if cand.is_dir():
            return cand
    return results_dir


def evaluate_build(build_dir: Path | str, split: str, results_dir: Path | str, *, val_sets: list[str] | None = None,
                   allow_missing: bool = False, result_classes: list[str] | None = None) -> dict:
    """Evaluate result files against every val set (source) of a build split, with the unified protocol.

    Args:
        build_dir: the build folder (``build_manifest.json``, ``<split>/``, ``seqmaps/``).
        split: ``val`` or ``test`` (or ``train``).
        results_dir: a flat folder of ``<seq>.txt``, or a run's ``eval/`` folder with
            ``<val set>/tracker/<seq>.txt`` (see :func:`results_dir_for`).
        val_sets: only these val sets (default all).
        allow_missing: see :func:`evaluate_mot`; without it every missing file of every val set is named
            in one error.
        result_classes: see :func:`evaluate_mot`.

    Returns:
        ``{"val_sets": {set: {"protocol", "protocol_label", "combined", "per_class", "per_sequence", "warnings"}}}``.

    Raises:
        EvaluationError: a build of an older builder (:func:`check_build_ground_truth`), the results folder does
            not exist, result files are missing (all named), a requested val set is unknown, or a result file is
            inconsistent (duplicate ids, frames outside the sequence).
        FormatError: a malformed row (file:line). FileNotFoundError: the build has no manifest.
    """
    check_build_ground_truth(build_dir)
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
    out = {}
    for vs, names in groups.items():
        out[vs] = evaluate_mot(Path(build_dir) / split, dirs[vs], classes=classes, seqs=names,
                               rules=rules_for_source(vs), allow_missing=allow_missing, result_classes=result_classes,
                               known=[n for group in groups.values() for n in group])
    return {"val_sets": out}
