"""The command line of stage training: ``python -m train stage=N [overrides]`` (the fit itself: app.py).

``STAGE=N`` is accepted as well as ``stage=N`` (the Makefile's spelling), and a stage number selects the stage
config whose name starts with ``stage<N>_`` (stage1_foundation, stage2_refine, stage3_aerial); comma lists work
for multiruns (``-m stage=1,2``). ``seeds=3`` is short for ``-m seed=0,1,2``: one stage trained with several seeds,
compared as a setting by ``train.compare`` and ``train.regression`` (mean over seeds, seed-to-seed spread). Hydra itself rejects an integer as a config group choice, hence this rewrite
before Hydra parses the command line. The overrides are then composed once with Hydra's compose API, so that an
unknown key or option is one ``error:`` line (exit 2) before anything runs; a multirun is checked with the first
value of every sweep.

An override's value must have the type of the key's default (``trainer.max_epochs=abc`` is an error naming the
key, not a crash in Lightning); keys whose default is null take any value.

Signals: Ctrl-C (SIGINT) and SIGTERM (what a cluster scheduler sends) stop the run, record ``reason:
interrupted`` in stopping_reason.txt (once the run has started) and exit with status 128 + the signal number
(130, 143); inside ``Trainer.fit`` SIGTERM is Lightning's (it stops after the current batch), elsewhere the handler
installed here stops at once. A requeue signal (SIGUSR1) checkpoints and exits for requeue (see
``train.stage.callbacks.RunGuard``). Run directories are ``<time>_<6 random hex digits>``: two runs started in
the same second never share one (``slurm-<job id>`` for the ranks of a multi-task SLURM step).

DDP: the ranks Lightning starts from a run (``trainer=ddp``, ``trainer=ddp_cpu``) run this command line too; they
run the parent's job, in its run directory (:mod:`train.stage.distributed`).

Exit status: 0 on success; 1 when ``regression.fail=true`` and the gate found forgetting; 2 for bad input (an
unknown override or a value of the wrong type, no parent run, nothing to resume, an unsafe checkpoint: one
``error:`` line naming what to do, no traceback); 128 + N after signal N. In a multirun, forgetting does not stop
the sweep and bad input in a job is raised like any other error.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from builder.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED
from train.config import CONF_DIR, compose, one_line
from train.errors import BAD_INPUT, ConfigError
from train.stage.distributed import child_argv, ddp_job, register_resolvers

#: The stage config group directory.
STAGE_DIR = CONF_DIR / "stage"
#: The Hydra flags the override check understands; any other flag (``--cfg``, ``-cn`` ...) skips the check.
_FLAGS = {"-m", "--multirun"}
#: Keys whose default's type does not bound their values (``resume``: true/false or a run directory / .ckpt).
UNTYPED_KEYS = ("resume",)


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
    check_override_types(first, parsed)


def check_override_types(overrides: list[str], parsed: list) -> None:
    """Each value override must have the type of the key's default (int, float, bool, list or dict).

    The defaults are those of the config composed with the command line's config group choices only
    (``stage=``, ``experiment=`` ...), so a group's own values count as defaults. A null default, a string
    default and :data:`UNTYPED_KEYS` accept anything; an int is a valid float.

    Raises:
        ConfigError: a value of another type, naming the key, the value and the default.
    """
    full = compose(overrides)
    groups = [t for t, o in zip(overrides, parsed, strict=True) if _is_group(o.key_or_group)]
    base = compose(groups) if len(groups) < len(overrides) else full
    for text, override in zip(overrides, parsed, strict=True):
        key = override.key_or_group
        if _is_group(key) or key in UNTYPED_KEYS or override.is_delete():
            continue
        default = OmegaConf.select(base, key, default=None, throw_on_resolution_failure=False)
        value = OmegaConf.select(full, key, default=None, throw_on_resolution_failure=False)
        expected = _expected_type(default)
        if expected and value is not None and not _fits(value, expected):
            shown = OmegaConf.to_container(default) if OmegaConf.is_config(default) else default
            raise ConfigError(f"{text}: {key} expects {expected} like its default {shown!r}, got "
                              f"{type(value).__name__} {value!r}")


def _is_group(key: str) -> bool:
    """Whether ``key`` names a config group (a folder of conf/), not a value."""
    return (CONF_DIR / key.replace(".", "/")).is_dir()


def _expected_type(default: Any) -> str | None:
    if isinstance(default, bool):
        return "a boolean (true/false)"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if OmegaConf.is_list(default):
        return "a list"
    if OmegaConf.is_dict(default):
        return "a mapping"
    return None


def _fits(value: Any, expected: str) -> bool:
    if expected.startswith("a boolean"):
        return isinstance(value, bool)
    if expected == "an integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "a number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return OmegaConf.is_list(value) if expected == "a list" else OmegaConf.is_dict(value)


# At import: a launcher's job process (submitit) imports this module for ``hydra_main`` and resolves the run
# directory before calling it, so registering in ``main`` alone would be too late there.
register_resolvers()


def _on_sigterm(signum: int, frame) -> None:
    """SIGTERM outside ``Trainer.fit``: stop now, as Ctrl-C does. Inside fit Lightning's handler is installed
    and calls this one too; then it returns and Lightning stops after the current batch."""
    if signal.getsignal(signal.SIGTERM) is not _on_sigterm:
        return
    from train.stage.records import StageInterrupted

    raise StageInterrupted(signum, "received SIGTERM")


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def hydra_main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns the best monitored value (what the optuna sweeper optimises). See
    :func:`run_command`."""
    from train.stage import app  # noqa: F401 - imported before the SIGTERM handler is installed

    # after the imports: an exception raised in the middle of an import would leave a half-made module behind
    signal.signal(signal.SIGTERM, _on_sigterm)
    hydra_cfg = HydraConfig.get()
    # the DDP ranks Lightning starts from this process run this job in this run directory (distributed.child_argv)
    with ddp_job(list(hydra_cfg.overrides.task), hydra_cfg.runtime.output_dir):
        return run_command(cfg, single=hydra_cfg.mode == RunMode.RUN)


def run_command(cfg: DictConfig, *, single: bool = True) -> float | None:
    """Run the stage of ``cfg`` as the command line does; returns the best monitored value.

    Bad input met while running (no parent run, nothing to resume, an unsafe checkpoint, a malformed build)
    ends a single run with one ``error:`` line and exit status 2 (``SystemExit``); in a multirun
    (``single=False``) it is raised like any error. A signal ends it with one ``interrupted:`` line and status
    128 + the signal number; forgetting with ``regression.fail=true`` with status 1.
    """
    from train.stage.app import run_stage
    from train.stage.records import StageInterrupted

    try:
        result = run_stage(cfg)
    except BAD_INPUT as exc:
        if not single:
            raise
        print(f"error: {one_line(str(exc)) or type(exc).__name__}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except StageInterrupted as exc:
        print(f"interrupted: {exc}; continue with `python -m train stage={cfg.stage.index} resume=true`",
              file=sys.stderr)
        raise
    except KeyboardInterrupt:  # before the run started: nothing to record
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    if result["exit_code"] and single:
        sys.exit(result["exit_code"])
    return result["best"].get("value")


def main() -> None:
    """``python -m train``: normalise and check ``sys.argv``, then run Hydra."""
    register_resolvers()
    try:
        argv = normalise_argv(child_argv(sys.argv[1:]))
        check_overrides(argv)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    sys.argv = [sys.argv[0], *argv]
    hydra_main()
