"""The command line of stage training: ``python -m train stage=N [overrides]`` (the fit itself: app.py).

``STAGE=N`` is accepted as well as ``stage=N`` (the Makefile's spelling), and a stage number selects the stage
config whose name starts with ``stage<N>_`` (stage1_foundation, stage2_refine, stage3_aerial); comma lists work
for multiruns (``-m stage=1,2``). ``seeds=3`` is short for ``-m seed=0,1,2``: one stage trained with several seeds,
compared as a setting by ``train.compare`` and ``train.regression`` (mean over seeds, seed-to-seed spread). Hydra itself rejects an integer as a config group choice, hence this rewrite
before Hydra parses the command line. The overrides are then composed once with Hydra's compose API, so that an
unknown key or option is one ``error:`` line (exit 2) before anything runs; a multirun is checked with the first
value of every sweep.

Exit status: 0 on success; 1 when ``regression.fail=true`` and the gate found forgetting; 2 for bad input (an
unknown override, no parent run, nothing to resume: one ``error:`` line naming what to do, no traceback). In a
multirun, forgetting does not stop the sweep and bad input in a job is raised like any other error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig

from builder.errors import EXIT_BAD_INPUT
from train.config import CONF_DIR, compose, one_line
from train.errors import BAD_INPUT, ConfigError

#: The stage config group directory.
STAGE_DIR = CONF_DIR / "stage"
#: The Hydra flags the override check understands; any other flag (``--cfg``, ``-cn`` ...) skips the check.
_FLAGS = {"-m", "--multirun"}


def stage_name(choice: str, stage_dir: Path = STAGE_DIR) -> str:
    """``"2"`` -> ``"stage2_refine"`` (the config in ``stage_dir`` named ``stage2_*``); names pass unchanged.

    Raises:
        ConfigError: a number with no (or several) matching stage configs, listing the available ones.
    """
    if not choice.strip().isdigit():
        return choice
    matches = sorted(p.stem for p in stage_dir.glob(f"stage{int(choice)}_*.yaml"))
    if len(matches) != 1:
        available = sorted(p.stem for p in stage_dir.glob("*.yaml"))
        raise ConfigError(f"stage={choice}: expected exactly one {stage_dir}/stage{int(choice)}_*.yaml, found "
                          f"{matches}; available stages: {available}")
    return matches[0]


def seed_list(value: str) -> str:
    """``seeds=3`` -> ``0,1,2``; ``seeds=0,5,9`` -> ``0,5,9`` (the seeds of a multi-seed multirun).

    Raises:
        ConfigError: not a positive count or a comma list of integers.
    """
    parts = [p.strip() for p in value.split(",")]
    if not all(p.lstrip("-").isdigit() for p in parts) or (len(parts) == 1 and int(parts[0]) < 1):
        raise ConfigError(f"seeds={value}: expected a count (seeds=3 -> seed=0,1,2) or a list (seeds=0,5,9)")
    return ",".join(str(i) for i in range(int(parts[0]))) if len(parts) == 1 else ",".join(parts)


def normalise_argv(argv: list[str], stage_dir: Path = STAGE_DIR) -> list[str]:
    """Rewrite ``STAGE=N`` / ``stage=N`` (also ``N,M`` lists) to ``stage=<stage config name>``, and the
    shortcut ``seeds=K`` / ``seeds=a,b`` to a multirun over ``seed`` (``-m seed=0,..,K-1``)."""
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lower() == "stage":
            arg = "stage=" + ",".join(stage_name(v, stage_dir) for v in value.split(","))
        elif sep and key == "seeds":
            arg = f"seed={seed_list(value)}"
            if not _FLAGS & set(argv):
                out.insert(0, "-m")
        out.append(arg)
    return out


def check_overrides(argv: list[str]) -> None:
    """Compose the config the command line asks for (the first job of a multirun) and raise on bad input.

    Command lines with other Hydra flags (``--cfg``, ``--help``, ``-cn`` ...) and ``hydra.*`` overrides are left
    to Hydra.

    Raises:
        ConfigError: an override that does not parse or names an unknown key, group or option.
    """
    if any(a.startswith("-") and a not in _FLAGS for a in argv):
        return
    overrides = [a for a in argv if a not in _FLAGS and not a.lstrip("+~").startswith(("hydra.", "hydra/"))]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise ConfigError(one_line(str(exc))) from None
    first = []
    for override, text in zip(parsed, overrides, strict=True):
        if override.is_sweep_override():
            key = text.split("=", 1)[0]
            value = next(iter(override.sweep_string_iterator()), None)
            first.append(f"{key}={value}" if value is not None else text)
        else:
            first.append(text)
    compose(first)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the best monitored value (what the optuna sweeper optimises).

    Bad input met while running (no parent run, nothing to resume, a malformed build) ends a single run with
    one ``error:`` line and exit status 2; in a multirun it is raised like any error.
    """
    from train.stage.app import run_stage

    single = HydraConfig.get().mode == RunMode.RUN
    try:
        result = run_stage(cfg)
    except BAD_INPUT as exc:
        if not single:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    if result["exit_code"] and single:
        sys.exit(result["exit_code"])
    return result["best"].get("value")


def main() -> None:
    """``python -m train``: normalise and check ``sys.argv``, then run Hydra."""
    try:
        argv = normalise_argv(sys.argv[1:])
        check_overrides(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    sys.argv = [sys.argv[0], *argv]
    hydra_main()
