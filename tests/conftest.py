"""Shared pytest fixtures: tiny synthetic raw data and the tiny three-stage curriculum built from it.

Fixtures (session-scoped, built once per test process, in seconds; treat their files as read-only):

- ``tiny_raw``: ``write_synth(tmp, scale="tiny", seed=0)``; a Path whose children are ``bdd100k``,
  ``dancetrack``, ``visdrone`` and ``mot17`` raw roots.
- ``tiny_curriculum``: ``make_tiny_curriculum(tiny_raw, tmp)``, the recipe paths {1, 2, 3}.
- ``tiny_builds``: {1: Path, 2: Path, 3: Path}, the builds of those recipes (stage 3 replays stage 2).

``make_tiny_curriculum`` is importable (``from conftest import make_tiny_curriculum``) for tests that
need their own copy, e.g. to build with another seed.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from builder.build import build
from builder.classmap import ClassMap, default_classmap_path
from builder.manifest import lock_manifest
from builder.records import WarningCounter
from builder.sources import get_source
from builder.synth import write_synth

REPO = Path(__file__).resolve().parents[1]
REALDATA = REPO.parent / "shared" / "realdata"
CLASSES = ("person", "vehicle")
#: Tiny budgets = demo budgets x 0.12 (demo dancetrack pool 400 frames of clips -> tiny pool 48 = 4 x 12),
#: so stage 2 stays exactly 3x stage 1 (12 -> 36) and stage 3's replay fits in stage 2 (5 <= 36).
TINY_BUDGET_FACTOR = 0.12
#: Clips of 4 frames: 3 clips per 12-frame tiny sequence.
TINY_CLIP_LENGTH = 4
#: Locked val/test sequences per source, from the 4 tiny val sequences.
TINY_LOCK = (2, 2)


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def write_recipe(path: Path, data: dict) -> Path:
    """Write a recipe dict (top-level scalars + ``sources`` tables) as TOML; returns ``path``."""
    lines = [f"{k} = {_toml(v)}" for k, v in data.items() if k != "sources"]
    for name, table in data["sources"].items():
        lines += ["", f"[sources.{name}]"] + [f"{k} = {_toml(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def lock_tiny(raw_root: Path, manifest_dir: Path, source: str) -> Path:
    """Lock ``TINY_LOCK`` val/test sequences of ``raw_root/source`` into ``manifest_dir/<source>.json``."""
    classmap = ClassMap.load(default_classmap_path(source), CLASSES)
    adapter = get_source(source)(raw_root / source, classmap, WarningCounter())
    path = manifest_dir / f"{source}.json"
    lock_manifest(adapter, path, source=source, classes=CLASSES, n_val=TINY_LOCK[0], n_test=TINY_LOCK[1], seed=0)
    return path


def make_tiny_curriculum(raw_root: Path, out_dir: Path) -> dict[int, Path]:
    """Tiny recipes of the three demo stages for synth ``tiny`` data at ``raw_root``.

    Reads conf/curricula/demo/stage{1,2,3}.toml, scales every frame budget by ``TINY_BUDGET_FACTOR``,
    sets clip length ``TINY_CLIP_LENGTH``, absolute roots under ``raw_root``, manifests locked (with
    ``lock``) into ``out_dir/manifests``, and names ``tiny_stage{N}`` (replay from ``tiny_stage2``).

    Returns:
        {stage number: recipe path} under ``out_dir``.
    """
    out_dir = Path(out_dir)
    (out_dir / "manifests").mkdir(parents=True, exist_ok=True)
    recipes = {}
    for stage in (1, 2, 3):
        data = tomllib.loads((REPO / "conf" / "curricula" / "demo" / f"stage{stage}.toml").read_text())
        data["name"] = f"tiny_stage{stage}"
        for source, table in data["sources"].items():
            manifest = out_dir / "manifests" / f"{source}.json"
            if not manifest.exists():
                lock_tiny(Path(raw_root), out_dir / "manifests", source)
            table.update(root=str(Path(raw_root) / source), manifest=str(manifest),
                         clip_length=TINY_CLIP_LENGTH,
                         frame_budget=round(table["frame_budget"] * TINY_BUDGET_FACTOR))
            if "replay_from" in table:
                table["replay_from"] = "tiny_stage2"
        recipes[stage] = write_recipe(out_dir / f"tiny_stage{stage}.toml", data)
    return recipes


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic raw sources at the ``tiny`` scale, seed 0 (bdd100k, dancetrack, visdrone, mot17)."""
    out = tmp_path_factory.mktemp("tiny_raw")
    write_synth(out, scale="tiny", seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_curriculum(tiny_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Recipe paths {1, 2, 3} of the tiny curriculum (see ``make_tiny_curriculum``)."""
    return make_tiny_curriculum(tiny_raw, tmp_path_factory.mktemp("tiny_curriculum"))


@pytest.fixture(scope="session")
def tiny_builds(tiny_curriculum: dict[int, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Builds {1: Path, 2: Path, 3: Path} of the tiny curriculum (stage 3 replays stage 2)."""
    build_root = tmp_path_factory.mktemp("tiny_builds")
    return {stage: build(tiny_curriculum[stage], build_root=build_root) for stage in (1, 2, 3)}
