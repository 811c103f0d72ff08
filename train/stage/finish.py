"""End of a stage: best weights, evaluation on every locked val set, the regression gate, report.md and the
run records (model_info.json, stopping_reason.txt, ``runs/stage<N>/latest``).

report.md holds: the stopping reason and best metric, each loss component's epoch mean in the first vs the
last epoch, the tracking metrics per val set, the regression table against the parent stage's metrics.json
(``train.regression.compare``) and a FORGETTING line per (val set, class) whose HOTA dropped by more than
``regression.tolerance`` points (conf/train.yaml).
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
from builder.formats.files import read_json, write_text_atomic
from train.evaluate.locked import evaluate_locked_sets
from train.evaluate.locked import report_lines as locked_report_lines
from train.evaluate.model import evaluate_model
from train.regression.gate import compare
from train.stage.chaining import InitReport, update_latest
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

#: Metrics shown per val set in report.md (TrackEval HOTA / CLEAR / Identity, 0-100 scale; IDSW a count).
REPORT_METRICS = ("HOTA", "DetA", "AssA", "IDF1", "MOTA", "IDSW")


def _callback(trainer, kind):
    return next((c for c in trainer.callbacks if isinstance(c, kind)), None)


def best_so_far(trainer) -> dict:
    """``{"metric", "value", "epoch", "path"}`` of the ModelCheckpoint's best (value None if never measured)."""
    ckpt = _callback(trainer, ModelCheckpoint)
    if ckpt is None or ckpt.best_model_score is None:
        return {"metric": ckpt.monitor if ckpt else None, "value": None, "epoch": None, "path": None}
    path = Path(ckpt.best_model_path) if ckpt.best_model_path else None
    # mmap: only the "epoch" entry is read, not the whole checkpoint (optimizer state included)
    epoch = torch.load(path, map_location="cpu", weights_only=False, mmap=True)["epoch"] \
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


def finish_failed(ctx: StageRun, exc: BaseException) -> None:
    """Records of a run that died: stopping_reason.txt (with the exception and the log location) and
    model_info.json; ``latest`` is not touched."""
    reason = classify_exception(exc)
    trainer, run_dir = ctx.trainer, ctx.run_dir
    details = [f"{type(exc).__name__}: {exc}".strip().rstrip(":"),
               f"log: {log_location(run_dir)}",
               f"last checkpoint: {run_dir / 'checkpoints' / 'last.ckpt'}"]
    stop = StopInfo(reason, details, epochs_done=trainer.current_epoch)
    _records(ctx, stop, best_so_far(trainer))
    log.error("stage stopped: %s", render_stopping_reason(stop, stage=ctx.cfg.stage.index).splitlines()[0])


def _best_weights(ctx: StageRun, best: dict) -> dict:
    module = ctx.module
    if best["path"] and Path(best["path"]).is_file():
        state = torch.load(best["path"], map_location="cpu", weights_only=False, mmap=True)["state_dict"]
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
    result = evaluate_model(module.model, build_dir, "val", ctx.run_dir / "eval", classes=ctx.classes,
                            tracker_params=dict(cfg.tracker), score_thresh=cfg.eval.score_thresh,
                            device=module.device, val_sets=list(split_val_sets(build_dir, "val")),
                            max_frames=cfg.eval.final_max_frames)
    metrics = {"stage": cfg.stage.index, "val_sets": result["val_sets"]}
    metrics |= evaluate_locked_sets(module.model, build_dir, ctx.run_dir / "eval_test", val_dir=ctx.run_dir / "eval",
                                    classes=ctx.classes, tracker_params=dict(cfg.tracker),
                                    score_thresh=cfg.eval.score_thresh, device=module.device,
                                    max_frames=cfg.eval.final_max_frames)
    write_json(ctx.run_dir / "metrics.json", metrics)
    return metrics


