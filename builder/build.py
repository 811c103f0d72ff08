"""Build one stage: recipe -> per source (adapter, class map, manifest check, pool, budget) -> writer.

Order of work per source (sources in name order):

1. the adapter over ``root`` with the source's class map;
2. the manifest: every locked sequence is read (complete) and its content digest checked against the
   manifest; a changed digest stops the build; a manifest without digests is counted as a
   ``manifest_unlocked`` warning and the computed digests go into build_manifest.json;
3. the pool: every sequence of ``pool_splits`` except the locked ones (which are never even parsed
   for the pool), or, with ``replay_from``, only the train frames of this source in that earlier build;
   a sequence that is another copy of a locked video (the adapter's optional ``video_key``, e.g.
   MOT17's ``-DPM``/``-FRCNN``/``-SDP`` variants of one video) leaves the pool too;
4. the budget (``builder.budget.fill_budget``), then the chosen clips are cut from their sequences;
5. the image check: every frame to be linked must exist and have a readable image header (size > 0, a
   format Pillow knows, a width and height; ``check_images=False`` skips it; only the benchmark uses that,
   its label set has no images).

Only what is needed is parsed: an adapter with the optional ``frame_indices(split, name)`` method
lists a pool sequence's frame numbers without converting its boxes, and only the sequences the budget
chose are then read with ``read_sequence``; without it, each pool sequence is parsed once with
``read_sequence`` and its record kept until the clips are cut. Each locked sequence is parsed once.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.progress import track

from builder.budget import BudgetResult, PoolSequence, fill_budget, make_pool
from builder.classmap import ClassMap, default_classmap_path
from builder.errors import BuilderError, FormatError
from builder.formats.build_layout import MANIFEST_NAME, read_build_manifest
from builder.formats.files import sha256_file
from builder.locks import build_lock
from builder.manifest import combine_digests, load_manifest, sequence_digest
from builder.recipe import Recipe, SourceSpec, is_plain_name, load_recipe
from builder.records import SequenceRecord, WarningCounter
from builder.sources.images import check_image
from builder.writer import BuildPlan, OutputSequence, recover_interrupted_swap, write_build

DEFAULT_DATA_ROOT = "data/raw"
DEFAULT_BUILD_ROOT = "data/builds"
#: How many missing image paths an error message lists.
_SHOW_MISSING = 5


def data_root_default() -> Path:
    """``$DATA_ROOT`` or ``data/raw``."""
    return Path(os.environ.get("DATA_ROOT") or DEFAULT_DATA_ROOT)


def build_root_default() -> Path:
    """``$BUILD_ROOT`` or ``data/builds``."""
    return Path(os.environ.get("BUILD_ROOT") or DEFAULT_BUILD_ROOT)


def builder_version() -> str:
    """The installed project version (``motcurriculum``), or ``0+unknown``."""
    try:
        return metadata.version("motcurriculum")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass
class SourcePlan:
    """What one source contributes: output sequences and its build_manifest.json entries."""

    outputs: list[OutputSequence]
    info: dict[str, Any]
    locked: dict[str, Any]
    budget: BudgetResult


def open_adapter(spec: SourceSpec, recipe: Recipe, data_root: Path, warnings: WarningCounter):
    """The source adapter of ``spec`` with its class map; ``BuilderError`` for unknown source or missing root."""
    from builder.sources import get_source  # the registry fills on import of the adapter modules

    try:
        cls = get_source(spec.name)
    except KeyError as exc:
        raise BuilderError(f"{recipe.path}: [sources.{spec.name}]: {exc.args[0] if exc.args else exc}") from None
    root = spec.root_path(data_root)
    if not root.is_dir():
        raise BuilderError(f"{recipe.path}: [sources.{spec.name}] root {root} does not exist "
                           f"(root = {spec.root!r} relative to DATA_ROOT {data_root})")
    classmap_path = Path(spec.classmap) if spec.classmap else default_classmap_path(spec.name)
    return cls(root, ClassMap.load(classmap_path, recipe.classes), warnings), classmap_path


def check_locked(adapter, spec: SourceSpec, classes, warnings: WarningCounter
                 ) -> tuple[dict[str, SequenceRecord], dict[str, Any]]:
    """Read every locked sequence and check its digest against the manifest.

    Returns:
        (records by name, the ``locked`` entry of build_manifest.json for this source: ``val``, ``test``,
        ``digests``, ``manifest_locked`` and ``official_split`` {split, sequences: every name of the official
        split the locked sequences are drawn from}).

    Raises:
        BuilderError: manifest with no sequences, a locked sequence missing from the source or without
            ground truth, or a digest that differs from the manifest's (names sequence, manifest,
            expected and found).
    """
    mpath = spec.manifest_path()
    manifest = load_manifest(mpath, spec.name)
    if not manifest.entries:
        raise BuilderError(f"{mpath}: locks no val/test sequences for {spec.name}; run "
                           f"`python -m builder lock {spec.name}` first")
    if manifest.stale_digests:
        raise BuilderError(manifest.stale_message(spec.name))
    records, digests = {}, {}
    names = {split: set(adapter.sequence_names(split)) for split in {e.split for e in manifest.entries}}
    for e in manifest.entries:
        if e.name not in names[e.split]:
            raise BuilderError(f"{mpath}: locked sequence {e.name!r} (split {e.split!r}) is not in the "
                               f"{spec.name} source at {adapter.root}")
        rec = adapter.read_sequence(e.split, e.name)
        if not rec.has_gt:
            raise BuilderError(f"{mpath}: locked sequence {e.name!r} (split {e.split!r}) has no ground truth")
        found = sequence_digest(rec.frames, classes)
        if e.digest and e.digest != found:
            raise BuilderError(f"{mpath}: locked sequence {e.name!r} of {spec.name} changed: expected digest "
                               f"{e.digest}, found {found}. Restore the data, or re-lock on purpose with "
                               f"`python -m builder lock {spec.name} --force`")
        if not e.digest:
            warnings.add("manifest_unlocked", f"{mpath}: {e.name} has no digest; run "
                         f"`python -m builder lock {spec.name}`")
        records[e.name], digests[e.name] = rec, found
    official = manifest.official_split_of_locked
    if official not in names and official in adapter.splits():
        names[official] = set(adapter.sequence_names(official))
    locked = {"val": [e.name for e in manifest.val], "test": [e.name for e in manifest.test],
              "digests": {n: digests[n] for n in sorted(digests)}, "manifest_locked": manifest.is_locked,
              # every sequence of the official split the locked ones come from: evaluation reports the union of
              # val and test as that split when they cover it (train.evaluate.locked)
              "official_split": {"split": official, "sequences": sorted(names.get(official, ()))}}
    return records, locked


def _replay_frames(build_root: Path, replay_from: str, source: str) -> dict[tuple[str, str], set[int]]:
    """(raw split, raw sequence) -> raw frame numbers of ``source`` in the train split of build ``replay_from``.

    Raises:
        BuilderError: no such build, or its build_manifest.json is not valid JSON or lacks
            ``splits.train.<dir>.{source, raw_split, raw_sequence, frames}``; or it has no train frames
            of ``source``.
    """
    path = build_root / replay_from / MANIFEST_NAME
    with build_lock(build_root, replay_from):  # not while another process rebuilds it
        recover_interrupted_swap(build_root, replay_from)  # a rebuild killed mid-swap left it aside
        if not path.is_file():
            raise BuilderError(f"replay_from {replay_from!r}: no build at {path}; build that stage first")
        try:
            earlier = read_build_manifest(path.parent)
        except FormatError as exc:
            raise BuilderError(f"replay_from {replay_from!r}: {exc}") from None
    frames: dict[tuple[str, str], set[int]] = {}
    try:
        for entry in earlier["splits"]["train"].values():
            if entry["source"] == source:
                frames.setdefault((entry["raw_split"], entry["raw_sequence"]), set()).update(
                    int(f) for f in entry["frames"])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise BuilderError(f"replay_from {replay_from!r}: {path} is not a build manifest (expected "
                           f"splits.train.<dir>.{{source, raw_split, raw_sequence, frames}}; {exc!r})") from None
    if not frames:
        raise BuilderError(f"replay_from {replay_from!r}: build {path.parent} has no train frames of {source}")
    return frames


def _pool_frames(adapter, split: str, name: str, records: dict[str, SequenceRecord]) -> tuple[int, ...] | None:
    """Frame numbers of one pool sequence, or None when it has no ground truth.

    Uses the adapter's optional ``frame_indices(split, name)`` (frame numbers without converting boxes)
    when it has one; otherwise parses the sequence once and keeps its record for cutting clips.
    """
    fast = getattr(adapter, "frame_indices", None)
    if fast is not None:
        return tuple(fast(split, name))
    rec = adapter.read_sequence(split, name)
    if not rec.has_gt:
        return None  # e.g. an official test split: nothing to train on
    records[name] = rec
    return tuple(f.index for f in rec.frames)


def read_pool(adapter, spec: SourceSpec, locked: set[str], build_root: Path, *, progress: bool = False,
              warnings: WarningCounter | None = None) -> tuple[list[PoolSequence], dict[str, SequenceRecord]]:
    """The training pool of one source (locked sequences are skipped before anything is read).

    A sequence leaves the pool when its name is locked or when it shows a locked video
    (``adapter.video_key(name)`` equals a locked name's key; adapters without ``video_key`` compare
    names only), whatever split it is in and also when replayed from an earlier build. Of several
    unlocked copies of one video (MOT17's three detection sets) only the first, in split then name
    order, joins the pool; each other copy counts a ``duplicate_video`` warning.

    Returns:
        (pool sequences with their available frame numbers, the records already parsed, by name;
        the clips of a sequence without a record there are cut after reading it with ``read_sequence``).
    """
    video_key = getattr(adapter, "video_key", None) or (lambda name: name)
    warnings = warnings if warnings is not None else WarningCounter()
    locked_videos = {video_key(n) for n in locked}

    def is_locked(name: str) -> bool:
        return name in locked or video_key(name) in locked_videos

    records: dict[str, SequenceRecord] = {}
    pool: list[PoolSequence] = []
    pool_videos: dict[str, tuple[str, str]] = {}  # video key -> (split, name) the pool draws that video from
    if spec.replay_from:  # frames named by the earlier build; checked against the source when clips are cut
        wanted = _replay_frames(build_root, spec.replay_from, spec.name)
        pool = [PoolSequence(split, name, tuple(sorted(wanted[split, name]))) for split, name in sorted(wanted)]
        return make_pool(pool, set(locked) | {s.name for s in pool if is_locked(s.name)}), records
    present = adapter.splits()
    for split in spec.pool_splits:
        if split not in present:
            raise BuilderError(f"[sources.{spec.name}] pool_splits: split {split!r} not found under "
                               f"{adapter.root}; present: {', '.join(present)}")
        for name in track(adapter.sequence_names(split), description=f"reading {spec.name}/{split}",
                          disable=not progress, transient=True):
            if is_locked(name):
                continue
            first = pool_videos.setdefault(video_key(name), (split, name))
            if first[1] != name:  # another copy of a video already in the pool (the same name: make_pool raises)
                warnings.add("duplicate_video", f"{spec.name}: {split}/{name} shows the same video as "
                             f"{first[0]}/{first[1]}; only the first is drawn from")
                continue
            frames = _pool_frames(adapter, split, name, records)
            if frames is not None:
                pool.append(PoolSequence(split, name, frames))
    return make_pool(pool, locked), records


def cut_clips(adapter, spec: SourceSpec, clips, records: dict[str, SequenceRecord], classes
              ) -> list[OutputSequence]:
    """Train output sequences of ``clips`` (sorted by sequence), reading each sequence not in ``records`` once.

    Raises:
        BuilderError: a clip frame is not in the sequence (a replayed build made from other raw data).
    """
    outputs = []
    last: SequenceRecord | None = None  # clips come sorted by sequence: keep one record read at a time
    for clip in clips:
        rec = records.get(clip.name)
        if rec is None:
            if last is None or last.name != clip.name:
                last = adapter.read_sequence(clip.split, clip.name)
            rec = last
        by_index = {f.index: f for f in rec.frames}
        missing = [i for i in clip.frames if i not in by_index]
        if missing:
            raise BuilderError(f"source {spec.name}: frames {missing[:5]} of {clip.split}/{clip.name} are not in "
                               f"the source at {adapter.root}" + (f" (replayed from build {spec.replay_from!r})"
                                                                  if spec.replay_from else ""))
        frames = tuple(by_index[i] for i in clip.frames)
        outputs.append(OutputSequence("train", f"{spec.name}__{clip.name}__{clip.frames[0]:07d}", spec.name, rec,
                                      frames, spec.frame_stride, sequence_digest(frames, classes)))
    return outputs


def check_frame_images(outputs: list[OutputSequence], source: str, warnings: WarningCounter) -> None:
    """Every frame to be linked must be an image with a readable header (:func:`check_image`); a header size
    other than the sequence's (its first image's) counts ``image_size_mismatch``.

    Raises:
        BuilderError: missing, empty or unreadable images (how many, and the first few with the reason).
    """
    missing = [str(f.image) for o in outputs for f in o.frames if not os.path.exists(f.image)]
    if missing:
        raise BuilderError(f"source {source}: {len(missing)} image file(s) missing, e.g. "
                           + ", ".join(missing[:_SHOW_MISSING]))
    bad = []
    for o in outputs:
        for f in o.frames:
            found = check_image(f.image)
            if isinstance(found, str):
                bad.append(f"{f.image}: {found}")
            elif o.record.width > 0 and found != (o.record.width, o.record.height):
                warnings.add("image_size_mismatch", f"{f.image}: {found[0]}x{found[1]}, sequence "
                             f"{o.record.width}x{o.record.height}")
    if bad:
        raise BuilderError(f"source {source}: {len(bad)} image file(s) cannot be read, e.g. "
                           + "; ".join(bad[:_SHOW_MISSING]) + " (re-download or remove them)")


def plan_source(spec: SourceSpec, recipe: Recipe, *, data_root: Path, build_root: Path,
                warnings: WarningCounter, check_images: bool = True, progress: bool = False) -> SourcePlan:
    """Plan one source: locked val/test sequences (complete) and budgeted train clips."""
    adapter, classmap_path = open_adapter(spec, recipe, data_root, warnings)
    locked_records, locked = check_locked(adapter, spec, recipe.classes, warnings)
    pool, records = read_pool(adapter, spec, set(locked_records), build_root, progress=progress, warnings=warnings)
    result = fill_budget(pool, budget=spec.frame_budget, clip_length=spec.clip_length, stride=spec.frame_stride,
                         seed=recipe.seed, source=spec.name, allow_partial=spec.allow_partial)
    if result.partial:
        warnings.add("budget_partial", f"{spec.name}: filled {result.filled} of {result.requested} frames")
    outputs = cut_clips(adapter, spec, result.clips, records, recipe.classes)
    del records  # free the pool's records before writing
    for split in ("val", "test"):
        for name in locked[split]:
            rec = locked_records[name]
            outputs.append(OutputSequence(split, f"{spec.name}__{name}", spec.name, rec, tuple(rec.frames),
                                          digest=locked["digests"][name]))
    if check_images:
        check_frame_images(outputs, spec.name, warnings)
    return SourcePlan(outputs, _source_info(spec, classmap_path, outputs, result), locked, result)


def _source_info(spec: SourceSpec, classmap_path: Path, outputs: list[OutputSequence], result: BudgetResult
                 ) -> dict[str, Any]:
    """The ``sources.<name>`` entry of build_manifest.json (paths as written in the recipe, not absolute).

    ``digest`` combines the content digests of every directory this source contributes (train clips
    and locked sequences); ``classmap_sha256`` is the class map file's sha256.
    """
    return {"root": spec.root, "classmap": spec.classmap or f"conf/classmaps/{spec.name}.toml",
            "classmap_sha256": sha256_file(classmap_path),
            "manifest": spec.manifest or f"manifests/{spec.name}.json",
            "digest": combine_digests((o.dirname, o.digest) for o in outputs), "replay_from": spec.replay_from,
            "budget": {"requested": result.requested, "filled": result.filled, "partial": result.partial,
                       "available_frames": result.available_frames,
                       "available_sequences": result.available_sequences,
                       "pool_sequences": result.pool_sequences, "clips": len(result.clips)}}


def build(recipe: Recipe | str | Path, *, data_root: str | Path | None = None,
          build_root: str | Path | None = None, seed: int | None = None, out_name: str | None = None,
          check_images: bool = True, progress: bool = False) -> Path:
    """Build ``recipe`` into ``build_root/<name>`` and return that directory.

    Args:
        recipe: a parsed recipe or the path of a recipe TOML.
        data_root: base of relative source roots (default ``$DATA_ROOT`` or ``data/raw``).
        build_root: where builds live (default ``$BUILD_ROOT`` or ``data/builds``); also where
            ``replay_from`` builds are looked up.
        seed: overrides the recipe's seed.
        out_name: overrides the recipe's name (the output directory).
        check_images: check that every linked frame exists (False only for label-only benchmarks).
        progress: show rich progress bars.

    Raises:
        BuilderError: any bad input (recipe, class map, manifest, labels, budget, missing or unreadable images),
            an ``out_name`` that is not a plain directory name or names the build a source replays from, or a
            file system that refused the write (a full disk).
        BuildLockedError: another process is building the same name (:mod:`builder.locks`).
    """
    recipe = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    if out_name is not None and not is_plain_name(out_name):
        raise BuilderError(f"build name {out_name!r} must be a plain directory name")
    if out_name and any(s.replay_from == out_name for s in recipe.sources):
        raise BuilderError(f"build name {out_name!r} is the build this recipe replays from; "
                           "writing it would replace the frames being replayed")
    if seed is not None or out_name:
        recipe = dataclasses.replace(recipe, seed=recipe.seed if seed is None else seed,
                                     name=out_name or recipe.name)
    data_root = Path(data_root) if data_root is not None else data_root_default()
    build_root = Path(build_root) if build_root is not None else build_root_default()
    build_root.mkdir(parents=True, exist_ok=True)
    with build_lock(build_root, recipe.name):  # a second build of this name fails now, not after planning
        return _build_locked(recipe, data_root, build_root, check_images=check_images, progress=progress)


def _build_locked(recipe: Recipe, data_root: Path, build_root: Path, *, check_images: bool, progress: bool) -> Path:
    warnings = WarningCounter()
    plans = {s.name: plan_source(s, recipe, data_root=data_root, build_root=build_root, warnings=warnings,
                                 check_images=check_images, progress=progress) for s in recipe.sources}
    manifest = {
        "recipe": {"name": recipe.name, "path": str(recipe.path) if recipe.path else None,
                   "digest": recipe.digest(), "parsed": recipe.to_dict()},
        "seed": recipe.seed,
        "sources": {n: p.info for n, p in plans.items()},
        "locked": {n: p.locked for n, p in plans.items()},
        "warnings": warnings.as_dict(),
        "warning_examples": {k: warnings.examples[k] for k in sorted(warnings.examples)},
        "builder_version": builder_version(),
    }
    plan = BuildPlan(recipe.name, recipe.classes, [o for p in plans.values() for o in p.outputs], manifest)
    return write_build(plan, build_root, progress=progress, locked=True)
