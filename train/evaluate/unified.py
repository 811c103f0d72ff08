"""The ``unified`` protocol: the project's unified classes, as builds are scored, also on a raw benchmark split.

Ground truth is read through the builder's source adapter and class map (``conf/classmaps/<source>.toml``): the
same records a build writes, so scoring a result folder through a build equals scoring it here on the raw split
(tests/test_raw_ground_truth.py). Positives are the unified classes, ignore regions (class 0) follow the source's
rule (:func:`rules_for_source`): ``match`` for the MOTChallenge sources, ``crowd`` for BDD100K and VisDrone.
Classes scored: those with ground truth or predictions in the set (a class predicted but absent from the ground
truth scores its false positives). Every table and file says "unified": these are not the benchmark's figures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from builder.formats.motchallenge import MotTable, read_seqmap, xyxy_to_xywh
from builder.records import WarningCounter
from train.errors import EvaluationError
from train.evaluate.protocol import Protocol, register
from train.evaluate.result_files import ResultFile, load_result_files, map_classes, name_mapper
from train.evaluate.scoring import (
    BUILD_CROWD_RULES,
    BUILD_MATCH_RULES,
    SOURCE_IGNORE_RULE,
    EvalRules,
    SequenceData,
    evaluate_with_classes,
)

#: The builder source adapter that reads each raw benchmark.
ADAPTER_OF = {"mot15": "mot15", "mot16": "mot17", "mot17": "mot17", "mot20": "mot17", "dancetrack": "dancetrack",
              "bdd100k": "bdd100k", "visdrone": "visdrone"}
#: The unified class list when none is given.
DEFAULT_CLASSES = ["person", "vehicle"]
#: What the unified figures are, in every table and file.
UNIFIED_LABEL = "unified protocol: the project's unified classes (conf/classmaps), not the benchmark's own figures"


def rules_for_source(source: str) -> EvalRules:
    """A val set's rules: its source benchmark's ignore rule (:data:`SOURCE_IGNORE_RULE`), class 0 ignored."""
    return BUILD_CROWD_RULES if SOURCE_IGNORE_RULE.get(source, "match") == "crowd" else BUILD_MATCH_RULES


def unified_tracker(result: ResultFile, classes: list[str], warnings: WarningCounter) -> MotTable:
    """A result file's rows with ``classes`` = unified class ids (a class not in ``classes`` is an error)."""
    mapper = name_mapper({c: i + 1 for i, c in enumerate(classes)}, benchmark="unified",
                         hint="result classes must be names of the build's / --classes class list")
    return map_classes(result, mapper, warnings, benchmark="unified")


def adapter_ground_truth(source: str, root: Path, split: str, classes: list[str],
                         names: list[str] | None) -> list[tuple[str, int, MotTable]]:
    """(name, num_frames, gt) per sequence of a raw split read with the builder's adapter and class map:
    xywh rows, conf 1 for positives and 0 for ignore regions (class 0), exactly as a build's gt.txt holds them."""
    from builder.classmap import ClassMap, default_classmap_path
    from builder.sources import get_source

    adapter = get_source(source)(root, ClassMap.load(default_classmap_path(source), classes), WarningCounter())
    out = []
    for name in names or adapter.sequence_names(split):
        rec = adapter.read_sequence(split, name)
        out.append((name, max([f.index for f in rec.frames], default=0), records_table(rec.frames, root / name)))
    return out


def records_table(frames, source: Path | None) -> MotTable:
    """A :class:`MotTable` of builder frame records (xyxy -> xywh with ``x + w == x2`` exactly, as a build's
    gt.txt holds them, :func:`builder.formats.motchallenge.xyxy_to_xywh`; conf 0 and class 0 for ignore regions)."""
    rows = [np.column_stack([np.full(len(f), f.index), f.track_ids, xyxy_to_xywh(np.asarray(f.boxes, np.float64)),
                             (f.labels != 0).astype(float), f.labels, f.visibility]) for f in frames]
    matrix = np.concatenate(rows) if rows else np.zeros((0, 9))
    return MotTable.from_matrix(matrix.reshape(-1, 9), source)


@register("mot15", "mot16", "mot17", "mot20", "dancetrack", "bdd100k", "visdrone", name="unified")
class UnifiedProtocol(Protocol):
    """The unified classes on a raw benchmark split (module docstring)."""

    label = UNIFIED_LABEL

    def check_options(self) -> None:
        if self.options.box_convention is not None:
            raise EvaluationError("--box-convention applies to the official bdd100k protocol only")

    def evaluate(self, root: Path, split: str, results_dir: Path) -> dict:
        opts = self.options
        classes = list(opts.classes or DEFAULT_CLASSES)
        names = read_seqmap(opts.seqmap) if opts.seqmap else None
        gts = adapter_ground_truth(ADAPTER_OF[self.benchmark], Path(root), split, classes, names)
        files = load_result_files(results_dir, [g[0] for g in gts], declared=opts.result_classes,
                                  allow_missing=opts.allow_missing, warnings=opts.warnings)
        sequences = [SequenceData(n, nf, gt, unified_tracker(files[n], classes, opts.warnings)) for n, nf, gt in gts]
        return self.entry(evaluate_with_classes(sequences, classes, rules_for_source(ADAPTER_OF[self.benchmark]), None))