def parent_metrics(ctx: StageRun) -> dict | None:
    """metrics.json of the run this stage started from (beside the parent's best_model.pth, or one level up
    from a ``checkpoints/*.ckpt`` given as ``init_from``), or None."""
    if ctx.init is None:
        return None
    weights = Path(ctx.init.path)
    run_dir = weights.parent.parent if weights.parent.name == "checkpoints" else weights.parent
    path = run_dir / "metrics.json"
    return read_json(path, what="the parent's metrics.json") if path.is_file() else None


def _gate(ctx: StageRun, metrics: dict | None):
    if metrics is None:
        return None
    return compare(parent_metrics(ctx), metrics, tolerance=float(ctx.cfg.regression.tolerance))


def forgetting_lines(regression) -> list[str]:
    """``FORGETTING: <val set> / <class>: HOTA <delta> points vs the parent stage (tolerance <t>)`` per
    flagged entry of a ``train.regression.gate.Regression`` (none for None)."""
    if regression is None:
        return []
    return [f"FORGETTING: {vs} / {cls}: HOTA {delta:+.2f} points vs the parent stage "
            f"(tolerance {regression.tolerance:.1f})" for vs, cls, delta in regression.forgetting]


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
    state = _best_weights(ctx, best)
    if trainer.is_global_zero:
        save_best_model(run_dir / "best_model.pth", state_dict=state, classes=ctx.classes,
                        config=ctx.config, stage=cfg.stage.index)
    metrics = _evaluate(ctx)
    regression = _gate(ctx, metrics)
    stop.forgetting = forgetting_lines(regression)
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
    elif trainer.is_global_zero and not failed:
        update_latest(Path(cfg.paths.runs_root) / f"stage{cfg.stage.index}", run_dir)
    return {"exit_code": 1 if failed else 0, "best": stop.best, "run_dir": str(run_dir), "metrics": metrics}


def loss_breakdown(history: dict) -> list[tuple[str, float, float]]:
    """(component, first-epoch mean, last-epoch mean) for every training loss component."""
    epochs = history.get("epochs", [])
    if not epochs:
        return []
    first, last = epochs[0]["train"], epochs[-1]["train"]
    return [(k, first[k], last[k]) for k in first if k in last]


def write_report(run_dir: Path, *, stop: StopInfo, metrics: dict | None, regression, stage: int) -> Path:
    """Write report.md (see the module docstring) and return its path."""
    history_path = run_dir / "training_history.json"
    history = read_json(history_path, what="training_history.json") if history_path.is_file() else {}
    best = stop.best
    lines = [f"# Stage {stage}: {run_dir.name}", "", f"- stopping reason: **{stop.reason}** ({'; '.join(stop.details)})",
             f"- best: {best.get('metric')} = {best.get('value')} at epoch {best.get('epoch')}", "",
             "## Loss components (epoch mean)", "", "| component | first epoch | last epoch | change |",
             "|---|---:|---:|---:|"]
    lines += [f"| {k} | {a:.4f} | {b:.4f} | {100 * (b - a) / a if a else float('nan'):+.1f}% |"
              for k, a, b in loss_breakdown(history)]
    lines += ["", "## Tracking metrics per val set (TrackEval, 0-100)", ""]
    if metrics:
        lines += ["| val set | " + " | ".join(REPORT_METRICS) + " |", "|---|" + "---:|" * len(REPORT_METRICS)]
        for name, m in metrics["val_sets"].items():
            lines.append(f"| {name} | " + " | ".join(f"{m['combined'].get(k, float('nan')):.2f}"
                                                     if k != "IDSW" else str(m["combined"].get(k))
                                                     for k in REPORT_METRICS) + " |")
    else:
        lines.append("not evaluated (eval.final=false)")
    lines += locked_report_lines(metrics or {})
    lines += ["", "## Regression vs the parent stage", ""]
    lines.append(regression.render_markdown() if regression is not None else "no regression table "
                 "(no parent metrics.json or no evaluation)")
    lines += ["", *stop.forgetting] if stop.forgetting else ["", "No FORGETTING beyond the tolerance."]
    path = run_dir / "report.md"
    write_text_atomic(path, "\n".join(lines) + "\n")
    return path
