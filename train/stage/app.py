"""Fit one curriculum stage: build in a fixed order, fit, then evaluate, gate and record.

Run::

    python -m train stage=1                        # GPU fine-tuning plan, stage 1 (make train STAGE=1)
    python -m train stage=2 optim.lr=5e-5          # stage 2 from stage 1's best weights (init_from=auto)
    python -m train stage=1 experiment=demo        # from scratch on the synthetic demo build, CPU
    python -m train stage=2 resume=true            # continue the last interrupted stage-2 run
    python -m train -m stage=1 experiment=plateau_remedies   # the plateau-remedies multirun

Order: data -> model (+ init weights) -> module -> callbacks -> loggers -> trainer -> fit -> finish (best
weights, evaluation of every locked val set, regression gate, run records, ``latest``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from lightning.pytorch.callbacks import LearningRateMonitor
from omegaconf import DictConfig, OmegaConf, open_dict

from train.console import quiet_lightning
from train.errors import BAD_INPUT
from train.stage.callbacks import RunGuard
from train.stage.chaining import (
    check_latest,
    load_init_weights,
    parent_stage_command,
    resolve_init,
    stage_dir,
)
from train.stage.checkpoints import AtomicCheckpointIO
from train.stage.distributed import supported_precision
from train.stage.finish import StageRun, finish_failed, finish_stage, fit_stop_info
from train.stage.module import DetectionModule
from train.stage.records import interrupted_exit, previous_wall_time
from train.stage.resume import find_resume_checkpoint, own_checkpoint, resumed_init

log = logging.getLogger(__name__)


def run_stage(cfg: DictConfig) -> dict:
    """Train the stage described by ``cfg`` (conf/train.yaml composed); return its final metrics dict.

    The dict holds ``exit_code`` (1 when ``regression.fail`` and the gate found forgetting), ``best``
    (``{"metric", "value", "epoch"}``), ``run_dir`` and ``metrics`` (metrics.json content or None).
    Exceptions from ``fit`` and from the end of the stage (evaluation, gate, records) are re-raised after
    stopping_reason.txt and model_info.json are written; ``latest`` then stays where it was.

    Raises:
        train.errors.ChainingError: nothing to start from or to resume (names the command to run first), a
            checkpoint that cannot be loaded safely, or a ``runs/stage<N>/latest`` that is not a symlink.
        train.stage.records.StageInterrupted: Ctrl-C, SIGTERM or a requeue signal stopped the run (a SystemExit
            with status 128 + the signal number; stopping_reason.txt says ``interrupted``).
    """
    t0 = time.perf_counter()
    quiet_lightning()  # Hydra configured logging: Lightning's records now go through it, once
    check_latest(stage_dir(cfg.paths.runs_root, cfg.stage.index))  # it moves at the end: fail before training
    resumed = find_resume_checkpoint(cfg.resume, stage=cfg.stage.index, runs_root=cfg.paths.runs_root) \
        or own_checkpoint(cfg.paths.output_dir)  # a requeued job restarts in its own run directory
    if resumed:
        log.info("resuming run %s from %s", *resumed)
    run_dir = Path(resumed[0] if resumed else cfg.paths.output_dir)
    with open_dict(cfg):  # a resumed run keeps writing into its own run directory
        cfg.paths.output_dir = str(run_dir)
    if resumed:  # model_info.json's wall_time_s covers every session of the run
        t0 -= previous_wall_time(run_dir)
    # what the stage starts from, resolved first: a missing parent fails before any data or model is built
    init_path = None if resumed else resolve_init(cfg.init_from, stage=cfg.stage.index,
                                                  runs_root=cfg.paths.runs_root,
                                                  parent_command=_parent_command(cfg.stage.index - 1))
    select_monitor(cfg)
    select_precision(cfg)
    L.seed_everything(cfg.seed, workers=True)
    log.info("Instantiating datamodule <%s> on %s", cfg.data._target_, cfg.data.build_dir)
    datamodule = _instantiate(cfg.data)
    classes = datamodule.classes
    log.info("Instantiating model <%s> %s/%s for classes %s", cfg.model._target_, cfg.model.arch,
             cfg.model.backbone, classes)
    model = _instantiate(cfg.model, num_classes=len(classes))
    # a resumed run gets its weights from last.ckpt but keeps the parent it started from (records, gate)
    init = resumed_init(resumed[1], run_dir) if resumed else \
        load_init_weights(model, init_path, classes) if init_path else None
    config = OmegaConf.to_container(cfg, resolve=True)
    module = DetectionModule(model, _optimizer(cfg), _scheduler(cfg), backbone_lr=_backbone_lr(cfg), seed=cfg.seed,
                             extra_checkpoint={"classes": classes, "config": config,
                                               "parent": init.as_parent() if init else None})
    trainer, guard = _trainer(cfg, run_dir)
    run = StageRun(cfg, config, run_dir, module, classes, init, t0, trainer)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(resumed[1]) if resumed else None,
                    weights_only=True)
    except BaseException as exc:  # includes SystemExit from Lightning's KeyboardInterrupt handler
        _stop(run, guard.exception or exc)
        raise
    try:  # the final evaluation can die too (OOM, Ctrl-C): stopping_reason.txt says so, latest stays
        return finish_stage(run, fit_stop_info(trainer))
    except BaseException as exc:
        _stop(run, exc)
        raise


def _trainer(cfg: DictConfig, run_dir: Path) -> tuple[L.Trainer, RunGuard]:
    """Callbacks, loggers and the Trainer (checkpoints written atomically and loaded weights-only:
    train/stage/checkpoints.py); the run guard is always among the callbacks."""
    log.info("Instantiating callbacks and loggers")
    loggers = [_instantiate(c) for c in cfg.logger.values() if c is not None] if cfg.logger else []
    callbacks = [_instantiate(c) for c in cfg.callbacks.values() if c is not None]
    guard = next((c for c in callbacks if isinstance(c, RunGuard)), None)
    if guard is None:  # callbacks.run_guard=null: the stopping reason still needs it
        guard = RunGuard(str(run_dir / "checkpoints"))
        callbacks.append(guard)
    if not loggers:  # LearningRateMonitor needs a logger; training_history.json records the LR anyway
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    log.info("Instantiating trainer <%s>", cfg.trainer._target_)
    trainer = _instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()])
    return trainer, guard


def _stop(run: StageRun, exc: BaseException) -> None:
    """Record why the run died; a signal (Ctrl-C, SIGTERM, requeue) becomes the matching ``StageInterrupted``."""
    interrupted = interrupted_exit(exc)
    finish_failed(run, interrupted or exc)
    if interrupted is not None:
        raise interrupted from None if interrupted is exc else exc


def _instantiate(node, *args, **kwargs):
    """``hydra.utils.instantiate``, re-raising the bad-input error a target raised (a missing build, unusable
    weights: ``train.errors.BAD_INPUT``) instead of Hydra's ``InstantiationException`` wrapping it."""
    try:
        return hydra.utils.instantiate(node, *args, **kwargs)
    except InstantiationException as exc:
        if isinstance(exc.__cause__, BAD_INPUT):
            raise exc.__cause__ from None
        raise


