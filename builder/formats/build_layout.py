"""A build's on-disk layout as its readers see it (docs/CONTRACTS.md "Build layout"): the splits, the
manifest, the class list and the val sets.

The val sets of a build split are its sources: a sequence folder ``<source>__<seq>[__<first raw frame>]``
belongs to the val set ``<source>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from builder.errors import BuilderError, FormatError
from builder.formats.files import MissingFileError, read_json
from builder.formats.motchallenge import list_sequences, read_mot_file, read_seqmap

#: The splits of a build, in order.
BUILD_SPLITS = ("train", "val", "test")
#: The build's manifest file, at its root.
MANIFEST_NAME = "build_manifest.json"
#: Separator between the source, the raw sequence and the first raw frame in a build sequence folder name.
NAME_SEPARATOR = "__"


def read_build_manifest(build_dir: str | Path) -> dict[str, Any]:
    """The parsed ``build_manifest.json`` of a build.

    Raises:
        MissingFileError: no manifest (names the path and the command that makes a build).
        FormatError: malformed JSON (``file:line:col``) or not an object.
    """
    path = Path(build_dir) / MANIFEST_NAME
    if not path.is_file():
        raise MissingFileError(f"{path}: no build manifest; is {build_dir} a build? Make one with "
                               "`python -m builder build <recipe>` (`make build-data STAGE=N`)")
    return read_json(path, what="a build manifest")


def build_classes(build_dir: str | Path) -> list[str]:
    """The class list of a build (manifest key ``classes``; unified class id = position + 1).

    Raises:
        MissingFileError / FormatError: see :func:`read_build_manifest`; also a ``classes`` key that is not a
            non-empty list of names.
    """
    classes = read_build_manifest(build_dir).get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise FormatError(f"{Path(build_dir) / MANIFEST_NAME}: key 'classes' must be a non-empty list of class "
                          f"names, got {classes!r}")
    return classes


def val_set_of(seq_dir_name: str) -> str:
    """The val set (source) of a build sequence folder: the prefix before ``__`` (the whole name without one)."""
    return seq_dir_name.split(NAME_SEPARATOR, 1)[0]


def split_val_sets(build_dir: str | Path, split: str, only: list[str] | None = None) -> dict[str, list[str]]:
    """``{val set: [sequence folder names]}`` of a build split, from its seqmap (else its folders), sorted
    by val set.

    Args:
        only: keep only these val sets (None: all).

    Raises:
        MissingFileError: neither a seqmap nor the split folder exists.
        BuilderError: a val set of ``only`` has no sequence in the split (lists the available ones).
    """
    build_dir = Path(build_dir)
    seqmap = build_dir / "seqmaps" / f"{split}.txt"
    names = read_seqmap(seqmap) if seqmap.is_file() else list_sequences(build_dir / split)
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(val_set_of(name), []).append(name)
    groups = dict(sorted(groups.items()))
    if only:
        unknown = [v for v in only if v not in groups]
        if unknown:
            raise BuilderError(f"{build_dir}/{split}: val set(s) {unknown} not found; available: {sorted(groups)}")
        groups = {v: groups[v] for v in only}
    return groups


def read_build_gt(path: str | Path) -> np.ndarray:
    """A build sequence's ``gt/gt.txt`` as (N, 9) float64 rows ``frame,id,x,y,w,h,conf,class,visibility``
    (xywh pixels; conf 0 = ignore region with class 0).

    Raises:
        MissingFileError: no such file. FormatError: a malformed row (``file:line``).
    """
    t = read_mot_file(path, min_columns=9)
    return np.column_stack([t.frames, t.ids, t.boxes, t.conf, t.classes, t.visibility]).astype(np.float64)
