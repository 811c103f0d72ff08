"""Locked val/test manifests and content digests.

A manifest (``manifests/<source>.json``, committed to git) fixes the sequences of a source that may
never reach training::

    {
      "source": "dancetrack",
      "official_split_of_locked": "val",
      "seed": 0,
      "created_by": "python -m builder lock dancetrack --val 13 --test 12 --seed 0",
      "rule": "...",
      "val":  [{"name": "dancetrack0004", "split": "val", "digest": "<sha256 hex or null>"}, ...],
      "test": [{"name": "dancetrack0005", "split": "val", "digest": null}, ...]
    }

Draw rule (``draw_locked``): sort the official split's sequence names, permute them with
``builder.budget.seeded_rng(seed, source, "lock")``, take the first ``n_val`` as val and the next
``n_test`` as test, each list sorted by name.

Content digest (``sequence_digest``): sha256 of the canonical parsed record, not of image bytes:
the raw frame numbers, the image file names (no directory), and the boxes sorted by (frame, track id,
label name, x1, y1, x2, y2) with xyxy rounded to 0.01 px, their track ids and label names (class
names, ``ignore`` for ignore regions; names, not ids, so that the digest does not depend on the order
of the class list). A build stores the raw boxes exactly in gt.txt, so ``verify`` recomputes the
digest from the build alone.

Digest versions (:data:`DIGEST_VERSION`, hashed first and recorded as ``digest_version`` in a manifest):
``v2`` hashed the boxes as adapters gave them before issue 9, clipped to the frame; ``v3`` hashes them as the
raw annotation gives them (adapters no longer clip: evaluation ground truth is the benchmark's own), rounded
to 0.01 px from float64. A manifest whose digests are of another version (or carry no version: v2) is refused
with the command that re-records them (``python -m builder lock <source> --force``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from builder.budget import seeded_rng
from builder.errors import BuilderError
from builder.formats.files import MissingFileError, read_json, write_json
from builder.records import IGNORE, FrameRecord

#: Version of :func:`sequence_digest` (see the module docstring); manifests record it as ``digest_version``.
DIGEST_VERSION = "v3"
_DIGEST_VERSION = f"motcurriculum-sequence-digest-{DIGEST_VERSION}\n".encode()
#: The version a manifest with digests but no ``digest_version`` key holds (written before the key existed).
_UNVERSIONED = "v2"
_MANIFEST_KEYS = {"source", "official_split_of_locked", "seed", "created_by", "rule", "val", "test",
                  "digest_version"}
_ENTRY_KEYS = {"name", "split", "digest"}
DRAW_RULE = ("sorted official-split names permuted by seeded_rng(seed, source, 'lock'); first n_val -> val, "
             "next n_test -> test; each list sorted by name")

#: Locked (val, test) sequence counts ``lock`` draws when none are given.
DEFAULT_LOCK_SIZES: dict[str, tuple[int, int]] = {
    "bdd100k": (20, 20),     # of 200 official val videos
    "dancetrack": (13, 12),  # all 25 official val sequences
    "visdrone": (4, 3),      # all 7 official val sequences
    "mot17": (2, 1),
}


def default_manifest_path(source: str) -> Path:
    """The manifest shipped with the project for ``source``: ``<repo>/manifests/<source>.json``."""
    return Path(__file__).resolve().parents[1] / "manifests" / f"{source}.json"


def quantize_boxes(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy pixels -> (N, 4) int64 hundredths of a pixel (round half to even)."""
    return np.round(np.asarray(boxes, np.float64).reshape(-1, 4) * 100.0).astype("<i8")


def label_name_table(classes: Sequence[str]) -> np.ndarray:
    """Array mapping unified class id -> name, with id 0 (``IGNORE``) -> ``"ignore"``."""
    table = ["ignore", *classes]
    assert table.index("ignore") == IGNORE
    return np.array(table, dtype=object)


