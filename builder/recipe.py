"""Build recipes: the TOML file that says what one stage's training mix is.

A recipe names the build, its seed and class list, and one ``[sources.<name>]`` table per raw source::

    name = "stage1"
    seed = 0
    classes = ["person", "vehicle"]

    [sources.bdd100k]
    root = "bdd100k"                  # relative to DATA_ROOT unless absolute
    classmap = "conf/classmaps/bdd100k.toml"   # optional; default: the source's shipped class map
    manifest = "manifests/bdd100k.json"        # optional; default: manifests/<source>.json
    pool_splits = ["train"]           # official splits the training pool draws from
    frame_budget = 5000               # annotated frames of training clips
    clip_length = 10                  # frames per clip
    frame_stride = 1                  # raw frames between consecutive clip frames
    allow_partial = false             # true: a budget larger than the pool takes the whole pool
    replay_from = "stage2"            # optional: draw only from that earlier build's train frames

Relative ``classmap`` and ``manifest`` paths resolve against the current working directory (the
project root when run through ``make``). Every key is checked: an unknown key or a wrong type is a
``BuilderError`` naming the recipe file, the key path and the valid keys.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from builder.errors import BuilderError
from builder.records import name_problem

#: Recipe top-level keys -> (expected Python type(s), required).
_TOP_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "name": ((str,), True),
    "seed": ((int,), True),
    "classes": ((list,), False),
    "description": ((str,), False),
    "sources": ((dict,), True),
}

#: ``[sources.<name>]`` keys -> (expected Python type(s), required).
_SOURCE_KEYS: dict[str, tuple[tuple[type, ...], bool]] = {
    "root": ((str,), True),
    "classmap": ((str,), False),
    "manifest": ((str,), False),
    "pool_splits": ((list,), False),
    "frame_budget": ((int,), True),
    "clip_length": ((int,), True),
    "frame_stride": ((int,), False),
    "allow_partial": ((bool,), False),
    "replay_from": ((str,), False),
}

DEFAULT_CLASSES: tuple[str, ...] = ("person", "vehicle")


@dataclass(frozen=True)
class SourceSpec:
    """One ``[sources.<name>]`` table of a recipe.

    Attributes:
        name: registered source adapter name (``bdd100k``, ``dancetrack``, ``mot17``, ``visdrone``).
        root: raw dataset root as written in the recipe (relative to DATA_ROOT unless absolute).
        classmap: class map TOML path, or None for the source's default (conf/classmaps/<source>.toml).
        manifest: locked split manifest path, or None for the project's ``manifests/<source>.json``.
        pool_splits: official splits the training pool draws from (locked sequences always leave it).
        frame_budget: exact number of annotated training frames to fill (>= 0).
        clip_length: frames per training clip (>= 1).
        frame_stride: raw frame step between consecutive frames of a clip (>= 1).
        allow_partial: when the pool is smaller than the budget, take the whole pool instead of failing.
        replay_from: name of an earlier build under BUILD_ROOT whose train frames of this source form
            the pool (replay), or None.
    """

    name: str
    root: str
    frame_budget: int
    clip_length: int
    classmap: str | None = None
    manifest: str | None = None
    pool_splits: tuple[str, ...] = ("train",)
    frame_stride: int = 1
    allow_partial: bool = False
    replay_from: str | None = None

    def root_path(self, data_root: Path) -> Path:
        """The raw root: ``root`` if absolute, else ``data_root / root``."""
        p = Path(self.root).expanduser()
        return p if p.is_absolute() else Path(data_root) / p

    def manifest_path(self) -> Path:
        """The manifest file: ``manifest`` if given, else the project's ``manifests/<source>.json``."""
        from builder.manifest import default_manifest_path

        return Path(self.manifest) if self.manifest else default_manifest_path(self.name)


@dataclass(frozen=True)
class Recipe:
    """A parsed, validated recipe (immutable).

    Attributes:
        name: build name, the directory name under BUILD_ROOT.
        seed: seed of every random draw of the build (clip sampling).
        classes: unified class names; class id = 1-based position.
        sources: one spec per source, sorted by source name (never by file or dict order).
        description: free text.
        path: the file it was read from (None when built in code); not part of ``digest()``.
    """

    name: str
    seed: int
    classes: tuple[str, ...]
    sources: tuple[SourceSpec, ...]
    description: str = ""
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """Canonical plain-dict form (JSON-serialisable, without ``path``)."""
        return {
            "name": self.name,
            "seed": self.seed,
            "classes": list(self.classes),
            "description": self.description,
            "sources": {s.name: {k: (list(v) if isinstance(v, tuple) else v)
                                 for k, v in asdict(s).items() if k != "name"}
                        for s in self.sources},
        }

    def digest(self) -> str:
        """sha256 hex digest of the canonical recipe (sorted-key JSON of ``to_dict()``)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def source(self, name: str) -> SourceSpec:
        """The spec of source ``name``; ``BuilderError`` listing the recipe's sources if absent."""
        for s in self.sources:
            if s.name == name:
                return s
        raise BuilderError(f"{self.path or self.name}: no source {name!r} "
                           f"(recipe sources: {', '.join(s.name for s in self.sources)})")


