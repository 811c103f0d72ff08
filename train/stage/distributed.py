"""Processes and devices of a stage run: which rank this process is, the run directory every rank shares, the
relaunch of DDP ranks, data-loader workers per process, mixed precision per GPU.

Who starts the ranks (docs: README "Beyond one machine"):

- one node, ``python -m train ... trainer=ddp trainer.devices=N``: Lightning's subprocess launcher starts ranks
  1..N-1 as ``python -m train <the same command line>`` with ``LOCAL_RANK`` set. Those children must run this
  job, not the command line again (in a multirun it would start a whole sweep) and must write into the parent's
  run directory: :func:`ddp_job` publishes the job (its overrides and run directory) in the environment the
  children inherit, :func:`child_argv` turns a child's command line into that job.
- SLURM, ``srun python -m train ...`` with one task per GPU (``--ntasks-per-node`` = GPUs): every task is a
  rank (Lightning's ``SLURMEnvironment`` reads ``SLURM_PROCID`` / ``SLURM_NTASKS``). They are started apart, so
  the run directory's name cannot be random: in a SLURM step of several tasks it is ``slurm-<job id>``
  (:func:`run_name`), the same for every task and for the job requeued after a preemption (which then resumes
  its own ``last.ckpt``).

Only global rank 0 writes run records, ``.hydra/`` and ``train.log``; rank N logs to ``train_rank<N>.log``
(:func:`rank_suffix`; conf/hydra/default.yaml).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from contextlib import contextmanager

import torch
from omegaconf import OmegaConf

from train.errors import ConfigError

log = logging.getLogger(__name__)

#: Environment variable through which a run's process hands its job to the DDP ranks it starts.
JOB_ENV = "MOTCURRICULUM_DDP_JOB"
#: What Lightning's subprocess launcher sets in the process starting the ranks, and the job it hands them.
LAUNCH_ENV = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", JOB_ENV)
#: SLURM job names that mean "interactive allocation, not a task per rank" (Lightning's SLURMEnvironment rule).
SLURM_INTERACTIVE_NAMES = ("bash", "interactive")
#: Ceiling of ``data.num_workers=auto``: past it, extra workers add host memory (each holds the dataset index and
#: ``prefetch_factor`` decoded batches) for no throughput on the plan's configs (README: bench_data figures).
MAX_AUTO_WORKERS = 8
#: Lowest CUDA compute capability with tensor cores (Volta, 7.0): below it float16 autocast does not pay.
TENSOR_CORE_CAPABILITY = (7, 0)


def slurm_tasks() -> int:
    """Tasks of the SLURM step this process belongs to (``SLURM_NTASKS``); 1 outside SLURM or in an interactive
    allocation (job name ``bash`` / ``interactive``, as Lightning's ``SLURMEnvironment.detect`` treats it)."""
    if "SLURM_NTASKS" not in os.environ or os.environ.get("SLURM_JOB_NAME") in SLURM_INTERACTIVE_NAMES:
        return 1
    try:
        return int(os.environ["SLURM_NTASKS"])
    except ValueError:
        return 1


def rank_suffix() -> str:
    """``""`` in global rank 0 (and in any single process), ``"_rank<N>"`` in rank N, from the environment the
    launcher set: ``RANK`` (torchrun), ``SLURM_PROCID`` in a SLURM step of several tasks, else ``LOCAL_RANK`` /
    ``NODE_RANK`` (Lightning's subprocess launcher; ``_rank<node>-<local>`` beyond node 0)."""
    if "RANK" in os.environ:
        rank = os.environ["RANK"]
    elif slurm_tasks() > 1:
        rank = os.environ.get("SLURM_PROCID", "0")
    else:
        local, node = os.environ.get("LOCAL_RANK", "0"), os.environ.get("NODE_RANK", "0")
        rank = local if node == "0" else f"{node}-{local}"
    return "" if rank == "0" else f"_rank{rank}"


def run_name(time_format: str) -> str:
    """Name of a new run directory: ``<local time>_<6 random hex digits>`` (two runs started in the same second
    never share one), or ``slurm-<SLURM_JOB_ID>`` in a SLURM step of several tasks (one per rank, started
    apart: they must agree on the directory; a requeued job keeps its id, so it finds its own checkpoint)."""
    job = os.environ.get("SLURM_JOB_ID")
    if slurm_tasks() > 1 and job:
        return f"slurm-{job}"
    return f"{time.strftime(time_format)}_{secrets.token_hex(3)}"


def register_resolvers() -> None:
    """The resolvers conf/hydra/default.yaml uses: ``${run_name:<time format>}`` (cached: one name per process),
    ``${rank_suffix:}`` (log file per rank) and ``${rank_zero:<value>}`` (``<value>`` in rank 0, else null: only
    rank 0 writes ``.hydra/``)."""
    for name, fn, cache in (("run_name", run_name, True), ("rank_suffix", rank_suffix, False),
                            ("rank_zero", lambda value: value if rank_suffix() == "" else None, False)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=cache)


@contextmanager
def ddp_job(overrides: list[str], run_dir: str):
    """Context of one Hydra job in the process that may start DDP ranks.

    On entry the job (its Hydra overrides and run directory) is published in the environment the ranks
    Lightning starts from this process inherit (:func:`child_argv` reads it). On exit the process group is
    destroyed and the variables Lightning's launcher set here (:data:`LAUNCH_ENV`) are restored: the next job
    of a multirun in this process starts its own ranks (with ``LOCAL_RANK`` left set, Lightning would take
    them as started already, and reuse a process group whose other ranks have exited).
    """
    previous = {key: os.environ.get(key) for key in LAUNCH_ENV}
    os.environ[JOB_ENV] = json.dumps({"overrides": list(overrides), "run_dir": str(run_dir)})
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def child_argv(argv: list[str]) -> list[str]:
    """The command line of this process: ``argv`` itself, unless this is a DDP rank started by Lightning's
    subprocess launcher (``LOCAL_RANK`` > 0 and a job published by :func:`ddp_job`). Then it is the parent's
    job: its overrides, its run directory, and no ``.hydra/`` of its own (Lightning's command line for them is the
    parent's, which in a multirun is the whole sweep, with ``hydra.run.dir``, which in a multirun is not the
    job's)."""
    job = os.environ.get(JOB_ENV)
    if os.environ.get("LOCAL_RANK", "0") == "0" or not job:
        return argv
    data = json.loads(job)
    return [*data["overrides"], f"hydra.run.dir={json.dumps(data['run_dir'])}", "hydra.output_subdir=null"]


def usable_cpus() -> int:
    """CPUs this process may use: ``SLURM_CPUS_PER_TASK`` when SLURM set it (the task's share), else the CPUs of
    its affinity mask (cgroups, ``taskset``), else ``os.cpu_count()``."""
    if os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit():
        return int(os.environ["SLURM_CPUS_PER_TASK"])
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def auto_num_workers(cpus: int, processes: int = 1) -> int:
    """``data.num_workers=auto``: ``min(MAX_AUTO_WORKERS, cpus // processes - 1)``, at least 0.

    ``cpus`` are shared by ``processes`` ranks on the node (1 when each has its own share, e.g. SLURM's
    ``--cpus-per-task``); one CPU per rank is left to the training loop itself (the main process runs the step,
    the workers decode and augment).
    """
    return max(0, min(MAX_AUTO_WORKERS, cpus // max(1, processes) - 1))


def resolve_num_workers(value, processes: int = 1) -> int:
    """``data.num_workers``: a count, or ``auto`` (:func:`auto_num_workers` of :func:`usable_cpus`).

    Raises:
        ConfigError: anything else, naming the key.
    """
    if value == "auto":
        own_share = os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit()  # SLURM gave each rank its CPUs
        return auto_num_workers(usable_cpus(), 1 if own_share else processes)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ConfigError(f"data.num_workers={value!r}: expected a count >= 0 or 'auto'")


def resolve_flag(value, key: str, *, auto: bool) -> bool:
    """A boolean setting that may be ``auto`` (then ``auto``), e.g. ``data.pin_memory``.

    Raises:
        ConfigError: neither a boolean nor ``auto``, naming ``key``.
    """
    if value == "auto":
        return auto
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{key}={value!r}: expected true, false or 'auto'")


def uses_cuda(accelerator: str) -> bool:
    """Whether a Trainer with ``accelerator`` (``gpu``, ``cuda``, ``auto``, ``cpu`` ...) runs on a CUDA GPU."""
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def supported_precision(requested: str, accelerator: str) -> str:
    """The Trainer precision to use for ``requested`` on this machine.

    ``bf16-mixed`` on a CUDA GPU without bfloat16 (before Ampere, compute capability 8.0) becomes ``16-mixed``
    on a GPU with tensor cores (Volta 7.0 and later) and ``32-true`` below that (NVIDIA's mixed-precision
    training guide: float16 speed comes from the tensor cores); every other request, and any request off CUDA,
    is kept as is (Lightning checks it).
    """
    if not requested.startswith("bf16") or not uses_cuda(accelerator) or not torch.cuda.is_available():
        return requested
    if torch.cuda.is_bf16_supported():
        return requested
    capability = torch.cuda.get_device_capability()
    chosen = "16-mixed" if capability >= TENSOR_CORE_CAPABILITY else "32-true"
    log.warning("trainer.precision=%s: %s (compute capability %d.%d) has no bfloat16; using %s", requested,
                torch.cuda.get_device_name(), *capability, chosen)
    return chosen