def sequence_digest(frames: Iterable[FrameRecord], classes: Sequence[str]) -> str:
    """sha256 hex of the canonical content of ``frames`` (see the module docstring).

    Hashed, in order: one line ``<frame number>|<image file name>|<boxes>`` per frame (frames sorted
    by number); the label names used, sorted; then every box of the sequence sorted by (frame, track id,
    label name, x1, y1, x2, y2): xyxy in int64 hundredths of a pixel, track ids int64 and the rank of
    its label name among the names used (int16), all little-endian.
    """
    frames = sorted(frames, key=lambda f: f.index)
    counts = [len(f.track_ids) for f in frames]
    h = hashlib.sha256(_DIGEST_VERSION)
    h.update("".join(f"{f.index}|{os.path.basename(f.image)}|{n}\n"
                     for f, n in zip(frames, counts, strict=True)).encode())
    if not sum(counts):
        return h.hexdigest()
    table = label_name_table(classes)
    labels = np.concatenate([np.asarray(f.labels, np.int64) for f in frames])
    used = np.unique(labels)
    names = sorted(table[used])
    lut = np.zeros(len(table), np.int64)
    lut[used] = [names.index(n) for n in table[used]]
    rank = lut[labels]
    q = quantize_boxes(np.concatenate([np.asarray(f.boxes).reshape(-1, 4) for f in frames]))
    ids = np.concatenate([np.asarray(f.track_ids, "<i8") for f in frames])
    pos = np.repeat(np.arange(len(frames)), counts)
    order = np.lexsort((q[:, 3], q[:, 2], q[:, 1], q[:, 0], rank, ids, pos))
    h.update(("\x1f".join(names) + "\n").encode())
    h.update(q[order].tobytes() + ids[order].tobytes() + rank[order].astype("<i2").tobytes())
    return h.hexdigest()


