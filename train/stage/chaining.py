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
- FCOS ``head.classification_head.cls_logits``: K + 1 rows (output channels), [background, class 1..K].
- RetinaNet ``head.classification_head.cls_logits``: A * (K + 1) rows, anchor-major, each anchor's block
  [background, class 1..K] (row a * (K + 1) + k).

The appearance-embedding branch (``roi_heads.embed_head.*``, ``embed_head.*``; train/stage/embedding.py) is not
class-indexed: it is carried by name like the box head, bit for bit. What is tied to one build is not carried: the
identity classifier of the ``identity`` embedding loss (one row per identity of the parent's build) is dropped and
rebuilt for this stage's build (``rebuilt`` in the run records). A parent without the branch (or a child without
it) is accepted: the branch starts fresh (``fresh``) or is left out (``dropped_modules``), and the records say so.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet

from builder.formats.files import sha256_file
from train.errors import ChainingError
from train.stage.checkpoints import safe_load
from train.stage.detectors import embedding_loss_of
from train.stage.embedding import BUILD_SPECIFIC

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
    rebuilt: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    dropped_modules: list[str] = field(default_factory=list)

    def as_parent(self) -> dict:
        """The ``parent`` entry of model_info.json: path, sha256, the class remap, and the modules not carried from
        the parent: ``rebuilt`` (tied to one build, e.g. the identity classifier), ``fresh`` (the parent lacks
        them) and ``dropped_modules`` (this model lacks them)."""
        return {"path": self.path, "sha256": self.sha256, "classes_kept": self.kept,
                "classes_new": self.new, "classes_dropped": self.dropped, "rebuilt": self.rebuilt,
                "fresh": self.fresh, "dropped_modules": self.dropped_modules}

    @classmethod
    def from_parent(cls, parent: dict) -> InitReport:
        """Inverse of :meth:`as_parent` (a resumed run reads it back from its checkpoint)."""
        lists = [list(parent.get(k, [])) for k in ("classes_kept", "classes_new", "classes_dropped", "rebuilt",
                                                    "fresh", "dropped_modules")]
        return cls(parent["path"], parent["sha256"], *lists)


#: Parameter-name fragments of the appearance-embedding branch (train.stage.detectors).
EMBEDDING_PARTS = ("embed_head.", "embed_loss.")


def _module_names(keys) -> list[str]:
    """Sorted module prefixes of parameter names (``roi_heads.embed_head.fc.0.weight`` -> ``roi_heads.embed_head``)."""
    out = set()
    for k in keys:
        for part in (BUILD_SPECIFIC, *EMBEDDING_PARTS):
            if part in k:
                out.add(k[:k.index(part) + len(part) - 1])
                break
    return sorted(out)


def carry_embedding(state: dict[str, torch.Tensor], model: nn.Module, report: InitReport) -> dict[str, torch.Tensor]:
    """``state`` made to fit ``model``'s embedding branch: build-specific tensors (the identity classifier) dropped,
    branch tensors the parent lacks taken fresh from ``model``, branch tensors ``model`` lacks dropped; ``report``
    records each (everything else, the branch included when both have it, is carried unchanged)."""
    own = model.state_dict()
    branch = embedding_loss_of(model)
    tied = [k for k in state if BUILD_SPECIFIC in k]
    rebuilt = set(_module_names(tied))
    if branch is not None and branch.cfg.loss == "identity":  # this stage builds its own for its build
        rebuilt |= {f"{n}.identity_classifier" for n, m in model.named_modules() if m is branch}
    report.rebuilt = sorted(rebuilt)
    is_branch = [k for k in own if any(p in k for p in EMBEDDING_PARTS)]
    missing = [k for k in is_branch if k not in state]
    extra = [k for k in state if k not in own and any(p in k for p in EMBEDDING_PARTS) and k not in tied]
    report.fresh, report.dropped_modules = _module_names(missing), _module_names(extra)
    out = {k: v for k, v in state.items() if k not in tied and k not in extra}
    out.update({k: own[k] for k in missing})
    return out


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
        return {p + "weight": (1, 1, anchors), p + "bias": (1, 1, anchors)}
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
        state = carry_embedding(state, model, report)
        if old != list(classes):
            state = remap_head(state, model, old, list(classes))
        model.load_state_dict(state)
    except (RuntimeError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise ChainingError(f"{path}: weights do not fit the configured model (same model.arch and "
                            f"model.backbone as the parent run?): {e}") from e
    log.info("initialised from %s (sha256 %s): classes kept %s, new (fresh head rows) %s, dropped %s; embedding "
             "branch: rebuilt for this build %s, fresh %s, dropped %s", path, report.sha256[:12], report.kept,
             report.new, report.dropped, report.rebuilt, report.fresh, report.dropped_modules)
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
