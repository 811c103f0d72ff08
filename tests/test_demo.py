"""The main job's wiring (`make demo` = ``python -m train.demo``), shortened: synth -> 3 builds -> 3 chained
stages -> untrained baseline -> per-stage table. Slow (a few CPU minutes); CI runs it with ``make test-slow``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: One short epoch per stage: this test checks the chain and its records, the full demo checks learning.
SHORT = ["trainer.max_epochs=1", "scheduler.warmup_epochs=0", "trainer.limit_train_batches=4", "trainer.limit_val_batches=2",
         "eval.every_n_epochs=1", "eval.max_frames=5", "eval.final_max_frames=5"]


@pytest.mark.slow
def test_demo_chains_three_stages_and_prints_the_per_stage_table(tmp_path):
    runs = tmp_path / "runs"
    out = subprocess.run([sys.executable, "-m", "train.demo", "--synth-root", str(tmp_path / "synth"),
                          "--build-root", str(tmp_path / "builds"), "--runs", str(runs), "--", *SHORT],
                         cwd=REPO, capture_output=True, text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Per-stage tracking metrics on the locked val sets" in out.stdout
    for n in (1, 2, 3):
        info = json.loads((runs / f"stage{n}" / "latest" / "model_info.json").read_text())
        assert info["stage"] == n
        # stages 2 and 3 start from the previous stage's best weights, recorded with their digest
        assert (info["parent"] is None) == (n == 1)
        if n > 1:
            assert Path(info["parent"]["path"]).resolve().parent == (runs / f"stage{n - 1}" / "latest").resolve()
    stage3 = json.loads((runs / "stage3" / "latest" / "metrics.json").read_text())
    assert set(stage3["val_sets"]) == {"bdd100k", "dancetrack", "visdrone"}
    untrained = json.loads((runs / "untrained" / "metrics.json").read_text())
    assert set(untrained["val_sets"]) == set(stage3["val_sets"])
