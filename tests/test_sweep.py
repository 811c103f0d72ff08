"""A real Hydra multirun of a stage (``python -m train -m ...``): each job gets its own run directory, no
job moves ``runs/stage<N>/latest``, and ``train.review.compare --promote`` points it at the sweep's winner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from train_helpers import SHRINK

from train.review.compare import main as compare_main

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_multirun_jobs_get_their_own_dirs_and_the_winner_is_promoted(tiny_builds, tmp_path):
    runs = tmp_path / "runs"
    build_root = tiny_builds[1].parent
    cmd = [sys.executable, "-m", "train", "-m", "stage=1", *SHRINK, f"paths.build_root={build_root}",
           "paths.build_prefix=tiny_", f"paths.runs_root={runs}", "optim.lr=1e-3,2e-3"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    sweeps = list((runs / "multirun" / "stage1").iterdir())
    assert len(sweeps) == 1
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    assert all((job / "best_model.pth").is_file() and (job / "stopping_reason.txt").is_file() for job in jobs)
    assert not (runs / "stage1" / "latest").exists()  # the jobs do not race for `latest`

    assert compare_main([str(sweeps[0]), "--metric", "val/loss", "--promote"]) == 0
    assert (runs / "stage1" / "latest").resolve().parent == sweeps[0].resolve()


@pytest.mark.slow
def test_submitit_local_sweep_over_seeds_is_compared_as_one_setting(tiny_builds, tmp_path):
    """``seeds=2`` through hydra-submitit-launcher's local executor (conf/hydra/launcher/local.yaml): two jobs
    as separate processes, each its own run; ``train.compare`` then reports them as one setting over seeds."""
    runs = tmp_path / "runs"
    build_root = tiny_builds[1].parent
    cmd = [sys.executable, "-m", "train", "stage=1", "seeds=2", "hydra/launcher=local", *SHRINK,
           f"paths.build_root={build_root}", "paths.build_prefix=tiny_", f"paths.runs_root={runs}"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    sweep = next((runs / "multirun" / "stage1").iterdir())
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"] and (sweep / ".submitit").is_dir()
    seeds = [json.loads((job / "model_info.json").read_text())["hyperparameters"]["seed"] for job in jobs]
    assert sorted(seeds) == [0, 1]
    assert compare_main([str(sweep), "--metric", "val/loss"]) == 0
    selection = json.loads((sweep / "best_model_selection.json").read_text())
    [group] = selection["seed_groups"]
    assert group["n"] == 2 and group["std"] is not None and selection["within_noise"]