def _parent_command(stage: int) -> str:
    """The command that trains ``stage`` with this run's experiment / paths overrides (for the
    missing-parent error); ``make train STAGE=<stage>`` outside a Hydra app."""
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    return parent_stage_command(stage, overrides)


def _optimizer(cfg: DictConfig):
    """The optimizer partial with ``lr = optim.lr * lr_scale``."""
    return _instantiate(cfg.optim, lr=float(cfg.optim.lr) * float(cfg.lr_scale))


def _backbone_lr(cfg: DictConfig) -> float | None:
    return None if cfg.lr_backbone is None else float(cfg.lr_backbone) * float(cfg.lr_scale)


def _scheduler(cfg: DictConfig):
    return _instantiate(cfg.scheduler) if cfg.get("scheduler") else None


def select_monitor(cfg: DictConfig) -> None:
    """Monitor ``val/HOTA`` (mode max) when ``eval.tracking``, else ``val/loss`` (mode min); removes the
    tracking callback in the second case. Mutates ``cfg``."""
    tracking = bool(cfg.eval.tracking)
    with open_dict(cfg):
        cfg.eval.monitor, cfg.eval.mode = ("val/HOTA", "max") if tracking else ("val/loss", "min")
        if not tracking and "tracking_eval" in cfg.callbacks:
            cfg.callbacks.tracking_eval = None


def select_precision(cfg: DictConfig) -> None:
    """``trainer.precision`` as this machine supports it: ``bf16-mixed`` becomes ``16-mixed`` or ``32-true`` on a
    GPU without bfloat16 (:func:`train.stage.distributed.supported_precision`). Mutates ``cfg``, so the records
    show the precision the run used."""
    requested = str(cfg.trainer.precision)
    chosen = supported_precision(requested, str(cfg.trainer.accelerator))
    if chosen != requested:
        with open_dict(cfg):
            cfg.trainer.precision = chosen
