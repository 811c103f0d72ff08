"""Callbacks of a stage run: tracking metrics during training, the per-epoch history, the crash guard.

- :class:`TrackingEval` runs the tracker on the stage's watched val sets (``train.evaluate.model.evaluate_model``)
  at every validation (``trainer.check_val_every_n_epoch = eval.every_n_epochs``) and logs
  ``val/<set>/HOTA``, ``val/<set>/IDF1``, ``val/<set>/MOTA`` and ``val/HOTA`` (the monitored set), which
  ModelCheckpoint / EarlyStopping then monitor (mode max). With DDP, rank 0 evaluates and broadcasts the values,
  so every rank logs (and its ModelCheckpoint / EarlyStopping decide on) the same numbers.
- :class:`HistoryRecorder` writes training_history.json after every epoch (docs/CONTRACTS.md shape).
- :class:`RunGuard` remembers the exception that ended ``fit``, makes sure ``checkpoints/last.ckpt``
  exists (saves the current state when the run dies before its first end-of-epoch checkpoint) and turns a
  requeue signal into a checkpoint and an exit for requeue (all DDP ranks at the same batch).
- :class:`ChannelsLast` stores a convolutional detector channels_last where that pays (CUDA, 16-bit mixed
  precision).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch

from builder.formats.build_layout import split_val_sets
from builder.formats.files import read_json
from train.errors import ConfigError
from train.evaluate.model import evaluate_model
from train.stage.records import RankStopped, StageInterrupted, write_json

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
        values, error = None, None
        if trainer.is_global_zero:  # once, on rank 0; the other ranks wait for its values
            try:
                values = self.evaluate(trainer.current_epoch, pl_module)
            except Exception as exc:  # the other ranks must not wait for values that never come
                error = exc
        values, message = trainer.strategy.broadcast((values, repr(error) if error else None), src=0)
        if error is not None:
            raise error
        if message is not None:
            raise RankStopped(f"rank 0's tracking evaluation failed: {message}")
        for key, value in values.items():
            # identical on every rank: the mean over ranks (sync_dist) is the value itself
            pl_module.log(key, value, prog_bar=key == "val/HOTA", sync_dist=True)

    def evaluate(self, epoch: int, pl_module: L.LightningModule) -> dict[str, float]:
        """Track and score the watched val sets with the current weights; ``{"val/<set>/<metric>": value,
        "val/HOTA": HOTA of the monitored set}`` (0-100). Leaves the model in train mode.

        Raises:
            ConfigError: none of the watched val sets is in the build.
        """
        classes = pl_module.extra_checkpoint.get("classes")
        present = [s for s in self.watch if s in split_val_sets(self.build_dir, "val")]
        if not present:
            raise ConfigError(f"{self.build_dir}/val: none of the watched val sets (stage.watch) {self.watch} is in the build")
        log.info("tracking evaluation, epoch %d: val sets %s", epoch, present)
        result = evaluate_model(pl_module.model, self.build_dir, "val", self.out_dir / f"epoch{epoch}",
                                classes=classes, tracker_params=self.tracker_params,
                                score_thresh=self.score_thresh, device=pl_module.device, val_sets=present,
                                max_frames=self.max_frames)
        pl_module.model.train()
        monitored = self.monitor_set if self.monitor_set in present else present[0]
        if monitored != self.monitor_set:
            log.warning("monitored val set %r not in build %s; val/HOTA follows %r", self.monitor_set,
                        self.build_dir, monitored)
        values = {f"val/{name}/{key}": float(metrics["combined"][key])
                  for name, metrics in result["val_sets"].items() for key in TRACKING_KEYS}
        values["val/HOTA"] = float(result["val_sets"][monitored]["combined"]["HOTA"])
        return values


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
    """Remember the exception that ends ``fit``, keep a ``last.ckpt`` to resume from, and honour requeue signals.

    Lightning calls ``on_exception`` for every exception (KeyboardInterrupt, SIGTERM, non-finite loss, OOM,
    errors) before it tears down. The last end-of-epoch ``last.ckpt`` (conf/callbacks ``last_checkpoint``) is
    kept as is (resuming from the state before a non-finite loss would only meet it again); only when none
    exists yet is the current state saved there.

    Requeue (SLURM-style, e.g. ``sbatch --signal=USR1@90``): on ``requeue_signal`` the run finishes its current
    batch, saves the current state to ``last.ckpt`` (atomically), asks SLURM to requeue the job when it runs in
    one (``scontrol requeue $SLURM_JOB_ID``) and exits with status 128 + the signal number, its stopping reason
    ``interrupted``; the requeued job continues it with ``resume=true``.

    Args:
        ckpt_dir: the run's ``checkpoints`` folder.
        requeue_signal: signal name (``SIGUSR1``, ``SIGUSR2``...) or None for no requeue handling.

    Raises:
        ConfigError: an unknown signal name.
    """

    def __init__(self, ckpt_dir: str, requeue_signal: str | None = "SIGUSR1") -> None:
        self.ckpt_dir = Path(ckpt_dir)
        self.exception: BaseException | None = None
        self.requeue_signal = _signal_number(requeue_signal) if requeue_signal else None
        self._requested = False
        self._previous = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit" and self.requeue_signal and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(self.requeue_signal, self._on_requeue_signal)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore()

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(self.requeue_signal, self._previous)
            self._previous = None

    def _on_requeue_signal(self, signum: int, frame) -> None:
        log.warning("received %s: checkpointing after this batch, then exiting for requeue",
                    signal.Signals(signum).name)
        self._requested = True

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        # every rank decides at the same batch (the signal may reach the ranks batches apart): the checkpoint
        # below is a collective; a single process decides alone
        if not trainer.strategy.reduce_boolean_decision(self._requested, all=False):
            return
        last = self.ckpt_dir / "last.ckpt"
        trainer.save_checkpoint(last)
        requeued = request_requeue() if trainer.is_global_zero else "rank 0 requeues the job"
        raise StageInterrupted(self.requeue_signal, f"requeue signal: state saved to {last} at epoch "
                               f"{trainer.current_epoch}, global step {trainer.global_step}; {requeued}")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()
        self.exception = exception
        last = self.ckpt_dir / "last.ckpt"
        if last.exists():
            return
        if trainer.world_size > 1:  # saving is a collective: a rank failing alone would wait for the others
            log.warning("DDP: no %s saved after %s (the end-of-epoch checkpoints are what resume uses)", last,
                        type(exception).__name__)
            return
        try:
            trainer.save_checkpoint(last)
        except Exception as e:  # the run is already dying; the stopping reason must still be written
            log.error("could not save %s after %s: %s", last, type(exception).__name__, e)


def _signal_number(name: str) -> int:
    try:
        return int(signal.Signals[name.upper() if name.upper().startswith("SIG") else f"SIG{name.upper()}"])
    except KeyError:
        raise ConfigError(f"requeue_signal={name!r}: not a signal name (e.g. SIGUSR1, SIGUSR2)") from None


def request_requeue() -> str:
    """Ask SLURM to requeue this job (``scontrol requeue <job id>``) when it runs in one; what happened, in words."""
    job = os.environ.get("SLURM_JOB_ID")
    if os.environ.get("SLURM_ARRAY_JOB_ID") and os.environ.get("SLURM_ARRAY_TASK_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    if not job:
        return "no SLURM job to requeue"
    try:
        out = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("scontrol requeue %s failed: %s", job, exc)
        return f"scontrol requeue {job} failed ({exc})"
    if out.returncode:
        log.warning("scontrol requeue %s exited %d: %s", job, out.returncode, out.stderr.strip())
        return f"scontrol requeue {job} exited {out.returncode}"
    return f"SLURM job {job} requeued"


class ChannelsLast(L.Callback):
    """Store the detector's weights channels_last (NHWC) when that pays, before Lightning moves the model to its
    device (the format survives the move) and wraps it for DDP.

    ``mode="auto"``: on when the Trainer runs on a CUDA GPU with 16-bit mixed precision (``16-mixed``,
    ``bf16-mixed``) and the model has 2-D convolutions: tensor-core convolutions run NHWC natively, and a
    convolution given channels_last weights returns channels_last activations, so the whole backbone stays NHWC
    (PyTorch's "Channels Last Memory Format" tutorial; NVIDIA's deep learning performance guide). Off on the CPU
    and in 32-bit, where the layout changes cost more than they save. ``True`` / ``False`` force it.

    Raises:
        ConfigError: a mode other than ``auto``, true or false.
    """

    def __init__(self, mode: str | bool = "auto") -> None:
        if mode not in ("auto", True, False):
            raise ConfigError(f"callbacks.channels_last.mode={mode!r}: expected auto, true or false")
        self.mode = mode
        self.applied = False

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        convolutional = any(isinstance(m, torch.nn.Conv2d) for m in pl_module.modules())
        mixed = str(trainer.precision).startswith(("16", "bf16"))
        wanted = self.mode if self.mode != "auto" else \
            trainer.strategy.root_device.type == "cuda" and mixed and convolutional
        if wanted and convolutional:
            pl_module.to(memory_format=torch.channels_last)
            self.applied = True
            log.info("channels_last: convolution weights stored NHWC")
