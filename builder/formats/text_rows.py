"""Comma- (or whitespace-) separated numeric text rows: the one parser behind MOTChallenge files (gt.txt, det.txt,
tracker results) and VisDrone annotations.

Tolerant of what real files contain (blank lines, trailing commas, CRLF, a UTF-8 BOM, whitespace-separated rows),
strict about values: a wrong column count or a field that is not a number is a
:class:`builder.errors.FormatError` naming ``file:line``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from builder.errors import FormatError
from builder.formats.files import MissingFileError


# ----------------------------------------------------------------------------------------- text rows
@dataclass(frozen=True)
class NumericRows:
    """The rows of a comma-separated numeric file.

    Attributes:
        values: (N, C) float64, C = the widest row allowed; columns a row did not write are NaN.
        lines: (N,) int64 1-based line numbers. widths: (N,) int64 fields each row wrote.
        path: the file.
    """

    values: np.ndarray
    lines: np.ndarray
    widths: np.ndarray
    path: Path

    def where(self, row: int) -> str:
        """``file:line`` of a row."""
        return f"{self.path}:{int(self.lines[row])}"


def _fields(line: str) -> list[str]:
    fields = line.split(",") if "," in line else line.split()
    while fields and not fields[-1].strip():
        fields.pop()  # trailing commas
    return fields


def _parse_careful(path: Path, lines: list[tuple[int, str]], columns: Sequence[str],
                   min_columns: int) -> NumericRows:
    """Line-by-line parse; raises FormatError at the first bad line."""
    expected = (f"{len(columns)} columns ({','.join(columns)})" if min_columns == len(columns) else
                f"{min_columns} to {len(columns)} columns ({','.join(columns)})")
    values = np.full((len(lines), len(columns)), np.nan)
    widths = np.zeros(len(lines), np.int64)
    for i, (no, line) in enumerate(lines):
        fields = _fields(line)
        if not min_columns <= len(fields) <= len(columns):
            raise FormatError(f"{path}:{no}: expected {expected}, got {len(fields)}: {line.strip()!r}")
        for j, (name, text) in enumerate(zip(columns, fields, strict=False)):
            try:
                values[i, j] = float(text)
            except ValueError:
                raise FormatError(f"{path}:{no}: column {name!r} is not a number ({text.strip()!r}); "
                                  f"expected {expected} of numbers") from None
        widths[i] = len(fields)
    return NumericRows(values, np.array([no for no, _ in lines], np.int64), widths, path)


def read_numeric_rows(path: Path | str, columns: Sequence[str], *, min_columns: int | None = None) -> NumericRows:
    """Parse a comma- (or whitespace-) separated numeric file: the one text-row parser of the project.

    Args:
        path: the file.
        columns: the column names, in order; a row may not have more.
        min_columns: fewest columns a row may have (default: all of ``columns``).

    Raises:
        MissingFileError: no such file.
        FormatError: not UTF-8, a row with too few or too many fields, or a field that is not a number
            (``<file>:<line>: ...`` at the first bad line).
    """
    path = Path(path)
    min_columns = len(columns) if min_columns is None else min_columns
    if not path.is_file():
        raise MissingFileError(f"{path}: file not found (expected rows {','.join(columns)})")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{path}: not a text file (byte {exc.start} is not UTF-8); expected rows "
                          f"{','.join(columns)}") from None
    lines = [(no, s) for no, s in enumerate(text.splitlines(), start=1) if s.strip()]
    if not lines:
        return NumericRows(np.zeros((0, len(columns))), np.zeros(0, np.int64), np.zeros(0, np.int64), path)
    try:  # fast path: a regular comma-separated file (numpy's C parser); anything irregular goes line by line
        m = np.loadtxt([s for _, s in lines], delimiter=",", ndmin=2, dtype=np.float64, comments=None)
        if not (min_columns <= m.shape[1] <= len(columns) and len(m) == len(lines)):
            raise ValueError("column or line count")
    except ValueError:
        return _parse_careful(path, lines, columns, min_columns)
    values = np.full((len(m), len(columns)), np.nan)
    values[:, :m.shape[1]] = m
    return NumericRows(values, np.array([no for no, _ in lines], np.int64), np.full(len(m), m.shape[1]), path)


def check_integral(rows: NumericRows, columns: Mapping[str, int]) -> None:
    """Raise FormatError at the first row whose named columns (name -> index) hold a non-integer or
    non-finite value (columns a row did not write are not checked)."""
    for name, col in columns.items():
        values = rows.values[:, col]
        bad = (rows.widths > col) & ~(np.isfinite(values) & (values == np.round(values)))
        if bad.any():
            row = int(np.argmax(bad))
            raise FormatError(f"{rows.where(row)}: column {name!r} must be an integer, got {values[row]:g}")