def combine_digests(items: Iterable[tuple[str, str]]) -> str:
    """sha256 hex over sorted ``(name, digest)`` pairs (the digest of a whole split or source)."""
    h = hashlib.sha256()
    for name, digest in sorted(items):
        h.update(f"{name}={digest}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class LockedSequence:
    """One locked sequence: raw ``name``, the official ``split`` it comes from, its content ``digest`` or None."""

    name: str
    split: str
    digest: str | None = None


@dataclass(frozen=True)
class Manifest:
    """A source's locked val and test sequences (see the module docstring for the file format)."""

    source: str
    official_split_of_locked: str = "val"
    val: tuple[LockedSequence, ...] = ()
    test: tuple[LockedSequence, ...] = ()
    seed: int = 0
    created_by: str = ""
    rule: str = DRAW_RULE
    digest_version: str | None = None
    path: Path | None = field(default=None, compare=False)

    @property
    def entries(self) -> tuple[LockedSequence, ...]:
        """Val then test entries."""
        return self.val + self.test

    @property
    def names(self) -> set[str]:
        """Every locked sequence name."""
        return {e.name for e in self.entries}

    @property
    def is_locked(self) -> bool:
        """True when it names sequences and every one has a digest."""
        return bool(self.entries) and all(e.digest for e in self.entries)

    @property
    def stale_digests(self) -> str | None:
        """The digest version of a manifest whose digests this builder does not compute, else None."""
        if not any(e.digest for e in self.entries):
            return None
        version = self.digest_version or _UNVERSIONED
        return None if version == DIGEST_VERSION else version

    def stale_message(self, source: str) -> str:
        """Why the digests of a :attr:`stale_digests` manifest cannot be compared, and the command to run."""
        where = "" if self.path is None or Path(self.path).resolve() == default_manifest_path(source) \
            else f" --manifest {self.path}"
        return (f"{self.path}: holds sequence digests of version {self.stale_digests} (boxes clipped to the frame "
                f"by an older builder); this builder computes {DIGEST_VERSION} (raw boxes). Check the data, then "
                f"re-record them with `python -m builder lock {source}{where} --force`")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``digest_version`` only when set)."""
        def rows(es):
            return [{"name": e.name, "split": e.split, "digest": e.digest} for e in es]
        out = {"source": self.source, "official_split_of_locked": self.official_split_of_locked,
               "seed": self.seed, "created_by": self.created_by, "rule": self.rule,
               "val": rows(self.val), "test": rows(self.test)}
        return out | ({"digest_version": self.digest_version} if self.digest_version else {})


def _entries(raw: Any, where: str, key: str) -> tuple[LockedSequence, ...]:
    if not isinstance(raw, list):
        raise BuilderError(f"{where}: key {key!r} must be a list of {{name, split, digest}}, got {raw!r}")
    out = []
    for i, e in enumerate(raw):
        if not isinstance(e, dict) or set(e) - _ENTRY_KEYS or not isinstance(e.get("name"), str) \
                or not isinstance(e.get("split", "val"), str):
            raise BuilderError(f"{where}: {key}[{i}] must be an object with keys name, split, digest "
                               f"(name required, name and split strings), got {e!r}")
        digest = e.get("digest")
        if digest is not None and not (isinstance(digest, str) and len(digest) == 64):
            raise BuilderError(f"{where}: {key}[{i}].digest must be a sha256 hex string or null, got {digest!r}")
        out.append(LockedSequence(e["name"], e.get("split", "val"), digest))
    return tuple(out)


#: Types of a manifest's scalar keys.
_SCALAR_TYPES = {"source": str, "official_split_of_locked": str, "seed": int, "created_by": str, "rule": str}


def _check_manifest_types(data: dict, path: Path) -> None:
    for key, kind in _SCALAR_TYPES.items():
        value = data.get(key)
        if key in data and (not isinstance(value, kind) or isinstance(value, bool)):
            raise BuilderError(f"{path}: key {key!r} must be a {kind.__name__}, got {type(value).__name__} {value!r}")


def load_manifest(path: str | Path, source: str | None = None) -> Manifest:
    """Read and validate a manifest.

    Raises:
        BuilderError: missing file, invalid JSON (with line), unknown keys (listing the valid ones), a key of
            the wrong type (names it), a ``source`` other than ``source``, or a sequence locked twice.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: manifest not found (create it with `python -m builder lock "
                               f"{source or '<source>'}`)")
    data = read_json(path, expect=None, what="a locked-split manifest")
    if not isinstance(data, dict) or set(data) - _MANIFEST_KEYS or "source" not in data:
        keys = sorted(set(data) - _MANIFEST_KEYS) if isinstance(data, dict) else data
        raise BuilderError(f"{path}: unexpected manifest keys {keys}; valid keys: {', '.join(sorted(_MANIFEST_KEYS))}"
                           " ('source' required)")
    _check_manifest_types(data, path)
    if source is not None and data["source"] != source:
        raise BuilderError(f"{path}: manifest is for source {data['source']!r}, expected {source!r}")
    m = Manifest(source=data["source"], official_split_of_locked=data.get("official_split_of_locked", "val"),
                 val=_entries(data.get("val", []), str(path), "val"),
                 test=_entries(data.get("test", []), str(path), "test"),
                 seed=int(data.get("seed", 0)), created_by=data.get("created_by", ""),
                 rule=data.get("rule", DRAW_RULE), digest_version=data.get("digest_version"), path=path)
    names = [e.name for e in m.entries]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise BuilderError(f"{path}: sequences locked twice: {', '.join(dup)}")
    return m


def save_manifest(manifest: Manifest, path: str | Path) -> None:
    """Write ``manifest`` as indented JSON with a trailing newline (stable bytes for the same content)."""
    write_json(path, manifest.to_dict())


def draw_locked(names: Sequence[str], n_val: int, n_test: int, *, seed: int, source: str
                ) -> tuple[list[str], list[str]]:
    """Seeded draw of ``n_val`` val and ``n_test`` test names from ``names`` (rule in the module docstring).

    Raises:
        BuilderError: fewer than ``n_val + n_test`` names, or a negative count.
    """
    names = sorted(set(names))
    if n_val < 0 or n_test < 0 or n_val + n_test > len(names):
        raise BuilderError(f"source {source}: cannot lock {n_val} val + {n_test} test sequences "
                           f"from {len(names)} available")
    order = [names[i] for i in seeded_rng(seed, source, "lock").permutation(len(names))]
    return sorted(order[:n_val]), sorted(order[n_val:n_val + n_test])


@dataclass(frozen=True)
class LockResult:
    """Outcome of ``lock_manifest``: the manifest written (or kept) and what happened.

    ``status`` is one of ``created`` (drawn and locked), ``digests_recorded`` (names kept, digests
    filled in), ``unchanged`` (already locked with the same content: nothing written), ``relocked``
    (``force``: changed digests or a new draw written).
    """

    manifest: Manifest
    status: str