def _check_keys(table: dict, spec: dict[str, tuple[tuple[type, ...], bool]], where: str, prefix: str) -> None:
    valid = ", ".join(sorted(spec))
    for key, value in table.items():
        if key not in spec:
            raise BuilderError(f"{where}: unknown key '{prefix}{key}'; valid keys: {valid}")
        types, _ = spec[key]
        # bool is an int subclass: an int field must reject true/false.
        wrong_bool = isinstance(value, bool) and bool not in types
        if wrong_bool or not isinstance(value, types):
            raise BuilderError(f"{where}: key '{prefix}{key}' must be {' or '.join(t.__name__ for t in types)}, "
                               f"got {type(value).__name__} {value!r}")
    for key, (_, required) in spec.items():
        if required and key not in table:
            raise BuilderError(f"{where}: missing required key '{prefix}{key}'")


def is_plain_name(name: str) -> bool:
    """True for a single directory name that is not hidden: no ``/`` or ``\\``, not starting with ``.``, none
    of the characters :func:`builder.records.name_problem` rejects (whitespace, commas, control characters)."""
    return name_problem(name) is None and not name.startswith(".")


def _str_list(value: list, where: str, key: str) -> tuple[str, ...]:
    if not value or not all(isinstance(v, str) and v for v in value):
        raise BuilderError(f"{where}: key {key!r} must be a non-empty list of non-empty strings, got {value!r}")
    if len(set(value)) != len(value):
        raise BuilderError(f"{where}: key {key!r} has duplicates: {value!r}")
    return tuple(value)


def _parse_source(name: str, table: Any, where: str) -> SourceSpec:
    prefix = f"sources.{name}."
    if not isinstance(table, dict):
        raise BuilderError(f"{where}: 'sources.{name}' must be a table, got {type(table).__name__}")
    _check_keys(table, _SOURCE_KEYS, where, prefix)
    spec = SourceSpec(
        name=name,
        root=table["root"],
        frame_budget=table["frame_budget"],
        clip_length=table["clip_length"],
        classmap=table.get("classmap"),
        manifest=table.get("manifest"),
        pool_splits=_str_list(table.get("pool_splits", ["train"]), where, prefix + "pool_splits"),
        frame_stride=table.get("frame_stride", 1),
        allow_partial=table.get("allow_partial", False),
        replay_from=table.get("replay_from"),
    )
    if spec.replay_from is not None and not is_plain_name(spec.replay_from):
        raise BuilderError(f"{where}: key '{prefix}replay_from' must name a build directory under BUILD_ROOT "
                           f"(a plain name like \"stage2\"), got {spec.replay_from!r}")
    for key, low in (("frame_budget", 0), ("clip_length", 1), ("frame_stride", 1)):
        if getattr(spec, key) < low:
            raise BuilderError(f"{where}: key {prefix + key!r} must be >= {low}, got {getattr(spec, key)}")
    return spec


def parse_recipe(data: dict[str, Any], where: str = "<recipe>", path: Path | None = None) -> Recipe:
    """Validate a recipe already loaded as a dict (see the module docstring for the keys).

    Raises:
        BuilderError: unknown key, missing key, wrong type or out-of-range value; the message names
            ``where`` (the file), the dotted key path and the valid keys.
    """
    _check_keys(data, _TOP_KEYS, where, "")
    if not data["sources"]:
        raise BuilderError(f"{where}: 'sources' must name at least one source table")
    if not is_plain_name(data["name"]):
        raise BuilderError(f"{where}: key 'name' must be a plain directory name, got {data['name']!r}")
    sources = tuple(_parse_source(n, data["sources"][n], where) for n in sorted(data["sources"]))
    for s in sources:
        if s.replay_from == data["name"]:
            raise BuilderError(f"{where}: key 'sources.{s.name}.replay_from' names this recipe's own build "
                               f"{s.replay_from!r}; replay draws from an earlier stage's build")
    classes = _str_list(data.get("classes", list(DEFAULT_CLASSES)), where, "classes")
    reserved = sorted({"ignore", "drop"} & set(classes))
    if reserved:
        raise BuilderError(f"{where}: key 'classes' holds {reserved}: reserved class-map targets, not class names")
    return Recipe(
        name=data["name"],
        seed=data["seed"],
        classes=classes,
        sources=sources,
        description=data.get("description", ""),
        path=path,
    )


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe TOML file.

    Raises:
        BuilderError: missing file, a directory, bytes that are not UTF-8, TOML syntax error (with line and
            column) or any ``parse_recipe`` error.
    """
    path = Path(path)
    if path.is_dir():
        raise BuilderError(f"{path}: is a directory; expected a recipe TOML file (e.g. conf/curricula/stage1.toml)")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise BuilderError(f"{path}: recipe file not found") from exc
    except UnicodeDecodeError as exc:
        raise BuilderError(f"{path}: not UTF-8 text (byte {exc.start}); expected a recipe TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise BuilderError(f"{path}: invalid TOML: {exc}") from exc
    return parse_recipe(data, where=str(path), path=path)
