"""Stage chaining: what a stage starts from, head remapping by class name, and ``runs/stage<N>/latest``.

A stage with ``init_from: auto`` starts from ``<runs_root>/stage<N-1>/latest/best_model.pth`` (weights only:
fresh optimizer, schedule and epoch count). ``init_from: <path>`` names a ``best_model.pth`` (or any state
dict) directly; ``init_from: null`` starts from the model config alone (random or COCO weights).

``best_model.pth`` (docs/CONTRACTS.md): ``{"state_dict", "classes", "config", "stage"}``.

Head remap: the class-indexed tensors of the detection head are copied row by row for classes kept by
name; classes new to this stage keep the fresh init of the new model; dropped classes are discarded.
Class-indexed layouts (K = number of foreground classes):

- Faster R-CNN ``roi_heads.box_predictor.cls_score``: rows [background, class 1..K];
  ``bbox_pred``: 4 rows per class in the same order (background first).
- FCOS ``head.classification_head.cls_logits``: K rows (output channels), class k at row k - 1.
- RetinaNet ``head.classification_head.cls_logits``: A * K rows, anchor-major (row a * K + k - 1).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet

from builder.formats.files import read_json, sha256_file
from train.errors import ChainingError
from train.stage.checkpoints import resume_problem, safe_load

log = logging.getLogger(__name__)

LATEST = "latest"
BEST_MODEL = "best_model.pth"
#: Prefix of the detector's tensors in a Lightning checkpoint (``DetectionModule.model``).
LIGHTNING_PREFIX = "model."


@dataclass
class InitReport:
    """What :func:`load_init_weights` did: parent path/sha256 and the class remap (for model_info.json)."""

    path: str
    sha256: str
    kept: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def as_parent(self) -> dict:
        """The ``parent`` entry of model_info.json."""
        return {"path": self.path, "sha256": self.sha256, "classes_kept": self.kept,
                "classes_new": self.new, "classes_dropped": self.dropped}

    @classmethod
    def from_parent(cls, parent: dict) -> InitReport:
        """Inverse of :meth:`as_parent` (a resumed run reads it back from its checkpoint)."""
        return cls(parent["path"], parent["sha256"], list(parent.get("classes_kept", [])),
                   list(parent.get("classes_new", [])), list(parent.get("classes_dropped", [])))


def stage_dir(runs_root: str | Path, stage: int) -> Path:
    """``<runs_root>/stage<N>``."""
    return Path(runs_root) / f"stage{stage}"


def resolve_init(init_from: str | None, *, stage: int, runs_root: str | Path,
                 parent_command: str | None = None) -> Path | None:
    """Resolve ``init_from`` to a checkpoint path, or None for no initialisation.

    Args:
        parent_command: the command that trains the parent stage, named in the missing-parent error
            (default ``make train STAGE=<N-1>``; the entry point passes one carrying the run's own
            ``experiment`` / ``paths`` overrides, see :func:`parent_stage_command`).

    Raises:
        ChainingError: ``auto`` for stage 1 (no parent stage), a missing parent run (names the command to
            run first), or a missing explicit path.
    """
    if init_from in (None, "", "null", "none"):
        return None
    if init_from == "auto":
        if stage <= 1:
            raise ChainingError("init_from=auto needs a previous stage; stage 1 has none "
                                "(use init_from=null or init_from=<path of a best_model.pth>)")
        parent = stage_dir(runs_root, stage - 1) / LATEST / BEST_MODEL
        if not parent.is_file():
            raise ChainingError(f"stage {stage} starts from stage {stage - 1}'s best weights, but {parent} "
                                f"does not exist: run `{parent_command or f'make train STAGE={stage - 1}'}` first "
                                f"(or set init_from=<path> / init_from=null)")
        return parent.resolve()
    path = Path(init_from)
    if not path.is_file():
        raise ChainingError(f"init_from={init_from!r}: file not found")
    return path.resolve()


#: Overrides that decide where the parent stage's runs live (``experiment`` sets ``paths.runs_root``, e.g.
#: runs/demo): carried into the command named by the missing-parent error; everything else (LRs, epochs,
#: plateau remedies...) is this stage's own business.
PARENT_OVERRIDE_KEYS = ("experiment",)
PARENT_OVERRIDE_PREFIXES = ("paths.",)


def parent_stage_command(stage: int, overrides: list[str]) -> str:
    """``python -m train stage=<stage> <overrides naming the experiment or paths>``: the command that makes
    ``<runs_root>/stage<stage>/latest`` for a run started with Hydra ``overrides`` (e.g. ``experiment=demo``
    keeps ``runs/demo``); ``make train STAGE=<stage>`` when there are none."""
    keys = [o.lstrip("+~").split("=", 1)[0] for o in overrides]
    keep = [o for o, k in zip(overrides, keys, strict=True)
            if k in PARENT_OVERRIDE_KEYS or k.startswith(PARENT_OVERRIDE_PREFIXES)]
    return f"python -m train stage={stage} {' '.join(keep)}" if keep else f"make train STAGE={stage}"


def class_index_layout(model: nn.Module) -> dict[str, tuple[int, int, int]]:
    """Class-indexed head tensors of a torchvision detector.

    Returns:
        ``{param name: (rows per class, leading background rows, groups)}``; the rows of class k (1-based)
        in group g start at ``g * (offset + K * per) + offset + (k - 1) * per`` (see :func:`_rows`).

    Raises:
        TypeError: a model type this function does not know.
    """
    if isinstance(model, FasterRCNN):
        p = "roi_heads.box_predictor."
        return {p + "cls_score.weight": (1, 1, 1), p + "cls_score.bias": (1, 1, 1),
                p + "bbox_pred.weight": (4, 4, 1), p + "bbox_pred.bias": (4, 4, 1)}
    if isinstance(model, FCOS | RetinaNet):
        anchors = model.head.classification_head.num_anchors if isinstance(model, RetinaNet) else 1
        p = "head.classification_head.cls_logits."
        return {p + "weight": (1, 0, anchors), p + "bias": (1, 0, anchors)}
    raise TypeError(f"no class-index layout for {type(model).__name__}; expected FasterRCNN, FCOS or RetinaNet")


def _rows(k: int, num_classes: int, layout: tuple[int, int, int]) -> list[int]:
    """Rows of class ``k`` (1-based) in a class-indexed tensor with ``num_classes`` foreground classes."""
    per, offset, groups = layout
    group_rows = offset + num_classes * per
    return [g * group_rows + offset + (k - 1) * per + r for g in range(groups) for r in range(per)]


def remap_head(state: dict[str, torch.Tensor], model: nn.Module, old: list[str],
               new: list[str]) -> dict[str, torch.Tensor]:
    """Return ``state`` with its class-indexed head tensors rewritten for the class list ``new``.

    Kept classes (by name) copy their rows from ``state``; new classes take the rows of ``model``'s current
    (fresh) tensors; Faster R-CNN's background rows are kept from ``state``.
    """
    own = model.state_dict()
    out = dict(state)
    for name, layout in class_index_layout(model).items():
        target = own[name].clone()
        src = state[name]
        per, offset, groups = layout
        for g in range(groups):  # background / offset rows
            target[g * (offset + len(new) * per): g * (offset + len(new) * per) + offset] = \
                src[g * (offset + len(old) * per): g * (offset + len(old) * per) + offset]
        for k_new, cls in enumerate(new, 1):
            if cls in old:
                target[_rows(k_new, len(new), layout)] = src[_rows(old.index(cls) + 1, len(old), layout)]
        out[name] = target
    return out


def load_init_weights(model: nn.Module, path: str | Path, classes: list[str]) -> InitReport:
    """Load a parent ``best_model.pth`` into ``model`` (built for ``classes``), remapping the head by name.

    Also accepts a plain state dict (assumed to have the same class list) and a Lightning ``.ckpt`` of a
    stage run (its ``model.`` prefix is stripped; its ``classes`` are stored beside the weights).

    The file is loaded with ``weights_only=True`` (:func:`train.stage.checkpoints.safe_load`): nothing in it runs.

    Raises:
        CheckpointError: the file is missing, empty, corrupt or holds more than tensors and plain containers.
        ChainingError: the parent's tensors do not fit the model (another arch/backbone), naming the file.
    """
    path = Path(path)
    blob = safe_load(path, what="init_from weights (a best_model.pth, a state dict or a stage run's .ckpt)")
    if not isinstance(blob, dict):
        raise ChainingError(f"{path}: expected a dict of tensors (best_model.pth, a state dict or a .ckpt), got "
                            f"{type(blob).__name__}")
    state = blob.get("state_dict", blob)
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise ChainingError(f"{path}: 'state_dict' must map parameter names to tensors")
    if "pytorch-lightning_version" in blob:  # checkpoints/{best,last}.ckpt
        state = {k.removeprefix(LIGHTNING_PREFIX): v for k, v in state.items() if k.startswith(LIGHTNING_PREFIX)}
    old = blob.get("classes", list(classes))
    if not isinstance(old, list | tuple) or not all(isinstance(c, str) for c in old):
        raise ChainingError(f"{path}: 'classes' must be a list of class names, got {old!r}")
    old = list(old)
    report = InitReport(str(path), sha256_file(path), kept=[c for c in classes if c in old],
                        new=[c for c in classes if c not in old], dropped=[c for c in old if c not in classes])
    try:
        if old != list(classes):
            state = remap_head(state, model, old, list(classes))
        model.load_state_dict(state)
    except (RuntimeError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise ChainingError(f"{path}: weights do not fit the configured model (same model.arch and "
                            f"model.backbone as the parent run?): {e}") from e
    log.info("initialised from %s (sha256 %s): classes kept %s, new (fresh head rows) %s, dropped %s",
             path, report.sha256[:12], report.kept, report.new, report.dropped)
    return report


def update_latest(runs_stage_dir: str | Path, run_dir: str | Path) -> Path:
    """Point ``<runs_stage_dir>/latest`` at ``run_dir`` atomically (symlink to a temp name + os.replace).

    The link is relative when ``run_dir`` lies inside ``runs_stage_dir`` so the runs tree can move.

    Raises:
        ChainingError: ``latest`` exists and is not a symlink (see :func:`check_latest`).
    """
    runs_stage_dir, run_dir = Path(runs_stage_dir), Path(run_dir).resolve()
    check_latest(runs_stage_dir)
    runs_stage_dir.mkdir(parents=True, exist_ok=True)
    try:
        target = os.path.relpath(run_dir, runs_stage_dir.resolve())
    except ValueError:
        target = str(run_dir)
    tmp = runs_stage_dir / f".{LATEST}.{os.getpid()}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, runs_stage_dir / LATEST)
    return runs_stage_dir / LATEST


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


def check_latest(runs_stage_dir: str | Path) -> None:
    """``<runs_stage_dir>/latest`` must be a symlink (or absent): the stage moves it when it finishes.

    Raises:
        ChainingError: ``latest`` exists and is not a symlink (a real folder or file would be replaced).
    """
    latest = Path(runs_stage_dir) / LATEST
    if latest.exists() and not latest.is_symlink():
        kind = "folder" if latest.is_dir() else "file"
        raise ChainingError(f"{latest} is a real {kind}, not a symlink: a finished stage points it at its run "
                            f"directory. Move it away (e.g. `mv {latest} {latest}.old`) and run again")
