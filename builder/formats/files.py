"""Files in general: JSON read with ``file:line:col`` errors, atomic writes, content digests.

Atomic means: written to a temporary file in the same directory, flushed to disk (``fsync``), then
``os.replace``-d over the target and the directory entry synced, so a reader sees the old file or the new one,
never half of one (POSIX rename semantics), also after a crash or a full disk. A symlink at the target is
replaced, never written through.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from builder.errors import FormatError


class MissingFileError(FormatError, FileNotFoundError):
    """A file the format requires does not exist (a :class:`FormatError` and a ``FileNotFoundError``)."""


def read_json(path: str | Path, *, expect: type | None = dict, what: str = "JSON") -> Any:
    """Parse a JSON file.

    Args:
        path: the file.
        expect: the type the top-level value must have (None: any).
        what: what the file is, for messages (``"build manifest"``, ``"metrics.json"``).

    Raises:
        MissingFileError: no such file.
        FormatError: empty, not UTF-8, malformed JSON (``<file>:<line>:<col>: malformed JSON (...)``), or a top-level
            value of another type than ``expect``.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: {what} not found")
    raw = path.read_bytes()
    if not raw.strip():
        raise FormatError(f"{path}: empty file; expected {what}")
    try:
        data = json.loads(raw)
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: not UTF-8 text (byte {exc.start}); expected {what}") from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}:{exc.lineno}:{exc.colno}: malformed JSON ({exc.msg}); expected {what}") from None
    if expect is not None and not isinstance(data, expect):
        raise FormatError(f"{path}: expected {what} as a JSON {expect.__name__}, got {type(data).__name__}")
    return data


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary file to write ``path`` through, atomically (see the module docstring); parent folders are created.

    The block writes into a temporary ``.<name>.*.tmp`` beside ``path``; on a clean exit it is flushed, fsync-ed
    and renamed over ``path``. On any exception (a full disk, Ctrl-C) the temporary file is removed and ``path``
    keeps its previous content. The project's one atomic writer: text, JSON and checkpoints all go through it.

    Raises:
        OSError: the write, the sync or the rename failed (``path`` is untouched).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _sync_dir(path.parent)


def _sync_dir(folder: Path) -> None:
    """Persist a rename in ``folder`` (best effort: some file systems refuse to open or sync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_file`); returns the path."""
    with atomic_file(path) as fh:
        fh.write(text.encode("utf-8"))
    return Path(path)


def write_json(path: str | Path, obj: Any, *, sort_keys: bool = False, indent: int | None = 2,
               default: Callable[[Any], Any] | None = None) -> Path:
    """Write ``obj`` as JSON atomically (see :func:`write_text_atomic`), with a trailing newline.

    Args:
        default: converts values json cannot (e.g. tensors, in train/); paths are written as strings.

    Raises:
        TypeError: a value neither json nor ``default`` can serialise.
    """
    def convert(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if default is not None:
            return default(value)
        raise TypeError(f"not JSON serialisable: {type(value).__name__}")

    separators = None if indent is not None else (",", ":")  # no indent: compact, as COCO files are written
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, separators=separators, default=convert)
    return write_text_atomic(path, text + "\n")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes (read in ``chunk``-byte blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
