"""The GPU benchmark runs to its skip message without a GPU, and its code runs end to end on the CPU (smoke)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "benchmarks/bench_gpu.py", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the benchmark would measure it")
def test_bench_gpu_skips_with_a_clear_message_without_a_gpu():
    out = _run()
    assert out.returncode == 0 and "no CUDA GPU visible" in out.stdout and "Traceback" not in out.stderr


def test_bench_gpu_smoke_on_the_cpu_prints_every_figure():
    out = _run("--allow-cpu", "--smoke")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "images/s" in out.stdout and "waiting for data" in out.stdout and "frames/s" in out.stdout
