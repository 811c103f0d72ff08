"""The bad-input and fault corpus of issue 12: hostile or unlucky inputs tried through the commands a user types.

Each :class:`Case` prepares one bad input in a temporary folder (a corrupted copy of the tiny synthetic sources, a
planted checkpoint, a damaged build...), runs one command (``python -m builder ...``, ``python -m train ...``,
``python -m train.track ...``, ``python -m train.evaluate ...``) and states what must happen: the exit status, words
of the one ``error:`` line (or of a counted warning) and what must stay untouched (``check``). A traceback is
never an acceptable outcome.

Run it as a script to print every case and the count of those that end in a traceback::

    .venv/bin/python tests/bad_input_corpus.py            # train cases as real subprocesses (python -m train)
    .venv/bin/python tests/bad_input_corpus.py --fast     # everything in this process (what the tests do)

tests/test_bad_input_corpus.py runs every case in-process (``builder.cli.main``, ``train.stage.command`` without
Hydra's process setup, ``train.track.__main__.main`` ...), which is the same code path minus process start-up.
docs/BAD_INPUT.md is the policy table (case -> behaviour -> test).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import tomllib
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
if str(TESTS) not in sys.path:  # run as a script: conftest, train_helpers, corpus_cases importable
    sys.path.insert(0, str(TESTS))

#: What a traceback looks like in a command's stderr (Python's, or Hydra's "Error executing job" preamble).
TRACEBACK_MARKERS = ("Traceback (most recent call last)", "Error executing job")


@dataclass
class Env:
    """Read-only fixtures every case starts from.

    Attributes:
        raw: tiny synthetic raw sources (``bdd100k``, ``dancetrack``, ``visdrone``, ``mot17``).
        recipes: the tiny curriculum's recipes {1, 2, 3} (absolute roots and manifests).
        builds: a build root holding ``tiny_stage{1,2,3}``.
        finished: a runs root holding one finished stage-1 run (``stage1/<run>`` and ``stage1/latest``).
    """

    raw: Path
    recipes: dict[int, Path]
    builds: Path
    finished: Path


@dataclass
class Call:
    """One command: ``python -m <module> <argv>``; ``fault`` wraps the in-process call (a full disk...);
    ``check()`` returns what went wrong afterwards (files that had to stay untouched...), empty when fine."""

    module: str
    argv: list[str]
    fault: Callable[[], contextlib.AbstractContextManager] | None = None
    check: Callable[[], list[str]] = field(default=lambda: [])


@dataclass
class Case:
    """A bad input: ``setup(env, tmp) -> Call``; the command must exit with ``status`` and print ``words`` (in the
    ``error:`` line for status 2, anywhere in its output otherwise)."""

    name: str
    setup: Callable[[Env, Path], Call]
    status: int = 2
    words: str = ""


@dataclass
class Outcome:
    """What a command did: exit status, stderr, everything else it printed or logged, and whether a
    traceback ended it."""

    status: int | None
    stderr: str
    output: str
    traceback: bool


# --------------------------------------------------------------------------------------------- running
def _module_main(module: str) -> Callable[[list[str]], int]:
    if module == "builder":
        from builder.cli import main
    elif module == "train.track":
        from train.track.__main__ import main
    elif module == "train.evaluate":
        from train.evaluate.__main__ import main
    elif module == "train":
        return _train_in_process
    else:
        raise ValueError(f"no in-process runner for {module}")
    return main


def _train_in_process(argv: list[str]) -> int:
    """``python -m train <argv>`` without Hydra's process setup: the same checks, compose and exit mapping."""
    from omegaconf import open_dict

    from train.config import compose
    from train.errors import ConfigError
    from train.stage.command import check_overrides, normalise_argv, register_resolvers, run_command

    register_resolvers()
    try:
        argv = normalise_argv(argv)
        check_overrides(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cfg = compose(argv)
    with open_dict(cfg):  # what Hydra's run dir would be
        cfg.paths.output_dir = f"{cfg.paths.runs_root}/stage{cfg.stage.index}/inproc_{secrets.token_hex(3)}"
    run_command(cfg)
    return 0


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def run_in_process(call: Call) -> Outcome:
    """Run ``call`` in this process; an exception other than SystemExit escaping the command is a traceback."""
    import signal

    err, out, records = io.StringIO(), io.StringIO(), _Records()
    root = logging.getLogger()
    # the commands' console handler (train.console.setup_logging) is made once per process, bound to the stderr
    # of that moment: give this call its own, then put back what was there
    saved = [h for h in root.handlers if getattr(h, "_motcurriculum", False)], root.level
    for handler in saved[0]:
        root.removeHandler(handler)
    root.addHandler(records)
    status, tb = None, False
    sigint = signal.getsignal(signal.SIGINT)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), \
                call.fault() if call.fault else contextlib.nullcontext():
            try:
                status = _module_main(call.module)(list(call.argv))
            except SystemExit as exc:
                status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # noqa: BLE001 - what the corpus counts
                tb = True
                err.write(traceback.format_exc())
    finally:
        for handler in [h for h in root.handlers if getattr(h, "_motcurriculum", False)] + [records]:
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        signal.signal(signal.SIGINT, sigint)  # Lightning ignores Ctrl-C after a KeyboardInterrupt
    stderr = err.getvalue()
    return Outcome(status, stderr, out.getvalue() + "\n".join(records.lines),
                   tb or any(m in stderr for m in TRACEBACK_MARKERS))


