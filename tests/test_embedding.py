"""The appearance-embedding branch: its losses (formulas), its outputs for every detector, and learning on a tiny
overfit. Everything in code, seeded, CPU, seconds."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from train.errors import ConfigError
from train.stage.association_losses import (
    batch_hard_triplet,
    cosine_pair_loss,
    multi_positive_contrastive,
    pair_masks,
    quasi_dense_losses,
)
from train.stage.detectors import embed_boxes, embedding_loss_of, has_embedding
from train.stage.embedding import EmbeddingConfig
from train.stage.models import build_model
from train.stage.module import model_targets

torch.set_num_threads(1)
EMBED = {"enabled": True, "dim": 16, "convs": 1, "fc_dim": 64}


def _tiny(arch: str = "fasterrcnn", embedding: dict | None = None, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(arch=arch, backbone="tiny", num_classes=1, min_size=96, max_size=128, fpn_channels=32,
                       tiny_channels=(16, 32, 64), box_head_dim=64,
                       anchor_multipliers=(4,) if arch == "fcos" else (2, 4),
                       aspect_ratios=(2.0,), rpn_post_nms_top_n_train=100, rpn_post_nms_top_n_test=100,
                       box_batch_size_per_image=64, embedding=embedding)


def _pair(shift: float = 4.0) -> tuple[list[torch.Tensor], list[dict]]:
    """Two frames (3 x 96 x 128) of one clip: three same-size people of different colours moving right."""
    colours = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.8, 0.2], [0.2, 0.3, 0.9]])
    images, targets = [], []
    for k in range(2):
        img = torch.full((3, 96, 128), 0.45)
        boxes = torch.tensor([[8.0 + 40 * i + shift * k, 20.0, 30.0 + 40 * i + shift * k, 76.0] for i in range(3)])
        for b, c in zip(boxes.long().tolist(), colours, strict=True):
            img[:, b[1]:b[3], b[0]:b[2]] = c[:, None, None]
        images.append(img)
        targets.append({"boxes": boxes, "labels": torch.ones(3, dtype=torch.int64),
                        "track_ids": torch.tensor([1, 2, 3]), "video": "dancetrack__x__0000001"})
    return images, targets


# --- the losses, against their formulas -----------------------------------------------------------------------
def test_multi_positive_contrastive_equals_the_double_sum_of_qdtrack():
    torch.manual_seed(0)
    emb = torch.randn(7, 5)
    tracks = torch.tensor([1, 2, 3, 1, 2, 3, 1])
    groups = torch.zeros(7, dtype=torch.int64)
    frames = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    pos, neg = pair_masks(tracks, groups, frames)
    sim = emb @ emb.T
    expected, keys = 0.0, 0
    for i in range(7):  # L_i = log(1 + sum_{k+} sum_{k-} exp(s(i, k-) - s(i, k+)))
        p, n = pos[i].nonzero().flatten(), neg[i].nonzero().flatten()
        if len(p):
            keys += 1
            expected += math.log1p(sum(math.exp(sim[i, a] - sim[i, b]) for a in n for b in p))
    assert multi_positive_contrastive(sim, pos, neg).item() == pytest.approx(expected / keys, rel=1e-5)


def test_references_are_other_frames_of_the_same_sequence_only():
    tracks = torch.tensor([1, 1, 1, 2])
    groups = torch.tensor([0, 0, 1, 0])
    frames = torch.tensor([0, 1, 2, 1])
    pos, neg = pair_masks(tracks, groups, frames)
    assert pos.tolist()[0] == [False, True, False, False]  # same track, other frame, same sequence
    assert neg.tolist()[0] == [False, False, False, True]
    assert not pos[2].any() and not neg[2].any()  # alone in its sequence: no reference at all


def test_losses_with_nothing_to_compare_are_zero_and_keep_the_graph():
    emb = torch.randn(3, 4, requires_grad=True)
    out = quasi_dense_losses(emb, torch.tensor([1, 2, 3]), torch.zeros(3, dtype=torch.int64), torch.zeros(3))
    assert all(v.item() == 0.0 for v in out.values())
    sum(out.values()).backward()
    assert emb.grad is not None and torch.isfinite(emb.grad).all()
    assert batch_hard_triplet(emb, torch.tensor([1, 2, 3])).item() == 0.0


def test_cosine_pair_loss_keeps_the_hardest_negatives_up_to_three_per_positive():
    cosine = torch.tensor([[1.0, 0.9, 0.8, 0.2, 0.1, 0.05]])
    pos = torch.tensor([[False, True, False, False, False, False]])
    neg = torch.tensor([[False, False, True, True, True, True]])
    # positive: (0.9 - 1)^2; hardest 3 negatives 0.8, 0.2, 0.1 minus the 0.1 margin, squared
    expected = ((0.9 - 1) ** 2 + 0.7 ** 2 + 0.1 ** 2 + 0.0) / 4
    assert cosine_pair_loss(cosine, pos, neg).item() == pytest.approx(expected)


def test_batch_hard_triplet_is_zero_beyond_the_margin_and_positive_inside_it():
    apart = torch.tensor([[1.0, 0.0], [0.99, 0.14], [-1.0, 0.0], [-0.99, 0.14]])
    labels = torch.tensor([1, 1, 2, 2])
    assert batch_hard_triplet(apart, labels, margin=0.3).item() == 0.0
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    assert batch_hard_triplet(mixed, labels, margin=0.3).item() > 0.5


# --- the branch on every detector ---------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["fasterrcnn", "fcos", "retinanet"])
def test_every_detector_outputs_unit_embeddings_and_embeds_given_boxes_alike(arch):
    model = _tiny(arch, EMBED).eval()
    images, _ = _pair()
    with torch.no_grad():
        out = model(images[:1])[0]
    assert out["embeddings"].shape == (len(out["boxes"]), 16)
    assert torch.allclose(out["embeddings"].norm(dim=1), torch.ones(len(out["boxes"])), atol=1e-5)
    given = embed_boxes(model, images[:1], [out["boxes"]])[0]  # the same boxes, embedded as public detections
    assert torch.allclose(given, out["embeddings"], atol=1e-4)


@pytest.mark.parametrize("arch", ["fasterrcnn", "fcos", "retinanet"])
def test_disabled_embedding_is_the_plain_detector(arch):
    plain, disabled = _tiny(arch), _tiny(arch, {**EMBED, "enabled": False})
    assert not has_embedding(plain) and not has_embedding(disabled)
    assert type(plain) is type(disabled) and plain.state_dict().keys() == disabled.state_dict().keys()
    assert all(torch.equal(v, disabled.state_dict()[k]) for k, v in plain.state_dict().items())
    branch = _tiny(arch, EMBED).state_dict().keys() - plain.state_dict().keys()
    assert branch and all("embed_head." in k for k in branch)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['dims'\]; valid: \['enabled'"):
        EmbeddingConfig.from_mapping({"enabled": True, "dims": 8})
    with pytest.raises(ConfigError, match="'arcface' is not registered! Available: \\['quasi_dense', 'identity'\\]"):
        EmbeddingConfig.from_mapping({"enabled": True, "loss": "arcface"})
    assert EmbeddingConfig.from_mapping(None) is None and EmbeddingConfig.from_mapping({"enabled": False}) is None


def test_model_targets_number_sequences_and_namespace_identities():
    _, targets = _pair()
    other = {**targets[0], "video": "bdd100k__y"}
    table = {("dancetrack__x", 2): 0, ("bdd100k__y", 2): 1}
    out = model_targets([targets[0], other, targets[1]], table)
    assert [int(t["group"]) for t in out] == [0, 1, 0]  # clip dirs of one sequence share a group
    assert out[0]["identities"].tolist() == [-1, 0, -1] and out[1]["identities"].tolist() == [-1, 1, -1]


def test_frames_of_a_clip_share_a_group_and_two_clips_of_one_sequence_do_not():
    _, targets = _pair()
    clips = [{**targets[0], "clip": 7}, {**targets[1], "clip": 7}, {**targets[0], "clip": 3},
             {**targets[1], "clip": 3}]
    assert [int(t["group"]) for t in model_targets(clips)] == [0, 0, 1, 1]  # one sequence, two clips


# --- learning -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch,loss", [("fasterrcnn", "quasi_dense"), ("fcos", "quasi_dense"),
                                       ("fasterrcnn", "identity")])
def test_embedding_loss_is_finite_and_decreases_on_a_tiny_overfit(arch, loss):
    model = _tiny(arch, {**EMBED, "loss": loss}).train()
    branch = embedding_loss_of(model)
    branch.set_identity_count(3)
    table = {("dancetrack__x", k): k - 1 for k in (1, 2, 3)} if loss == "identity" else None
    images, targets = _pair()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    names = ("loss_embed", "loss_embed_aux") if loss == "quasi_dense" else ("loss_identity", "loss_triplet")
    history = []
    for _ in range(25):
        torch.manual_seed(0)  # the same proposal sampling every step: a true overfit
        losses = model(images, model_targets(targets, table))
        embed = sum(losses[n] for n in names)
        assert all(torch.isfinite(v) for v in losses.values())
        history.append(embed.item())
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
    assert history[0] > 0 and history[-1] < 0.5 * history[0], history


@pytest.mark.parametrize("loss,names", [("quasi_dense", {"loss_embed", "loss_embed_aux"}),
                                        ("identity", {"loss_identity", "loss_triplet"})])
def test_a_stage_trains_and_logs_the_embedding_loss_components(tiny_builds, tmp_path, loss, names):
    import json
    import os

    from train_helpers import compose_stage

    from train.stage.app import run_stage

    root = tmp_path / "builds"
    root.mkdir()
    os.symlink(tiny_builds[1], root / "tiny_stage1")
    cfg = compose_stage(1, root, tmp_path / "runs", f"model.embedding.loss={loss}", "model.embedding.dim=8")
    run_dir = Path(run_stage(cfg)["run_dir"])
    history = json.loads((run_dir / "training_history.json").read_text())["epochs"][0]
    assert names <= set(history["train"]) and all(math.isfinite(history["train"][n]) for n in names)
    assert names <= {k.split("/")[-1] for k in history["val"]}  # the validation loss has them too
