"""The regression gate on metrics.json without sequence statistics: before / after / delta rows, and verdicts that
then follow the tolerance alone (the intervals are tested in test_bootstrap.py)."""

from __future__ import annotations

import pytest

from train.errors import ConfigError, EvaluationError
from train.regression.gate import FORGETTING, GAINED, GATE_METRICS, WITHIN_NOISE, compare, verdict
from train.regression.render import render_markdown, render_rich


def metrics(**sets: dict[str, float]) -> dict:
    """metrics.json with, per val set, per-class HOTA values (other gate metrics = HOTA + 1)."""
    out = {}
    for vs, per_class in sets.items():
        pc = {c: {m: h + (m != "HOTA") for m in GATE_METRICS} for c, h in per_class.items()}
        comb = {m: sum(v[m] for v in pc.values()) / len(pc) for m in GATE_METRICS}
        out[vs] = {"combined": comb, "per_class": pc}
    return {"stage": 1, "val_sets": out}


def test_baseline_when_no_previous_stage():
    reg = compare(None, metrics(dancetrack={"person": 50.0}), tolerance=1.0)
    assert reg.baseline and reg.passed
    assert all(r.before is None and r.delta is None for r in reg.rows)
    assert len(reg.rows) == 2 * len(GATE_METRICS)  # person + combined
    assert "Baseline" in render_markdown(reg)


def test_drop_beyond_tolerance_is_forgetting_and_within_is_not():
    before = metrics(dancetrack={"person": 60.0}, bdd100k={"person": 40.0, "vehicle": 50.0})
    after = metrics(dancetrack={"person": 60.0 - 1.5}, bdd100k={"person": 40.0 - 0.9, "vehicle": 55.0})
    reg = compare(before, after, tolerance=1.0)
    assert [(r.val_set, r.cls, r.delta) for r in reg.forgetting] == [("dancetrack", "person", pytest.approx(-1.5))]
    assert not reg.passed
    row = next(r for r in reg.rows if (r.val_set, r.cls, r.metric) == ("bdd100k", "vehicle", "HOTA"))
    assert (row.before, row.after, row.delta, row.verdict) == (50.0, 55.0, pytest.approx(5.0), GAINED)
    md = render_markdown(reg)
    assert "**FORGETTING**: dancetrack / person: HOTA -1.50 points" in md
    assert f"| bdd100k | person | HOTA | 40.00 | 39.10 | -0.90 | - | {WITHIN_NOISE} |" in md
    assert compare(before, after, tolerance=2.0).passed


def test_new_and_missing_val_sets():
    before = metrics(dancetrack={"person": 60.0}, mot17={"person": 30.0})
    after = metrics(dancetrack={"person": 61.0}, visdrone={"person": 10.0, "vehicle": 20.0})
    reg = compare(before, after, tolerance=1.0)
    assert reg.passed and reg.missing == ["mot17"]
    new = [r for r in reg.rows if r.val_set == "visdrone"]
    assert new and all(r.before is None for r in new)
    assert "WARNING" in render_markdown(reg)
    assert reg.to_dict()["missing"] == ["mot17"]


def test_render_rich_and_bad_input():
    from rich.console import Console

    reg = compare(metrics(d={"person": 60.0}), metrics(d={"person": 50.0}), tolerance=1.0)
    console = Console(width=200, record=True)
    console.print(render_rich(reg))
    assert "FORGETTING" in console.export_text()
    with pytest.raises(ConfigError, match="regression.tolerance must be >= 0"):
        compare(None, metrics(d={"person": 1.0}), tolerance=-1)
    with pytest.raises(EvaluationError, match="val_sets"):
        compare(None, {}, tolerance=1.0)


def test_cli_exit_status(tmp_path, capsys):
    import json

    from train.regression.__main__ import main

    (tmp_path / "a.json").write_text(json.dumps(metrics(d={"person": 60.0})))
    (tmp_path / "b.json").write_text(json.dumps(metrics(d={"person": 55.0})))
    assert main([str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    assert main([str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--fail", "--markdown",
                 str(tmp_path / "r.md")]) == 1
    assert "FORGETTING" in (tmp_path / "r.md").read_text()
    assert main(["-", str(tmp_path / "b.json"), "--fail"]) == 0
    assert main([str(tmp_path / "missing.json"), str(tmp_path / "b.json")]) == 2


def test_a_drop_equal_to_the_tolerance_is_not_forgetting_despite_float_rounding():
    assert 15.1 - 16.1 < -1.0  # binary floating point: the naive comparison would flag it
    reg = compare(metrics(d={"person": 16.1}), metrics(d={"person": 15.1}), tolerance=1.0)
    assert reg.passed and verdict(15.1 - 16.1, None, 1.0) == WITHIN_NOISE
    assert f"| d | person | HOTA | 16.10 | 15.10 | -1.00 | - | {WITHIN_NOISE} |" in render_markdown(reg)
    assert verdict(-1.01, None, 1.0) == FORGETTING and verdict(None, None, 1.0) == ""
    assert verdict(0.5, None, 0.0) == GAINED


def test_cli_names_the_file_of_malformed_metrics(tmp_path, capsys):
    import json

    from train.regression.__main__ import main

    good = tmp_path / "good.json"
    good.write_text(json.dumps(metrics(d={"person": 60.0})))
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "broken.json").write_text('{"val_sets": \n oops')
    (tmp_path / "shape.json").write_text(json.dumps({"val_sets": {"d": {"per_class": {"person": 3}}}}))
    for name, msg in (("list.json", "list.json: expected a JSON object with a 'val_sets'"),
                      ("broken.json", "broken.json:2:2: malformed JSON"),
                      ("shape.json", "shape.json: val_sets.d.per_class.person must be an object")):
        assert main([str(good), str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.startswith("error: ") and len(err.splitlines()) == 1
        assert main([str(tmp_path / name), str(good)]) == 2
        assert msg in capsys.readouterr().err
