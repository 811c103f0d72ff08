"""Recipes: parsing, validation errors that name the key and the valid keys, digests, shipped curricula."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.errors import BuilderError
from builder.recipe import load_recipe, parse_recipe

REPO = Path(__file__).resolve().parents[1]


def _recipe(**source_overrides) -> dict:
    source = {"root": "dancetrack", "frame_budget": 10, "clip_length": 5} | source_overrides
    return {"name": "s", "seed": 0, "sources": {"dancetrack": source}}


def test_defaults_and_types():
    r = parse_recipe(_recipe())
    s = r.source("dancetrack")
    assert r.classes == ("person", "vehicle")
    assert (s.pool_splits, s.frame_stride, s.allow_partial, s.replay_from) == (("train",), 1, False, None)
    assert s.root_path(Path("/data")) == Path("/data/dancetrack")
    assert parse_recipe(_recipe(root="/abs/dt")).source("dancetrack").root_path(Path("/data")) == Path("/abs/dt")


def test_unknown_top_level_key_names_key_and_valid_keys(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('name = "s"\nseed = 0\nepochs = 3\n[sources.dancetrack]\nroot = "d"\n'
                    "frame_budget = 1\nclip_length = 1\n")
    with pytest.raises(BuilderError) as err:
        load_recipe(path)
    msg = str(err.value)
    assert str(path) in msg and "'epochs'" in msg
    for key in ("name", "seed", "classes", "sources"):
        assert key in msg


def test_unknown_source_key_names_path_and_valid_keys():
    with pytest.raises(BuilderError) as err:
        parse_recipe(_recipe(frame_budjet=3), where="stage9.toml")
    msg = str(err.value)
    assert "stage9.toml" in msg and "'sources.dancetrack.frame_budjet'" in msg
    for key in ("frame_budget", "clip_length", "frame_stride", "replay_from", "allow_partial", "pool_splits"):
        assert key in msg


@pytest.mark.parametrize(("override", "needle"), [
    ({"frame_budget": "5000"}, "must be int"),
    ({"frame_budget": True}, "must be int"),
    ({"allow_partial": 1}, "must be bool"),
    ({"frame_budget": -1}, ">= 0"),
    ({"clip_length": 0}, ">= 1"),
    ({"pool_splits": []}, "non-empty list"),
])
def test_wrong_types_and_ranges(override, needle):
    with pytest.raises(BuilderError, match=needle):
        parse_recipe(_recipe(**override))


def test_missing_key_and_bad_toml(tmp_path):
    with pytest.raises(BuilderError, match="missing required key 'sources.dancetrack.clip_length'"):
        parse_recipe({"name": "s", "seed": 0, "sources": {"dancetrack": {"root": "d", "frame_budget": 1}}})
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(BuilderError, match=r"bad\.toml: invalid TOML.*line 1"):
        load_recipe(bad)
    with pytest.raises(BuilderError, match="not found"):
        load_recipe(tmp_path / "nope.toml")


def test_digest_is_canonical():
    a = parse_recipe(_recipe())
    b = parse_recipe({"sources": {"dancetrack": {"clip_length": 5, "frame_budget": 10, "root": "dancetrack"}},
                      "seed": 0, "name": "s"})
    assert a.digest() == b.digest()
    assert a.digest() != parse_recipe(_recipe(frame_budget=11)).digest()


@pytest.mark.parametrize("folder", ["", "demo/"])
def test_shipped_curricula(folder):
    stages = {n: load_recipe(REPO / "conf" / "curricula" / f"{folder}stage{n}.toml") for n in (1, 2, 3)}
    for stage in stages.values():
        assert stage.classes == ("person", "vehicle")
    s1, s2, s3 = stages[1], stages[2], stages[3]
    assert {s.name for s in s1.sources} == {s.name for s in s2.sources} == {"bdd100k", "dancetrack"}
    for src in ("bdd100k", "dancetrack"):
        assert s2.source(src).frame_budget == 3 * s1.source(src).frame_budget
        assert s3.source(src).replay_from == s2.name
        assert s3.source(src).clip_length == s2.source(src).clip_length
        # 10k : 2k : 2k in the real curriculum: visdrone is 5x each replayed source
        assert s3.source("visdrone").frame_budget == 5 * s3.source(src).frame_budget
    if not folder:
        assert (s1.source("bdd100k").frame_budget, s1.source("dancetrack").frame_budget) == (5000, 5000)
        assert s3.source("visdrone").frame_budget == 10000


@pytest.mark.parametrize("value", ["../stage2", "a/b", ".hidden", ""])
def test_replay_from_must_be_a_plain_build_name(value):
    with pytest.raises(BuilderError, match="'sources.dancetrack.replay_from' must name a build directory"):
        parse_recipe(_recipe(replay_from=value))


def test_replay_from_its_own_build_is_an_error():
    with pytest.raises(BuilderError, match="replay_from' names this recipe's own build 's'"):
        parse_recipe(_recipe(replay_from="s"))


def test_reserved_class_names_are_a_recipe_error():
    with pytest.raises(BuilderError, match=r"stage9\.toml: key 'classes' holds \['ignore'\]: reserved"):
        parse_recipe(_recipe() | {"classes": ["person", "ignore"]}, where="stage9.toml")
