"""Resume: a run interrupted after epoch 0 and resumed with ``resume=true`` ends with exactly the weights of
an uninterrupted run (deterministic CPU: per-epoch reseeding, single-process data loading)."""

from __future__ import annotations

import json
import signal

import pytest
import torch
from train_helpers import compose_stage, state_of

from train.stage.app import run_stage

torch.set_num_threads(1)
COMMON = ("init_from=null", "trainer.max_epochs=2", "trainer.limit_train_batches=2", "trainer.deterministic=true",
          "data.num_workers=0", "scheduler=multistep", "scheduler.milestones=[1]")


@pytest.fixture()
def restore_sigint():
    """Lightning ignores SIGINT after a KeyboardInterrupt; give the test process its handler back."""
    yield
    signal.signal(signal.SIGINT, signal.default_int_handler)


def test_interrupted_then_resumed_run_matches_an_uninterrupted_one(tiny_builds, tmp_path, restore_sigint):
    root = tiny_builds[1].parent
    straight = run_stage(compose_stage(1, root, tmp_path / "a", *COMMON))

    runs = tmp_path / "b"
    interrupt = "+callbacks.fault={_target_: train_helpers.raise_at_callback, what: KeyboardInterrupt, epoch: 1}"
    with pytest.raises(SystemExit):  # Lightning turns Ctrl-C into a graceful shutdown + exit(1)
        run_stage(compose_stage(1, root, runs, *COMMON, interrupt))
    run = runs / "stage1" / "run"
    assert (run / "stopping_reason.txt").read_text().startswith("reason: interrupted")
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 0
    assert not (runs / "stage1" / "latest").exists()  # only a successful run becomes latest

    # a fresh Hydra run dir is composed, but resume=true continues the interrupted run in place
    resumed = run_stage(compose_stage(1, root, runs, *COMMON, "resume=true", run_name="second"))
    assert resumed["run_dir"] == str(run)
    a = state_of(tmp_path / "a" / "stage1" / "run" / "best_model.pth")
    b = state_of(run / "best_model.pth")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    last_a = torch.load(tmp_path / "a" / "stage1" / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    last_b = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert (last_a["epoch"], last_a["global_step"]) == (last_b["epoch"], last_b["global_step"]) == (1, 4)
    assert all(torch.equal(last_a["state_dict"][k], last_b["state_dict"][k]) for k in last_a["state_dict"])
    # the optimizer moments and the scheduler (LR dropped at epoch 1) continued too
    assert last_b["lr_schedulers"][0]["last_epoch"] == last_a["lr_schedulers"][0]["last_epoch"] == 2
    history = json.loads((run / "training_history.json").read_text())["epochs"]
    assert [e["epoch"] for e in history] == [0, 1]
    assert history[1]["lr"]["rest"] == pytest.approx(0.1 * history[0]["lr"]["rest"])
    assert straight["best"]["epoch"] == resumed["best"]["epoch"]


def test_a_resumed_run_keeps_its_parent_in_model_info_and_checkpoints(tiny_builds, tmp_path, restore_sigint):
    """A stage started from a parent, interrupted and resumed, still names that parent (path and sha256):
    before the fix model_info.json said ``parent: null`` and the regression gate had nothing to compare with.
    Its wall_time_s covers both sessions."""
    import hydra

    from builder.formats.files import sha256_file

    root, runs = tiny_builds[1].parent, tmp_path / "runs"
    quick = ("trainer.max_epochs=1", "trainer.limit_train_batches=1", "data.num_workers=0")
    cfg = compose_stage(1, root, runs, *quick)
    parent = tmp_path / "parent" / "best_model.pth"
    parent.parent.mkdir()
    torch.save({"state_dict": hydra.utils.instantiate(cfg.model, num_classes=2).state_dict(),
                "classes": ["person", "vehicle"], "config": {}, "stage": 0}, parent)
    interrupt = "+callbacks.fault={_target_: train_helpers.raise_at_callback, what: KeyboardInterrupt, epoch: 0}"
    with pytest.raises(SystemExit):
        run_stage(compose_stage(1, root, runs, *quick, f"init_from={parent}", interrupt))
    run = runs / "stage1" / "run"
    info = json.loads((run / "model_info.json").read_text())
    assert info["wall_time_s"] > 0
    info["wall_time_s"] = 1000.0  # scripted: a long first session
    (run / "model_info.json").write_text(json.dumps(info))
    run_stage(compose_stage(1, root, runs, *quick, f"init_from={parent}", "resume=true", run_name="second"))
    info = json.loads((run / "model_info.json").read_text())
    assert info["parent"]["path"] == str(parent.resolve()) and info["parent"]["sha256"] == sha256_file(parent)
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["parent"]["path"] == str(parent.resolve())
    assert info["wall_time_s"] > 1000.0  # both sessions counted
