"""stopping_reason.txt for every reason, written even when the run dies, with last.ckpt kept."""

from __future__ import annotations

import signal

import pytest
import torch
from train_helpers import compose_stage

from train.errors import NonFiniteLossError
from train.stage.app import run_stage
from train.stage.records import REASONS, StopInfo, classify_exception, render_stopping_reason

torch.set_num_threads(1)
COMMON = ("init_from=null", "trainer.max_epochs=2", "trainer.limit_train_batches=1")


def _fault(what: str, epoch: int = 1) -> str:
    return f"+callbacks.fault={{_target_: train_helpers.raise_at_callback, what: {what}, epoch: {epoch}}}"


def _reason(run) -> list[str]:
    return (run / "stopping_reason.txt").read_text().splitlines()


@pytest.fixture()
def restore_sigint():
    yield
    signal.signal(signal.SIGINT, signal.default_int_handler)


def test_max_epochs(tiny_builds, tmp_path):
    run_stage(compose_stage(1, tiny_builds[1].parent, tmp_path, *COMMON))
    lines = _reason(tmp_path / "stage1" / "run")
    assert lines[0] == "reason: max_epochs" and "epochs completed: 2" in lines
    assert any(line.startswith("recommendation: ") for line in lines)
    assert "  optim.lr: 0.002" in lines  # hyperparameters listed


def test_early_stopping_names_metric_patience_and_epochs_without_improvement(tiny_builds, tmp_path):
    # min_delta huge: only the first validation counts as an improvement, so patience 1 stops at epoch 1
    run_stage(compose_stage(1, tiny_builds[1].parent, tmp_path, *COMMON, "trainer.max_epochs=5",
                        "callbacks.early_stopping.patience=1", "callbacks.early_stopping.min_delta=1000000"))
    lines = _reason(tmp_path / "stage1" / "run")
    assert lines[0] == "reason: early_stopping"
    assert "early stopping on val/loss" in lines[1] and "for 1 validation epochs (patience 1)" in lines[1]
    assert "epochs completed: 2" in lines and "plateau" in "\n".join(lines)


def test_non_finite_loss_keeps_last_ckpt_of_the_last_good_epoch(tiny_builds, tmp_path):
    with pytest.raises(NonFiniteLossError):
        run_stage(compose_stage(1, tiny_builds[1].parent, tmp_path, *COMMON, _fault("poison")))
    run = tmp_path / "stage1" / "run"
    lines = _reason(run)
    assert lines[0] == "reason: non_finite_loss" and "NonFiniteLossError" in lines[1]
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 0 and all(torch.isfinite(v).all() for v in last["state_dict"].values())
    assert not (tmp_path / "stage1" / "latest").exists()


@pytest.mark.parametrize(("what", "reason", "exc"), [
    ("KeyboardInterrupt", "interrupted", SystemExit),
    ("sigterm", "interrupted", SystemExit),
    ("oom", "out_of_memory", torch.OutOfMemoryError),
    ("error", "error", RuntimeError),
])
def test_dying_runs_write_their_reason_and_keep_last_ckpt(what, reason, exc, tiny_builds, tmp_path, restore_sigint):
    with pytest.raises(exc):
        run_stage(compose_stage(1, tiny_builds[1].parent, tmp_path, *COMMON, _fault(what, epoch=0)))
    run = tmp_path / "stage1" / "run"
    text = (run / "stopping_reason.txt").read_text()
    assert text.startswith(f"reason: {reason}\n") and "resume=true" in text
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "model_info.json").is_file()
    if reason == "error":
        assert "boom: scripted failure" in text and "log: " in text
    if reason == "out_of_memory":
        assert "data.batch_size" in text and "accumulate_grad_batches" in text


def test_every_reason_renders_a_first_line_and_a_recommendation():
    for reason in REASONS:
        text = render_stopping_reason(StopInfo(reason, ["detail"], {"metric": "val/HOTA", "value": 50.0, "epoch": 3},
                                               {"optim.lr": 1e-4}, epochs_done=9, forgetting=["FORGETTING: x"]),
                                      stage=2)
        lines = text.splitlines()
        assert lines[0] == f"reason: {reason}" and "best: val/HOTA = 50.0 at epoch 3" in lines
        assert "FORGETTING: x" in lines and "  optim.lr: 0.0001" in lines
        assert lines[[i for i, line in enumerate(lines) if line.startswith("recommendation: ")][0]] != "recommendation: "
    with pytest.raises(ValueError, match="not one of"):
        StopInfo("tired")
    assert classify_exception(KeyboardInterrupt()) == "interrupted"
    assert classify_exception(RuntimeError("CUDA out of memory")) == "out_of_memory"
    assert classify_exception(NonFiniteLossError("x")) == "non_finite_loss"


def test_a_run_that_dies_in_its_final_evaluation_records_why_and_is_not_latest(tiny_builds, tmp_path,
                                                                              monkeypatch):
    """Training finished but the end of the stage (here the final evaluation) raised: stopping_reason.txt
    says so and names the log file the root logger writes (Hydra's train.log), ``latest`` stays unset."""
    import logging

    import train.stage.finish as report

    def dying_evaluation(ctx):
        raise torch.OutOfMemoryError("CUDA out of memory (scripted, in the final evaluation)")

    monkeypatch.setattr(report, "_evaluate", dying_evaluation)
    log_file = tmp_path / "hydra_dir" / "train.log"
    log_file.parent.mkdir()
    handler = logging.FileHandler(log_file)
    logging.getLogger().addHandler(handler)
    try:
        with pytest.raises(torch.OutOfMemoryError):
            run_stage(compose_stage(1, tiny_builds[1].parent, tmp_path, *COMMON, "trainer.max_epochs=1"))
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    lines = _reason(tmp_path / "stage1" / "run")
    assert lines[0] == "reason: out_of_memory" and "final evaluation" in lines[1]
    assert f"log: {log_file}" in lines
    assert not (tmp_path / "stage1" / "latest").exists()
