"""Stage chaining: init_from resolution, head remap by class name, stage 1 -> 2 -> 3, ``latest``."""

from __future__ import annotations

import json
import os
import re

import pytest
import torch
from train_helpers import compose_stage, relabel_build, state_of

from train.stage.app import run_stage
from train.stage.chaining import (
    ChainingError,
    InitReport,
    class_index_layout,
    load_init_weights,
    parent_stage_command,
    remap_head,
    resolve_init,
    sha256_file,
    update_latest,
)
from train.stage.models import build_model
from train.stage.resume import resumed_init

torch.set_num_threads(1)
OLD = ["person", "vehicle"]
NEW = ["vehicle", "bicycle", "person"]  # reordered + one new class


def _tiny(arch: str, classes: list[str]):
    torch.manual_seed(len(classes))
    return build_model(arch=arch, backbone="tiny", num_classes=len(classes), min_size=64, max_size=96,
                       fpn_channels=32, tiny_channels=(16, 32, 64), box_head_dim=32)


def _class_rows(tensor: torch.Tensor, k: int, classes: int, layout) -> torch.Tensor:
    per, offset, groups = layout
    rows = [g * (offset + classes * per) + offset + (k - 1) * per + r for g in range(groups) for r in range(per)]
    return tensor[rows]


@pytest.mark.parametrize("arch", ["fasterrcnn", "fcos", "retinanet"])
def test_head_remap_keeps_rows_of_kept_classes_and_fresh_rows_for_new_ones(arch):
    parent, child = _tiny(arch, OLD), _tiny(arch, NEW)
    fresh = {k: v.clone() for k, v in child.state_dict().items()}
    state = remap_head(parent.state_dict(), child, OLD, NEW)
    child.load_state_dict(state)
    layout = class_index_layout(child)
    for name, lay in layout.items():
        old_t, new_t = parent.state_dict()[name], child.state_dict()[name]
        for k_new, cls in enumerate(NEW, 1):
            got = _class_rows(new_t, k_new, len(NEW), lay)
            if cls in OLD:
                assert torch.equal(got, _class_rows(old_t, OLD.index(cls) + 1, len(OLD), lay)), (name, cls)
            else:
                assert torch.equal(got, _class_rows(fresh[name], k_new, len(NEW), lay)), (name, cls)
        if lay[1]:  # Faster R-CNN background rows come from the parent
            assert torch.equal(new_t[: lay[1]], old_t[: lay[1]])
    # everything that is not class-indexed is the parent's
    other = [k for k in state if k not in layout]
    assert all(torch.equal(child.state_dict()[k], parent.state_dict()[k]) for k in other)


def test_load_init_weights_reports_kept_new_dropped_and_digest(tmp_path):
    parent = _tiny("fasterrcnn", OLD)
    path = tmp_path / "best_model.pth"
    torch.save({"state_dict": parent.state_dict(), "classes": OLD, "config": {}, "stage": 1}, path)
    report = load_init_weights(_tiny("fasterrcnn", ["person", "bicycle"]), path, ["person", "bicycle"])
    assert (report.kept, report.new, report.dropped) == (["person"], ["bicycle"], ["vehicle"])
    assert report.sha256 == sha256_file(path) and report.as_parent()["path"] == str(path)
    with pytest.raises(ChainingError, match="same model.arch"):
        load_init_weights(_tiny("fcos", OLD), path, OLD)


def test_resolve_init_errors_name_the_command_to_run_first(tmp_path):
    assert resolve_init(None, stage=2, runs_root=tmp_path) is None
    with pytest.raises(ChainingError, match=r"make train STAGE=1"):
        resolve_init("auto", stage=2, runs_root=tmp_path)
    with pytest.raises(ChainingError, match="stage 1 has none"):
        resolve_init("auto", stage=1, runs_root=tmp_path)
    with pytest.raises(ChainingError, match="nope.pth"):
        resolve_init(str(tmp_path / "nope.pth"), stage=1, runs_root=tmp_path)


def test_update_latest_replaces_the_link_atomically(tmp_path):
    stage_dir = tmp_path / "stage1"
    for name in ("a", "b"):
        (stage_dir / name).mkdir(parents=True)
        link = update_latest(stage_dir, stage_dir / name)
        assert link.resolve() == (stage_dir / name).resolve() and os.readlink(link) == name
    assert sorted(p.name for p in stage_dir.iterdir()) == ["a", "b", "latest"]  # no temp link left