def _digests(adapter, entries: Sequence[LockedSequence], classes: Sequence[str], where: str
             ) -> dict[str, str]:
    out = {}
    names = {split: set(adapter.sequence_names(split)) for split in {e.split for e in entries}}
    for e in entries:
        if e.name not in names[e.split]:
            raise BuilderError(f"{where}: locked sequence {e.name!r} (split {e.split!r}) not found in the source")
        rec = adapter.read_sequence(e.split, e.name)
        if not rec.has_gt:
            raise BuilderError(f"{where}: sequence {e.name!r} (split {e.split!r}) has no ground truth and cannot "
                               "be a locked val/test sequence; lock from a split with labels (--split)")
        out[e.name] = sequence_digest(rec.frames, classes)
    return out


def lock_manifest(adapter, path: str | Path, *, source: str, classes: Sequence[str],
                  n_val: int | None = None, n_test: int | None = None, seed: int | None = None,
                  split: str | None = None, force: bool = False, created_by: str = "") -> LockResult:
    """Create or complete the manifest at ``path`` for ``source`` read through ``adapter``.

    A manifest that already names sequences keeps them (DanceTrack ships that way) and gets their
    digests; one that names none gets a seeded draw (``draw_locked``) of the official split ``split``
    (default: the manifest's ``official_split_of_locked``, ``val``; MOT17 has no val split, so lock
    from ``train`` there). An existing locked manifest is never changed silently: different digests,
    or ``n_val``/``n_test``/``seed``/``split`` other than the manifest's, are a ``BuilderError`` unless
    ``force`` (which re-records, or redraws when the draw changes). Running it twice writes nothing the
    second time (idempotent).

    Raises:
        BuilderError: a refused change (see above), a locked sequence missing from the source or
            without ground truth, or too few sequences to draw from.
    """
    path = Path(path)
    old = load_manifest(path, source) if path.exists() else Manifest(source=source)
    if split is not None and not old.entries:
        old = replace(old, official_split_of_locked=split)
    same_draw = ((n_val is None or n_val == len(old.val)) and (n_test is None or n_test == len(old.test))
                 and (seed is None or seed == old.seed)
                 and (split is None or split == old.official_split_of_locked))
    if old.entries and not same_draw and not force:
        raise BuilderError(f"{path}: already locks {len(old.val)} val + {len(old.test)} test sequences drawn "
                           f"from {old.official_split_of_locked!r} with seed {old.seed}; the requested "
                           "counts/seed/split would change it (pass --force)")
    if old.entries and same_draw:
        new = old
    else:
        dv, dt = (len(old.val), len(old.test)) if old.entries else DEFAULT_LOCK_SIZES.get(source, (1, 1))
        split = split or old.official_split_of_locked
        val, test = draw_locked(adapter.sequence_names(split), dv if n_val is None else n_val,
                                dt if n_test is None else n_test, seed=old.seed if seed is None else seed,
                                source=source)
        new = replace(old, val=tuple(LockedSequence(n, split) for n in val),
                      test=tuple(LockedSequence(n, split) for n in test), official_split_of_locked=split,
                      seed=old.seed if seed is None else seed, created_by=created_by or old.created_by)
    if old.stale_digests and not force:
        raise BuilderError(old.stale_message(source))
    found = _digests(adapter, new.entries, classes, str(path))
    changed = [f"{e.name}: expected {e.digest}, found {found[e.name]}"
               for e in new.entries if e.digest and e.digest != found[e.name]]
    if changed and not force:
        raise BuilderError(f"{path}: locked content changed, refusing to re-lock without --force: "
                           + "; ".join(changed))
    new = replace(new, val=tuple(replace(e, digest=found[e.name]) for e in new.val),
                  test=tuple(replace(e, digest=found[e.name]) for e in new.test), path=path,
                  digest_version=DIGEST_VERSION)
    if new == old and path.exists():
        return LockResult(old, "unchanged")
    status = "created" if not old.entries else ("relocked" if (changed or not same_draw) else "digests_recorded")
    save_manifest(new, path)
    return LockResult(new, status)
