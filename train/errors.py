"""The errors of train/ and its command-line wrapper.

Every error a user can act on derives from :class:`TrainError` and names the file, line or key at fault and what
was expected. Commands run through :func:`run_cli` (builder/errors.py), which prints these, the builder's format
errors and unreadable files as one ``error: ...`` line on stderr with exit status 2; other exceptions are bugs
and keep their traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from builder.errors import BuilderError, run_cli


class TrainError(Exception):
    """Bad input or bad config met by train/; the message names the file, line or key and what was expected."""


class ConfigError(TrainError):
    """A config value or override is unknown or of the wrong type (names the key and the valid choices)."""


class ChainingError(TrainError):
    """A stage cannot find or use what it should start from or resume; the message says what to run first."""


class CheckpointError(ChainingError):
    """A checkpoint or weights file cannot be loaded safely: missing, empty, truncated, not a PyTorch file, or
    holding Python objects whose unpickling could run code (the message names the file and the reason)."""


class EvaluationError(TrainError):
    """Evaluation input is inconsistent (missing result files, duplicate ids, unknown val sets or classes)."""


class ReviewError(TrainError):
    """A run directory or result file given to a review tool (compare, dashboard, viz) is not usable."""


class NonFiniteLossError(TrainError):
    """A training loss became NaN or inf; the stage stops with reason ``non_finite_loss``."""


#: What a train/ command reports as bad input (exit 2, one line) rather than as a bug.
BAD_INPUT: tuple[type[BaseException], ...] = (TrainError, BuilderError, OSError)


def cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a train/ command's ``main(argv)`` through :func:`builder.errors.run_cli` with :data:`BAD_INPUT`."""
    return run_cli(main, argv, bad_input=BAD_INPUT)