def test_stage_1_to_2_to_3_chain_with_a_class_list_change(tiny_builds, tmp_path):
    root = tmp_path / "builds"
    root.mkdir()
    for stage in (1, 2):
        os.symlink(tiny_builds[stage], root / f"tiny_stage{stage}")
    relabel_build(tiny_builds[3], root / "tiny_stage3", NEW)
    runs = tmp_path / "runs"
    common = ("trainer.limit_train_batches=1", "trainer.limit_val_batches=1")

    with pytest.raises(ChainingError, match="make train STAGE=1"):
        run_stage(compose_stage(2, root, runs, *common))
    run_stage(compose_stage(1, root, runs, "init_from=null", *common))
    run_stage(compose_stage(2, root, runs, *common))  # init_from=auto from the stage config
    # stage 3 with LR 0: its weights stay exactly the remapped stage-2 weights
    run_stage(compose_stage(3, root, runs, "optim.lr=0.0", "optim.weight_decay=0.0", *common))

    s2_best = runs / "stage2" / "latest" / "best_model.pth"
    info3 = json.loads((runs / "stage3" / "latest" / "model_info.json").read_text())
    assert info3["parent"]["path"] == str(s2_best.resolve()) and info3["parent"]["sha256"] == sha256_file(s2_best)
    assert info3["parent"]["classes_new"] == ["bicycle"] and info3["classes"] == NEW
    info2 = json.loads((runs / "stage2" / "latest" / "model_info.json").read_text())
    assert info2["parent"]["sha256"] == sha256_file(runs / "stage1" / "latest" / "best_model.pth")

    parent, child = state_of(s2_best), state_of(runs / "stage3" / "latest" / "best_model.pth")
    w = "roi_heads.box_predictor.cls_score.weight"
    assert child[w].shape[0] == len(NEW) + 1 and parent[w].shape[0] == len(OLD) + 1
    for k_new, cls in enumerate(NEW, 1):
        if cls in OLD:
            assert torch.equal(child[w][k_new], parent[w][OLD.index(cls) + 1]), cls
    b = "roi_heads.box_predictor.bbox_pred.weight"
    assert torch.equal(child[b][4 * 1: 4 * 2], parent[b][4 * 2: 4 * 3])  # vehicle: new row 1 <- old row 2
    assert torch.equal(child["backbone.body.stem.0.0.weight"], parent["backbone.body.stem.0.0.weight"])
    # the appearance-embedding head is carried by name, bit for bit, through the class-list change
    embed = [k for k in parent if k.startswith("roi_heads.embed_head.")]
    assert embed and all(torch.equal(child[k], parent[k]) for k in embed)
    assert (info3["parent"]["rebuilt"], info3["parent"]["fresh"], info3["parent"]["dropped_modules"]) == ([], [], [])


def _embedding_model(arch: str, classes: list[str], loss: str = "quasi_dense", seed: int = 0):
    torch.manual_seed(seed)
    return build_model(arch=arch, backbone="tiny", num_classes=len(classes), min_size=64, max_size=96,
                       fpn_channels=32, tiny_channels=(16, 32, 64), box_head_dim=32,
                       embedding={"enabled": True, "dim": 8, "convs": 1, "fc_dim": 16, "loss": loss})


@pytest.mark.parametrize("arch", ["fasterrcnn", "fcos"])
@pytest.mark.parametrize("classes", [OLD, NEW], ids=["same classes", "new class list"])
def test_chaining_keeps_the_embedding_weights_bit_identical(tmp_path, arch, classes):
    parent = _embedding_model(arch, OLD, seed=1)
    path = tmp_path / "best_model.pth"
    torch.save({"state_dict": parent.state_dict(), "classes": OLD, "config": {}, "stage": 1}, path)
    child = _embedding_model(arch, classes, seed=2)  # another init: every tensor differs before loading
    report = load_init_weights(child, path, classes)
    embed = [k for k in parent.state_dict() if "embed_head." in k]
    assert embed and all(torch.equal(child.state_dict()[k], parent.state_dict()[k]) for k in embed)
    assert report.fresh == [] and report.rebuilt == []


