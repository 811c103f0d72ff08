"""The official MOTChallenge protocol: MOT15, MOT16, MOT17, MOT20 and DanceTrack as TrackEval scores them.

Source of every rule: TrackEval ``trackeval/datasets/mot_challenge_2d_box.py`` (``MotChallenge2DBox``,
``_load_raw_file`` and ``get_preprocessed_seq_data``); DanceTrack's official evaluation runs that class with its
default ``BENCHMARK = MOT17`` (DanceTrack README, "Evaluation"):

- one class, pedestrian (gt class 1); ground truth with conf (column 7) 0 is not scored;
- MOT16/17 and DanceTrack: predictions are matched (Hungarian, IoU >= 0.5) against every gt box of the frame and
  those matched to a distractor (classes 2 person on vehicle, 7 static person, 8 distractor, 12 reflection;
  MOT20 adds 6 non-motorized vehicle) are removed before scoring;
- MOT15: no preprocessing (``BENCHMARK = MOT15``): the gt has no classes (columns 8-10 are world coordinates),
  every gt box with conf != 0 is a pedestrian and no prediction is removed;
- result files: columns 8-10 are not read (world coordinates in the MOTChallenge format); the project's own
  files (a sidecar, :mod:`train.evaluate.result_files`) contribute their ``person`` / ``pedestrian`` rows, other
  classes are left out and counted. TrackEval itself refuses a file whose column 8 exceeds 1 ("Evaluation is only
  valid for pedestrian class"); here such a file is scored with column 8 ignored, as the format defines it.

Sequences: the ``--seqmap`` given, else ``<root>/<split>_seqmap.txt`` (DanceTrack) or
``<root>/seqmaps/<BENCHMARK>-<split>.txt`` (TrackEval's naming), else every sequence folder of ``<root>/<split>``;
frames 1..seqLength of each ``seqinfo.ini``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from builder.formats.files import MissingFileError
from builder.formats.motchallenge import NO_CLASS, list_sequences, read_mot_file, read_seqinfo, read_seqmap
from train.errors import EvaluationError
from train.evaluate.protocol import Protocol, register
from train.evaluate.result_files import load_result_files, map_classes
from train.evaluate.scoring import MOT17_RULES, MOT20_RULES, EvalRules, SequenceData, evaluate_sequences

#: TrackEval's preprocessing per benchmark (MotChallenge2DBox; DanceTrack and MOT16 use MOT17's).
OFFICIAL_RULES = {
    "mot15": EvalRules("none", (), False, class_filter=False),
    "mot16": MOT17_RULES,
    "mot17": MOT17_RULES,
    "mot20": MOT20_RULES,
    "dancetrack": MOT17_RULES,
}
#: Result class names that are MOTChallenge's pedestrian class.
PEDESTRIAN_NAMES = ("pedestrian", "person")
#: The one class the protocol scores (TrackEval's class name and gt class id).
PEDESTRIAN = {"pedestrian": 1}
#: MOTChallenge gt classes are 1..13 (MotChallenge2DBox.class_name_to_class_id).
MOT_CLASSES = 13


def raw_mot_sequences(benchmark: str, root: Path, split: str, seqmap: Path | None) -> tuple[Path, list[str]]:
    """Split folder and sequence names of a raw MOTChallenge-layout download (see the module docstring).

    Raises:
        MissingFileError: no ``<root>/<split>`` folder, or a ``seqmap`` given that does not exist.
    """
    split_dir = root / split
    if not split_dir.is_dir():
        raise MissingFileError(f"{split_dir}: split folder not found (expected <root>/<split>/<seq>/gt/gt.txt)")
    if seqmap is not None:
        return split_dir, read_seqmap(seqmap)
    for cand in (root / f"{split}_seqmap.txt", root / "seqmaps" / f"{benchmark.upper()}-{split}.txt"):
        if cand.is_file():
            return split_dir, read_seqmap(cand)
    return split_dir, list_sequences(split_dir)


def _check_gt_classes(gt, benchmark: str) -> None:
    """TrackEval's check (``get_preprocessed_seq_data``, "Attempting to evaluate using invalid gt classes"): gt
    classes must be MOTChallenge's 1..13; a class column of -1 is MOT15 ground truth, which has none."""
    bad = (gt.classes < 1) | (gt.classes > MOT_CLASSES)
    if bad.any():
        i = int(np.argmax(bad))
        raise EvaluationError(f"{gt.source}:{int(gt.lines[i])}: class {int(gt.classes[i])} is not a MOTChallenge class "
                              f"(1..{MOT_CLASSES}) as {benchmark} ground truth needs; MOT15 ground truth has no class "
                              "column (columns 8-10 are world coordinates): score it with --raw mot15")


def _pedestrian(name: str) -> int | None:
    return 1 if name in PEDESTRIAN_NAMES else None


@register("mot15", "mot16", "mot17", "mot20", "dancetrack", name="official")
class MOTChallengeOfficial(Protocol):
    """TrackEval's ``MotChallenge2DBox`` rules for one MOTChallenge-layout benchmark (module docstring)."""

    @property
    def label(self) -> str:
        bench = "MOT17" if self.benchmark == "dancetrack" else self.benchmark.upper()
        return (f"official {self.benchmark} protocol: TrackEval MotChallenge2DBox (BENCHMARK={bench}), "
                "class pedestrian")

    def evaluate(self, root: Path, split: str, results_dir: Path) -> dict:
        opts = self.options
        split_dir, names = raw_mot_sequences(self.benchmark, Path(root), split, opts.seqmap)
        files = load_result_files(results_dir, names, declared=opts.result_classes, allow_missing=opts.allow_missing,
                                  warnings=opts.warnings)
        has_classes = self.benchmark != "mot15"
        sequences = []
        for name in names:
            gt = read_mot_file(split_dir / name / "gt" / "gt.txt", min_columns=8 if has_classes else 7,
                               class_column=has_classes)
            if has_classes:
                _check_gt_classes(gt, self.benchmark)
            tracker = map_classes(files[name], _pedestrian, opts.warnings, benchmark=self.benchmark)
            tracker.classes = np.where(tracker.classes == NO_CLASS, 1, tracker.classes)  # every row a pedestrian
            sequences.append(SequenceData(name, read_seqinfo(split_dir / name).length, gt, tracker))
        return self.entry(evaluate_sequences(sequences, PEDESTRIAN, OFFICIAL_RULES[self.benchmark]))
