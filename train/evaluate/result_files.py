"""Tracker result files: the project's own (MOTChallenge rows plus a sidecar naming the class column) and other
trackers' MOTChallenge files, read by one set of rules that never guesses what column 8 means.

A results folder written by the project (:func:`train.track.runner.track_split`, :func:`train.evaluate.model.
evaluate_model`)::

    <dir>/<seq>.txt        rows frame,id,x,y,w,h,score,class,-1,-1 (1-based frames, xywh pixels; class = 1-based
                           id in the sidecar's class list)
    <dir>/results.json     the sidecar: {"format": "motcurriculum-results-v1", "columns": "frame,id,x,y,w,h,score,
                           class,-1,-1", "class_column": 8, "classes": [names], "sequences": [files it covers]}

Column 8 of a MOTChallenge result file is a world coordinate (x) in that format, so a file is read by these rules:

1. listed in its folder's sidecar: column 8 is the class, named by the sidecar's ``classes``;
2. else, with ``declared`` class names (``python -m train.evaluate --result-classes``): column 8 is a 1-based id
   into that list;
3. else, with a benchmark-defined category column (VisDrone2019-MOT's submission format): that table;
4. else columns 8-10 are not read (another tracker's MOTChallenge file): every row is a prediction of the one
   class a protocol scores; a protocol scoring several classes refuses the file, naming options 1 and 2.

Protocols then map class names to their own classes (:func:`map_classes`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from builder.errors import FormatError
from builder.formats.files import read_json, write_json
from builder.formats.motchallenge import NO_CLASS, MotTable, read_mot_file
from builder.records import WarningCounter
from train.errors import EvaluationError

log = logging.getLogger(__name__)

#: The sidecar's file name in a results folder.
SIDECAR = "results.json"
#: The sidecar's ``format`` value.
SIDECAR_FORMAT = "motcurriculum-results-v1"
#: Columns of the project's result rows, as the sidecar records them.
RESULT_COLUMNS = "frame,id,x,y,w,h,score,class,-1,-1"
#: A class name's mapping outcome: a protocol class id, or None (a class the protocol does not score).
ClassMapper = Callable[[str], int | None]


@dataclass
class ResultFile:
    """One sequence's result rows and what column 8 means in them.

    Attributes:
        table: the rows (``classes`` = column 8 as written, or ``NO_CLASS`` where it is not read).
        class_names: {column-8 value: class name}, or None when the file has no class column (rule 4).
        origin: how the class column was decided (named in errors): the sidecar's path, ``--result-classes``,
            the benchmark's format, or ``no class column``.
    """

    table: MotTable
    class_names: dict[int, str] | None
    origin: str


def write_sidecar(results_dir: Path | str, classes: Iterable[str], sequences: Iterable[str]) -> Path:
    """Write (or extend) ``<results_dir>/results.json`` for result files of ``sequences`` with class list ``classes``.

    An existing sidecar with the same class list keeps its sequences (the union is written); one with another
    class list is replaced, so files it covered are read as other trackers' files from then on.
    """
    results_dir = Path(results_dir)
    classes = [str(c) for c in classes]
    names = set(sequences)
    old = read_sidecar(results_dir)
    if old is not None and old["classes"] == classes:
        names |= set(old["sequences"])
    data = {"format": SIDECAR_FORMAT, "columns": RESULT_COLUMNS, "class_column": 8, "classes": classes,
            "sequences": sorted(names)}
    return write_json(results_dir / SIDECAR, data, sort_keys=True)


def read_sidecar(results_dir: Path | str) -> dict | None:
    """The sidecar of a results folder, validated, or None when there is none.

    Raises:
        FormatError: malformed JSON (``file:line:col``), another ``format``, or a key of the wrong type (named).
    """
    path = Path(results_dir) / SIDECAR
    if not path.is_file():
        return None
    data = read_json(path, what="a results sidecar")
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise FormatError(f"{path}: not a results sidecar (expected an object with format {SIDECAR_FORMAT!r})")
    for key in ("classes", "sequences"):
        value = data.get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise FormatError(f"{path}: key {key!r} must be a list of names, got {value!r}")
    if data.get("class_column") != 8:
        raise FormatError(f"{path}: key 'class_column' must be 8, got {data.get('class_column')!r}")
    return data


def read_result_file(results_dir: Path, name: str, *, declared: list[str] | None = None,
                     category_names: Mapping[int, str] | None = None, sidecar: dict | None = None,
                     missing_ok: bool = False) -> ResultFile:
    """Read ``<results_dir>/<name>.txt`` by the rules of the module docstring.

    Args:
        declared: class names of column-8 ids 1..K given by the user (rule 2).
        category_names: a benchmark's own column-8 table (rule 3), e.g. VisDrone's categories 0..11.
        sidecar: the folder's sidecar (read once by the caller), or None.
        missing_ok: a missing file is an empty result (the caller has warned) instead of an error.

    Raises:
        MissingFileError / FormatError: no such file; a malformed row (``file:line``).
    """
    path = Path(results_dir) / f"{name}.txt"
    if sidecar is not None and name in sidecar["sequences"]:
        names, origin = {i + 1: c for i, c in enumerate(sidecar["classes"])}, str(Path(results_dir) / SIDECAR)
    elif declared:
        names, origin = {i + 1: c for i, c in enumerate(declared)}, "--result-classes"
    elif category_names is not None:
        names, origin = dict(category_names), "the benchmark's result format"
    else:
        names, origin = None, "no class column"
    if missing_ok and not path.is_file():
        return ResultFile(MotTable.empty(path), names, origin)
    return ResultFile(read_mot_file(path, class_column=names is not None), names, origin)


def load_result_files(results_dir: Path | str, names: Iterable[str], *, declared: list[str] | None = None,
                      category_names: Mapping[int, str] | None = None, allow_missing: bool = False,
                      warnings: WarningCounter | None = None,
                      known: Iterable[str] | None = None) -> dict[str, ResultFile]:
    """:func:`read_result_file` for every sequence name.

    Args:
        warnings: where to count ``results_not_in_ground_truth``: ``<seq>.txt`` files of the folder that name no
            sequence of ``known`` (default ``names``); they are not scored.

    Raises:
        EvaluationError: the folder does not exist, or result files are missing (all named) and not allowed.
    """
    results_dir = Path(results_dir)
    names = list(names)
    if not results_dir.is_dir():
        raise EvaluationError(f"{results_dir}: results folder not found (expected <seq>.txt files)")
    if warnings is not None:
        extra = sorted({p.stem for p in results_dir.glob("*.txt")} - set(names if known is None else known))
        if extra:
            warnings.add("results_not_in_ground_truth", f"{results_dir}: {', '.join(extra[:3])}", len(extra))
    missing = [n for n in names if not (results_dir / f"{n}.txt").is_file()]
    if missing and not allow_missing:
        raise EvaluationError(f"{results_dir}: no result file for {len(missing)} sequence(s): "
                              + ", ".join(f"{n}.txt" for n in missing)
                              + " (pass allow_missing / --allow-missing to score them as empty output)")
    for n in missing:
        log.warning("%s: no result file, scored as empty tracker output", results_dir / f"{n}.txt")
    sidecar = read_sidecar(results_dir)
    return {n: read_result_file(results_dir, n, declared=declared, category_names=category_names, sidecar=sidecar,
                                missing_ok=True) for n in names}


def map_classes(result: ResultFile, mapper: ClassMapper, warnings: WarningCounter, *, benchmark: str) -> MotTable:
    """The result's table with ``classes`` = the protocol's class ids.

    Rows of a class ``mapper`` gives None (a class the benchmark does not score, e.g. ``vehicle`` on MOT17) are
    left out and counted as ``predictions_not_scored``; a file without a class column keeps ``NO_CLASS``.

    Raises:
        EvaluationError: a column-8 value outside the class list (names the file and line), or a class name
            ``mapper`` rejects (its message).
    """
    table = result.table
    if result.class_names is None or not len(table):
        return table
    out = np.full(len(table), NO_CLASS, np.int64)
    keep = np.ones(len(table), bool)
    for value in np.unique(table.classes).tolist():
        rows = table.classes == value
        if value not in result.class_names:
            first = int(np.argmax(rows))
            line = f":{int(table.lines[first])}" if table.lines is not None else ""
            raise EvaluationError(f"{table.source}{line}: class {value} is not in the class list of "
                                  f"{result.origin} ({_listing(result.class_names)})")
        cls = mapper(result.class_names[value])
        if cls is None:
            keep &= ~rows
            warnings.add("predictions_not_scored", f"{table.source}: {int(rows.sum())} row(s) of class "
                         f"{result.class_names[value]!r}, not a {benchmark} class", int(rows.sum()))
        else:
            out[rows] = cls
    table = table.select(np.arange(len(table)))
    table.classes = out
    return table.select(keep)


def _listing(names: Mapping[int, str]) -> str:
    return ", ".join(f"{k} = {v}" for k, v in sorted(names.items()))


def name_mapper(classes: Mapping[str, int], *, not_scored: Iterable[str] = (), benchmark: str,
                hint: str = "") -> ClassMapper:
    """A :data:`ClassMapper` from {class name: protocol id}; names in ``not_scored`` map to None, others raise
    EvaluationError naming the valid names (and ``hint``)."""
    skipped = set(not_scored)

    def mapper(name: str) -> int | None:
        if name in classes:
            return classes[name]
        if name in skipped:
            return None
        raise EvaluationError(f"result class {name!r} is not a {benchmark} class (valid: {', '.join(classes)})"
                              + (f"; {hint}" if hint else ""))

    return mapper
