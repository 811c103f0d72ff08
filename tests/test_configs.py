"""Every config composes, carries the team's plan, and builds its objects; bad keys fail clearly."""

from __future__ import annotations

import itertools

import hydra
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, InstantiationException, MissingConfigException
from omegaconf import OmegaConf
from train_helpers import CONF, STAGES

from train.errors import ConfigError
from train.stage.command import normalise_argv, stage_name
from train.stage.models import load_pretrained

EXPERIMENTS = [None, "demo", "plateau_remedies"]
DEBUGS = [None, "one_batch", "overfit", "cpu"]
REMEDIES = sorted(p.stem for p in (CONF / "experiment" / "remedy").glob("*.yaml"))


def _compose(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=True)


def test_every_stage_experiment_debug_combination_composes():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for stage, experiment, debug in itertools.product(STAGES.values(), EXPERIMENTS, DEBUGS):
            overrides = [f"stage={stage}"] + ([f"experiment={experiment}"] if experiment else []) \
                + ([f"debug={debug}"] if debug else [])
            # the Hydra run dir (paths.output_dir) exists only inside the app
            cfg = compose("train", overrides=[*overrides, "paths.output_dir=/tmp/run"])
            assert cfg.stage.name == stage, overrides
            resolved = OmegaConf.to_container(cfg, resolve=True)
            assert resolved["data"]["build_dir"].endswith(f"stage{cfg.stage.index}"), overrides


@pytest.mark.parametrize("group", ["model", "optim", "scheduler", "trainer", "logger", "tracker", "callbacks",
                                   "hparams_search"])
def test_every_group_option_composes(group):
    for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
        cfg = _compose(f"{group}={option}")
        assert group in cfg or group == "hparams_search"


def test_stage_deltas_carry_the_team_plan():
    s1, s2, s3 = (_compose(f"stage={s}") for s in STAGES.values())
    for cfg in (s1, s2, s3):
        assert cfg.trainer.max_epochs == 10
        assert list(cfg.scheduler.milestones) == [7] and cfg.scheduler.gamma == 0.1
        # effective batch = batch x accumulation = 4 frames in every stage
        assert cfg.data.batch_size * cfg.trainer.accumulate_grad_batches == 4
    assert (s1.optim.lr, s1.lr_backbone) == (2e-5, 2e-6)
    assert s2.optim.lr == 1e-5 and s2.init_from == "auto" and s1.init_from is None
    assert (s1.data.max_size, s2.data.max_size, s3.data.max_size) == (1000, 1000, 1100)
    assert list(s3.data.scales) == list(range(480, 641, 32))
    # stage 3's larger images: one pair of frames of a clip per step (the embedding's quasi-dense loss needs two)
    assert (s3.data.batch_size, s3.data.clip_length, s3.trainer.accumulate_grad_batches) == (2, 2, 2)
    assert s3.stage.monitor_set == "visdrone" and s3.init_from == "auto"
    assert [c.data.build_dir for c in (s1, s2, s3)] == [f"data/builds/stage{i}" for i in (1, 2, 3)]


def test_demo_experiment_trains_from_scratch_on_the_demo_builds():
    cfg = _compose("stage=stage2_refine", "experiment=demo")
    assert cfg.model.backbone == "tiny" and cfg.trainer.accelerator == "cpu"
    assert cfg.data.build_dir == "data/builds/demo_stage2" and cfg.paths.runs_root == "runs/demo"
    assert cfg.optim.lr > 100 * 1e-5 - 1e-12  # from scratch: >= 100x the fine-tuning LR


def test_plateau_remedies_is_one_multirun_of_every_remedy():
    cfg = _compose("stage=stage2_refine", "experiment=plateau_remedies")
    assert sorted(cfg.hydra.sweeper.params["+experiment/remedy"].split(",")) == REMEDIES
    assert REMEDIES == ["cosine", "heavier_drop", "higher_lr", "small_batch_lr"]
    assert _compose("+experiment/remedy=cosine").scheduler._target_ == "train.stage.module.warmup_cosine"
    assert _compose("+experiment/remedy=higher_lr").lr_scale == 3.0
    small = _compose("+experiment/remedy=small_batch_lr")
    assert small.data.batch_size == 1 and small.lr_scale == 2.0
    assert _compose("+experiment/remedy=heavier_drop").scheduler.gamma == 0.01