def test_the_identity_classifier_is_rebuilt_and_a_parent_without_the_branch_starts_it_fresh(tmp_path):
    parent = _embedding_model("fasterrcnn", OLD, loss="identity")
    parent.roi_heads.embed_loss.set_identity_count(11)  # sized by the parent's build
    path = tmp_path / "best_model.pth"
    torch.save({"state_dict": parent.state_dict(), "classes": OLD}, path)
    child = _embedding_model("fasterrcnn", OLD, loss="identity", seed=3)
    report = load_init_weights(child, path, OLD)
    assert report.rebuilt == ["roi_heads.embed_loss.identity_classifier"]
    assert child.roi_heads.embed_loss.identity_classifier is None  # built for this build when fitting starts
    assert "rebuilt" in report.as_parent() and InitReport.from_parent(report.as_parent()) == report

    plain = tmp_path / "plain.pth"
    torch.save({"state_dict": _tiny("fasterrcnn", OLD).state_dict(), "classes": OLD}, plain)
    child = _embedding_model("fasterrcnn", OLD, seed=4)
    fresh = {k: v.clone() for k, v in child.state_dict().items() if "embed_head." in k}
    report = load_init_weights(child, plain, OLD)
    assert report.fresh == ["roi_heads.embed_head"]
    assert all(torch.equal(child.state_dict()[k], v) for k, v in fresh.items())
    report = load_init_weights(_tiny("fasterrcnn", OLD), path, OLD)  # the child has no branch: left out
    assert report.dropped_modules == ["roi_heads.embed_head"] and report.rebuilt == [
        "roi_heads.embed_loss.identity_classifier"]


def test_missing_parent_error_names_the_command_with_the_runs_experiment_and_paths(tmp_path):
    overrides = ["stage=stage2_refine", "experiment=demo", "+experiment/remedy=cosine", "optim.lr=5e-5",
                 f"paths.runs_root={tmp_path}"]
    command = parent_stage_command(1, overrides)
    assert command == f"python -m train stage=1 experiment=demo paths.runs_root={tmp_path}"
    assert parent_stage_command(1, ["optim.lr=5e-5"]) == "make train STAGE=1"
    with pytest.raises(ChainingError, match=re.escape(f"run `{command}` first")):
        resolve_init("auto", stage=2, runs_root=tmp_path, parent_command=command)


def test_a_parent_of_another_arch_with_another_class_list_is_a_clear_error(tmp_path):
    path = tmp_path / "best_model.pth"
    torch.save({"state_dict": _tiny("fasterrcnn", OLD).state_dict(), "classes": OLD}, path)
    with pytest.raises(ChainingError, match=r"best_model.pth: weights do not fit"):  # was a bare KeyError
        load_init_weights(_tiny("fcos", NEW), path, NEW)


def test_a_lightning_checkpoint_of_a_stage_run_is_a_valid_init_from(tmp_path):
    parent = _tiny("fasterrcnn", OLD)
    path = tmp_path / "best.ckpt"  # what DetectionModule saves: "model."-prefixed tensors + classes
    torch.save({"pytorch-lightning_version": "2", "classes": OLD,
                "state_dict": {f"model.{k}": v for k, v in parent.state_dict().items()}}, path)
    child = _tiny("fasterrcnn", NEW)
    report = load_init_weights(child, path, NEW)
    assert report.new == ["bicycle"]
    w = "roi_heads.box_predictor.cls_score.weight"
    assert torch.equal(child.state_dict()[w][1], parent.state_dict()[w][2])  # vehicle kept by name


def test_resumed_init_reads_the_parent_from_the_checkpoint_or_model_info(tmp_path):
    parent = InitReport("/runs/stage1/x/best_model.pth", "ab" * 32, kept=["person"], new=["bicycle"])
    torch.save({"parent": parent.as_parent()}, tmp_path / "last.ckpt")
    assert resumed_init(tmp_path / "last.ckpt", tmp_path) == parent
    torch.save({"epoch": 0}, tmp_path / "old.ckpt")  # a checkpoint without "parent"
    assert resumed_init(tmp_path / "old.ckpt", tmp_path) is None
    (tmp_path / "model_info.json").write_text(json.dumps({"parent": parent.as_parent()}))
    assert resumed_init(tmp_path / "old.ckpt", tmp_path) == parent


def test_parent_metrics_are_found_beside_best_model_or_above_checkpoints(tmp_path):
    from types import SimpleNamespace

    from train.stage.finish import parent_metrics

    run = tmp_path / "stage1" / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"stage": 1, "val_sets": {}}))
    for weights in (run / "best_model.pth", run / "checkpoints" / "best.ckpt"):
        assert parent_metrics(SimpleNamespace(init=InitReport(str(weights), "0" * 64)))["stage"] == 1
    assert parent_metrics(SimpleNamespace(init=None)) is None
    assert parent_metrics(SimpleNamespace(init=InitReport(str(tmp_path / "x.pth"), "0" * 64))) is None