def run_subprocess(call: Call) -> Outcome:
    """Run ``python -m <module> <argv>`` as a real process (train helpers importable for fault callbacks)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", call.module, *call.argv], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env=env)
    return Outcome(proc.returncode, proc.stderr, proc.stdout + proc.stderr,
                   any(m in proc.stderr for m in TRACEBACK_MARKERS))


def problems(case: Case, call: Call, outcome: Outcome) -> list[str]:
    """Why ``outcome`` is not what ``case`` expects (empty: as expected)."""
    found = []
    if outcome.traceback:
        found.append("ended in a traceback: " + outcome.stderr.strip()[-600:])
    if outcome.status != case.status:
        found.append(f"exit status {outcome.status}, expected {case.status}; stderr: {outcome.stderr.strip()[-400:]}")
    lines = [ln for ln in outcome.stderr.splitlines() if ln.strip()]
    if case.status == 2 and not outcome.traceback:
        errors = [ln for ln in lines if ln.startswith("error: ")]
        if len(errors) != 1 or lines[-1] != errors[0]:
            found.append(f"expected exactly one final 'error:' line, stderr: {outcome.stderr.strip()[-400:]}")
        elif case.words not in errors[0]:
            found.append(f"error line lacks {case.words!r}: {errors[0]}")
    elif case.words and case.words not in outcome.output + outcome.stderr:
        found.append(f"output lacks {case.words!r}")
    return found + call.check()


def run_case(case: Case, env: Env, tmp: Path, *, subprocess_train: bool = False) -> tuple[Outcome, list[str]]:
    """Prepare and run one case; (outcome, problems)."""
    call = case.setup(env, tmp)
    real = subprocess_train and call.module == "train" and call.fault is None
    outcome = run_subprocess(call) if real else run_in_process(call)
    return outcome, problems(case, call, outcome)


# --------------------------------------------------------------------------------------------- fixtures
def make_env(root: Path) -> Env:
    """Build the fixtures under ``root``: tiny raw sources, curriculum, builds and a finished stage-1 run."""
    from conftest import make_tiny_curriculum
    from train_helpers import compose_stage

    from builder.build import build
    from builder.synth import write_synth
    from train.stage.app import run_stage

    raw = root / "raw"
    write_synth(raw, scale="tiny", seed=0)
    recipes = make_tiny_curriculum(raw, root / "curriculum")
    builds = root / "builds"
    for stage in (1, 2, 3):
        build(recipes[stage], build_root=builds)
    finished = root / "finished"
    run_stage(compose_stage(1, builds, finished, "init_from=null", "eval.every_n_epochs=1",
                            run_name="2026-01-01_00-00-00_aaaaaa"))
    return Env(raw, recipes, builds, finished)


@contextlib.contextmanager
def corpus_env() -> Iterator[Env]:
    """A fresh :class:`Env` in a temporary folder (the script's; the tests use session fixtures)."""
    with tempfile.TemporaryDirectory(prefix="bad_input_corpus_") as tmp:
        yield make_env(Path(tmp))


def recipe_with(env: Env, tmp: Path, stage: int = 1, **roots: Path) -> Path:
    """A copy of the tiny recipe of ``stage`` with the roots of some sources replaced (``bdd100k=<path>``)."""
    from conftest import write_recipe

    data = tomllib.loads(env.recipes[stage].read_text())
    for source, root in roots.items():
        data["sources"][source]["root"] = str(root)
    return write_recipe(tmp / f"recipe{stage}.toml", data)


def main(argv: list[str] | None = None) -> int:
    """Run every case, print one line per case and the totals; exit status 1 when any case failed."""
    from corpus_cases import CASES

    args = argv if argv is not None else sys.argv[1:]
    fast = "--fast" in args
    tracebacks = failed = 0
    with corpus_env() as env:
        for case in CASES:
            with tempfile.TemporaryDirectory() as tmp:
                outcome, found = run_case(case, env, Path(tmp), subprocess_train=not fast)
            tracebacks += outcome.traceback
            failed += bool(found)
            print(f"{'ok  ' if not found else 'FAIL'} {case.name}" + (f": {found[0][:300]}" if found else ""))
    print(f"\n{len(CASES)} cases, {tracebacks} ended in a traceback, {failed} not as expected")
    return 1 if failed else 0


def same_files(root: Path) -> Callable[[], list[str]]:
    """A check that every file under ``root`` keeps its bytes (and no file appears or goes)."""
    def digest() -> dict[str, bytes]:
        return {str(p.relative_to(root)): (os.readlink(p).encode() if p.is_symlink() else p.read_bytes())
                for p in sorted(root.rglob("*")) if p.is_file() or p.is_symlink()}

    before = digest()
    return lambda: [] if digest() == before else [f"files under {root} changed"]


def absent(path: Path) -> Callable[[], list[str]]:
    """A check that ``path`` was not created (e.g. by code inside a planted checkpoint)."""
    return lambda: [f"{path} was created"] if path.exists() else []


def noise(n: int, seed: int = 12) -> bytes:
    """``n`` bytes that look random but are the same on every run (tests need no luck)."""
    return random.Random(seed).randbytes(n)


def copy_source(env: Env, tmp: Path, source: str) -> Path:
    """A writable copy of one tiny raw source."""
    return Path(shutil.copytree(env.raw / source, tmp / "raw" / source, symlinks=True))


if __name__ == "__main__":  # run the module the cases import (not this __main__ copy): one set of classes
    import bad_input_corpus

    sys.exit(bad_input_corpus.main())
