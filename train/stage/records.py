"""Run records of a stage (docs/CONTRACTS.md "Run directory"): model_info.json, training_history.json
helpers, stopping_reason.txt, best_model.pth.

stopping_reason.txt starts with ``reason: <max_epochs|early_stopping|non_finite_loss|out_of_memory|
interrupted|error>`` and is written even when the run dies (the entry point writes it from its exception
handler); every JSON file is written atomically (temp file + ``os.replace``).
"""

from __future__ import annotations

import platform
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from builder.errors import BuilderError
from builder.formats import files
from train.config import flatten
from train.errors import NonFiniteLossError
from train.stage.checkpoints import save

REASONS = ("max_epochs", "early_stopping", "non_finite_loss", "out_of_memory", "interrupted", "error")


def write_json(path: str | Path, obj: Any, *, sort_keys: bool = False) -> Path:
    """Write a run record as indented JSON atomically (:func:`builder.formats.files.write_json`); tensors become
    numbers or lists.

    Raises:
        TypeError: a value that is neither JSON, a path nor a tensor.
    """
    return files.write_json(path, obj, sort_keys=sort_keys, default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.item() if obj.numel() == 1 else obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


#: Config sections whose values are the run's hyperparameters (paths, hydra and logging are not).
HPARAM_SECTIONS = ("stage", "data", "model", "optim", "scheduler", "trainer", "tracker", "eval", "regression",
                   "seed", "init_from")


def hyperparameters(config: Mapping) -> dict[str, Any]:
    """The flat hyperparameters of a resolved config (sections of :data:`HPARAM_SECTIONS`)."""
    picked = {k: config[k] for k in HPARAM_SECTIONS if k in config}
    return flatten(picked)


def git_commit(cwd: str | Path | None = None) -> str | None:
    """HEAD commit of the repository containing ``cwd`` (None outside git or without git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape a run's numbers."""
    out = {"python": platform.python_version()}
    for dist in ("torch", "torchvision", "lightning", "hydra-core", "numpy", "trackeval", "motmetrics"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    out["cuda"] = torch.version.cuda or "none"
    return out


def model_info(*, stage: int, parent: dict | None, build_dir: Path, classes: list[str], best: dict,
               config: Mapping, wall_time_s: float, extra: dict | None = None) -> dict:
    """The model_info.json dict (keys as docs/CONTRACTS.md)."""
    manifest = build_dir / "build_manifest.json"
    info = {
        "stage": stage,
        "parent": parent,
        "build": {"path": str(build_dir.resolve()),
                  "manifest_sha256": files.sha256_file(manifest) if manifest.is_file() else None},
        "classes": list(classes),
        "best": best,
        "hyperparameters": hyperparameters(config),
        "git_commit": git_commit(Path(__file__).parent),
        "versions": versions(),
        "wall_time_s": round(float(wall_time_s), 3),
    }
    info.update(extra or {})
    return info


def previous_wall_time(run_dir: str | Path) -> float:
    """``wall_time_s`` already spent by an interrupted run (its model_info.json, written when it died), so
    that a resumed run records the total; 0.0 when there is none (e.g. the process was killed hard)."""
    path = Path(run_dir) / "model_info.json"
    try:
        return float(files.read_json(path).get("wall_time_s") or 0.0)
    except (OSError, ValueError, TypeError, BuilderError):
        return 0.0


def save_best_model(path: Path, *, state_dict: dict, classes: list[str], config: Mapping, stage: int) -> Path:
    """best_model.pth: ``{"state_dict", "classes", "config", "stage"}``, loadable without Lightning and with
    ``torch.load(weights_only=True)`` (tensors and plain containers only), written atomically."""
    return save({"state_dict": state_dict, "classes": list(classes), "config": dict(config), "stage": stage}, path)


class StageInterrupted(SystemExit):
    """A stage stopped by a signal (Ctrl-C, SIGTERM, a requeue signal): stopping reason ``interrupted`` and exit
    status 128 + the signal number (130 for SIGINT, 143 for SIGTERM, 138 for SIGUSR1). A ``SystemExit``, so that
    Hydra and Lightning let it through and the process exits with that status, without a traceback.

    Attributes:
        signum: the signal. detail: what was done (e.g. where the state was saved).
    """

    def __init__(self, signum: int, detail: str = "") -> None:
        super().__init__(128 + int(signum))
        self.signum, self.detail = int(signum), detail

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        return f"{name}: {self.detail}" if self.detail else name


class RankStopped(SystemExit):
    """A DDP rank other than 0 stopping because rank 0 failed: rank 0 reports the error and writes the records.
    Exit status 0, because Lightning's subprocess launcher kills every rank, rank 0 included, as soon as one
    exits with another status, which could cut rank 0's records short."""

    def __init__(self, detail: str) -> None:
        super().__init__(0)
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


def interrupted_exit(exc: BaseException | None) -> StageInterrupted | None:
    """The :class:`StageInterrupted` an interrupting exception ends the process with (Ctrl-C -> SIGINT,
    Lightning's ``SIGTERMException`` -> SIGTERM), or None for any other exception."""
    if isinstance(exc, StageInterrupted):
        return exc
    if isinstance(exc, SIGTERMException):
        return StageInterrupted(signal.SIGTERM, "received SIGTERM")
    if isinstance(exc, KeyboardInterrupt):
        return StageInterrupted(signal.SIGINT, "interrupted (Ctrl-C)")
    return None


def classify_exception(exc: BaseException | None) -> str:
    """Stopping reason of an exception that ended ``trainer.fit`` (None -> ``error``)."""
    if interrupted_exit(exc) is not None or isinstance(exc, SystemExit):  # e.g. a scheduler's requeue handler
        return "interrupted"
    if isinstance(exc, NonFiniteLossError):
        return "non_finite_loss"
    if isinstance(exc, torch.OutOfMemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc)):
        return "out_of_memory"
    return "error"


@dataclass
class StopInfo:
    """Everything stopping_reason.txt says.

    Attributes:
        reason: one of :data:`REASONS`.
        details: lines explaining the reason (metric, patience, the exception, the log location...).
        best: ``{"metric", "value", "epoch"}`` (value None when never measured).
        hyperparameters: flat dict. epochs_done: completed epochs.
        forgetting: FORGETTING lines of the regression gate.
        verdicts: the gate's verdict per val set and class (HOTA delta, interval, verdict).
    """

    reason: str
    details: list[str] = field(default_factory=list)
    best: dict = field(default_factory=dict)
    hyperparameters: dict = field(default_factory=dict)
    epochs_done: int = 0
    forgetting: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"stopping reason {self.reason!r} is not one of {REASONS}")


