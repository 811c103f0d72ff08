"""Resuming a stage: which unfinished run a ``resume`` continues, and from which of its checkpoints.

A run is finished when its ``stopping_reason.txt`` says ``reason: max_epochs`` or ``reason: early_stopping``: such
a run is never reopened. ``resume=true`` continues the unfinished run of the stage whose checkpoints changed last and
that holds a valid checkpoint (``last.ckpt``, else ``best.ckpt``; truncated or corrupt ones are skipped with a
warning); a job restarted in its own run directory (a SLURM / submitit requeue) continues the checkpoint it finds
there (:func:`own_checkpoint`). docs/CONTRACTS.md, "Run directory".
"""

from __future__ import annotations

import logging
from pathlib import Path

from builder.formats.files import read_json
from train.errors import ChainingError
from train.stage.chaining import BEST_MODEL, LATEST, InitReport, stage_dir
from train.stage.checkpoints import resume_problem, safe_load

log = logging.getLogger(__name__)


def resumed_init(ckpt: str | Path, run_dir: str | Path) -> InitReport | None:
    """What the interrupted run being resumed started from: the ``parent`` stored in its checkpoint (see
    :class:`train.stage.module.DetectionModule` ``extra_checkpoint``), else the ``parent`` of its model_info.json
    (written when it died), else None. A resumed stage keeps its parent in model_info.json and its
    regression gate.

    Raises:
        CheckpointError: the checkpoint cannot be loaded safely (see :func:`train.stage.checkpoints.safe_load`).
    """
    blob = safe_load(ckpt, what="Lightning checkpoint", mmap=True)
    parent = blob.get("parent") if isinstance(blob, dict) else None
    info = Path(run_dir) / "model_info.json"
    if parent is None and info.is_file():
        parent = read_json(info, what="model_info.json").get("parent")
    try:
        return InitReport.from_parent(parent) if parent else None
    except (KeyError, TypeError, AttributeError):
        raise ChainingError(f"{ckpt}: 'parent' must be {{path, sha256, classes_kept, ...}} as a stage run "
                            f"records it, got {parent!r}") from None


#: Stopping reasons of a run whose ``fit`` ended normally: such a run is finished and never reopened.
FINISHED_REASONS = ("max_epochs", "early_stopping")


#: Checkpoints of a run a resume may start from, in order of preference.
RESUME_CANDIDATES = ("last.ckpt", "best.ckpt")


def finished_reason(run_dir: str | Path) -> str | None:
    """The stopping reason of a finished run (``max_epochs``, ``early_stopping``), else None (still unfinished:
    interrupted, crashed, killed before it wrote stopping_reason.txt)."""
    path = Path(run_dir) / "stopping_reason.txt"
    try:
        first = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
    except OSError:
        return None
    reason = first.removeprefix("reason:").strip()
    return reason if first.startswith("reason:") and reason in FINISHED_REASONS else None


def resumable_checkpoint(run_dir: str | Path) -> Path | None:
    """The first checkpoint of ``run_dir/checkpoints`` (``last.ckpt``, then ``best.ckpt``) that can be resumed
    from; every truncated or corrupt one met before it is skipped with a warning naming it."""
    for name in RESUME_CANDIDATES:
        ckpt = Path(run_dir) / "checkpoints" / name
        if not ckpt.is_file():
            continue
        problem = resume_problem(ckpt)
        if problem is None:
            return ckpt
        log.warning("skipping %s: %s", ckpt, problem)
    return None


def _run_dirs(root: Path) -> list[Path]:
    """Run directories of a stage (``latest`` itself left out), most recently checkpointed first."""
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and p.name != LATEST]

    def activity(run: Path) -> float:
        stamps = [c.stat().st_mtime for c in (run / "checkpoints").glob("*.ckpt")] if (run / "checkpoints").is_dir() \
            else []
        return max(stamps, default=run.stat().st_mtime)

    return sorted(runs, key=activity, reverse=True)


def find_resume_checkpoint(resume: bool | str, *, stage: int, runs_root: str | Path) -> tuple[Path, Path] | None:
    """Resolve ``resume`` to (run dir, checkpoint) or None.

    ``resume=true`` takes the unfinished run of the stage (no ``reason: max_epochs|early_stopping`` in its
    stopping_reason.txt, not ``latest``) whose checkpoints changed last and that holds a valid checkpoint
    (``last.ckpt``, else ``best.ckpt``; corrupt ones are skipped with a warning). ``resume=<run dir>`` names the
    run, ``resume=<.ckpt file>`` the checkpoint. A finished run is never reopened.

    Raises:
        ChainingError: nothing to resume (names where it looked and what to run instead), a named run that
            finished, or a named checkpoint that cannot be resumed from (names the file and why).
    """
    if resume in (False, None, "", "false"):
        return None
    if resume is True or resume == "true":
        root = stage_dir(runs_root, stage)
        latest = (root / LATEST).resolve() if (root / LATEST).is_symlink() else None
        finished = []
        for run in _run_dirs(root):
            if finished_reason(run) or run.resolve() == latest:
                finished.append(run.name)
                continue
            ckpt = resumable_checkpoint(run)
            if ckpt is not None:
                return run, ckpt
        done = f"; finished runs are never reopened ({', '.join(sorted(finished))})" if finished else ""
        raise ChainingError(f"resume=true: nothing to resume: no unfinished run under {root} has a valid "
                            f"checkpoints/last.ckpt or best.ckpt{done}. Start a new run without resume=true "
                            "(init_from=<run>/best_model.pth continues from a finished run's weights)")
    path = Path(resume)
    run = path.parent.parent if path.suffix == ".ckpt" else path
    reason = finished_reason(run)
    if reason:
        raise ChainingError(f"resume={resume!r}: run {run} finished ({reason}) and is never reopened; start a new "
                            f"run from its weights with init_from={run / BEST_MODEL}")
    if path.suffix != ".ckpt":
        ckpt = resumable_checkpoint(run)
        if ckpt is None:
            raise ChainingError(f"resume={resume!r}: {run / 'checkpoints'} holds no valid last.ckpt or best.ckpt")
        return run, ckpt
    problem = resume_problem(path)
    if problem:
        raise ChainingError(f"resume={resume!r}: {problem}")
    return run, path


def own_checkpoint(run_dir: str | Path) -> tuple[Path, Path] | None:
    """(run dir, checkpoint) when ``run_dir`` (the directory this run was given) already holds an unfinished run
    with a valid checkpoint: a job requeued by its scheduler (SLURM, submitit) restarts with the same run
    directory and continues it. Run directories are unique per launch, so a new run never finds one.

    Raises:
        ChainingError: ``run_dir`` holds a finished run (it is never trained over).
    """
    run_dir = Path(run_dir)
    if not (run_dir / "checkpoints").is_dir():
        return None
    reason = finished_reason(run_dir)
    if reason:
        raise ChainingError(f"{run_dir} holds a finished run ({reason}): it is never trained over; use a new run "
                            f"directory (init_from={run_dir / BEST_MODEL} starts from its weights)")
    ckpt = resumable_checkpoint(run_dir)
    return (run_dir, ckpt) if ckpt else None
