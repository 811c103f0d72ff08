"""Helpers of the stage-training tests: compose the real config (conf/train.yaml) and shrink it to seconds.

STYLE practice 10: compose the real config with Hydra's compose API, then shrink it (tiny model at the
tiny builds' native 128 x 96 px, a few batches, no loggers, no progress bar).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

CONF = Path(__file__).resolve().parent.parent / "conf"
STAGES = {1: "stage1_foundation", 2: "stage2_refine", 3: "stage3_aerial"}

#: Overrides that make any stage a CPU run of seconds on the tiny builds (frames 128 x 96 / 160 x 120 px).
SHRINK = [
    "experiment=demo", "debug=cpu", "logger=none", "callbacks.rich_progress_bar=null", "scheduler=multistep",
    "data.scales=[96]", "data.eval_size=96", "data.max_size=160", "data.batch_size=2",
    "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
    "trainer.enable_model_summary=false", "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1",
    "eval.tracking=false", "eval.final=false", "eval.every_n_epochs=1",
    "model.tiny_channels=[16,32,64]", "model.fpn_channels=32", "model.box_head_dim=64",
]


def compose_stage(stage: int, build_root: Path, runs_root: Path, *overrides: str, run_name: str = "run") -> DictConfig:
    """The composed config of ``stage`` on the tiny builds ``<build_root>/tiny_stage<N>``, shrunk."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[f"stage={STAGES[stage]}", *SHRINK, f"paths.build_root={build_root}",
                                          "paths.build_prefix=tiny_", f"paths.runs_root={runs_root}",
                                          f"paths.output_dir={runs_root}/stage{stage}/{run_name}", *overrides])
    with open_dict(cfg):
        cfg.data.build_dir = str(build_root / f"tiny_stage{stage}")
    return cfg


def relabel_build(src: Path, dst: Path, classes: list[str]) -> Path:
    """Copy build ``src`` to ``dst`` with a new class list; annotations keep their class *names*.

    Category ids are renumbered to the positions in ``classes`` (names absent from ``classes`` are an
    error); ``build_manifest.json`` gets ``classes``. Frames stay symlinks to the raw files.
    """
    shutil.copytree(src, dst, symlinks=True)
    manifest = json.loads((dst / "build_manifest.json").read_text())
    old = manifest["classes"]
    manifest["classes"] = classes
    (dst / "build_manifest.json").write_text(json.dumps(manifest))
    new_id = {i + 1: classes.index(name) + 1 for i, name in enumerate(old)}
    for split_file in (dst / "annotations").glob("*.json"):
        coco = json.loads(split_file.read_text())
        coco["categories"] = [{"id": i + 1, "name": c} for i, c in enumerate(classes)]
        for ann in coco["annotations"]:
            ann["category_id"] = new_id[ann["category_id"]]
        split_file.write_text(json.dumps(coco))
    return dst


def state_of(path: Path) -> dict[str, torch.Tensor]:
    """``state_dict`` of a best_model.pth."""
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


class RaiseAt:
    """Test callback: raise ``exc`` (``KeyboardInterrupt``, ``oom``, ``error``, ``sigterm``) at the
    start of training epoch ``epoch``, or make every weight NaN (``poison``) so the next loss is non-finite,
    or send this process a real signal: ``sigkill`` (dies at once, nothing recorded, as ``kill -9`` does) or
    ``signal:<NAME>`` (e.g. ``signal:SIGTERM``, ``signal:SIGUSR1``: the handlers then act)."""

    def __init__(self, what: str, epoch: int = 0) -> None:
        self.what, self.epoch = what, epoch

    def __call__(self, trainer, pl_module) -> None:
        if trainer.current_epoch != self.epoch:
            return
        if self.what == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if self.what.startswith("signal:"):
            os.kill(os.getpid(), signal.Signals[self.what.removeprefix("signal:")])
            return
        if self.what == "poison":
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(float("nan"))
            return
        raise {"KeyboardInterrupt": KeyboardInterrupt(), "error": RuntimeError("boom: scripted failure"),
               "oom": torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (scripted)"),
               }[self.what] if self.what != "sigterm" else _sigterm()


def _sigterm() -> Exception:
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    return SIGTERMException()


def raise_at_callback(what: str, epoch: int = 0):
    """A Lightning callback running :class:`RaiseAt` at ``on_train_epoch_start``."""
    import lightning as L

    hook = RaiseAt(what, epoch)

    class _Cb(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            hook(trainer, pl_module)

    return _Cb()


def epoch_spy(path: str):
    """A Lightning callback appending ``trainer.current_epoch`` to ``path`` at every training epoch start (which
    epochs a session trained)."""
    import lightning as L

    class _Spy(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            with open(path, "a") as fh:
                fh.write(f"{trainer.current_epoch}\n")

    return _Spy()


class BatchSpy:
    """Lightning callback (``+callbacks.spy._target_=train_helpers.BatchSpy +callbacks.spy.path=DIR``; the tests
    directory on PYTHONPATH): every rank appends, per training batch, ``{"rank", "epoch", "batch", "image_ids"}``
    to ``DIR/rank<global rank>.jsonl`` (which frames each DDP rank trained on, batch by batch)."""

    def __new__(cls, path: str):
        import lightning as L

        class _Spy(L.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                ids = [int(t["image_id"]) for t in batch[1]]
                record = {"rank": trainer.global_rank, "epoch": trainer.current_epoch, "batch": batch_idx,
                          "image_ids": ids}
                Path(path).mkdir(parents=True, exist_ok=True)
                with open(Path(path) / f"rank{trainer.global_rank}.jsonl", "a") as fh:
                    fh.write(json.dumps(record) + "\n")

        return _Spy()


class ExhaustiveSampling:
    """Lightning callback (``+callbacks.exhaustive._target_=train_helpers.ExhaustiveSampling``): Faster R-CNN's
    RPN and box head put every anchor / proposal into their loss instead of a random sample of 256 / 128 per
    image (``batch_size_per_image`` beyond any count), so the loss of given weights on given frames no longer
    depends on the RNG: what lets a DDP run and a 1-process run be compared step for step."""

    def __new__(cls):
        import lightning as L

        class _Exhaustive(L.Callback):
            def setup(self, trainer, pl_module, stage):
                for sampler in (pl_module.model.rpn.fg_bg_sampler, pl_module.model.roi_heads.fg_bg_sampler):
                    sampler.batch_size_per_image = 10**9
                    sampler.positive_fraction = 1.0  # num_pos = all positives, then num_neg = all negatives

        return _Exhaustive()
