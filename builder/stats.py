"""``stats``: what a raw source holds, per official split, as the builder will read it.

Counts are taken from the adapter's records after the class map and the box policy
(builder/sources/base.py) are applied, so they are the numbers a build starts from:

- ``sequences``: sequences of the split; ``sequences_without_gt``: those with no ground truth file.
- ``frames``: frames of all sequences (see each adapter's docstring for which frames a sequence has).
- ``boxes``: positive boxes (unified class id >= 1); ``per_class``: positives per unified class name.
- ``identities``: distinct (sequence, track id) pairs among the positives.
- ``ignore``: ignore-region boxes (class id 0).
- ``missing_images``: frames whose image file does not exist (:func:`builder.sources.missing_images`).
- ``warnings``: warning kind -> count, from the adapter (``seqinfo_mismatch``, ...), among them the boxes that
  leave the frame: ``box_partly_outside_frame`` and ``box_outside_frame`` count them; they are kept exactly as
  annotated (evaluation ground truth is the benchmark's own) and are counted in ``boxes`` / ``ignore``.

Run it as ``python -m builder stats mot17 ../shared/realdata/mot17-mini [--json]`` (the CLI lives in
builder/cli.py), or from Python::

    from builder.stats import compute_stats, render_stats
    stats = compute_stats("mot17", "../shared/realdata/mot17-mini")
    rich.print(render_stats(stats))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.progress import track
from rich.table import Table

from builder.classmap import ClassMap, default_classmap_path
from builder.records import SequenceRecord, WarningCounter
from builder.sources import get_source, missing_images


def compute_stats(source: str, root: str | Path, *, classmap_path: str | Path | None = None,
                  classes: Sequence[str] = ("person", "vehicle"), progress: bool = False) -> dict:
    """Count sequences, frames, boxes, identities, ignore regions, missing images and warnings per split.

    Args:
        source: registered adapter name (``bdd100k``, ``dancetrack``, ``mot17``, ``visdrone``).
        root: the source's raw folder (layout in the adapter's module docstring).
        classmap_path: class map TOML; default ``conf/classmaps/<source>.toml``.
        classes: unified class list (class id k = ``classes[k - 1]``).
        progress: show a progress bar over the sequences of each split.

    Returns:
        ``{"source", "root", "classmap", "classes", "splits": {split: {"sequences", "sequences_without_gt",
        "frames", "boxes", "identities", "per_class": {class: boxes}, "ignore", "missing_images",
        "warnings": {kind: n}}}}``, every count an int; splits in the adapter's order.

    Raises:
        NotRegisteredError: unknown ``source``.
        BuilderError: bad class map or bad input (see builder/sources/base.py).
    """
    adapter_cls = get_source(source)
    path = Path(classmap_path) if classmap_path is not None else default_classmap_path(source)
    classmap = ClassMap.load(path, classes)
    splits = {}
    for split in adapter_cls(root, classmap, WarningCounter()).splits():
        warnings = WarningCounter()
        adapter = adapter_cls(root, classmap, warnings)
        names = adapter.sequence_names(split)
        if progress:
            names = track(names, description=f"{source}/{split}", transient=True)
        counts = _empty_counts(classmap.classes)
        for name in names:
            _add_sequence(counts, adapter.read_sequence(split, name), classmap.classes)
        counts["warnings"] = warnings.as_dict()
        splits[split] = counts
    return {"source": source, "root": str(root), "classmap": str(path), "classes": list(classmap.classes),
            "splits": splits}


def _empty_counts(classes: Sequence[str]) -> dict:
    return {"sequences": 0, "sequences_without_gt": 0, "frames": 0, "boxes": 0, "identities": 0,
            "per_class": dict.fromkeys(classes, 0), "ignore": 0, "missing_images": 0}


def _add_sequence(counts: dict, seq: SequenceRecord, classes: Sequence[str]) -> None:
    """Add one sequence's numbers to ``counts`` (in place)."""
    counts["sequences"] += 1
    counts["sequences_without_gt"] += int(not seq.has_gt)
    counts["frames"] += seq.num_frames
    counts["missing_images"] += len(missing_images(seq))
    if not seq.frames:
        return
    labels = np.concatenate([f.labels for f in seq.frames])
    per_class = np.bincount(labels.astype(np.int64), minlength=len(classes) + 1)
    counts["ignore"] += int(per_class[0])
    for k, name in enumerate(classes, start=1):
        counts["per_class"][name] += int(per_class[k])
    counts["boxes"] += int(per_class[1:].sum())
    track_ids = np.concatenate([f.track_ids[f.labels > 0] for f in seq.frames])
    counts["identities"] += int(np.unique(track_ids).size)


def render_stats(stats: dict) -> Table:
    """A rich table of :func:`compute_stats` output: one row per split, one column per count and class."""
    classes = stats["classes"]
    table = Table(title=f"{stats['source']} at {stats['root']} (class map {Path(stats['classmap']).name})")
    for col in ("split", "sequences", "frames", "boxes", "identities", *classes, "ignore", "missing images",
                "warnings"):
        table.add_column(col, justify="left" if col in ("split", "warnings") else "right")
    for split, c in stats["splits"].items():
        no_gt = f" ({c['sequences_without_gt']} without gt)" if c["sequences_without_gt"] else ""
        warnings = ", ".join(f"{k}={v}" for k, v in c["warnings"].items()) or "-"
        table.add_row(split, f"{c['sequences']}{no_gt}", str(c["frames"]), str(c["boxes"]), str(c["identities"]),
                      *(str(c["per_class"][k]) for k in classes), str(c["ignore"]), str(c["missing_images"]),
                      warnings)
    return table
