"""DDP on the CPU: a tiny stage trained by 2 processes (``trainer=ddp_cpu``: Lightning's DDP strategy, gloo) through
the real command line, against the same stage in 1 process with the same global batch.

One run directory, records written once (rank 0), ``latest`` moved once, disjoint shards per rank that together
are the 1-process run's batches, the tracking evaluations run once with every rank agreeing on the monitored
value, and the loss within a stated tolerance of the 1-process run's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import SHRINK

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
#: Records only rank 0 writes (docs/CONTRACTS.md run directory).
RECORDS = ("model_info.json", "training_history.json", "stopping_reason.txt", "report.md", "metrics.json",
           "regression.json", "best_model.pth")
#: Frames per rank per batch; the 1-process run uses WORLD x this (the same global batch).
BATCH, WORLD, EPOCHS = 2, 2, 2
#: Relative tolerance on the epoch-mean training loss, per epoch (why:
#: test_ddp_loss_matches_one_process_with_the_same_global_batch).
LOSS_RTOL = (0.01, 0.05)


def _train(tmp: Path, name: str, *overrides: str) -> tuple[Path, subprocess.CompletedProcess]:
    runs, spy = tmp / name / "runs", tmp / name / "spy"
    cmd = [sys.executable, "-m", "train", "stage=1", *SHRINK, f"paths.build_root={tmp / 'builds'}",
           "paths.build_prefix=tiny_", f"paths.runs_root={runs}", f"trainer.max_epochs={EPOCHS}",
           "trainer.limit_train_batches=null", "eval.tracking=true", "eval.final=true", "eval.max_frames=4",
           "eval.final_max_frames=4", "+callbacks.spy._target_=train_helpers.BatchSpy",
           f"+callbacks.spy.path={spy}", "+callbacks.exhaustive._target_=train_helpers.ExhaustiveSampling",
           # consecutive-frame pairs: the clips are then disjoint in frames, so the frames a rank saw name the clips
           # its shard held (with a frame range, two clips may share a frame)
           "data.frame_range=1", *overrides]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return runs / "stage1", out


def _batches(spy: Path) -> dict[int, list[dict]]:
    return {int(p.stem.removeprefix("rank")): [json.loads(line) for line in p.read_text().splitlines()]
            for p in sorted(spy.glob("rank*.jsonl"))}


@pytest.fixture(scope="module")
def runs(tiny_builds, tmp_path_factory):
    """(DDP stage dir, 1-process stage dir, their spies' batches, the DDP command's output)."""
    tmp = tmp_path_factory.mktemp("ddp")
    (tmp / "builds").symlink_to(tiny_builds[1].parent)
    ddp, out = _train(tmp, "ddp", "trainer=ddp_cpu", f"data.batch_size={BATCH}")
    single, _ = _train(tmp, "single", f"data.batch_size={BATCH * WORLD}")
    return ddp, single, _batches(tmp / "ddp" / "spy"), _batches(tmp / "single" / "spy"), out


@pytest.mark.slow
def test_ddp_writes_one_run_directory_with_records_from_rank_zero_only(runs):
    ddp, _, _, _, _ = runs
    run_dirs = [p for p in ddp.iterdir() if p.name != "latest"]
    assert len(run_dirs) == 1, run_dirs  # the rank Lightning started wrote into its parent's directory
    run = run_dirs[0]
    assert (ddp / "latest").resolve() == run.resolve()
    assert all((run / name).is_file() for name in RECORDS)
    assert sorted(p.name for p in run.glob("train*.log")) == ["train.log", "train_rank1.log"]
    assert (run / ".hydra" / "config.yaml").is_file()
    rank0, rank1 = (run / "train.log").read_text(), (run / "train_rank1.log").read_text()
    # each evaluation once, in rank 0: one tracking evaluation per epoch, one final evaluation; latest moved once
    assert rank0.count("tracking evaluation, epoch") == EPOCHS and "tracking evaluation" not in rank1
    assert rank0.count("final evaluation of the best weights") == 1 and "final evaluation" not in rank1
    assert rank0.count("/latest -> ") == 1 and "/latest -> " not in rank1
    assert "rank 1 done" in rank1 and not list(ddp.glob(".latest*"))
    # rank 1's ModelCheckpoint chose the same best as rank 0's: val/HOTA was broadcast to it
    info = json.loads((run / "model_info.json").read_text())
    assert info["best"]["metric"] == "val/HOTA" and info["best"]["value"] is not None
    assert f"best val/HOTA = {info['best']['value']}" in rank1
    assert info["hyperparameters"]["trainer.devices"] == WORLD


@pytest.mark.slow
def test_every_rank_trains_on_a_disjoint_shard_and_together_on_the_one_process_batches(runs):
    _, _, ddp, single, _ = runs
    assert sorted(ddp) == [0, 1] and sorted(single) == [0]
    for epoch in range(EPOCHS):
        shards = {rank: [b for b in batches if b["epoch"] == epoch] for rank, batches in ddp.items()}
        ids = {rank: [i for b in shard for i in b["image_ids"]] for rank, shard in shards.items()}
        assert not set(ids[0]) & set(ids[1]), f"epoch {epoch}: ranks share frames"
        assert len(ids[0]) == len(ids[1]) == len(set(ids[0]))  # equal shards, no frame twice
        one = [b for b in single[0] if b["epoch"] == epoch]
        # batch k of both ranks together = batch k of the 1-process run (global batch 2 x 2 = 4 frames)
        assert len(one) == len(shards[0]) == len(shards[1])
        for k, batch in enumerate(one):
            assert sorted(shards[0][k]["image_ids"] + shards[1][k]["image_ids"]) == sorted(batch["image_ids"])
    epochs = [sorted(i for b in ddp[0] + ddp[1] if b["epoch"] == e for i in b["image_ids"]) for e in range(EPOCHS)]
    assert epochs[0] == epochs[1]  # every frame once per epoch (24 frames, divisible by the 2 ranks) ...
    firsts = [[b["image_ids"] for b in ddp[0] if b["epoch"] == e][0] for e in range(EPOCHS)]
    assert firsts[0] != firsts[1]  # ... in another order every epoch


@pytest.mark.slow
def test_ddp_loss_matches_one_process_with_the_same_global_batch(runs):
    """The epoch-mean training loss of the 2-process run (each step's loss averaged over the ranks: logged with
    sync_dist) is within LOSS_RTOL = 1% of the 1-process run's in the first epoch (6 steps from the same initial
    weights) and within 5% in the second (after those 6 steps).

    What is identical: the frames of every global batch and their augmentations (test above), the initial weights
    (same seed; DDP broadcasts rank 0's), the averaged gradients, the clipping, the LR; the loss of given weights on
    given frames, because ExhaustiveSampling puts every anchor and proposal into Faster R-CNN's loss instead of a
    random sample drawn from each process's RNG; and the quasi-dense embedding loss, a mean over the batch's clips
    (train.stage.association_losses.quasi_dense_losses). What is not: Faster R-CNN normalises its losses by the
    batch's count of anchors / proposals, so DDP averages 2 per-rank means where one process takes one mean over
    the whole batch (and float sums run in another order); the small differences grow as the weights move apart.
    Measured on this fixture (2 CPU cores, torch 2.15, the default quasi-dense embedding on): 0.1% in epoch 0 and
    3.0% in epoch 1 (printed below). A broken DDP moves the loss far more: every step doubled (what summing the
    ranks' gradients instead of averaging them does; 1 process with lr_scale=2) by 43% and 75%, each rank
    stepping on its own half of the batch (1 process, batch 2) by 20% and 43%.
    """
    ddp, single, _, _, _ = runs
    history = [json.loads((d / "latest" / "training_history.json").read_text())["epochs"] for d in (ddp, single)]
    for epoch in range(EPOCHS):
        a, b = (h[epoch]["train"]["loss"] for h in history)
        print(f"epoch {epoch}: train/loss DDP {a:.5f}, 1 process {b:.5f}, relative difference {abs(a - b) / b:.4f}")
        assert abs(a - b) <= LOSS_RTOL[epoch] * b, (epoch, a, b)
