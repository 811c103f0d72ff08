"""Detectors by name: torchvision Faster R-CNN, FCOS or RetinaNet over a selectable backbone.

Never downloads: every torchvision builder is called with ``weights=None, weights_backbone=None``;
COCO-pretrained weights come from a local file the user names (``model.weights_path``).

Model contract (torchvision detection API): ``model(images, targets)`` in train mode returns a dict of
named loss components (float32 scalars); in eval mode ``model(images)`` returns per image
``{"boxes": (N, 4) float32 xyxy px in the input image's coordinates, "scores": (N,), "labels": (N,) int64}``
with labels the unified class ids 1..K. ``images`` is a list of float32 (3, H, W) tensors in [0, 1].
With ``model.embedding.enabled`` the detector carries an appearance-embedding branch (:mod:`train.stage.embedding`,
wired in by :mod:`train.stage.detectors`): eval outputs gain ``"embeddings"`` (N, D) float32, L2-normalised, and the
train-mode loss dict gains its named components; the targets then need ``track_ids`` and ``group``.

Resizing: in training the model's internal resize is skipped (``_skip_resize``): the data pipeline already
did the multi-scale resize with transforms.v2. In eval mode the model resizes the shortest side to
``min_size`` capped at ``max_size`` px and maps boxes back to the input image size.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import (
    BackboneWithFPN,
    mobilenet_backbone,
    resnet_fpn_backbone,
)
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from train.errors import ConfigError
from train.stage.checkpoints import safe_load
from train.stage.detectors import EmbeddingFCOS, EmbeddingRetinaNet, EmbeddingRoIHeads
from train.stage.embedding import EmbeddingConfig

log = logging.getLogger(__name__)

#: Default anchor size per pyramid level as a multiple of the level's stride, per detector
#: (torchvision's own defaults: Faster R-CNN 32..512 px on strides 4..64 -> 8x; FCOS 8..128 on 8..128 -> 1x;
#: RetinaNet 32..512 on 8..128 with 3 octave scales -> 4x, 4*2^(1/3)x, 4*2^(2/3)x).
DEFAULT_ANCHOR_MULTIPLIERS = {
    "fasterrcnn": (8.0,),
    "fcos": (1.0,),
    "retinanet": (4.0, 4.0 * 2 ** (1 / 3), 4.0 * 2 ** (2 / 3)),
}


class TinyBody(nn.Sequential):
    """A few-conv-layer backbone body for CPU demos: strides 4 (stem), 8 (``layer1``), 16 (``layer2``).

    Input (B, 3, H, W) float32; ``layer1`` -> (B, c1, H/8, W/8), ``layer2`` -> (B, c2, H/16, W/16).
    GroupNorm instead of BatchNorm: batches of 1-4 frames and no running statistics to protect.
    """

    def __init__(self, channels: Sequence[int] = (32, 64, 128)) -> None:
        c0, c1, c2 = channels
        super().__init__(OrderedDict(
            stem=nn.Sequential(_conv(3, c0 // 2, 2), _conv(c0 // 2, c0, 2)),
            layer1=nn.Sequential(_conv(c0, c1, 2), _conv(c1, c1, 1)),
            layer2=nn.Sequential(_conv(c1, c2, 2), _conv(c2, c2, 1)),
        ))


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(min(8, cout), cout),
                         nn.ReLU(inplace=True))


def _tiny_backbone(arch: str, fpn_channels: int, channels: Sequence[int], trainable_layers: int) -> nn.Module:
    del trainable_layers  # trained from scratch: every layer trains
    extra = LastLevelP6P7(fpn_channels, fpn_channels) if arch in ("fcos", "retinanet") else LastLevelMaxPool()
    return BackboneWithFPN(TinyBody(channels), {"layer1": "0", "layer2": "1"}, list(channels[1:]),
                           fpn_channels, extra_blocks=extra)


def _resnet_backbone(name: str) -> Callable[..., nn.Module]:
    def build(arch: str, fpn_channels: int, channels: Sequence[int], trainable_layers: int) -> nn.Module:
        if arch in ("fcos", "retinanet"):  # P3-P7 as torchvision's fcos/retinanet builders
            return resnet_fpn_backbone(backbone_name=name, weights=None, trainable_layers=trainable_layers,
                                       returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(256, 256))
        return resnet_fpn_backbone(backbone_name=name, weights=None, trainable_layers=trainable_layers)
    return build


def _mobilenet_backbone(name: str) -> Callable[..., nn.Module]:
    def build(arch: str, fpn_channels: int, channels: Sequence[int], trainable_layers: int) -> nn.Module:
        return mobilenet_backbone(backbone_name=name, weights=None, fpn=True,
                                  trainable_layers=trainable_layers)
    return build


#: Backbones by name.
BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "tiny": _tiny_backbone,
    "resnet18": _resnet_backbone("resnet18"),
    "resnet50": _resnet_backbone("resnet50"),
    "mobilenet_v3_large": _mobilenet_backbone("mobilenet_v3_large"),
}

ARCHS = ("fasterrcnn", "fcos", "retinanet")


def _level_strides(backbone: nn.Module, probe: int = 256) -> list[int]:
    with torch.no_grad():
        feats = backbone(torch.zeros(1, 3, probe, probe))
    return [probe // f.shape[-1] for f in feats.values()]


def build_model(*, arch: str, backbone: str, num_classes: int, min_size: int = 800, max_size: int = 1333,
                weights_path: str | None = None, trainable_backbone_layers: int = 3, fpn_channels: int = 256,
                tiny_channels: Sequence[int] = (32, 64, 128), anchor_multipliers: Sequence[float] | None = None,
                aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0), box_head_dim: int = 1024,
                score_thresh: float = 0.05, detections_per_img: int = 100, rpn_post_nms_top_n_train: int = 2000,
                rpn_post_nms_top_n_test: int = 1000, box_batch_size_per_image: int = 512,
                embedding: Mapping | None = None) -> nn.Module:
    """Build a torchvision detector for ``num_classes`` foreground classes (unified ids 1..K).

    Args:
        arch: ``fasterrcnn`` | ``fcos`` | ``retinanet``.
        backbone: a key of :data:`BACKBONES` (``tiny`` trains from scratch on CPU; ``resnet50``, ...).
        num_classes: K, the build's class count. Every detector gets K + 1 class outputs, row 0 the background,
            so labels are the unified ids 1..K in and out (FCOS / RetinaNet index their logits by the label).
        min_size, max_size: test-time resize (shortest side, longest-side cap) in pixels.
        weights_path: local COCO-pretrained checkpoint to start from, or None for random init.
        anchor_multipliers: anchor sizes per level as multiples of the level stride (default per arch,
            see :data:`DEFAULT_ANCHOR_MULTIPLIERS`); aspect_ratios: height / width of anchors (Faster R-CNN,
            RetinaNet; FCOS is anchor-free and uses one square anchor per location).
        box_head_dim: hidden size of Faster R-CNN's two-layer box head.
        rpn_post_nms_top_n_train, rpn_post_nms_top_n_test: proposals kept per image after the RPN's NMS;
            box_batch_size_per_image: proposals sampled per image for the box head's loss (Faster R-CNN;
            torchvision defaults 2000 / 1000 / 512; the CPU demo uses far fewer: the box head dominates).
        score_thresh: minimum detection score kept in eval mode. detections_per_img: cap per image.
        embedding: ``model.embedding`` (:class:`train.stage.embedding.EmbeddingConfig` keys); None or
            ``enabled: false`` builds the plain detector.

    Raises:
        KeyError: unknown arch or backbone (lists the valid names).
        FileNotFoundError: ``weights_path`` given but missing.
    """
    if arch not in ARCHS:
        raise ConfigError(f"model.arch {arch!r} is not registered! Available: {list(ARCHS)}")
    if backbone not in BACKBONES:
        raise ConfigError(f"model.backbone {backbone!r} is not registered! Available: {sorted(BACKBONES)}")
    body = BACKBONES[backbone](arch, fpn_channels, tiny_channels, trainable_backbone_layers)
    strides = _level_strides(body)
    mults = anchor_multipliers or DEFAULT_ANCHOR_MULTIPLIERS[arch]
    sizes = tuple(tuple(int(round(s * m)) for m in mults) for s in strides)
    embed = EmbeddingConfig.from_mapping(embedding)
    if arch == "fasterrcnn":
        anchors = AnchorGenerator(sizes, (tuple(aspect_ratios),) * len(sizes))
        head = TwoMLPHead(body.out_channels * 7 * 7, box_head_dim)
        model = FasterRCNN(body, num_classes=None, rpn_anchor_generator=anchors, box_head=head,
                           box_predictor=FastRCNNPredictor(box_head_dim, num_classes + 1),
                           box_score_thresh=score_thresh, box_detections_per_img=detections_per_img,
                           rpn_pre_nms_top_n_train=rpn_post_nms_top_n_train,
                           rpn_post_nms_top_n_train=rpn_post_nms_top_n_train,
                           rpn_pre_nms_top_n_test=rpn_post_nms_top_n_test,
                           rpn_post_nms_top_n_test=rpn_post_nms_top_n_test,
                           box_batch_size_per_image=box_batch_size_per_image,
                           min_size=min_size, max_size=max_size, _skip_resize=True)
        if embed:  # the embedding head, sibling of the box head on the same RoI features
            model.roi_heads = EmbeddingRoIHeads(model.roi_heads, body.out_channels, embed)
    else:
        model = _one_stage(arch, body, num_classes, sizes, aspect_ratios, embed, min_size=min_size, max_size=max_size,
                           _skip_resize=True, detections_per_img=detections_per_img, score_thresh=score_thresh)
    if weights_path:
        load_pretrained(model, weights_path)
    return model


def _one_stage(arch: str, body: nn.Module, num_classes: int, sizes: tuple, aspect_ratios: Sequence[float],
               embed: EmbeddingConfig | None, **kwargs) -> nn.Module:
    """FCOS (one square anchor per location) or RetinaNet, with the dense embedding head when ``embed``."""
    ratios = ((1.0,),) if arch == "fcos" else (tuple(aspect_ratios),)
    anchors = AnchorGenerator(sizes, ratios * len(sizes))
    outputs = num_classes + 1  # row 0 = background (never a positive), rows 1..K = the unified ids
    if embed:
        cls = EmbeddingFCOS if arch == "fcos" else EmbeddingRetinaNet
        return cls(body, outputs, anchor_generator=anchors, embedding=embed, **kwargs)
    return (FCOS if arch == "fcos" else RetinaNet)(body, outputs, anchor_generator=anchors, **kwargs)


def load_pretrained(model: nn.Module, weights_path: str | Path) -> dict[str, list[str]]:
    """Load a local pretrained checkpoint (e.g. torchvision's COCO ``.pth``) into ``model``.

    Accepts a plain state dict or one wrapped under ``state_dict`` / ``model``. Tensors whose name and shape
    match are loaded; the rest (typically the 91-class COCO heads) keep their fresh init and are logged.

    Returns:
        ``{"loaded": [...], "skipped": [...]}`` parameter names.

    Raises:
        FileNotFoundError: the file is missing (names it; nothing is ever downloaded).
        CheckpointError: the file is empty, corrupt or holds more than tensors and plain containers.
        ValueError: not a single tensor matches by name and shape (a checkpoint of another model, or keys
            with an unexpected prefix such as ``module.``): names the file and an example key of each side.
    """
    path = Path(weights_path)
    if not path.is_file():
        raise FileNotFoundError(f"model.weights_path={str(path)!r}: file not found. Put the COCO-pretrained "
                                "checkpoint there (nothing is downloaded) or set model.weights_path=null")
    state = safe_load(path, what="model.weights_path weights")  # tensors only: nothing in the file runs
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ConfigError(f"model.weights_path={str(path)!r}: expected a state dict, got {type(state).__name__}")
    own = model.state_dict()
    loaded = {k: v for k, v in state.items()
              if k in own and isinstance(v, torch.Tensor) and own[k].shape == v.shape}
    if not loaded:
        raise ConfigError(f"model.weights_path={str(path)!r}: no tensor matches the model by name and shape "
                         f"(file keys e.g. {sorted(map(str, state))[:2]}, model keys e.g. {sorted(own)[:2]}); "
                         "is it a checkpoint of this model.arch / model.backbone?")
    model.load_state_dict(loaded, strict=False)
    skipped = sorted(set(own) - set(loaded))
    log.info("loaded %d tensors from %s; %d keep their fresh init (e.g. %s)", len(loaded), path,
             len(skipped), skipped[:4])
    return {"loaded": sorted(loaded), "skipped": skipped}