def recommendation(info: StopInfo, *, stage: int) -> str:
    """A next-run suggestion for the reason (heuristics, stated as such in the text)."""
    resume = f"`python -m train stage={stage} resume=true`"
    best_epoch, last = info.best.get("epoch"), info.epochs_done - 1
    if info.reason == "max_epochs" and best_epoch is not None and best_epoch >= last - 1:
        return ("the monitored metric was still improving in the last epochs: train longer "
                "(raise trainer.max_epochs) or try a higher optim.lr")
    if info.reason in ("max_epochs", "early_stopping"):
        return ("plateau: try scheduler=warmup_cosine or a higher optim.lr; "
                f"`python -m train -m stage={stage} experiment=plateau_remedies` runs the usual remedies at once")
    return {
        "non_finite_loss": "lower optim.lr (e.g. halve it), set trainer.gradient_clip_val (e.g. 1.0), check the "
                           f"build (`python -m builder verify <build>`), then {resume}",
        "out_of_memory": "lower data.batch_size and raise trainer.accumulate_grad_batches by the same factor "
                         f"(same effective batch), or lower data.max_size; then {resume}",
        "interrupted": f"continue where it stopped with {resume}",
        "error": f"read the traceback in the log named above, fix the cause, then {resume}",
    }[info.reason]


def render_stopping_reason(info: StopInfo, *, stage: int) -> str:
    """Text of stopping_reason.txt (first line ``reason: <reason>``)."""
    best = info.best or {}
    lines = [f"reason: {info.reason}", *info.details,
             f"epochs completed: {info.epochs_done}",
             f"best: {best.get('metric')} = {best.get('value')} at epoch {best.get('epoch')}",
             f"recommendation: {recommendation(info, stage=stage)}",
             *info.forgetting, *(["regression verdicts (HOTA, interval):"] if info.verdicts else []),
             *(f"  {v}" for v in info.verdicts), "hyperparameters:"]
    lines += [f"  {k}: {v}" for k, v in sorted(info.hyperparameters.items())]
    return "\n".join(lines) + "\n"


def write_stopping_reason(path: Path, info: StopInfo, *, stage: int) -> Path:
    """Write stopping_reason.txt atomically."""
    return files.write_text_atomic(path, render_stopping_reason(info, stage=stage))
