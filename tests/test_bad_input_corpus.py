"""Every case of the bad-input corpus (tests/corpus_cases.py) ends as its policy says (docs/BAD_INPUT.md): one
``error:`` line and exit status 2, or a counted warning, or a problem reported by ``verify``; files that must stay
untouched stay so; never a traceback. ``python tests/bad_input_corpus.py`` prints the same cases with the count of
tracebacks (train cases as real ``python -m train`` processes)."""

from __future__ import annotations

import pytest
import torch
from bad_input_corpus import Env, run_case
from corpus_cases import CASES
from train_helpers import compose_stage

from train.stage.app import run_stage

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def corpus_env(tiny_raw, tiny_curriculum, tiny_builds, tmp_path_factory) -> Env:
    """The corpus fixtures over the session's tiny sources and builds, plus one finished stage-1 run."""
    finished = tmp_path_factory.mktemp("finished_runs")
    build_root = tiny_builds[1].parent
    run_stage(compose_stage(1, build_root, finished, "init_from=null", "eval.every_n_epochs=1",
                            run_name="2026-01-01_00-00-00_aaaaaa"))
    return Env(tiny_raw, tiny_curriculum, build_root, finished)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_case(case, corpus_env, tmp_path):
    outcome, found = run_case(case, corpus_env, tmp_path)
    assert not outcome.traceback, outcome.stderr
    assert found == []


def test_the_corpus_covers_the_issue_list():
    """At least the cases issue 12 lists, each kind present (a guard against the corpus silently shrinking)."""
    names = " ".join(c.name for c in CASES)
    for words in ("planted", "truncated", "empty", "not UTF-8", "outside the root", "a space", "a newline",
                  "latest is a directory", "nothing to resume", "max_epochs=abc", "non-finite loss",
                  "disk full", "second build of the same name", "diagnostics is a symlink", "negative frameIndex",
                  "visibility 5", "negative track id", "seqLength negative", "unknown sequence", "unknown class",
                  "manifest seed a string", "recipe is a directory", "build_manifest.json malformed"):
        assert words in names, words
    assert len(CASES) >= 100
