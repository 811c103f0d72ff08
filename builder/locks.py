"""One lock per build name: two builds of the same name never write (or clean up after) each other.

``build_lock(build_root, name)`` holds an exclusive ``flock`` on ``BUILD_ROOT/.lock-<name>`` for the whole build
(planning, writing, the swap into place, cleaning up leftovers). The kernel releases it when the process ends,
however it ends (even SIGKILL), so a lock is never stale: a leftover ``.lock-<name>`` file of a killed build is
simply taken by the next one. The file is removed when the lock is released; a build that opened it just before
checks that the file it locked is still the one on disk, so removal and taking never race. The file holds the
holder's pid and command line, which the error of a second build names.

A second build of the same name does not wait: it fails at once with a ``BuildLockedError`` (exit status 2)
naming the running one, so that no one waits unknowingly behind a long build.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from builder.errors import BuilderError

LOCK_PREFIX = ".lock-"


class BuildLockedError(BuilderError):
    """Another process is building (or cleaning up) a build of the same name."""


def lock_path(build_root: str | Path, name: str) -> Path:
    """``<build_root>/.lock-<name>``."""
    return Path(build_root) / f"{LOCK_PREFIX}{name}"


@contextlib.contextmanager
def build_lock(build_root: str | Path, name: str) -> Iterator[Path]:
    """Hold the lock of build ``name`` under ``build_root`` inside the block (see the module docstring).

    Raises:
        BuildLockedError: another process holds it (names its pid and command when it recorded them).
        OSError: the build root is not writable.
    """
    path = lock_path(build_root, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, name)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}: {' '.join(sys.argv)}\n".encode(errors="replace"))
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # before unlocking: whoever opened this file now sees it is gone and retries
        os.close(fd)


def _acquire(path: Path, name: str) -> int:
    """An fd of ``path`` holding its exclusive flock (retrying when the file was replaced meanwhile)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise BuildLockedError(f"build {name!r} is being written by another process ({holder}); wait for it to "
                                   f"finish (its lock: {path})") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed the file between our open and our lock: take the new one


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown"
