"""Training-side cases of the bad-input corpus (tests/bad_input_corpus.py): overrides, planted or damaged
checkpoints and weights, resume, ``latest``, a non-finite loss, a full disk while checkpointing, ``train.track``
and ``train.evaluate`` inputs."""

from __future__ import annotations

import builtins
import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from bad_input_corpus import Call, Case, Env, absent, noise, same_files
from train_helpers import SHRINK

#: The file a planted checkpoint's unpickling would create.
MARKER = "PWNED"


class Planted:
    """Unpickling this object opens (creates) a file: what a hostile checkpoint could do instead."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return builtins.open, (self.path, "w")


def plant(path: Path, marker: Path, *, like: dict | None = None) -> Path:
    """A checkpoint at ``path`` that looks like ``like`` (default a best_model.pth) plus a :class:`Planted`."""
    torch.save({**(like or {"state_dict": {}, "classes": ["person", "vehicle"], "config": {}}), "x": Planted(marker)},
               path)
    return path


def train(builds: Env | Path, runs: Path, *overrides: str, stage: int = 1) -> list[str]:
    """argv of ``python -m train`` on the tiny builds (``Env.builds`` or that folder), shrunk to seconds
    (tests/train_helpers.py SHRINK)."""
    builds = builds.builds if isinstance(builds, Env) else builds
    return [f"stage={stage}", *SHRINK, f"paths.build_root={builds}", "paths.build_prefix=tiny_",
            f"paths.runs_root={runs}", *overrides]


def _weights_file(kind: str, tmp: Path) -> Path:
    path = tmp / f"weights_{kind}.pth"
    if kind == "random":
        path.write_bytes(noise(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("these are not weights\n")
    elif kind == "truncated":
        torch.save({"state_dict": {"w": torch.zeros(4096)}}, path)
        path.write_bytes(path.read_bytes()[:3000])
    elif kind == "list":
        torch.save([torch.zeros(3)], path)
    elif kind == "planted":
        plant(path, tmp / MARKER)
    elif kind == "directory":
        path.mkdir()
    return path


def _init_from(kind: str, key: str = "init_from") -> Callable:
    def setup(env: Env, tmp: Path) -> Call:
        path = _weights_file(kind, tmp)
        return Call("train", train(env, tmp / "runs", "init_from=null", f"{key}={path}"), check=absent(tmp / MARKER))
    return setup


def _override(*overrides: str, stage: int = 1) -> Callable:
    return lambda env, tmp: Call("train", train(env, tmp / "runs", *overrides, stage=stage))


def _finished(env: Env, tmp: Path) -> Path:
    """A copy of the finished stage-1 run (and its ``latest``) under ``tmp/runs``."""
    return Path(shutil.copytree(env.finished, tmp / "runs", symlinks=True))


def _resume(kind: str) -> Callable:
    def setup(env: Env, tmp: Path) -> Call:
        runs = _finished(env, tmp)
        run = next(p for p in (runs / "stage1").iterdir() if not p.is_symlink())
        latest = os.readlink(runs / "stage1" / "latest")
        finished = same_files(run)  # (a CLI session adds its own Hydra run directory beside it)

        def keep() -> list[str]:
            moved = [] if os.readlink(runs / "stage1" / "latest") == latest else ["latest moved"]
            return finished() + moved
        target = "true"
        if kind == "finished run":
            target = str(run)
        elif kind == "planted ckpt":
            target = str(plant(tmp / "last.ckpt", tmp / MARKER, like={"epoch": 0, "state_dict": {}}))
        elif kind == "truncated last":  # an interrupted run whose only checkpoint is cut short
            broken = runs / "stage1" / "2026-01-02_00-00-00_bbbbbb" / "checkpoints"
            broken.mkdir(parents=True)
            data = (run / "checkpoints" / "last.ckpt").read_bytes()
            (broken / "last.ckpt").write_bytes(data[: len(data) // 3])
        return Call("train", train(env, runs, f"resume={target}"),
                    check=lambda: keep() + absent(tmp / MARKER)())
    return setup


def _latest_not_a_link(kind: str) -> Callable:
    def setup(env: Env, tmp: Path) -> Call:
        runs = tmp / "runs"
        latest = runs / "stage1" / "latest"
        latest.parent.mkdir(parents=True)
        latest.mkdir() if kind == "directory" else latest.write_text("x")
        return Call("train", train(env, runs, "init_from=null"),
                    check=lambda: [] if not list(runs.glob("stage1/*/checkpoints")) else ["a run started training"])
    return setup


def _nan_loss(env: Env, tmp: Path) -> Call:
    fault = "+callbacks.fault={_target_: train_helpers.raise_at_callback, what: poison, epoch: 1}"

    def check() -> list[str]:
        reasons = list((tmp / "runs").glob("stage1/*/stopping_reason.txt"))
        ok = reasons and reasons[0].read_text().startswith("reason: non_finite_loss")
        return [] if ok else ["no stopping_reason.txt saying non_finite_loss"]

    return Call("train", train(env, tmp / "runs", "init_from=null", "trainer.max_epochs=2",
                               "trainer.limit_train_batches=1", fault), check=check)


def _disk_full_checkpoint(env: Env, tmp: Path) -> Call:
    """The disk fills up while the second end-of-epoch checkpoint is written: the run stops with an error line,
    last.ckpt stays the complete checkpoint of epoch 0."""
    from unittest import mock

    import builder.formats.files as files

    real = files.os.fsync
    state = {"n": 0}

    def fsync(fd):  # the first last.ckpt is written; from the second one on the disk is full
        if ".last.ckpt." in os.readlink(f"/proc/self/fd/{fd}"):
            state["n"] += 1
            if state["n"] > 1:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    def check() -> list[str]:
        lasts = list((tmp / "runs").glob("stage1/*/checkpoints/last.ckpt"))
        if not lasts:
            return ["no last.ckpt kept"]
        blob = torch.load(lasts[0], weights_only=True)
        leftovers = list((tmp / "runs").glob("stage1/*/checkpoints/.*.tmp"))
        return ([] if blob["epoch"] == 0 else [f"last.ckpt is of epoch {blob['epoch']}"]) + \
            ([f"temporary files left: {leftovers}"] if leftovers else [])

    argv = train(env, tmp / "runs", "init_from=null", "trainer.max_epochs=3", "trainer.limit_train_batches=1")
    return Call("train", argv, fault=lambda: mock.patch.object(files.os, "fsync", fsync), check=check)


def _track(kind: str) -> Callable:
    def setup(env: Env, tmp: Path) -> Call:
        if kind in ("planted", "random", "empty", "directory"):
            path = _weights_file(kind, tmp)
        else:
            path = tmp / "best_model.pth"
            torch.save({"no_keys": 1} if kind == "no keys" else
                       {"state_dict": {}, "classes": ["person"], "config": {"model": "fasterrcnn"}} if kind == "bad config"
                       else {"state_dict": {"w": torch.zeros(2)}, "classes": ["person"],
                             "config": {"model": {"arch": "fasterrcnn", "backbone": "tiny"}}}, path)
        return Call("train.track", ["--checkpoint", str(path), "--split-dir", str(env.builds / "tiny_stage1" / "val"),
                                    "--out", str(tmp / "out")], check=absent(tmp / MARKER))
    return setup


def _results(extra: str) -> Callable:
    """Result files of every val sequence of the tiny stage-1 build (copied from its ground truth), plus ``extra``."""
    def setup(env: Env, tmp: Path) -> Call:
        out = tmp / "results"
        out.mkdir()
        for seq in (env.builds / "tiny_stage1" / "val").iterdir():
            rows = [r.split(",") for r in (seq / "gt" / "gt.txt").read_text().splitlines() if r.split(",")[6] != "0"]
            (out / f"{seq.name}.txt").write_text("".join(",".join([*r[:6], "1", r[7], "-1", "-1"]) + "\n" for r in rows))
        first = sorted(out.iterdir())[0]
        if extra == "unknown sequence":
            (out / "not_a_sequence.txt").write_text("1,1,1,1,5,5,1,1,-1,-1\n")
        elif extra == "unknown class":
            first.write_text(first.read_text() + "1,999,1,1,5,5,1,7,-1,-1\n")
        elif extra == "malformed":
            first.write_text("1,2,x\n")
        return Call("train.evaluate", ["--results", str(out), "--build", str(env.builds / "tiny_stage1"),
                                       "--split", "val", "--json", str(tmp / "m.json"),
                                       "--result-classes", "person", "vehicle"])
    return setup


TRAIN_CASES = [
    Case("train: trainer.max_epochs=abc", _override("trainer.max_epochs=abc"), words="expects an integer"),
    Case("train: optim.lr=abc", _override("optim.lr=abc"), words="optim.lr expects a number"),
    Case("train: data.batch_size=2.5", _override("data.batch_size=2.5"), words="expects an integer"),
    Case("train: eval.tracking=maybe", _override("eval.tracking=maybe"), words="expects a boolean"),
    Case("train: data.scales=96", _override("data.scales=96"), words="expects a list"),
    Case("train: data.num_workers=many", _override("data.num_workers=many"), words="data.num_workers"),
    Case("train: data.pin_memory=sometimes", _override("data.pin_memory=sometimes"), words="data.pin_memory"),
    Case("train: unknown key", _override("bogus.key=3"), words="Key 'bogus' is not in struct"),
    Case("train: unknown stage", _override("stage=9"), words="available stages"),
    Case("train: init_from random bytes", _init_from("random"), words="PyTorch file"),
    Case("train: init_from empty file", _init_from("empty"), words="empty file"),
    Case("train: init_from text file", _init_from("text"), words="weights_text.pth"),
    Case("train: init_from truncated", _init_from("truncated"), words="truncated or corrupt"),
    Case("train: init_from a list of tensors", _init_from("list"), words="expected a dict of tensors"),
    Case("train: init_from planted code", _init_from("planted"), words="refused to load"),
    Case("train: init_from a directory", _init_from("directory"), words="file not found"),
    Case("train: init_from missing", _override("init_from=/nonexistent/best_model.pth"), words="file not found"),
    Case("train: init_from=auto at stage 1", _override("init_from=auto"), words="stage 1 has none"),
    Case("train: init_from=auto without a parent run", _override("init_from=auto", stage=2),
         words="stage1/latest/best_model.pth does not exist"),
    Case("train: model.weights_path random bytes", _init_from("random", "model.weights_path"),
         words="PyTorch file"),
    Case("train: model.weights_path empty file", _init_from("empty", "model.weights_path"), words="empty file"),
    Case("train: model.weights_path planted code", _init_from("planted", "model.weights_path"),
         words="refused to load"),
    Case("train: model.weights_path a list", _init_from("list", "model.weights_path"), words="expected a state dict"),
    Case("train: resume=true, nothing to resume", _override("resume=true", "init_from=null"), words="nothing to resume"),
    Case("train: resume=true, only a finished run", _resume("true"), words="finished runs are never reopened"),
    Case("train: resume=<finished run>", _resume("finished run"), words="is never reopened"),
    Case("train: resume=<planted .ckpt>", _resume("planted ckpt"), words="refused to load"),
    Case("train: resume=true, truncated last.ckpt", _resume("truncated last"), words="nothing to resume"),
    Case("train: latest is a directory", _latest_not_a_link("directory"), words="is a real folder, not a symlink"),
    Case("train: latest is a file", _latest_not_a_link("file"), words="is a real file, not a symlink"),
    Case("train: non-finite loss", _nan_loss, words="non-finite train loss"),
    Case("train: disk full while checkpointing", _disk_full_checkpoint, words="No space left on device"),
    Case("train: no build", _override("paths.build_root=/nonexistent"), words="/nonexistent"),
    Case("track: planted checkpoint", _track("planted"), words="refused to load"),
    Case("track: random bytes", _track("random"), words="PyTorch file"),
    Case("track: empty checkpoint", _track("empty"), words="empty file"),
    Case("track: checkpoint is a directory", _track("directory"), words="checkpoint not found"),
    Case("track: checkpoint without its keys", _track("no keys"), words="has no 'state_dict'"),
    Case("track: config.model not a mapping", _track("bad config"), words="config.model as a mapping"),
    Case("track: weights that do not fit", _track("misfit"), words="do not fit"),
    Case("evaluate: result file of an unknown sequence", _results("unknown sequence"), status=0,
         words="results_not_in_ground_truth=1"),
    Case("evaluate: result rows of an unknown class", _results("unknown class"),
         words="class 7 is not in the class list of --result-classes"),
    Case("evaluate: malformed result row", _results("malformed"), words=":1"),
]

__all__ = ["TRAIN_CASES"]
