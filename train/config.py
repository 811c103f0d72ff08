"""The Hydra config tree (conf/) seen from outside a Hydra app: composing it, checking overrides, flattening.

Every default a tool needs (the regression tolerance, the tracker's parameters) is read from this tree, so it is
defined once, in conf/, whatever command uses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from train.errors import ConfigError

#: The config tree of the project (conf/ at the repository root).
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
#: The primary config of stage training.
PRIMARY = "train"


def compose(overrides: Sequence[str] = (), *, config_name: str = PRIMARY) -> DictConfig:
    """The config ``python -m train <overrides>`` would run with (Hydra's compose API; ``hydra.*`` and
    ``${hydra:...}`` interpolations are not available).

    Raises:
        ConfigError: an override names an unknown key, group or option, or does not parse (Hydra's message,
            one line).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError) as exc:  # ValueError: e.g. model=3 (not a name)
        cause = f"\n{exc.__cause__}" if exc.__cause__ is not None else ""
        raise ConfigError(one_line(f"{exc}{cause}")) from None


def one_line(text: str) -> str:
    """A multi-line library message as one line (parts joined with ``; ``)."""
    return "; ".join(p.strip() for p in text.strip().splitlines() if p.strip())


def merge_dotlist(schema: type, pairs: Sequence[str], *, where: str) -> dict[str, Any]:
    """The fields of the dataclass ``schema`` (defaults) with ``KEY=VALUE`` overrides applied by OmegaConf:
    values are parsed as YAML and checked against the field types (``0.6`` for a float, ``true`` for a bool);
    a key the schema does not have is an error.

    Args:
        where: what the keys belong to, for messages (``"--tracker"``).

    Raises:
        ConfigError: a pair without ``=``, an unknown key or a value of the wrong type (names the key and lists
            the valid keys).
    """
    bad = [p for p in pairs if "=" not in p]
    if bad:
        raise ConfigError(f"{where} override(s) {bad}: expected KEY=VALUE")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.from_dotlist(list(pairs)))
    except OmegaConfBaseException as exc:
        valid = sorted(schema.__dataclass_fields__)
        raise ConfigError(f"{where}: {one_line(str(exc))}; valid keys: {valid}") from None
    return OmegaConf.to_container(merged, resolve=True)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{"optim.lr": 2e-5, ...}``; lists and empty mappings stay leaves (so they compare
    as a whole)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def regression_defaults() -> dict[str, Any]:
    """The ``regression`` section of conf/train.yaml (tolerance, fail, bootstrap): the gate's defaults where a
    run recorded none."""
    return OmegaConf.to_container(OmegaConf.load(CONF_DIR / f"{PRIMARY}.yaml").regression, resolve=True)


def default_tolerance() -> float:
    """``regression.tolerance`` of conf/train.yaml (HOTA points)."""
    return float(regression_defaults()["tolerance"])
