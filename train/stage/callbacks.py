"""Callbacks of a stage run: tracking metrics during training, the per-epoch history, the crash guard.

- :class:`TrackingEval` runs the tracker on the stage's watched val sets (``train.evaluate.model.evaluate_model``)
  at every validation (``trainer.check_val_every_n_epoch = eval.every_n_epochs``) and logs
  ``val/<set>/HOTA``, ``val/<set>/IDF1``, ``val/<set>/MOTA`` and ``val/HOTA`` (the monitored set), which
  ModelCheckpoint / EarlyStopping then monitor (mode max).
- :class:`HistoryRecorder` writes training_history.json after every epoch (docs/CONTRACTS.md shape).
- :class:`RunGuard` remembers the exception that ended ``fit`` and makes sure ``checkpoints/last.ckpt``
  exists (saves the current state when the run dies before its first end-of-epoch checkpoint).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch

from builder.formats.build_layout import split_val_sets
from builder.formats.files import read_json
from train.errors import ConfigError
from train.evaluate.model import evaluate_model
from train.stage.records import write_json

log = logging.getLogger(__name__)

#: Metrics of each watched val set logged during training (TrackEval definitions, 0-100 scale).
TRACKING_KEYS = ("HOTA", "IDF1", "MOTA")





class TrackingEval(L.Callback):
    """Log tracking metrics of the watched val sets at every validation epoch (not in the sanity check).

    Args:
        build_dir: build root. out_dir: where tracker outputs of each evaluation go (``epoch<N>/``).
        monitor_set: val set whose HOTA is logged as ``val/HOTA``; when the build lacks it, the first
            watched set present is used (with a warning).
        watch: val sets evaluated (``monitor_set`` is always included).
        tracker_params: the tracker's ``name`` and keyword arguments (``train.track.runner.make_tracker``).
        score_thresh: detections below this score are not given to the tracker.
        max_frames: evaluate at most this many frames per sequence (None = all).
    """

    def __init__(self, *, build_dir: str, out_dir: str, monitor_set: str, watch: Sequence[str] = (),
                 tracker_params: dict | None = None, score_thresh: float = 0.05,
                 max_frames: int | None = None) -> None:
        self.build_dir, self.out_dir = Path(build_dir), Path(out_dir)
        self.monitor_set = monitor_set
        self.watch = list(dict.fromkeys([monitor_set, *watch]))
        self.tracker_params = dict(tracker_params or {})
        self.score_thresh, self.max_frames = score_thresh, max_frames

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        classes = pl_module.extra_checkpoint.get("classes")
        present = [s for s in self.watch if s in split_val_sets(self.build_dir, "val")]
        if not present:
            raise ConfigError(f"{self.build_dir}/val: none of the watched val sets (stage.watch) {self.watch} is in the build")
        out = self.out_dir / f"epoch{trainer.current_epoch}"
        result = evaluate_model(pl_module.model, self.build_dir, "val", out, classes=classes,
                                tracker_params=self.tracker_params, score_thresh=self.score_thresh,
                                device=pl_module.device, val_sets=present, max_frames=self.max_frames)
        pl_module.model.train()
        monitored = self.monitor_set if self.monitor_set in present else present[0]
        if monitored != self.monitor_set:
            log.warning("monitored val set %r not in build %s; val/HOTA follows %r", self.monitor_set,
                        self.build_dir, monitored)
        for name, metrics in result["val_sets"].items():
            for key in TRACKING_KEYS:
                pl_module.log(f"val/{name}/{key}", float(metrics["combined"][key]), sync_dist=True)
        pl_module.log("val/HOTA", float(result["val_sets"][monitored]["combined"]["HOTA"]), prog_bar=True,
                      sync_dist=True)





class HistoryRecorder(L.Callback):
    """Append one record per epoch to training_history.json and rewrite the file (atomically).

    Record: ``{"epoch", "train": {component: epoch mean}, "lr": {param group: lr used in the epoch},
    "grad_norm" (epoch mean of the total 2-norm of the gradients before clipping), "val":
    {metric: value} (only when validation ran this epoch), "epoch_time_s"}`` (wall seconds, validation
    included). On resume the records of epochs at or after the resumed epoch are dropped first.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.epochs: list[dict] = []
        self._t0 = 0.0
        self._val_ran = False
        self._lrs: dict[str, float] = {}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after a resume, trainer.current_epoch is the restored epoch here (not yet in on_fit_start)
        if self.path.is_file():
            old = read_json(self.path, what="training_history.json").get("epochs", [])
            self.epochs = [e for e in old if e["epoch"] < trainer.current_epoch]

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0, self._val_ran = time.perf_counter(), False
        # the LR this epoch trains with (epoch-interval schedulers step before on_train_epoch_end)
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        self._lrs = {g.get("name", f"group{i}"): g["lr"] for i, g in enumerate(optimizer.param_groups)} \
            if optimizer else {}

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_ran = self._val_ran or not trainer.sanity_checking

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metrics = {k: _scalar(v) for k, v in trainer.callback_metrics.items()}
        train = {k[len("train/"):].removesuffix("_epoch"): v for k, v in metrics.items()
                 if k.startswith("train/") and not k.endswith("_step") and "grad_norm" not in k}
        val = {k: v for k, v in metrics.items() if k.startswith("val/")} if self._val_ran else {}
        self.epochs.append({"epoch": trainer.current_epoch, "train": train, "lr": self._lrs,
                            "grad_norm": metrics.get("train/grad_norm_epoch"), "val": val,
                            "epoch_time_s": round(time.perf_counter() - self._t0, 3)})
        if trainer.is_global_zero:
            write_json(self.path, {"epochs": self.epochs})


def _scalar(v) -> float:
    return float(v.detach().cpu()) if isinstance(v, torch.Tensor) else float(v)


class RunGuard(L.Callback):
    """Remember the exception that ends ``fit`` and keep a ``last.ckpt`` to resume from.

    Lightning calls ``on_exception`` for every exception (KeyboardInterrupt, SIGTERM, non-finite loss, OOM,
    errors) before it tears down. The last end-of-epoch ``last.ckpt`` is kept as is (resuming from the
    state before a non-finite loss would only meet it again); only when none exists yet is the current
    state saved there.
    """

    def __init__(self, ckpt_dir: str) -> None:
        self.ckpt_dir = Path(ckpt_dir)
        self.exception: BaseException | None = None

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.exception = exception
        last = self.ckpt_dir / "last.ckpt"
        if last.exists():
            return
        try:
            trainer.save_checkpoint(last)
        except Exception as e:  # the run is already dying; the stopping reason must still be written
            log.error("could not save %s after %s: %s", last, type(exception).__name__, e)
