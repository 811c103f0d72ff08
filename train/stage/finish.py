"""End of a stage: best weights, evaluation on every locked val set, the regression gate, report.md and the
run records (model_info.json, stopping_reason.txt, ``runs/stage<N>/latest``).

The gate (``train.regression.gate.compare``) compares this stage's metrics.json with the parent's and writes
regression.json (and the same rows under ``regression`` in metrics.json); report.md (train/stage/report.py) and
stopping_reason.txt carry its verdicts.

With DDP all of it happens once, in global rank 0 (:func:`writes_records`): the other ranks return when ``fit``
does, and rank 0 alone evaluates the best weights, gates, writes the records and moves ``latest``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig

from builder.formats.build_layout import split_val_sets
from builder.formats.files import read_json
from train.evaluate.locked import evaluate_locked_sets
from train.evaluate.model import evaluate_model
from train.regression.bootstrap import BootstrapConfig
from train.regression.gate import Regression, compare
from train.regression.render import forgetting_lines, verdict_lines
from train.stage.chaining import InitReport, update_latest
from train.stage.checkpoints import safe_load
from train.stage.distributed import rank_suffix
from train.stage.records import (
    StopInfo,
    classify_exception,
    hyperparameters,
    model_info,
    render_stopping_reason,
    save_best_model,
    write_json,
    write_stopping_reason,
)
from train.stage.report import write_report

log = logging.getLogger(__name__)


@dataclass
class StageRun:
    """What the end of a stage needs from the entry point.

    Attributes:
        cfg: the composed config (``stage.index``, ``data.build_dir``, ``eval``, ``regression``, ``tracker``,
            ``paths.runs_root``). config: the same, resolved to a plain dict (stored in the records).
        run_dir: the run directory. module: the trained :class:`train.stage.module.DetectionModule`.
        classes: the build's class list. init: what the stage started from (None: no parent).
        t0: ``time.perf_counter()`` at the start (for ``wall_time_s``). trainer: the Lightning Trainer.
    """

    cfg: DictConfig
    config: dict
    run_dir: Path
    module: torch.nn.Module
    classes: list[str]
    init: InitReport | None
    t0: float
    trainer: L.Trainer


def _callback(trainer, kind):
    # the monitored ModelCheckpoint (best.ckpt), not the every-epoch one writing last.ckpt (monitor None)
    return next((c for c in trainer.callbacks if isinstance(c, kind) and getattr(c, "monitor", True)), None)


def best_so_far(trainer) -> dict:
    """``{"metric", "value", "epoch", "path"}`` of the ModelCheckpoint's best (value None if never measured)."""
    ckpt = _callback(trainer, ModelCheckpoint)
    if ckpt is None or ckpt.best_model_score is None:
        return {"metric": ckpt.monitor if ckpt else None, "value": None, "epoch": None, "path": None}
    path = Path(ckpt.best_model_path) if ckpt.best_model_path else None
    # mmap: only the "epoch" entry is read, not the whole checkpoint (optimizer state included)
    epoch = safe_load(path, what="Lightning checkpoint", mmap=True)["epoch"] \
        if path and path.is_file() else None
    return {"metric": ckpt.monitor, "value": round(float(ckpt.best_model_score), 4), "epoch": epoch,
            "path": str(path) if path else None}


def fit_stop_info(trainer) -> StopInfo:
    """Stopping reason of a ``fit`` that returned normally: early stopping or the epoch/step budget."""
    es = _callback(trainer, EarlyStopping)
    done = trainer.current_epoch
    if es is not None and es.stopped_epoch > 0:
        return StopInfo("early_stopping", [
            f"early stopping on {es.monitor} (mode {es.mode}): no improvement > {abs(float(es.min_delta))} for "
            f"{es.wait_count} validation epochs (patience {es.patience}); stopped at epoch {es.stopped_epoch}"],
            epochs_done=done)
    return StopInfo("max_epochs", [f"reached trainer.max_epochs={trainer.max_epochs} "
                                   f"(max_steps={trainer.max_steps}, global step {trainer.global_step})"],
                    epochs_done=done)


