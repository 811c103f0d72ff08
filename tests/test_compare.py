"""train.review.compare on scripted run directories (tests/run_fixtures.py)."""

from __future__ import annotations

import json

import pytest
from run_fixtures import base_config, write_multirun, write_run

from train.errors import ReviewError
from train.review.compare import compare_runs, load_run, main
from train.review.runs import discover_runs

# Three sweep jobs: job 1 is best (60), job 0 second (55), job 2 crashed before validating.
JOBS = [
    {"val_hota": (40.0, 55.0, 52.0), "config": base_config(**{"optim.lr": 1e-4}),
     "overrides": ["optim.lr=1e-4"], "wall_time_s": 90.0},
    {"val_hota": (45.0, 58.0, 60.0), "config": base_config(**{"optim.lr": 3e-4, "data.batch_size": 4}),
     "overrides": ["optim.lr=3e-4", "data.batch_size=4"], "reason": "early_stopping", "wall_time_s": 80.0},
    {"val_hota": None, "config": base_config(**{"optim.lr": 1e-3}), "overrides": ["optim.lr=1e-3"],
     "reason": "non_finite_loss", "wall_time_s": 5.0},
]


@pytest.fixture()
def sweep(tmp_path):
    return write_multirun(tmp_path / "multirun", JOBS)


def test_ranks_sweep_and_names_differing_keys(sweep):
    result = compare_runs([sweep])
    assert [r.name for r in result.ranked] == ["1", "0", "2"]
    assert [r.value for r in result.ranked] == [60.0, 55.0, None]
    assert result.differing_keys == ["data.batch_size", "optim.lr"]
    sel = result.selection
    assert sel["winner"]["name"] == "1" and sel["winner"]["best_epoch"] == 2
    assert sel["margin"] == pytest.approx(60.0 - 55.0)
    assert sel["within_noise"] is False
    assert result.ranked[0].stopping_reason == "early_stopping"
    assert result.ranked[2].stopping_reason == "non_finite_loss"
    assert any("not found" in n for n in result.ranked[2].notes)  # missing metric: noted, ranked last


def test_writes_selection_files(sweep, tmp_path):
    out = tmp_path / "report"
    assert main([str(sweep), "--out", str(out)]) == 0
    data = json.loads((out / "best_model_selection.json").read_text())
    assert data["winner"]["name"] == "1"
    assert data["metric"] == "val/HOTA"
    assert data["differing_keys"] == ["data.batch_size", "optim.lr"]
    assert [r["name"] for r in data["ranking"]] == ["1", "0", "2"]
    assert data["ranking"][0]["hyperparameters"] == {"data.batch_size": 4, "optim.lr": 3e-4}
    md = (out / "best_model_selection.md").read_text()
    assert "**Winner: 1**" in md and "`optim.lr`" in md and "5.00 ahead of 0" in md


def test_margin_within_noise_is_flagged(tmp_path):
    a = write_run(tmp_path / "a", val_hota=(50.0, 50.6), config=base_config(seed=1))
    b = write_run(tmp_path / "b", val_hota=(50.0, 50.2), config=base_config(seed=2))
    result = compare_runs([b, a], noise=1.0)
    assert [r.name for r in result.ranked] == ["a", "b"]
    assert result.selection["margin"] == pytest.approx(50.6 - 50.2)
    assert result.selection["within_noise"] is True
    assert "noise" in result.selection["reason"]
    assert result.differing_keys == ["seed"]


def test_config_group_change_names_the_group_not_its_keys(tmp_path):
    tiny = base_config(**{"model.name": "tiny", "model.channels": 16, "optim.lr": 1e-3})
    big = base_config(**{"model.name": "fasterrcnn", "model.backbone": "resnet50", "optim.lr": 2e-4})
    a = write_run(tmp_path / "a", val_hota=(10.0,), config=tiny, choices={"model": "tiny", "optim": "adamw"})
    b = write_run(tmp_path / "b", val_hota=(20.0,), config=big,
                  choices={"model": "fasterrcnn_resnet50", "optim": "adamw"})
    result = compare_runs([a, b])
    assert result.differing_keys == ["model (group)", "optim.lr"]
    assert [r.hyperparameters["model (group)"] for r in result.ranked] == ["fasterrcnn_resnet50", "tiny"]


