"""Command line of stage training: ``python -m train stage=N [overrides]`` (see train/train.py).

``STAGE=N`` is accepted as well as ``stage=N`` (the Makefile's spelling), and a stage number selects the
stage config whose name starts with ``stage<N>_`` (stage1_foundation, stage2_refine, stage3_aerial); comma
lists work for multiruns (``-m stage=1,2``). Hydra itself rejects an integer as a config group choice,
hence this rewrite before Hydra parses the command line.

Exit status: 0 on success; 1 when ``regression.fail=true`` and the gate found forgetting, or when there is
no parent run / nothing to resume (the message names the command to run first, no traceback). In a
multirun, forgetting does not stop the sweep and a chaining error is raised like any other error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

#: The stage config group directory.
STAGE_DIR = Path(__file__).resolve().parent.parent / "conf" / "stage"


def stage_name(choice: str, stage_dir: Path = STAGE_DIR) -> str:
    """``"2"`` -> ``"stage2_refine"`` (the config in ``stage_dir`` named ``stage2_*``); names pass unchanged.

    Raises:
        ValueError: a number with no (or several) matching stage configs, listing the available ones.
    """
    if not choice.strip().isdigit():
        return choice
    matches = sorted(p.stem for p in stage_dir.glob(f"stage{int(choice)}_*.yaml"))
    if len(matches) != 1:
        available = sorted(p.stem for p in stage_dir.glob("*.yaml"))
        raise ValueError(f"stage={choice}: expected exactly one {stage_dir}/stage{int(choice)}_*.yaml, found "
                         f"{matches}; available stages: {available}")
    return matches[0]


def normalise_argv(argv: list[str], stage_dir: Path = STAGE_DIR) -> list[str]:
    """Rewrite ``STAGE=N`` / ``stage=N`` (also ``N,M`` lists) to ``stage=<stage config name>``."""
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key.lower() == "stage":
            arg = "stage=" + ",".join(stage_name(v, stage_dir) for v in value.split(","))
        out.append(arg)
    return out


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the best monitored value (what the optuna sweeper optimises).

    A :class:`train.chaining.ChainingError` (missing parent run, nothing to resume) ends a single run with
    its message and exit status 1, without a traceback; in a multirun it is raised like any error.
    """
    from train.chaining import ChainingError
    from train.train import train

    single = HydraConfig.get().mode == RunMode.RUN
    try:
        result = train(cfg)
    except ChainingError as e:
        if single:
            sys.exit(f"error: {e}")
        raise
    if result["exit_code"] and single:
        sys.exit(result["exit_code"])
    return result["best"].get("value")


if __name__ == "__main__":
    try:
        sys.argv = [sys.argv[0], *normalise_argv(sys.argv[1:])]
    except ValueError as e:
        sys.exit(f"error: {e}")
    main()
