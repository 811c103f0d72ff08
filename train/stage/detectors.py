"""torchvision detectors with the appearance-embedding branch of :mod:`train.stage.embedding` wired in.

- Faster R-CNN: :class:`EmbeddingRoIHeads` replaces ``model.roi_heads``. In training, the proposals the box head
  samples and matches to ground truth (torchvision's ``select_training_samples``) are reused: the RoI features of
  the positives with IoU >= ``pos_iou`` to their box go through ``roi_heads.embed_head`` (quasi-dense samples: many
  proposals per object). In eval mode the final boxes are pooled again and embedded. Parameter names:
  ``roi_heads.embed_head.*`` (and ``roi_heads.embed_loss.identity_classifier.*`` for the identity loss).
- FCOS / RetinaNet: :class:`EmbeddingFCOS` / :class:`EmbeddingRetinaNet` run ``embed_head`` (a dense map per FPN
  level) beside their heads. A box is embedded by sampling the map at the centre of the box on the level
  torchvision's FPN level mapper picks for its size (RoIAlign with 2 x 2 bins over the central half of the box,
  averaged: the region where FCOS's centre sampling puts the positive locations); in training each
  ground-truth box and ``jitter_samples`` jittered copies of it are sampled. Parameter names: ``embed_head.*``.

Every detector keeps torchvision's contract and adds ``"embeddings"`` (N, D) float32, L2-normalised, to each
eval-mode output dict; :func:`embed_boxes` embeds given boxes (public detections).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
from torchvision.models.detection.roi_heads import RoIHeads, fastrcnn_loss
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import MultiScaleRoIAlign

from train.stage.embedding import DenseEmbedHead, EmbeddingConfig, EmbeddingLoss, RoIEmbedHead, Samples


def _paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of (N, 4) xyxy boxes with (N, 4) xyxy boxes, row by row -> (N,)."""
    inter = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp(min=0).prod(dim=1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(dim=1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(dim=1)
    return inter / (area_a + area_b - inter).clamp(min=1e-6)


class EmbeddingRoIHeads(RoIHeads):
    """torchvision ``RoIHeads`` whose box head has a sibling embedding head on the same pooled RoI features.

    Args:
        heads: the detector's own ``RoIHeads`` (its pooler, box head, predictor and sampling settings are taken over).
        channels: channels of the pooled features (the FPN's).
        cfg: the embedding branch's config.
    """

    def __init__(self, heads: RoIHeads, channels: int, cfg: EmbeddingConfig) -> None:
        super().__init__(heads.box_roi_pool, heads.box_head, heads.box_predictor,
                         heads.proposal_matcher.high_threshold, heads.proposal_matcher.low_threshold,
                         heads.fg_bg_sampler.batch_size_per_image, heads.fg_bg_sampler.positive_fraction,
                         heads.box_coder.weights, heads.score_thresh, heads.nms_thresh, heads.detections_per_img)
        self.embed_head = RoIEmbedHead(channels, self.box_roi_pool.output_size[0], cfg)
        self.embed_loss = EmbeddingLoss(cfg)
        self.pos_iou = cfg.pos_iou

    def embed_boxes(self, features: OrderedDict, boxes: Sequence[torch.Tensor],
                    image_shapes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
        """Unit embeddings (N_i, D) of ``boxes[i]`` (N_i, 4) xyxy px in the transformed image ``i``."""
        pooled = self.box_roi_pool(features, list(boxes), list(image_shapes))
        unit = F.normalize(self.embed_head(pooled), dim=1)
        return list(unit.split([len(b) for b in boxes]))

    def forward(self, features, proposals, image_shapes, targets=None):
        """torchvision's ``RoIHeads.forward`` (boxes only) plus the embedding branch; see the module docstring."""
        if not self.training:
            result, losses = super().forward(features, proposals, image_shapes, targets)
            embeddings = self.embed_boxes(features, [r["boxes"] for r in result], image_shapes)
            for r, e in zip(result, embeddings, strict=True):
                r["embeddings"] = e
            return result, losses
        proposals, matched_idxs, labels, regression_targets = self.select_training_samples(proposals, targets)
        pooled = self.box_roi_pool(features, proposals, image_shapes)
        class_logits, box_regression = self.box_predictor(self.box_head(pooled))
        loss_classifier, loss_box_reg = fastrcnn_loss(class_logits, box_regression, labels, regression_targets)
        rows, matched, start = [], [], 0
        for props, idx, lab, t in zip(proposals, matched_idxs, labels, targets, strict=True):
            pos = torch.nonzero(lab > 0).flatten()
            if len(pos):  # QDTrack's track sampler: positives at IoU >= pos_iou with their box
                pos = pos[_paired_iou(props[pos], t["boxes"][idx[pos]]) >= self.pos_iou]
            rows.append(pos + start)
            matched.append(idx[pos])
            start += len(props)
        embeddings = self.embed_head(pooled[torch.cat(rows)])
        losses = {"loss_classifier": loss_classifier, "loss_box_reg": loss_box_reg}
        losses.update(self.embed_loss(embeddings, Samples.gather(targets, matched)))
        return [], losses


def _jittered(boxes: torch.Tensor, copies: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``boxes`` (N, 4) xyxy followed by ``copies`` jittered copies of each (centre moved by up to 10 % of the
    size, width and height scaled by 0.9-1.1; the global RNG), and the (N * (copies + 1),) source index."""
    index = torch.arange(len(boxes), device=boxes.device).repeat(copies + 1)
    out = boxes[index].clone()
    if copies and len(boxes):
        n = len(boxes) * copies
        size = (out[len(boxes):, 2:] - out[len(boxes):, :2])
        centre = (out[len(boxes):, 2:] + out[len(boxes):, :2]) / 2
        centre = centre + (torch.rand(n, 2, device=boxes.device) - 0.5) * 0.2 * size
        size = size * (0.9 + 0.2 * torch.rand(n, 2, device=boxes.device))
        out[len(boxes):] = torch.cat([centre - size / 2, centre + size / 2], dim=1)
    return out, index


class DenseEmbedding(nn.Module):
    """Mixin for FCOS / RetinaNet: a dense embedding head beside the detector's head (see the module docstring).

    The subclass provides ``_detector_losses(targets, head_outputs, anchors, features)`` and
    ``_detections(head_outputs, anchors, features, image_sizes)`` (its torchvision forward's two branches).
    """

    def _init_embedding(self, cfg: EmbeddingConfig, channels: int, levels: int) -> None:
        self.embed_head = DenseEmbedHead(channels, cfg)
        self.embed_loss = EmbeddingLoss(cfg)
        self.jitter_samples = cfg.jitter_samples
        self._levels = [str(i) for i in range(levels)]
        self._sampler = MultiScaleRoIAlign(self._levels, output_size=2, sampling_ratio=1)

    def _sample(self, maps: list[torch.Tensor], boxes: Sequence[torch.Tensor],
                image_sizes: Sequence[tuple[int, int]]) -> torch.Tensor:
        """Raw embeddings (sum N_i, D) of ``boxes`` (xyxy px of the transformed images), central half of each."""
        centre = [torch.cat([(3 * b[:, :2] + b[:, 2:]) / 4, (b[:, :2] + 3 * b[:, 2:]) / 4], dim=1) for b in boxes]
        pooled = self._sampler(OrderedDict(zip(self._levels, maps, strict=True)), centre, list(image_sizes))
        return pooled.mean(dim=(2, 3))

    def forward(self, images: list[torch.Tensor], targets: list[dict] | None = None):
        """torchvision's FCOS / RetinaNet forward plus the embedding branch (losses in train, outputs in eval)."""
        original = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        batch, targets = self.transform(images, targets)
        features = list(self.backbone(batch.tensors).values())
        head_outputs = self.head(features)
        anchors = self.anchor_generator(batch, features)
        maps = self.embed_head(features)
        if self.training:
            losses = self._detector_losses(targets, head_outputs, anchors, features)
            samples = [_jittered(t["boxes"], self.jitter_samples) for t in targets]
            embeddings = self._sample(maps, [s[0] for s in samples], batch.image_sizes)
            losses.update(self.embed_loss(embeddings, Samples.gather(targets, [s[1] for s in samples])))
            return losses
        detections = self._detections(head_outputs, anchors, features, batch.image_sizes)
        boxes = [d["boxes"] for d in detections]
        unit = F.normalize(self._sample(maps, boxes, batch.image_sizes), dim=1)
        for d, e in zip(detections, unit.split([len(b) for b in boxes]), strict=True):
            d["embeddings"] = e
        return self.transform.postprocess(detections, batch.image_sizes, original)

    def embed_from_features(self, features: list[torch.Tensor], boxes: Sequence[torch.Tensor],
                            image_sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
        """Unit embeddings (N_i, D) of ``boxes[i]`` xyxy px of the transformed images (see :func:`embed_boxes`)."""
        unit = F.normalize(self._sample(self.embed_head(features), boxes, image_sizes), dim=1)
        return list(unit.split([len(b) for b in boxes]))


def _split(head_outputs: dict, anchors: list, per_level: list[int]) -> tuple[dict, list]:
    outputs = {k: list(v.split(per_level, dim=1)) for k, v in head_outputs.items()}
    return outputs, [list(a.split(per_level)) for a in anchors]


class EmbeddingFCOS(DenseEmbedding, FCOS):
    """torchvision FCOS with a dense embedding head (``embedding``: the branch's config; other arguments FCOS's)."""

    def __init__(self, *args, embedding: EmbeddingConfig, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_embedding(embedding, self.backbone.out_channels, len(self.anchor_generator.sizes))

    def _detector_losses(self, targets, head_outputs, anchors, features) -> dict:
        return self.compute_loss(targets, head_outputs, anchors, [f.shape[-2] * f.shape[-1] for f in features])

    def _detections(self, head_outputs, anchors, features, image_sizes) -> list[dict]:
        outputs, split_anchors = _split(head_outputs, anchors, [f.shape[-2] * f.shape[-1] for f in features])
        return self.postprocess_detections(outputs, split_anchors, image_sizes)


class EmbeddingRetinaNet(DenseEmbedding, RetinaNet):
    """torchvision RetinaNet with a dense embedding head (``embedding``: the branch's config)."""

    def __init__(self, *args, embedding: EmbeddingConfig, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._init_embedding(embedding, self.backbone.out_channels, len(self.anchor_generator.sizes))

    def _detector_losses(self, targets, head_outputs, anchors, features) -> dict:
        return self.compute_loss(targets, head_outputs, anchors)

    def _detections(self, head_outputs, anchors, features, image_sizes) -> list[dict]:
        per_location = [f.shape[-2] * f.shape[-1] for f in features]
        per_anchor = head_outputs["cls_logits"].shape[1] // sum(per_location)
        outputs, split_anchors = _split(head_outputs, anchors, [n * per_anchor for n in per_location])
        return self.postprocess_detections(outputs, split_anchors, image_sizes)


def embedding_loss_of(model: nn.Module) -> EmbeddingLoss | None:
    """The detector's :class:`EmbeddingLoss` (None for a detector without the embedding branch)."""
    if isinstance(model, FasterRCNN) and isinstance(model.roi_heads, EmbeddingRoIHeads):
        return model.roi_heads.embed_loss
    return model.embed_loss if isinstance(model, DenseEmbedding) else None


def has_embedding(model: nn.Module) -> bool:
    """Whether ``model`` outputs appearance embeddings."""
    return embedding_loss_of(model) is not None


@torch.no_grad()
def embed_boxes(model: nn.Module, images: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Embed given boxes (public detections) with the detector's embedding branch, in eval mode.

    Args:
        model: a detector with the embedding branch (:func:`has_embedding`).
        images: float32 (3, H, W) in [0, 1], as the detector takes them.
        boxes: (N_i, 4) float32 xyxy px in each image's own coordinates.

    Returns:
        (N_i, D) float32 L2-normalised embeddings per image (RoIAlign on the backbone's FPN features at the
        detector's test-time size).

    Raises:
        TypeError: the model has no embedding branch.
    """
    if not has_embedding(model):
        raise TypeError(f"{type(model).__name__} has no embedding branch (model.embedding.enabled=false)")
    model.eval()
    sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
    batch, _ = model.transform(list(images))
    scaled = [resize_boxes(b.to(batch.tensors.device, torch.float32), s, t)
              for b, s, t in zip(boxes, sizes, batch.image_sizes, strict=True)]
    features = model.backbone(batch.tensors)
    if isinstance(model, FasterRCNN):
        return model.roi_heads.embed_boxes(features, scaled, batch.image_sizes)
    return model.embed_from_features(list(features.values()), scaled, batch.image_sizes)