def test_named_metric_from_history_and_from_metrics_json(tmp_path):
    a = write_run(tmp_path / "a", val_hota=(50.0, 60.0), final_hota={"dancetrack": 40.0})
    b = write_run(tmp_path / "b", val_hota=(55.0, 58.0), final_hota={"dancetrack": 45.0})
    # IDF1 = HOTA + 5 in scripted histories; max over epochs.
    idf1 = compare_runs([a, b], metric="val/dancetrack/IDF1")
    assert [(r.name, r.value) for r in idf1.ranked] == [("a", 65.0), ("b", 63.0)]
    final = compare_runs([a, b], metric="dancetrack/HOTA")
    assert [(r.name, r.value) for r in final.ranked] == [("b", 45.0), ("a", 40.0)]
    assert final.ranked[0].source == "metrics.json combined"


def test_loss_is_minimised(tmp_path):
    # val/loss = 2/(epoch+1): the run with more epochs reaches the lower loss.
    a = write_run(tmp_path / "a", val_hota=(1.0, 2.0))
    b = write_run(tmp_path / "b", val_hota=(1.0, 2.0, 3.0, 4.0))
    result = compare_runs([a, b], metric="val/loss")
    assert [r.name for r in result.ranked] == ["b", "a"]
    assert result.ranked[0].value == pytest.approx(2.0 / 4)


def test_without_model_info_uses_history_max(tmp_path):
    run = write_run(tmp_path / "r", val_hota=(10.0, 30.0, 20.0), model_info=False)
    summary = load_run(run)
    assert (summary.value, summary.best_epoch) == (30.0, 1)
    assert summary.source == "training_history.json max"
    assert summary.wall_time_s == pytest.approx(3 * 12.5)  # sum of epoch_time_s


def test_stage_dir_skips_latest_symlink(tmp_path):
    run = write_run(tmp_path / "stage1" / "t1")
    (tmp_path / "stage1" / "latest").symlink_to(run)
    assert discover_runs([tmp_path / "stage1"]) == [run.resolve()]


def test_bad_inputs_are_clear_errors(tmp_path, capsys):
    with pytest.raises(ReviewError, match="not a directory"):
        discover_runs([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReviewError, match="no run directory found"):
        discover_runs([tmp_path / "empty"])
    write_run(tmp_path / "x", val_hota=None)
    assert main([str(tmp_path / "x")]) == 2
    assert "nothing to select" in capsys.readouterr().err


def test_runs_monitoring_different_metrics_are_flagged(tmp_path):
    a = write_run(tmp_path / "a", val_hota=(50.0, 60.0))
    b = write_run(tmp_path / "b", val_hota=(50.0, 55.0))
    info = json.loads((b / "model_info.json").read_text())
    info["best"]["metric"] = "val/dancetrack/HOTA"
    (b / "model_info.json").write_text(json.dumps(info))
    reason = compare_runs([a, b]).selection["reason"]
    assert "monitor different metrics (val/HOTA, val/dancetrack/HOTA)" in reason
    assert "different metrics" not in compare_runs([a, b], metric="val/HOTA").selection["reason"]


def _sweep_with_runs_root(tmp_path):
    runs_root = tmp_path / "runs"
    jobs = [{**job, "config": {**job["config"], "paths": {**job["config"]["paths"], "runs_root": str(runs_root)}}}
            for job in JOBS]
    return runs_root, write_multirun(runs_root / "multirun" / "stage1" / "t", jobs)


def test_promote_points_latest_at_the_winner(tmp_path):
    runs_root, sweep = _sweep_with_runs_root(tmp_path)
    for job_dir in sweep.iterdir():
        if job_dir.is_dir():
            (job_dir / "best_model.pth").write_bytes(b"weights")
    assert main([str(sweep), "--promote"]) == 0
    assert (runs_root / "stage1" / "latest").resolve() == (sweep / "1").resolve()


def test_promote_refuses_a_winner_without_weights_or_runs_root(tmp_path, sweep, capsys):
    runs_root, with_root = _sweep_with_runs_root(tmp_path)
    assert main([str(with_root), "--promote"]) == 2
    assert "without best_model.pth" in capsys.readouterr().err
    assert main([str(sweep), "--promote"]) == 2  # scripted config without paths.runs_root
    assert "expected paths.runs_root and stage.index" in capsys.readouterr().err
    assert not (runs_root / "stage1" / "latest").exists()
