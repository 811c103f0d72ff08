"""Checkpoint and weights files: loaded without running code, written atomically, checked before a resume.

Every ``.pth`` / ``.ckpt`` the project reads goes through :func:`safe_load` (``torch.load(weights_only=True)``):
unpickling a file can run any code it names, and researchers swap weights with collaborators, so a file holding
anything but tensors and plain containers (dict, list, tuple, str, int, float, bool, None) is refused with an
error naming it, never executed. Every file the project writes (``best_model.pth``, Lightning's
``checkpoints/{best,last}.ckpt``) holds only those, so it always loads that way.

Writes go through :func:`builder.formats.files.atomic_file` (temporary file in the same directory, fsync,
rename): a full disk or a kill while saving leaves the previous checkpoint intact, never a truncated one.
:class:`AtomicCheckpointIO` is the Lightning plugin doing both for the Trainer's own checkpoints (Lightning's
default writes through a temporary file in /tmp and copies it over the target, which truncates it when the disk
fills up).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from builder.formats.files import atomic_file
from train.errors import CheckpointError

log = logging.getLogger(__name__)

#: Keys of a Lightning checkpoint a run can be resumed from (``Trainer.save_checkpoint`` writes them).
RESUME_KEYS = ("epoch", "global_step", "state_dict", "loops", "optimizer_states")
#: What the weights-only unpickler reports between its preamble and its pointer to the documentation.
_DOC_POINTER = "Check the documentation of torch.load"


def safe_load(path: str | Path, *, what: str = "checkpoint", map_location: Any = "cpu", mmap: bool = False) -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, nothing in the file runs.

    Args:
        what: what the file should be, for messages (``"init_from weights"``, ``"Lightning checkpoint"``).
        mmap: map tensor storages instead of reading them (for reading a few keys of a large file).

    Raises:
        CheckpointError: the file is missing or empty, is not a readable PyTorch file (truncated, corrupt,
            another format), or holds objects other than tensors and plain containers (whose unpickling could
            run code); the message names the file and the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found" + (" (a directory)" if path.is_dir() else ""))
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file; expected {what}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - whatever torch reports, the file is not usable
        raise CheckpointError(f"{path}: {load_failure(exc, what)}") from None


def load_failure(exc: BaseException, what: str) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in one line."""
    text = str(exc)
    if "Weights only load failed" in text:
        body = text.split(_DOC_POINTER)[0].split("trusted source.")[-1]
        reason = " ".join(body.replace("WeightsUnpickler error:", "").split()) or type(exc).__name__
        if "GLOBAL" in reason:
            return (f"refused to load {what}: it holds Python objects, not only tensors and plain containers, and "
                    f"unpickling it could run code ({reason}). Files written by this project never do; re-save "
                    "the weights as a plain state dict (torch.save(model.state_dict(), path)) from a trusted copy")
        return f"not a PyTorch file that loads as {what} ({reason})"
    reason = " ".join(text.split()[:16]) or type(exc).__name__
    return f"not a readable PyTorch file (truncated or corrupt?); expected {what} ({type(exc).__name__}: {reason})"


def save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically; returns the path.

    Raises:
        OSError: the disk is full or the folder not writable (``path`` keeps its previous content).
    """
    with atomic_file(path) as fh:
        torch.save(obj, fh)
    return Path(path)


def resume_problem(path: str | Path) -> str | None:
    """Why the Lightning checkpoint at ``path`` cannot be resumed from, or None when it can.

    The file is fully read (every tensor), so a truncated or corrupt file is found here, not in the middle of
    ``Trainer.fit``.
    """
    try:
        blob = safe_load(path, what="Lightning checkpoint")
    except CheckpointError as exc:
        return str(exc)
    missing = [k for k in RESUME_KEYS if not isinstance(blob, dict) or k not in blob]
    if missing:
        return f"{path}: not a Lightning training checkpoint (lacks {', '.join(missing)})"
    return None


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning ``CheckpointIO`` saving through :func:`save` and loading through :func:`safe_load`.

    Pass it as ``Trainer(plugins=[AtomicCheckpointIO()])``; ``Trainer.fit(ckpt_path=...)`` then never unpickles
    code and ``ModelCheckpoint`` never leaves a half-written file.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        """Write ``checkpoint`` atomically (``storage_options`` is not supported, as in ``TorchCheckpointIO``)."""
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        save(checkpoint, path)

    def load_checkpoint(self, path, map_location: Callable | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        """Load a checkpoint with ``weights_only=True`` whatever ``weights_only`` says.

        Raises:
            CheckpointError: see :func:`safe_load`.
        """
        return safe_load(path, what="Lightning checkpoint", map_location=map_location or "cpu")
