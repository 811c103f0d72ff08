"""Every command a user types, given a bad argument, ends with exit status 2 and exactly one ``error:`` line on
stderr, never a traceback (builder/errors.py ``run_cli``; train/errors.py ``cli``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MISSING = "/nonexistent/motcurriculum"

#: (command after ``python -m``, words expected in the error line)
CASES = [
    (["builder", "--bogus"], "the following arguments are required: command"),
    (["builder", "build", f"{MISSING}.toml"], "recipe file not found"),
    (["builder", "stats", "kitti", MISSING], "not registered! Available: bdd100k"),
    (["builder", "verify", MISSING], "no build manifest"),
    (["builder", "lock", "kitti", "--root", MISSING], "not registered"),
    (["builder", "synth", MISSING, "--scale", "huge"], "invalid choice: 'huge'"),
    (["builder", "diagnose", MISSING], "not a directory"),
    (["train", "stage=1", "bogus.key=3"], "Key 'bogus' is not in struct"),
    (["train", "stage=9"], "available stages"),
    (["train.track", "--checkpoint", f"{MISSING}.pth", "--split-dir", MISSING, "--out", MISSING],
     "checkpoint not found"),
    (["train.track", "--checkpoint", "x.pth", "--split-dir", MISSING, "--out", MISSING, "--tracker", "nope=1"],
     "Key 'nope' not in"),
    (["train.evaluate", "--results", MISSING, "--build", MISSING], "no build manifest"),
    (["train.regression", f"{MISSING}/a.json", f"{MISSING}/b.json"], "metrics.json not found"),
    (["train.compare", MISSING], "not a directory"),
    (["train.dashboard", MISSING], "not a directory"),
    (["train.viz", "--gt", MISSING], "--gt needs --results"),
    (["train.demo", "--stages", "7"], "invalid choice: 7"),
]


@pytest.mark.parametrize("args, words", CASES, ids=[" ".join(c[0][:2]) for c in CASES])
def test_bad_argument_is_one_error_line_and_exit_2(args, words):
    out = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=300)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout
    assert [ln for ln in lines if "error:" in ln] == lines[-1:] and lines[-1].startswith("error: "), out.stderr
    assert words in lines[-1]
