"""Runs that cannot be turned against their owner (issue 12): planted checkpoints never run, resume never reopens
a finished run, a kill loses at most the epoch in progress, signals exit non-zero with ``interrupted`` recorded,
run directories never collide, a truncated checkpoint is skipped with a warning naming it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bad_input_corpus import Call, run_in_process
from corpus_train_cases import MARKER, plant, train
from train_helpers import compose_stage, state_of

from train.errors import ChainingError, CheckpointError
from train.stage.app import run_stage
from train.stage.records import StageInterrupted

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
#: Four epochs whose best.ckpt never improves after epoch 0 (monitor the epoch number, mode min): before the fix
#: last.ckpt was only written with an improvement, so a resume repeated finished epochs.
FOUR_EPOCHS = ("init_from=null", "trainer.max_epochs=4", "trainer.limit_train_batches=2", "trainer.deterministic=true",
               "data.num_workers=0", "callbacks.model_checkpoint.monitor=epoch", "callbacks.model_checkpoint.mode=min",
               "callbacks.early_stopping=null")


def _fault(what: str, epoch: int) -> str:
    return f"+callbacks.fault={{_target_: train_helpers.raise_at_callback, what: '{what}', epoch: {epoch}}}"


def _files(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (symlinks by target)."""
    return {str(p.relative_to(root)): (os.readlink(p) if p.is_symlink() else hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}


@pytest.fixture()
def restore_signals():
    """Lightning ignores SIGINT after a KeyboardInterrupt; give the test process its handlers back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def _cli(*argv: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m train <argv>`` as a real process (fault callbacks importable from tests/)."""
    return subprocess.run([sys.executable, "-m", "train", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, PYTHONPATH=str(TESTS), OMP_NUM_THREADS="1", **(env or {})))


def test_a_planted_checkpoint_never_runs_through_init_from_resume_or_track(tiny_builds, tmp_path):
    """A checkpoint whose unpickling creates a file (it could as well delete one) is refused with an error naming
    it by init_from, resume and train.track, and the file is never created."""
    root = tiny_builds[1].parent
    control = plant(tmp_path / "control.pth", tmp_path / "control_marker")
    torch.load(control, weights_only=False)  # what loading it the old way does: its code runs
    assert (tmp_path / "control_marker").exists()

    marker = tmp_path / MARKER
    weights = plant(tmp_path / "best_model.pth", marker)
    with pytest.raises(CheckpointError, match=rf"{weights}: refused to load .*could run code"):
        run_stage(compose_stage(1, root, tmp_path / "runs", f"init_from={weights}"))
    ckpt = plant(tmp_path / "last.ckpt", marker, like={"epoch": 0, "global_step": 2, "state_dict": {}})
    with pytest.raises(ChainingError, match=rf"{ckpt}: refused to load"):
        run_stage(compose_stage(1, root, tmp_path / "runs", "init_from=null", f"resume={ckpt}"))
    track = run_in_process(Call("train.track", ["--checkpoint", str(weights), "--split-dir",
                                                str(tiny_builds[1] / "val"), "--out", str(tmp_path / "out")]))
    assert track.status == 2 and not track.traceback
    assert track.stderr.strip().splitlines() == [track.stderr.strip().splitlines()[-1]]
    assert track.stderr.startswith(f"error: {weights}: refused to load")
    assert not marker.exists()


def test_resume_after_a_kill_before_the_first_checkpoint_leaves_the_finished_run_alone(tiny_builds, tmp_path):
    """A run killed (SIGKILL) before its first checkpoint: ``resume=true`` must not resume the previous successful
    run (which ``latest`` names); before the fix it trained it further and overwrote its files."""
    runs = tmp_path / "runs"
    run_stage(compose_stage(1, tiny_builds[1].parent, runs, "init_from=null", run_name="2026-01-01_00-00-00_aaaaaa"))
    before = _files(runs / "stage1")
    killed = _cli(*train(tiny_builds[1].parent, runs, "init_from=null", _fault("sigkill", 0)))
    assert killed.returncode == -signal.SIGKILL
    new = [p for p in (runs / "stage1").iterdir() if p.name not in ("latest", "2026-01-01_00-00-00_aaaaaa")]
    assert len(new) == 1 and not (new[0] / "checkpoints").exists()  # what a kill before any checkpoint leaves
    before[f"{new[0].name}"] = None  # the killed run's own files are not the finished run's

    with pytest.raises(ChainingError, match="nothing to resume.*finished runs are never reopened"):
        run_stage(compose_stage(1, tiny_builds[1].parent, runs, "resume=true", run_name="second"))
    after = _files(runs / "stage1")
    assert {k: v for k, v in after.items() if not k.startswith(new[0].name)} == \
        {k: v for k, v in before.items() if v is not None and not k.startswith(new[0].name)}


def test_a_run_killed_after_epoch_2_of_4_resumes_at_epoch_3_with_identical_weights(tiny_builds, tmp_path,
                                                                                 restore_signals):
    """SIGTERM at the start of epoch 3 (0-based 2), then ``resume=true``: the resumed session trains epochs 3
    and 4 only, and ends with exactly the weights of an uninterrupted run. The best checkpoint never improves
    after epoch 1, so this fails when last.ckpt is written only on improvement."""
    root = tiny_builds[1].parent
    straight = run_stage(compose_stage(1, root, tmp_path / "a", *FOUR_EPOCHS))

    runs, spy = tmp_path / "b", tmp_path / "epochs.txt"
    with pytest.raises(StageInterrupted) as stop:
        run_stage(compose_stage(1, root, runs, *FOUR_EPOCHS, _fault("signal:SIGTERM", 2)))
    assert stop.value.code == 128 + signal.SIGTERM
    run = runs / "stage1" / "run"
    assert (run / "stopping_reason.txt").read_text().startswith("reason: interrupted")
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1  # epochs 1 and 2 done

    resumed = run_stage(compose_stage(1, root, runs, *FOUR_EPOCHS, "resume=true",
                                      f"+callbacks.spy={{_target_: train_helpers.epoch_spy, path: '{spy}'}}",
                                      run_name="second"))
    assert resumed["run_dir"] == str(run) and spy.read_text().split() == ["2", "3"]  # epochs 3 and 4
    a, b = state_of(tmp_path / "a" / "stage1" / "run" / "best_model.pth"), state_of(run / "best_model.pth")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    last_a = torch.load(tmp_path / "a" / "stage1" / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    last_b = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert (last_a["epoch"], last_a["global_step"]) == (last_b["epoch"], last_b["global_step"]) == (3, 8)
    assert all(torch.equal(last_a["state_dict"][k], last_b["state_dict"][k]) for k in last_a["state_dict"])
    assert straight["best"]["epoch"] == resumed["best"]["epoch"] == 0


def test_every_epoch_writes_last_ckpt_and_every_file_loads_weights_only(tiny_builds, tmp_path):
    spy = tmp_path / "epochs.txt"
    run_stage(compose_stage(1, tiny_builds[1].parent, tmp_path, *FOUR_EPOCHS[:3], "trainer.max_epochs=3",
                            *FOUR_EPOCHS[5:7]))
    run = tmp_path / "stage1" / "run"
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2
    assert torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)["epoch"] == 0
    assert set(torch.load(run / "best_model.pth", weights_only=True)) == {"state_dict", "classes", "config", "stage"}
    assert not list(run.rglob("*.tmp")) and not spy.exists()


@pytest.mark.parametrize(("what", "status"), [("signal:SIGTERM", 143), ("signal:SIGINT", 130)])
def test_sigterm_and_sigint_exit_non_zero_with_interrupted_recorded(what, status, tiny_builds, tmp_path, capsys,
                                                                   restore_signals):
    """Before the fix SIGTERM exited 0. The command line prints one ``interrupted:`` line."""
    from train.stage.command import run_command

    with pytest.raises(SystemExit) as stop:
        run_command(compose_stage(1, tiny_builds[1].parent, tmp_path, "init_from=null", "trainer.max_epochs=2",
                                  _fault(what, 1)))
    assert stop.value.code == status
    assert (tmp_path / "stage1" / "run" / "stopping_reason.txt").read_text().startswith("reason: interrupted\n")
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("interrupted: SIG")
    assert not (tmp_path / "stage1" / "latest").exists()


def test_a_requeue_signal_checkpoints_requeues_and_exits(tiny_builds, tmp_path, monkeypatch, restore_signals):
    """SLURM's ``--signal=USR1@90``: the state after the current batch goes to last.ckpt (mid-epoch), ``scontrol
    requeue <job>`` is called, the exit status is 138; the requeued job resumes to the end."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\n")
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    root, quick = tiny_builds[1].parent, ("init_from=null", "trainer.max_epochs=2", "trainer.limit_train_batches=3")
    with pytest.raises(StageInterrupted) as stop:
        run_stage(compose_stage(1, root, tmp_path / "runs", *quick, _fault("signal:SIGUSR1", 1)))
    assert stop.value.code == 128 + signal.SIGUSR1 and "SLURM job 4242 requeued" in str(stop.value)
    assert calls.read_text().split() == ["requeue", "4242"]
    run = tmp_path / "runs" / "stage1" / "run"
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4  # epoch 0 (3 batches) + the batch in progress when the signal came
    assert (run / "stopping_reason.txt").read_text().startswith("reason: interrupted")
    # the requeued job (SLURM, submitit) starts again with the same run directory: it continues its own run
    done = run_stage(compose_stage(1, root, tmp_path / "runs", *quick, run_name="run"))
    assert done["run_dir"] == str(run) and torch.load(run / "checkpoints" / "last.ckpt")["global_step"] == 6


def test_a_truncated_last_ckpt_is_skipped_with_a_warning_naming_it(tiny_builds, tmp_path, caplog, restore_signals):
    """A disk that filled up under another tool, or a copy cut short: resume warns and continues from best.ckpt."""
    root, runs = tiny_builds[1].parent, tmp_path / "runs"
    with pytest.raises(StageInterrupted):
        run_stage(compose_stage(1, root, runs, *FOUR_EPOCHS, _fault("signal:SIGTERM", 2)))
    last = runs / "stage1" / "run" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    resumed = run_stage(compose_stage(1, root, runs, *FOUR_EPOCHS, "resume=true", run_name="second"))
    assert resumed["run_dir"] == str(runs / "stage1" / "run")
    assert any(f"skipping {last}" in r.getMessage() and "truncated or corrupt" in r.getMessage()
               for r in caplog.records)
    assert torch.load(last, weights_only=True)["epoch"] == 3  # trained to the end from best.ckpt (epoch 0)


def test_latest_as_a_real_directory_stops_the_stage_before_training(tiny_builds, tmp_path):
    latest = tmp_path / "stage1" / "latest"
    (latest / "mine").mkdir(parents=True)
    with pytest.raises(ChainingError, match="latest is a real folder, not a symlink"):
        run_stage(compose_stage(1, tiny_builds[1].parent, tmp_path, "init_from=null"))
    assert not (tmp_path / "stage1" / "run").exists() and (latest / "mine").is_dir()


def test_two_runs_started_together_get_their_own_run_directories(tmp_path):
    """The run directory is ``<time>_<6 random hex digits>``: two processes started in the same second differ."""
    cmd = [sys.executable, "-m", "train", "stage=1", f"paths.runs_root={tmp_path}", "--cfg", "all", "--resolve"]
    procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    dirs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        dirs.append(re.search(r"^  run:\n    dir: (\S+)$", out, re.M).group(1))
    pattern = rf"{tmp_path}/stage1/\d{{4}}-\d\d-\d\d_\d\d-\d\d-\d\d_[0-9a-f]{{6}}"
    assert all(re.fullmatch(pattern, d) for d in dirs) and dirs[0] != dirs[1]


def test_resume_of_a_named_finished_run_is_refused(tiny_builds, tmp_path):
    run_stage(compose_stage(1, tiny_builds[1].parent, tmp_path, "init_from=null"))
    run = tmp_path / "stage1" / "run"
    before = _files(run)
    with pytest.raises(ChainingError, match="finished .max_epochs. and is never reopened"):
        run_stage(compose_stage(1, tiny_builds[1].parent, tmp_path, f"resume={run}", run_name="again"))
    with pytest.raises(ChainingError, match="holds a finished run .max_epochs.: it is never trained over"):
        run_stage(compose_stage(1, tiny_builds[1].parent, tmp_path, "init_from=null", run_name="run"))  # same dir
    assert _files(run) == before
    assert json.loads((run / "model_info.json").read_text())["best"]