@pytest.mark.parametrize("scheduler", ["multistep", "warmup_cosine"])
def test_optimizer_and_scheduler_partials_build_with_param_groups(scheduler):
    cfg = _compose(f"scheduler={scheduler}", "trainer.max_epochs=10")
    params = [{"name": "backbone", "params": [torch.nn.Parameter(torch.zeros(1))], "lr": 1e-6},
              {"name": "rest", "params": [torch.nn.Parameter(torch.zeros(1))]}]
    optimizer = hydra.utils.instantiate(cfg.optim)(params)
    sched = hydra.utils.instantiate(cfg.scheduler)(optimizer)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[1]["lr"])
        optimizer.step()
        sched.step()
    base = cfg.optim.lr
    if scheduler == "multistep":  # x0.1 from epoch 7 on
        assert lrs == pytest.approx([base] * 7 + [base * 0.1] * 3)
    else:  # warm-up from 0.1 x base, then cosine: lr_e = base (1 + cos(pi (e - w) / (E - w))) / 2
        w, e_max = cfg.scheduler.warmup_epochs, 10
        import math
        expected = [base * 0.1] + [base * (1 + math.cos(math.pi * (e - w) / (e_max - w))) / 2 for e in range(1, 10)]
        assert lrs == pytest.approx(expected)
    assert optimizer.param_groups[0]["lr"] <= optimizer.param_groups[1]["lr"]


def test_every_model_config_builds_without_download(tmp_path):
    for option in sorted(p.stem for p in (CONF / "model").glob("*.yaml")):
        cfg = _compose(f"model={option}", "data.eval_size=128", "data.max_size=160")
        model = hydra.utils.instantiate(cfg.model, num_classes=3)
        model.eval()
        out = model([torch.rand(3, 96, 128)])
        assert out[0]["boxes"].shape[1] == 4


def test_missing_pretrained_weights_name_the_file(tmp_path):
    cfg = _compose("model=tiny", f"model.weights_path={tmp_path}/coco.pth")
    with pytest.raises(InstantiationException, match=r"model.weights_path=.*coco.pth.*nothing is downloaded"):
        hydra.utils.instantiate(cfg.model, num_classes=2)
    with pytest.raises(FileNotFoundError, match="coco.pth"):
        load_pretrained(torch.nn.Linear(1, 1), tmp_path / "coco.pth")


def test_pretrained_weights_load_matching_tensors_and_keep_fresh_heads(tmp_path):
    cfg = _compose("model=tiny", "data.eval_size=96", "data.max_size=128")
    coco = hydra.utils.instantiate(cfg.model, num_classes=90)  # a COCO-sized head (91 with background)
    torch.save({"model": coco.state_dict()}, tmp_path / "coco.pth")
    model = hydra.utils.instantiate(cfg.model, num_classes=2)
    report = load_pretrained(model, tmp_path / "coco.pth")
    assert "roi_heads.box_predictor.cls_score.weight" in report["skipped"]
    key = "backbone.body.stem.0.0.weight"
    assert key in report["loaded"] and torch.equal(model.state_dict()[key], coco.state_dict()[key])


def test_unknown_key_and_unknown_stage_are_clear_errors():
    with pytest.raises(ConfigCompositionException, match="optim.lrr"):
        _compose("optim.lrr=1e-4")
    with pytest.raises(MissingConfigException, match="stage1_foundation"):  # lists the valid stages
        _compose("stage=stage9")


def test_stage_numbers_and_upper_case_key_are_normalised():
    assert normalise_argv(["STAGE=2", "optim.lr=5e-5"]) == ["stage=stage2_refine", "optim.lr=5e-5"]
    assert normalise_argv(["stage=1,3"]) == ["stage=stage1_foundation,stage3_aerial"]
    assert stage_name("stage2_refine") == "stage2_refine"
    with pytest.raises(ConfigError, match="stage=7.*available stages"):
        stage_name("7")


def test_pretrained_weights_matching_nothing_are_an_error_naming_the_file(tmp_path):
    cfg = _compose("model=tiny", "data.eval_size=96", "data.max_size=128")
    model = hydra.utils.instantiate(cfg.model, num_classes=2)
    # e.g. saved from a DDP-wrapped model: every key has a "module." prefix, so nothing would load
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "ddp.pth")
    with pytest.raises(ConfigError, match=r"ddp.pth.*no tensor matches.*module\."):
        load_pretrained(model, tmp_path / "ddp.pth")


def test_embedding_options_compose_and_switch_the_loss():
    qd = _compose("experiment=demo")
    assert qd.model.embedding.enabled and qd.model.embedding.loss == "quasi_dense" and qd.model.embedding.dim == 64
    ident = _compose("model/embedding=identity", "model=fasterrcnn_resnet50")
    assert ident.model.embedding.loss == "identity" and ident.model.embedding.dim == 256
    off = _compose("experiment=demo", "model.embedding.enabled=false")
    model = hydra.utils.instantiate(off.model, num_classes=2)
    assert not any("embed" in k for k in model.state_dict())
    assert _compose().tracker.name == "appearance" and _compose("tracker=bytetrack").tracker.name == "bytetrack"
