"""Console output of train/: the one logging setup every command uses, and rich consoles for tables.

Each log record is printed once: Lightning attaches its own console handler to the ``lightning.pytorch`` and
``lightning.fabric`` loggers when it is imported before logging is configured, and those records also reach
the root logger (Hydra's console and ``train.log`` handlers), so each line appeared twice. :func:`quiet_lightning`
removes Lightning's handlers (records then go through the root logger only) and filters Lightning's tips and
the deprecation notices that its own code triggers in the libraries it calls (not actionable for a user).
"""

from __future__ import annotations

import logging
import sys
import warnings

from rich.console import Console

#: Loggers that Lightning gives a console handler of their own.
LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")
#: Substrings of Lightning messages that advertise rather than inform.
_ADVERTISING = ("💡 Tip:",)
#: Deprecation notices raised inside Lightning's own code (regexes for ``warnings.filterwarnings``).
_LIBRARY_DEPRECATIONS = (r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",)
#: Rich tables printed to a pipe keep this width (rich falls back to 80 columns there).
PIPE_WIDTH = 200


class _DropNoise(logging.Filter):
    """Drop records whose message contains one of :data:`_ADVERTISING`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(n in message for n in _ADVERTISING)


def quiet_lightning() -> None:
    """Route Lightning's log records through the root logger only, without tips or library deprecations.

    Idempotent; call it once the root logger's handlers exist (Hydra's job logging or :func:`setup_logging`).
    """
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
    # a logger's filters do not see records its children propagate: filter where records are written
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _DropNoise) for f in handler.filters):
            handler.addFilter(_DropNoise())
    for pattern in _LIBRARY_DEPRECATIONS:
        warnings.filterwarnings("ignore", message=pattern)


def setup_logging(level: int = logging.INFO) -> None:
    """Logging of a train/ command outside Hydra: one stderr handler ``LEVEL message`` on the root logger,
    then :func:`quiet_lightning`."""
    root = logging.getLogger()
    if not any(getattr(h, "_motcurriculum", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        handler._motcurriculum = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    quiet_lightning()


def table_console(*, stderr: bool = False) -> Console:
    """A rich Console for tables: the terminal's width, or :data:`PIPE_WIDTH` columns when piped; markup off
    so that messages holding ``[...]`` print verbatim."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else PIPE_WIDTH, highlight=False, markup=False,
                   soft_wrap=False)
