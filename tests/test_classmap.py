"""Class maps: the shipped defaults resolve as issue 2 specifies; bad maps fail naming the file and key."""

from pathlib import Path

import numpy as np
import pytest

from builder.classmap import DROP, ClassMap, default_classmap_path
from builder.errors import BuilderError
from builder.records import IGNORE

CLASSES = ("person", "vehicle")
PERSON, VEHICLE = 1, 2  # 1-based positions in CLASSES


def load_default(source: str) -> ClassMap:
    return ClassMap.load(default_classmap_path(source), CLASSES)


def write_map(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "map.toml"
    path.write_text(text)
    return path


def test_default_path_is_in_repo_conf():
    path = default_classmap_path("mot17")
    assert path == Path(__file__).resolve().parents[1] / "conf" / "classmaps" / "mot17.toml"
    assert path.is_file()


@pytest.mark.parametrize("source", ["bdd100k", "dancetrack", "mot17", "visdrone"])
def test_every_default_map_loads(source):
    cmap = load_default(source)
    assert cmap.classes == CLASSES
    assert set(cmap.categories.values()) <= {PERSON, VEHICLE, IGNORE, DROP}


def test_bdd100k_defaults():
    cmap = load_default("bdd100k")
    expected = {"pedestrian": PERSON, "rider": PERSON, "car": VEHICLE, "truck": VEHICLE, "bus": VEHICLE,
                "train": VEHICLE, "bicycle": IGNORE, "motorcycle": IGNORE, "other person": IGNORE,
                "other vehicle": IGNORE, "trailer": IGNORE}
    assert dict(cmap.categories) == expected
    # crowd = true turns any category into an ignore region
    targets = np.array([PERSON, VEHICLE, VEHICLE], np.int16)
    cats = np.array(["pedestrian", "car", "car"], dtype=object)
    crowd = np.array([True, False, True], dtype=object)
    out = cmap.apply_rules(targets, cats, {"crowd": crowd})
    assert out.tolist() == [IGNORE, VEHICLE, IGNORE]


def test_dancetrack_defaults():
    assert dict(load_default("dancetrack").categories) == {"1": PERSON}


def test_mot17_defaults():
    cmap = load_default("mot17")
    assert cmap.categories["1"] == PERSON
    assert {k for k, v in cmap.categories.items() if v == IGNORE} == {"2", "7", "8", "12"}
    assert all(v == DROP for k, v in cmap.categories.items() if k not in {"1", "2", "7", "8", "12"})
    # conf 0 pedestrians become ignore regions; conf 0 on other classes leaves them as mapped
    targets = np.array([PERSON, PERSON, DROP], np.int16)
    cats = np.array(["1", "1", "3"])
    out = cmap.apply_rules(targets, cats, {"conf": np.array([1.0, 0.0, 0.0])})
    assert out.tolist() == [PERSON, IGNORE, DROP]


def test_visdrone_defaults():
    cmap = load_default("visdrone")
    expected = {0: IGNORE, 1: PERSON, 2: PERSON, 3: IGNORE, 4: VEHICLE, 5: VEHICLE, 6: VEHICLE, 7: IGNORE,
                8: IGNORE, 9: VEHICLE, 10: IGNORE, 11: IGNORE}
    assert dict(cmap.categories) == {str(k): v for k, v in expected.items()}
    out = cmap.apply_rules(np.array([VEHICLE, VEHICLE], np.int16), np.array(["4", "4"]),
                           {"score": np.array([1.0, 0.0])})
    assert out.tolist() == [VEHICLE, IGNORE]


def test_ids_follow_class_list_order(tmp_path):
    cmap = ClassMap.load(default_classmap_path("visdrone"), ["vehicle", "person"])
    assert cmap.categories["4"] == 1 and cmap.categories["1"] == 2


def test_first_matching_rule_wins(tmp_path):
    path = write_map(tmp_path, """
[categories]
a = "person"
[[rules]]
attribute = "x"
equals = 1
target = "drop"
[[rules]]
attribute = "x"
equals = 1
target = "ignore"
""")
    cmap = ClassMap.load(path, CLASSES)
    out = cmap.apply_rules(np.array([PERSON, PERSON], np.int16), np.array(["a", "a"]), {"x": np.array([1, 0])})
    assert out.tolist() == [DROP, PERSON]


def test_resolve_unknown_category_names_file_and_category():
    cmap = load_default("mot17")
    with pytest.raises(BuilderError, match=r"gt\.txt:7: unknown raw category '99'"):
        cmap.resolve("99", "gt.txt:7")


@pytest.mark.parametrize(("text", "pattern"), [
    ('[categories]\ncar = "truckk"\n', r"map\.toml: key 'categories\.car' has target 'truckk', expected one of"),
    ('colour = 1\n[categories]\ncar = "vehicle"\n', r"map\.toml: unknown key 'colour' \(valid keys:"),
    ('[categories]\n', r"map\.toml: expected a non-empty \[categories\] table"),
    ('[categories]\ncar = "vehicle"\n[[rules]]\nattribute = "crowd"\nequals = true\ntarget = "ignore"\n'
     'when = 1\n', r"map\.toml: unknown key 'rules\[0\]\.when'"),
    ('[categories]\ncar = "vehicle"\n[[rules]]\nattribute = "crowd"\ntarget = "ignore"\n',
     r"map\.toml: rules\[0\] lacks key 'equals'"),
    ('[categories]\ncar = "vehicle"\n[[rules]]\nattribute = "crowd"\nequals = true\ntarget = "bike"\n',
     r"map\.toml: key 'rules\[0\]\.target' has target 'bike'"),
    ('[categories]\ncar = "vehicle"\n[[rules]]\nattribute = "crowd"\nequals = true\ncategories = ["bus"]\n'
     'target = "ignore"\n', r"map\.toml: rules\[0\]\.categories names \['bus'\], not listed"),
    ('[categories\ncar = "vehicle"\n', r"map\.toml: invalid TOML: .*line 1"),
])
def test_bad_class_map_names_file_and_key(tmp_path, text, pattern):
    with pytest.raises(BuilderError, match=pattern):
        ClassMap.load(write_map(tmp_path, text), CLASSES)


def test_missing_file(tmp_path):
    with pytest.raises(BuilderError, match="class map not found"):
        ClassMap.load(tmp_path / "nope.toml", CLASSES)


@pytest.mark.parametrize("classes", [[], ["person", "person"], ["person", "ignore"]])
def test_bad_class_list(classes):
    with pytest.raises(BuilderError, match="mot17.toml"):
        ClassMap.load(default_classmap_path("mot17"), classes)
