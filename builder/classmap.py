"""Class maps: raw source categories -> unified class ids, ignore regions or dropped boxes.

A class map is a TOML file, ``conf/classmaps/<source>.toml``, read together with the recipe's class list
(e.g. ``["person", "vehicle"]``). Its format::

    description = "free text (optional)"

    [categories]            # every raw category the source may contain, as a string key
    "pedestrian" = "person" # -> a name from the class list: a positive of that unified class
    "bicycle" = "ignore"    # -> an ignore region (neither positive nor negative, see docs/CONTRACTS.md)
    "other" = "drop"        # -> removed, as if it were not annotated

    [[rules]]               # optional overrides, checked in file order; the first rule that matches wins
    attribute = "crowd"     # a per-box attribute the source adapter provides (see its ``attributes``)
    equals = true           # the box matches when attribute == equals (bool, number or string)
    categories = ["car"]    # optional: only boxes of these raw categories (default: every category)
    target = "ignore"       # a class name, "ignore" or "drop"

Resolved targets are integers: the 1-based position of the class in the class list (person = 1, vehicle = 2
with the default list), :data:`IGNORE` (0) for an ignore region and :data:`DROP` (-1) for a dropped box.

Errors (all :class:`builder.records.BuilderError`): a TOML syntax error (file and line), an unknown key (file
and key, with the valid keys), a target that is neither in the class list nor ``ignore``/``drop`` (file and
key, with the valid targets), and, while labels are read, a raw category that the map does not list (the
label file, the line where the format has lines, and the category; see :meth:`ClassMap.resolve`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from builder.errors import BuilderError
from builder.records import IGNORE

#: Resolved target of a box that is removed (the class map says ``drop``).
DROP = -1

_TOP_KEYS = ("description", "categories", "rules")
_RULE_KEYS = ("attribute", "equals", "categories", "target")
_RULE_REQUIRED = ("attribute", "equals", "target")


def default_classmap_path(source: str) -> Path:
    """Path of the class map shipped with the project for ``source``: ``<repo>/conf/classmaps/<source>.toml``.

    The file is not required to exist; :meth:`ClassMap.load` reports a missing one.
    """
    return Path(__file__).resolve().parents[1] / "conf" / "classmaps" / f"{source}.toml"


@dataclass(frozen=True)
class Rule:
    """One attribute override of a class map (see the module docstring for the TOML form).

    Attributes:
        attribute: name of a per-box attribute provided by the source adapter (e.g. ``crowd``, ``conf``).
        equals: the value that makes a box match (compared with ``==`` after the adapter's parsing:
            booleans for JSON flags, floats for text columns).
        categories: raw categories the rule applies to; ``None`` for all of them.
        target: resolved target (unified class id, ``IGNORE`` or ``DROP``).
    """

    attribute: str
    equals: bool | int | float | str
    categories: frozenset[str] | None
    target: int


@dataclass(frozen=True)
class ClassMap:
    """A loaded class map bound to a class list.

    Attributes:
        path: the TOML file it was read from (named in every error).
        classes: the unified class names; class id ``k`` is ``classes[k - 1]``.
        categories: raw category (string) -> target (1-based class id, ``IGNORE`` = 0 or ``DROP`` = -1).
        rules: attribute overrides, in file order (first match wins).
    """

    path: Path
    classes: tuple[str, ...]
    categories: Mapping[str, int]
    rules: tuple[Rule, ...] = ()

    @classmethod
    def load(cls, path: str | Path, classes: Sequence[str]) -> ClassMap:
        """Read and validate ``path`` against ``classes`` (the unified class list, in id order).

        Raises:
            BuilderError: missing file, TOML syntax error (with line), unknown key, wrong value type, or a
                target outside ``classes`` + ``ignore``/``drop``; the message names the file and the key.
        """
        path = Path(path)
        classes = tuple(classes)
        _check_classes(classes, path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BuilderError(f"{path}: class map not found") from None
        except tomllib.TOMLDecodeError as err:
            raise BuilderError(f"{path}: invalid TOML: {err}") from None
        _check_keys(data, _TOP_KEYS, path, "")
        raw = data.get("categories")
        if not isinstance(raw, dict) or not raw:
            raise BuilderError(f"{path}: expected a non-empty [categories] table (raw category = target)")
        targets = {name: i + 1 for i, name in enumerate(classes)} | {"ignore": IGNORE, "drop": DROP}
        categories = {str(k): _target(v, targets, path, f"categories.{k}") for k, v in raw.items()}
        rules = data.get("rules", [])
        if not isinstance(rules, list):
            raise BuilderError(f"{path}: key 'rules' must be an array of tables ([[rules]])")
        parsed = tuple(_rule(r, i, targets, categories, path) for i, r in enumerate(rules))
        return cls(path=path, classes=classes, categories=categories, rules=parsed)

    @property
    def rule_attributes(self) -> set[str]:
        """Names of the per-box attributes the rules read (an adapter must provide each of them)."""
        return {r.attribute for r in self.rules}

    def resolve(self, category: str, where: str) -> int:
        """Target of one raw category: class id (1-based), ``IGNORE`` (0) or ``DROP`` (-1).

        Args:
            category: raw category as a string (text formats pass the integer column as ``"3"``).
            where: the label file and position (``path:line``) to name if the category is unknown.

        Raises:
            BuilderError: ``category`` is not listed in the class map.
        """
        try:
            return self.categories[category]
        except KeyError:
            known = ", ".join(sorted(self.categories))
            raise BuilderError(f"{where}: unknown raw category {category!r}, not in class map {self.path} "
                               f"(known: {known})") from None

    def apply_rules(self, targets: np.ndarray, categories: np.ndarray,
                    attributes: Mapping[str, np.ndarray]) -> np.ndarray:
        """Apply the attribute rules to already resolved targets, vectorised over the boxes of a sequence.

        Args:
            targets: (N,) int16 targets from :meth:`resolve`.
            categories: (N,) raw categories as strings (``dtype=str`` or object), same order.
            attributes: attribute name -> (N,) array of its per-box values.

        Returns:
            (N,) int16 new targets: the first matching rule's target where one matches, else ``targets``.
        """
        out = targets.copy()
        decided = np.zeros(targets.shape, bool)
        for rule in self.rules:
            match = np.asarray(attributes[rule.attribute] == rule.equals, bool) & ~decided
            if rule.categories is not None:
                match &= np.isin(categories, list(rule.categories))
            out[match] = rule.target
            decided |= match
        return out


def _check_classes(classes: tuple[str, ...], path: Path) -> None:
    if not classes or len(set(classes)) != len(classes):
        raise BuilderError(f"{path}: class list {list(classes)} must be non-empty without duplicates")
    reserved = {"ignore", "drop"} & set(classes)
    if reserved:
        raise BuilderError(f"{path}: {sorted(reserved)} are reserved targets, not class names")


def _check_keys(table: dict, valid: Sequence[str], path: Path, prefix: str) -> None:
    for key in table:
        if key not in valid:
            raise BuilderError(f"{path}: unknown key '{prefix}{key}' (valid keys: {', '.join(valid)})")


def _target(value: object, targets: Mapping[str, int], path: Path, key: str) -> int:
    if not isinstance(value, str) or value not in targets:
        valid = ", ".join(targets)
        raise BuilderError(f"{path}: key {key!r} has target {value!r}, expected one of: {valid}")
    return targets[value]


def _rule(table: object, index: int, targets: Mapping[str, int], known: Mapping[str, int], path: Path) -> Rule:
    where = f"rules[{index}]"
    if not isinstance(table, dict):
        raise BuilderError(f"{path}: {where} must be a table ([[rules]])")
    _check_keys(table, _RULE_KEYS, path, f"{where}.")
    for key in _RULE_REQUIRED:
        if key not in table:
            raise BuilderError(f"{path}: {where} lacks key {key!r} (required: {', '.join(_RULE_REQUIRED)})")
    if not isinstance(table["attribute"], str):
        raise BuilderError(f"{path}: {where}.attribute must be a string")
    if not isinstance(table["equals"], bool | int | float | str):
        raise BuilderError(f"{path}: {where}.equals must be a boolean, number or string")
    cats = table.get("categories")
    if cats is not None and (not isinstance(cats, list) or not cats):
        raise BuilderError(f"{path}: {where}.categories must be a non-empty list of raw categories")
    unknown = sorted(str(c) for c in cats or () if str(c) not in known)
    if unknown:
        raise BuilderError(f"{path}: {where}.categories names {unknown}, not listed in [categories]")
    return Rule(attribute=table["attribute"], equals=table["equals"],
                categories=None if cats is None else frozenset(str(c) for c in cats),
                target=_target(table["target"], targets, path, f"{where}.target"))