def _records(ctx: StageRun, stop: StopInfo, best: dict, extra: dict | None = None) -> None:
    cfg, run_dir = ctx.cfg, ctx.run_dir
    stop.best = {k: best[k] for k in ("metric", "value", "epoch")}
    stop.hyperparameters = hyperparameters(ctx.config)
    write_stopping_reason(run_dir / "stopping_reason.txt", stop, stage=cfg.stage.index)
    parent = ctx.init.as_parent() if ctx.init else None
    info = model_info(stage=cfg.stage.index, parent=parent, build_dir=Path(cfg.data.build_dir),
                      classes=ctx.classes, best=stop.best, config=ctx.config,
                      wall_time_s=time.perf_counter() - ctx.t0, extra=extra)
    write_json(run_dir / "model_info.json", info)


def log_location(run_dir: Path) -> str:
    """Where this process's log goes: the root logger's file handler (Hydra's ``train.log`` in the Hydra run
    dir, which for a resumed run is not ``run_dir``), else ``run_dir/train.log`` if present, else the console."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and handler.baseFilename != os.devnull:
            return handler.baseFilename
    log_file = run_dir / "train.log"
    return str(log_file) if log_file.exists() else "see the console output"


def writes_records(trainer: L.Trainer) -> bool:
    """Whether this process writes the run's records: global rank 0 of the Trainer, and rank 0 by the
    environment too (a DDP rank that fails before Lightning has set its rank must not write as rank 0)."""
    return trainer.is_global_zero and rank_suffix() == ""


def finish_failed(ctx: StageRun, exc: BaseException) -> None:
    """Records of a run that died: stopping_reason.txt (with the exception and the log location) and
    model_info.json; ``latest`` is not touched. Only in rank 0 (:func:`writes_records`); another DDP rank logs
    why it stopped, in its own log."""
    reason = classify_exception(exc)
    trainer, run_dir = ctx.trainer, ctx.run_dir
    if not writes_records(trainer):
        log.error("rank %d stopped (%s: %s); rank 0 writes the run's records", trainer.global_rank,
                  type(exc).__name__, exc)
        return
    details = [f"{type(exc).__name__}: {exc}".strip().rstrip(":"),
               f"log: {log_location(run_dir)}",
               f"last checkpoint: {run_dir / 'checkpoints' / 'last.ckpt'}"]
    stop = StopInfo(reason, details, epochs_done=trainer.current_epoch)
    _records(ctx, stop, best_so_far(trainer))
    log.error("stage stopped: %s", render_stopping_reason(stop, stage=ctx.cfg.stage.index).splitlines()[0])


def _best_weights(ctx: StageRun, best: dict) -> dict:
    module = ctx.module
    if best["path"] and Path(best["path"]).is_file():
        state = safe_load(best["path"], what="Lightning checkpoint", mmap=True)["state_dict"]
        module.load_state_dict(state)
    else:
        log.warning("no best checkpoint (monitored metric never logged): best_model.pth holds the last weights")
    return {k: v.detach().cpu() for k, v in module.model.state_dict().items()}


def _evaluate(ctx: StageRun) -> dict | None:
    cfg = ctx.cfg
    if not cfg.eval.final:
        log.warning("final evaluation skipped (eval.final=false)")
        return None
    module, build_dir = ctx.module, Path(cfg.data.build_dir)
    val_sets = list(split_val_sets(build_dir, "val"))
    log.info("final evaluation of the best weights: val sets %s", val_sets)
    result = evaluate_model(module.model, build_dir, "val", ctx.run_dir / "eval", classes=ctx.classes,
                            tracker_params=dict(cfg.tracker), score_thresh=cfg.eval.score_thresh,
                            device=module.device, val_sets=val_sets,
                            max_frames=cfg.eval.final_max_frames)
    locked = evaluate_locked_sets(module.model, build_dir, ctx.run_dir / "eval_test", val_dir=ctx.run_dir / "eval",
                                  classes=ctx.classes, tracker_params=dict(cfg.tracker),
                                  score_thresh=cfg.eval.score_thresh, device=module.device,
                                  max_frames=cfg.eval.final_max_frames)
    return {"stage": cfg.stage.index, "val_sets": result["val_sets"], **locked}


def parent_metrics(ctx: StageRun) -> dict | None:
    """metrics.json of the run this stage started from (beside the parent's best_model.pth, or one level up
    from a ``checkpoints/*.ckpt`` given as ``init_from``), or None."""
    if ctx.init is None:
        return None
    weights = Path(ctx.init.path)
    run_dir = weights.parent.parent if weights.parent.name == "checkpoints" else weights.parent
    path = run_dir / "metrics.json"
    return read_json(path, what="the parent's metrics.json") if path.is_file() else None


def _gate(ctx: StageRun, metrics: dict | None) -> Regression | None:
    """The regression gate against the parent's metrics.json, with ``regression.bootstrap`` intervals."""
    if metrics is None:
        return None
    reg_cfg = ctx.cfg.regression
    return compare(parent_metrics(ctx), metrics, tolerance=float(reg_cfg.tolerance),
                   bootstrap=BootstrapConfig.from_config(reg_cfg.bootstrap))


def _write_metrics(run_dir: Path, metrics: dict | None, regression: Regression | None) -> None:
    """metrics.json (with the gate's rows under ``regression``) and regression.json."""
    if metrics is None:
        return
    if regression is not None:
        metrics["regression"] = regression.to_dict()
        write_json(run_dir / "regression.json", metrics["regression"])
    write_json(run_dir / "metrics.json", metrics)


def _in_multirun() -> bool:
    """Whether this process is a job of a Hydra multirun (``python -m train -m ...``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def finish_stage(ctx: StageRun, stop: StopInfo) -> dict:
    """Best weights -> best_model.pth, evaluation, gate, report.md, records, ``latest``; returns the metrics
    dict of :func:`train.stage.app.train`."""
    cfg, run_dir, trainer = ctx.cfg, ctx.run_dir, ctx.trainer
    best = best_so_far(trainer)
    if not writes_records(trainer):  # DDP: rank 0 evaluates, gates, records and moves latest, once
        log.info("rank %d done (best %s = %s): evaluation, records and %s/latest are rank 0's",
                 trainer.global_rank, best["metric"], best["value"],
                 Path(cfg.paths.runs_root) / f"stage{cfg.stage.index}")
        return {"exit_code": 0, "best": {k: best[k] for k in ("metric", "value", "epoch")},
                "run_dir": str(run_dir), "metrics": None}
    state = _best_weights(ctx, best)
    save_best_model(run_dir / "best_model.pth", state_dict=state, classes=ctx.classes,
                    config=ctx.config, stage=cfg.stage.index)
    metrics = _evaluate(ctx)
    regression = _gate(ctx, metrics)
    _write_metrics(run_dir, metrics, regression)
    stop.forgetting, stop.verdicts = forgetting_lines(regression), verdict_lines(regression)
    _records(ctx, stop, best)
    write_report(run_dir, stop=stop, metrics=metrics, regression=regression, stage=cfg.stage.index)
    failed = bool(stop.forgetting) and bool(cfg.regression.fail)
    for line in stop.forgetting:
        log.warning(line)
    if trainer.fast_dev_run:  # debug=one_batch: a wiring check is never a stage's result
        log.info("fast_dev_run: %s/latest left unchanged", Path(cfg.paths.runs_root) / f"stage{cfg.stage.index}")
    elif _in_multirun():  # the jobs of a sweep would race for `latest`; the sweep's winner is promoted instead
        log.info("multirun job: %s/latest left unchanged; promote the sweep's winner with "
                 "`python -m train.compare <multirun dir> --promote`",
                 Path(cfg.paths.runs_root) / f"stage{cfg.stage.index}")
    elif not failed:
        latest = update_latest(Path(cfg.paths.runs_root) / f"stage{cfg.stage.index}", run_dir)
        log.info("%s -> %s", latest, run_dir)
    return {"exit_code": 1 if failed else 0, "best": stop.best, "run_dir": str(run_dir), "metrics": metrics}


