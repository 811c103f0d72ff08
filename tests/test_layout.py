"""The code base's shape (issue 8): modules and functions stay small, builder/ never imports train/, one
seqinfo.ini parser, one definition of the regression tolerance, a docstring on every package."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("builder", "train")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _modules(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (REPO / pkg).rglob("*.py"))


def _imports(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_module_over_400_lines_and_no_function_over_60():
    too_long = []
    for path in _modules(*PACKAGES):
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(REPO)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name}: {length} lines")
    assert too_long == []


def test_builder_never_imports_train():
    offenders = [str(p.relative_to(REPO)) for p in _modules("builder")
                 if any(n == "train" or n.startswith("train.") for n in _imports(ast.parse(p.read_text())))]
    assert offenders == []


def test_train_imports_only_the_builders_formats_records_and_errors():
    allowed = ("builder.formats", "builder.records", "builder.errors", "builder.classmap", "builder.sources")
    offenders = sorted({f"{p.relative_to(REPO)}: {n}" for p in _modules("train")
                        for n in _imports(ast.parse(p.read_text()))
                        if n.startswith("builder") and not n.startswith(allowed)})
    assert offenders == []


def test_exactly_one_seqinfo_parser_used_from_both_sides():
    from builder.formats import motchallenge
    from builder.sources.motchallenge import read_seqinfo as builder_side
    from train.evaluate.results import read_seqinfo as train_side

    assert builder_side is train_side is motchallenge.read_seqinfo
    parsers = [str(p.relative_to(REPO)) for p in _modules(*PACKAGES) if "configparser" in p.read_text()]
    assert parsers == ["builder/formats/motchallenge.py"]


def test_the_regression_tolerance_is_defined_only_in_the_config():
    """No module hard-codes a default tolerance or noise level; every tool reads ``regression.tolerance``."""
    constants = []
    for path in _modules(*PACKAGES):
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
                if isinstance(node, ast.AnnAssign) else []
            for t in targets:
                name = getattr(t, "id", "")
                if any(w in name.upper() for w in ("TOLERANCE", "NOISE")) and not name.endswith("_PX"):
                    constants.append(f"{path.relative_to(REPO)}: {name}")
    assert constants == []
    from train.config import default_tolerance

    assert default_tolerance() == 1.0  # conf/train.yaml regression.tolerance


@pytest.mark.parametrize("package", sorted({str(p.parent.relative_to(REPO)).replace("/", ".")
                                            for p in _modules(*PACKAGES) if p.name == "__init__.py"}))
def test_every_package_says_what_it_holds(package):
    """Every package opens with a one-sentence summary; train/'s packages (one per concern) are that sentence."""
    doc = (importlib.import_module(package).__doc__ or "").strip()
    assert doc.splitlines() and doc.splitlines()[0].strip(), f"{package}/__init__.py has no docstring"
    if package.startswith("train"):
        assert len(doc.splitlines()) == 1, f"{package}/__init__.py: expected a one-line docstring"
