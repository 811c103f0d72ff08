"""Processes and devices on the CPU: the sharded epoch-seeded sampler, the ranks' command line and run directory,
worker / pinned-memory / precision / channels_last defaults, and the configs of DDP on one node and on SLURM."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities.rank_zero import rank_zero_only
from lightning_utilities.core.rank_zero import rank_zero_only as utils_rank_zero_only
from omegaconf import OmegaConf
from torch import nn
from train_helpers import CONF

from train.errors import ConfigError
from train.stage import distributed
from train.stage.callbacks import ChannelsLast, TrackingEval
from train.stage.datamodule import SEED_STRIDE, BuildDataModule, EpochSeededSampler, ShardSampler
from train.stage.distributed import (
    JOB_ENV,
    auto_num_workers,
    child_argv,
    ddp_job,
    rank_suffix,
    resolve_num_workers,
    run_name,
    supported_precision,
)
from train.stage.records import RankStopped

#: The environment of rank 3 of a 2-node x 2-task SLURM step (srun --ntasks-per-node=2).
SLURM_RANK3 = {"SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "2", "SLURM_NNODES": "2", "SLURM_PROCID": "3",
               "SLURM_LOCALID": "1", "SLURM_NODEID": "1", "SLURM_JOB_ID": "81234", "SLURM_JOB_NAME": "stage1",
               "SLURM_NODELIST": "gpu[07-08]", "SLURM_CPUS_PER_TASK": "8"}
RANK_ENV = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_JOB_ID", "SLURM_JOB_NAME",
            "SLURM_CPUS_PER_TASK", "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", JOB_ENV)


@pytest.fixture
def clean_env(monkeypatch):
    """No launcher variables: a plain single process."""
    for key in RANK_ENV:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def _shards(length: int, seed: int, epoch: int, world: int) -> list[list[tuple[int, int]]]:
    shards = []
    for rank in range(world):
        sampler = EpochSeededSampler(length, seed, num_replicas=world, rank=rank)
        sampler.set_epoch(epoch)
        shards.append(list(sampler))
        assert len(shards[-1]) == len(sampler)
    return shards


@pytest.mark.parametrize(("length", "world"), [(24, 2), (25, 2), (10, 3), (7, 4), (5, 1)])
def test_shards_are_disjoint_equal_and_cover_the_epoch_but_less_than_one_sample_per_rank(length, world):
    for epoch in (0, 3):
        shards = _shards(length, seed=7, epoch=epoch, world=world)
        indices = [i for shard in shards for i, _ in shard]
        assert len(set(indices)) == len(indices)  # disjoint, no repeats
        assert {len(s) for s in shards} == {length // world}  # equal: no rank waits for another's batch
        assert length - len(indices) == length % world < world
        assert _shards(length, seed=7, epoch=epoch, world=world) == shards  # deterministic


def test_ranks_batches_together_are_the_one_process_batches_with_the_same_global_batch():
    """Strided shards: batch k of R ranks with batch b = batch k of one process with batch R x b (same frames,
    same per-sample seeds, so the same augmentations)."""
    world, batch = 2, 3
    single = _shards(30, seed=1, epoch=2, world=1)[0]
    shards = _shards(30, seed=1, epoch=2, world=world)
    for k in range(len(single) // (world * batch)):
        together = [s for shard in shards for s in shard[k * batch:(k + 1) * batch]]
        assert sorted(together) == sorted(single[k * world * batch:(k + 1) * world * batch])


def test_one_replica_keeps_the_permutation_a_resumed_run_replays():
    """One process: the order and per-sample seeds of before sharding existed (a run resumed across the change
    replays its epoch exactly)."""
    sampler = EpochSeededSampler(12, seed=5)
    sampler.set_epoch(4)
    order = torch.randperm(12, generator=torch.Generator().manual_seed(5 * SEED_STRIDE + 4)).tolist()
    base = (5 * SEED_STRIDE + 4) * SEED_STRIDE
    assert list(sampler) == [(i, (base + i) % 2**63) for i in order]


def test_a_rank_outside_the_world_is_refused():
    with pytest.raises(ValueError, match="rank 2 outside"):
        EpochSeededSampler(10, 0, num_replicas=2, rank=2)


def test_validation_shards_hold_every_frame_once():
    shards = [list(ShardSampler(11, num_replicas=3, rank=r)) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(11))
    assert shards == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9, 10]]  # contiguous: a sequence's frames stay together
    assert [len(ShardSampler(11, num_replicas=3, rank=r)) for r in range(3)] == [3, 4, 4]


def test_the_datamodule_shards_its_loaders_for_the_trainer_it_is_attached_to(tiny_builds):
    dm = BuildDataModule(tiny_builds[1], batch_size=2, num_workers=0, scales=[96], max_size=160, pin_memory="auto")
    dm.setup("fit")
    dm.trainer = SimpleNamespace(world_size=2, global_rank=1, num_devices=2,
                                 strategy=SimpleNamespace(root_device=torch.device("cpu")))
    train, val = dm.train_dataloader(), dm.val_dataloader()
    assert (train.sampler.num_replicas, train.sampler.rank) == (2, 1)
    assert len(train.sampler) == len(dm.train_set) // 2
    assert list(val.sampler) == list(range(len(dm.val_set) // 2, len(dm.val_set)))
    assert train.pin_memory is False  # auto: off on the CPU
    dm.trainer.strategy.root_device = torch.device("cuda", 0)  # (no GPU needed: only the flag is read)
    assert dm.train_dataloader().pin_memory is True
    dm.pin_memory = "sometimes"
    with pytest.raises(ConfigError, match="data.pin_memory='sometimes'"):
        dm.train_dataloader()


def test_worker_and_pinning_values_are_checked_before_any_training(tiny_builds):
    """Over the default config (``auto``: a string, so the override type check lets any value through)."""
    with pytest.raises(ConfigError, match="data.num_workers='many': expected a count >= 0 or 'auto'"):
        BuildDataModule(tiny_builds[1], num_workers="many")
    with pytest.raises(ConfigError, match="data.pin_memory='sometimes': expected true, false or 'auto'"):
        BuildDataModule(tiny_builds[1], pin_memory="sometimes")


@pytest.mark.parametrize(("cpus", "processes", "workers"),
                         [(1, 1, 0), (2, 1, 1), (8, 1, 7), (9, 1, 8), (64, 1, 8), (32, 8, 3), (16, 8, 1), (4, 8, 0)])
def test_auto_workers_leave_a_cpu_per_rank_and_stop_at_eight(cpus, processes, workers):
    assert auto_num_workers(cpus, processes) == workers


def test_num_workers_auto_reads_slurm_cpus_per_task_else_the_affinity_mask(clean_env):
    clean_env.setattr(distributed.os, "sched_getaffinity", lambda pid: set(range(12)), raising=False)
    assert resolve_num_workers("auto", processes=2) == 5  # 12 CPUs shared by 2 ranks on the node
    clean_env.setenv("SLURM_CPUS_PER_TASK", "6")
    assert resolve_num_workers("auto", processes=2) == 5  # SLURM gave each rank (task) its own 6
    assert resolve_num_workers(3) == 3
    for bad in ("many", -1, 2.5, True):
        with pytest.raises(ConfigError, match="data.num_workers"):
            resolve_num_workers(bad)


def _fake_gpu(monkeypatch, *, bf16: bool, capability: tuple[int, int]) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU")


@pytest.mark.parametrize(("bf16", "capability", "expected"), [
    (True, (8, 6), "bf16-mixed"),     # Ampere and later (A10G): bfloat16
    (False, (7, 5), "16-mixed"),      # Turing (T4) / Volta (V100): float16 on tensor cores
    (False, (6, 1), "32-true"),       # Pascal: no tensor cores
])
def test_bf16_falls_back_to_16_mixed_or_32_on_gpus_without_it(monkeypatch, bf16, capability, expected):
    _fake_gpu(monkeypatch, bf16=bf16, capability=capability)
    assert supported_precision("bf16-mixed", "gpu") == expected
    assert supported_precision("bf16-mixed", "auto") == expected
    assert supported_precision("16-mixed", "gpu") == "16-mixed"  # what is asked and supported is kept


def test_precision_is_left_alone_off_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert supported_precision("bf16-mixed", "cpu") == "bf16-mixed"
    assert supported_precision("32-true", "auto") == "32-true"


class _ConvModule(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1))


def _trainer(device: str, precision: str) -> SimpleNamespace:
    return SimpleNamespace(precision=precision, strategy=SimpleNamespace(root_device=torch.device(device)))


@pytest.mark.parametrize(("mode", "device", "precision", "applied"), [
    ("auto", "cuda", "bf16-mixed", True), ("auto", "cuda", "16-mixed", True),
    ("auto", "cuda", "32-true", False), ("auto", "cpu", "bf16-mixed", False), ("auto", "cpu", "32-true", False),
    (True, "cpu", "32-true", True), (False, "cuda", "bf16-mixed", False),
])
def test_channels_last_where_tensor_cores_use_it(mode, device, precision, applied):
    module, callback = _ConvModule(), ChannelsLast(mode)
    callback.setup(_trainer(device, precision), module, "fit")  # the weights stay on the CPU here
    weight = module.model[0].weight
    assert callback.applied is applied
    assert weight.is_contiguous(memory_format=torch.channels_last) is applied
    out = module.model(torch.rand(2, 3, 9, 9))  # a channels_last model computes as before
    assert out.shape == (2, 4, 7, 7)


def test_channels_last_mode_is_checked():
    with pytest.raises(ConfigError, match="channels_last.mode='always'"):
        ChannelsLast("always")


def test_run_names_are_random_apart_and_the_slurm_job_for_the_tasks_of_one_step(clean_env):
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_[0-9a-f]{6}", run_name("%Y-%m-%d_%H-%M-%S"))
    assert run_name("%Y") != run_name("%Y")
    clean_env.setenv("SLURM_JOB_ID", "81234")
    clean_env.setenv("SLURM_NTASKS", "1")  # a single-task job: as anywhere else
    assert run_name("%Y").endswith(tuple("0123456789abcdef"))
    clean_env.setenv("SLURM_NTASKS", "4")
    assert run_name("%Y") == "slurm-81234"
    clean_env.setenv("SLURM_JOB_NAME", "interactive")  # srun in an interactive allocation: not a rank per task
    assert run_name("%Y") != "slurm-81234"


@pytest.mark.parametrize(("env", "suffix"), [
    ({}, ""), ({"LOCAL_RANK": "0", "NODE_RANK": "0"}, ""), ({"LOCAL_RANK": "1"}, "_rank1"),
    ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, "_rank1-0"), ({"RANK": "5", "LOCAL_RANK": "1"}, "_rank5"),
    ({"SLURM_NTASKS": "4", "SLURM_PROCID": "3", "LOCAL_RANK": "1"}, "_rank3"),
    ({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}, ""),
])
def test_rank_suffix_names_each_ranks_log(clean_env, env, suffix):
    for key, value in env.items():
        clean_env.setenv(key, value)
    assert rank_suffix() == suffix


def test_a_rank_started_by_lightning_runs_its_parents_job_in_its_parents_run_directory(clean_env):
    lightning_argv = ["-m", "stage=stage1_foundation", "optim.lr=1e-3,2e-3", 'hydra.run.dir="runs/x"',
                      "hydra.job.name=train_ddp_process_1", "hydra.output_subdir=null"]
    with ddp_job(["stage=stage1_foundation", "optim.lr=0.002"], "/runs/multirun/stage1/t/1"):
        assert child_argv(lightning_argv) == lightning_argv  # the parent itself (no LOCAL_RANK)
        clean_env.setenv("LOCAL_RANK", "1")
        assert child_argv(lightning_argv) == ["stage=stage1_foundation", "optim.lr=0.002",
                                              'hydra.run.dir="/runs/multirun/stage1/t/1"', "hydra.output_subdir=null"]
        clean_env.setenv("LOCAL_RANK", "0")  # what Lightning's launcher leaves in the parent
        clean_env.setenv("MASTER_PORT", "12910")
    # the next job of a multirun starts its own ranks: the launcher's variables are gone, the job too
    assert not {"LOCAL_RANK", "MASTER_PORT", JOB_ENV} & set(distributed.os.environ)
    assert child_argv(["stage=1"]) == ["stage=1"]


def test_ddp_job_leaves_the_environment_as_it_found_it(clean_env):
    clean_env.setenv("MASTER_ADDR", "10.0.0.1")
    with ddp_job([], "/r"):
        clean_env.setenv("MASTER_ADDR", "127.0.0.1")
        assert json.loads(distributed.os.environ[JOB_ENV]) == {"overrides": [], "run_dir": "/r"}
    assert distributed.os.environ["MASTER_ADDR"] == "10.0.0.1"


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_gpu_trainer_composes_to_bf16_channels_last_pinned_memory_and_auto_workers():
    cfg = _compose("stage=stage1_foundation", "trainer=gpu")
    assert (cfg.trainer.accelerator, cfg.trainer.precision) == ("gpu", "bf16-mixed")
    assert cfg.callbacks.channels_last.mode == "auto" and cfg.data.pin_memory == "auto"
    assert cfg.data.num_workers == "auto" and cfg.trainer.use_distributed_sampler is False
    ddp = _compose("stage=stage1_foundation", "trainer=ddp")
    assert (ddp.trainer.strategy, ddp.trainer.devices, ddp.trainer.precision) == ("ddp", 4, "bf16-mixed")
    cpu = _compose("stage=stage1_foundation", "experiment=demo", "trainer=ddp_cpu")
    assert cpu.trainer.strategy.process_group_backend == "gloo" and cpu.trainer.accelerator == "cpu"


def test_multi_node_config_composes_for_lightnings_slurm_environment(clean_env):
    """``srun python -m train stage=1 trainer=ddp trainer.devices=2 trainer.num_nodes=2`` as rank 3 of a 2-node x 2-task
    step (README "Beyond one machine"): the launcher config asks SLURM for a task per GPU, Lightning's Trainer
    takes its ranks from SLURM (no process of its own started), and the run directory, log and .hydra/ are
    the shared ones of rank 3."""
    for key, value in SLURM_RANK3.items():
        clean_env.setenv(key, value)
    distributed.register_resolvers()
    cfg = _compose("stage=stage1_foundation", "trainer=ddp", "trainer.devices=2", "trainer.num_nodes=2",
                   "hydra/launcher=slurm", "hydra.launcher.nodes=2", "hydra.launcher.tasks_per_node=2",
                   "hydra.launcher.gpus_per_node=2", "hydra.launcher.partition=gpu")
    launcher = cfg.hydra.launcher
    assert (launcher.tasks_per_node, launcher.nodes) == (cfg.trainer.devices, cfg.trainer.num_nodes)
    assert launcher.gpus_per_node == cfg.trainer.devices and launcher.max_num_timeout == 3
    assert cfg.hydra.run.dir.endswith("stage1/slurm-81234")
    log_file = OmegaConf.to_container(cfg.hydra.job_logging.handlers.file)["filename"]  # (runtime dir: in the app)
    assert log_file.endswith("/train${rank_suffix:}.log") and rank_suffix() == "_rank3"
    assert cfg.hydra.output_subdir is None
    for flag in (utils_rank_zero_only, rank_zero_only):  # the Trainer sets the process's rank: put it back after
        clean_env.setattr(flag, "rank", getattr(flag, "rank", 0))
    trainer = L.Trainer(accelerator="cpu", devices=cfg.trainer.devices, num_nodes=cfg.trainer.num_nodes,
                        strategy=cfg.trainer.strategy, use_distributed_sampler=False, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    environment = trainer.strategy.cluster_environment
    assert isinstance(environment, SLURMEnvironment) and environment.creates_processes_externally
    assert (trainer.world_size, trainer.global_rank, trainer.local_rank, trainer.node_rank) == (4, 3, 1, 1)
    assert environment.main_address == "gpu07"


def _eval_trainer(rank: int, sent: list) -> SimpleNamespace:
    """A Trainer of ``rank`` whose broadcast delivers what rank 0 sends (recorded in ``sent``)."""
    def broadcast(obj, src=0):
        if rank == 0:
            sent.append(obj)
        return sent[-1]
    return SimpleNamespace(sanity_checking=False, is_global_zero=rank == 0, current_epoch=3,
                           strategy=SimpleNamespace(broadcast=broadcast))


def test_tracking_evaluation_runs_on_rank_zero_and_every_rank_logs_its_values(monkeypatch, tmp_path):
    callback, calls, sent = TrackingEval(build_dir=str(tmp_path), out_dir=str(tmp_path), monitor_set="mot17"), [], []
    monkeypatch.setattr(callback, "evaluate", lambda epoch, module: calls.append(epoch) or {"val/HOTA": 61.5})
    logged = {0: {}, 1: {}}
    for rank in (0, 1):  # rank 1 runs after rank 0 has broadcast
        module = SimpleNamespace(log=lambda key, value, r=rank, **kw: logged[r].update({key: (value, kw["sync_dist"])}))
        callback.on_validation_epoch_end(_eval_trainer(rank, sent), module)
    assert logged[0] == logged[1] == {"val/HOTA": (61.5, True)}
    assert calls == [3]  # evaluated once, by rank 0


def test_a_failed_evaluation_on_rank_zero_stops_the_other_ranks_quietly(monkeypatch, tmp_path):
    """Rank 0 raises its own error (and writes the records); the others exit 0 (RankStopped) instead of waiting
    for values that never come, or of exiting non-zero, which makes Lightning's launcher kill rank 0 at once."""
    callback, sent = TrackingEval(build_dir=str(tmp_path), out_dir=str(tmp_path), monitor_set="mot17"), []

    def fail(epoch, module):
        raise ConfigError("none of the watched val sets")
    monkeypatch.setattr(callback, "evaluate", fail)
    module = SimpleNamespace(log=lambda *a, **k: pytest.fail("nothing is logged"))
    with pytest.raises(ConfigError, match="none of the watched"):
        callback.on_validation_epoch_end(_eval_trainer(0, sent), module)
    with pytest.raises(RankStopped, match="rank 0's tracking evaluation failed: ConfigError") as stopped:
        callback.on_validation_epoch_end(_eval_trainer(1, sent), module)
    assert stopped.value.code == 0
