"""The builder's errors and the one command-line wrapper every command of the project runs through.

Every error a user can act on derives from :class:`BuilderError` (builder/) or ``train.errors.TrainError``
(train/) and names the file, line or key at fault and what was expected. :func:`run_cli` turns those, a bad
command line and unreadable files into one ``error: ...`` line on stderr and exit status 2; anything else is
a bug and keeps its traceback.

Exit statuses of every CLI: 0 success, 1 the command's own negative verdict (``verify`` found problems, the
regression gate failed a run), 2 bad input, 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence

#: Exit status for bad input (a one-line ``error:`` on stderr, no traceback).
EXIT_BAD_INPUT = 2
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130


class BuilderError(Exception):
    """Bad input or bad config met by the builder; the message names the file, line or key and what was
    expected."""


class FormatError(BuilderError):
    """A file does not follow its documented on-disk format (MOTChallenge text, seqinfo.ini, seqmap, JSON, a
    build's layout); the message names ``file:line`` (or the file and key) and the expected form."""


class NotRegisteredError(BuilderError):
    """A name looked up in a registry (source adapter, synthetic scale, ...) is unknown; the message lists
    the valid names (detectron2's ``DatasetCatalog.get`` style)."""

    @classmethod
    def of(cls, kind: str, name: str, available: Iterable[str]) -> NotRegisteredError:
        """``"<kind> 'x' is not registered! Available: a, b"``."""
        return cls(f"{kind} {name!r} is not registered! Available: {', '.join(sorted(available))}")


class UsageError(BuilderError):
    """A command line that does not parse (what argparse reports), raised by :class:`ArgumentParser`."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose complaints raise :class:`UsageError` instead of printing the usage
    and exiting, so that :func:`run_cli` reports them like any bad input. Sub-command parsers inherit it."""

    def error(self, message: str):  # noqa: D102 - argparse's hook
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _describe(exc: BaseException) -> str:
    """The one-line text of a bad-input exception (an OSError as ``<file>: <reason>``)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    # one line, whatever the message: a library's multi-line text (an ini parser, Hydra) joined with "; "
    return "; ".join(line.strip() for line in text.splitlines() if line.strip()) or type(exc).__name__


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None, *,
            bad_input: tuple[type[BaseException], ...] = (BuilderError, OSError)) -> int:
    """Run a command's ``main(argv) -> exit status`` and turn bad input into exit status 2.

    Args:
        main: the command; it parses ``argv`` (with :class:`ArgumentParser`) and returns its exit status.
        argv: the arguments (None: ``sys.argv[1:]``).
        bad_input: exception types that mean the user's input is wrong (the package's error base, OSError
            for unreadable or missing files); printed as ``error: <message>`` on stderr.

    Returns:
        ``main``'s status, 2 for bad input, 130 after Ctrl-C. Other exceptions propagate (bugs).
    """
    try:
        return main(argv)
    except bad_input as exc:
        print(f"error: {_describe(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
