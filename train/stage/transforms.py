"""Transform policies for detection training, on torchvision.transforms.v2.

Every transform has one contract, ``(image, target) -> (image, target)``, and returns new tensors.
``image`` enters as uint8 (3, H, W) RGB and leaves as float32 (3, H', W') in [0, 1]; ``target`` is the dict
of :mod:`train.stage.datasets` (``boxes`` (N, 4) float32 xyxy px, ``labels`` (N,) int64, ``track_ids`` (N,) int64,
``ignore`` (M, 4) float32 xyxy px), with every box moved with the image.

Ignore regions (neither positives nor background): after the geometric transforms, the pixels of each
ignore region that lie outside every positive box are filled with the image's mean colour
(:class:`MaskIgnoreRegions`). The detector therefore never sees the ignored object and cannot be
penalised for firing on it, nor rewarded for calling it background; positives overlapping an ignore region
keep their pixels. This works for every torchvision detector without touching its anchor or proposal
samplers. At test time the evaluation removes predictions matched to ignore regions (TrackEval's MOT17
preprocessing), so nothing is masked there.

Named policies are chosen in one place, :func:`make_transform`, which raises on an unknown name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from train.errors import ConfigError

#: Label given to ignore regions while they travel with the positives through v2 (unified id 0).
_IGNORE_LABEL = 0


class MaskIgnoreRegions:
    """Fill ignore-region pixels not covered by any positive box with the per-channel image mean.

    Input/Output: image (3, H, W) any dtype; target with ``boxes`` and ``ignore`` (xyxy px). Returns a new
    image tensor; the target is returned unchanged (ignore boxes are kept for bookkeeping).
    """

    def __call__(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        ignore = target["ignore"]
        if ignore.numel() == 0:
            return image, target
        h, w = image.shape[-2:]
        mask = _box_mask(ignore, h, w) & ~_box_mask(target["boxes"], h, w)
        fill = image.float().mean(dim=(-2, -1), keepdim=True).to(image.dtype)
        return torch.where(mask, fill, image), target


def _box_mask(boxes: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Boolean (H, W) mask of the union of xyxy pixel boxes (pixel centres inside the box).

    Pixel ``i`` (centre ``i + 0.5``) is inside ``[x1, x2)`` when ``ceil(x1 - 0.5) <= i < ceil(x2 - 0.5)``, so
    each box is one slice assignment instead of a comparison over the whole image.
    """
    mask = torch.zeros(h, w, dtype=torch.bool)
    for x1, y1, x2, y2 in boxes.tolist():
        c1, c2 = max(0, math.ceil(x1 - 0.5)), min(w, math.ceil(x2 - 0.5))
        r1, r2 = max(0, math.ceil(y1 - 0.5)), min(h, math.ceil(y2 - 0.5))
        if c2 > c1 and r2 > r1:
            mask[r1:r2, c1:c2] = True
    return mask


class V2Detection:
    """Run a ``torchvision.transforms.v2`` pipeline on (image, target) with positives and ignore regions.

    Positives and ignore regions go through v2 as one ``tv_tensors.BoundingBoxes`` (ignore regions with
    label 0) so they move together. A build's boxes are the raw annotation's and may leave the frame (issue 9:
    evaluation ground truth is never clipped), so training targets are clipped here, at load time:
    ``ClampBoundingBoxes`` clips every box to the (transformed) image, then ``SanitizeBoundingBoxes`` drops
    boxes that became degenerate (smaller than 1 px, e.g. wholly outside the image) together with their labels
    and track ids; finally positives and ignore regions are split apart again.
    """

    def __init__(self, ops: Sequence) -> None:
        self.pipeline = v2.Compose([*ops, v2.ClampBoundingBoxes(),
                                    v2.SanitizeBoundingBoxes(min_size=1.0, labels_getter=_labels_getter)])

    def __call__(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        n_ign = target["ignore"].shape[0]
        boxes = torch.cat([target["boxes"], target["ignore"]]).reshape(-1, 4)
        sample = {
            "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=tuple(image.shape[-2:])),
            "labels": torch.cat([target["labels"], torch.full((n_ign,), _IGNORE_LABEL, dtype=torch.int64)]),
            "track_ids": torch.cat([target["track_ids"], torch.full((n_ign,), -1, dtype=torch.int64)]),
        }
        image, sample = self.pipeline(tv_tensors.Image(image), sample)
        positive = sample["labels"] != _IGNORE_LABEL
        boxes = sample["boxes"].as_subclass(torch.Tensor).float()
        out = {**target, "boxes": boxes[positive], "labels": sample["labels"][positive],
               "track_ids": sample["track_ids"][positive], "ignore": boxes[~positive]}
        return image.as_subclass(torch.Tensor), out


def _labels_getter(sample) -> tuple[torch.Tensor, torch.Tensor]:
    target = sample[1]
    return target["labels"], target["track_ids"]


class Compose:
    """Apply (image, target) transforms in order."""

    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    def __call__(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        for t in self.transforms:
            image, target = t(image, target)
        return image, target


def make_transform(policy: str, *, scales: Sequence[int] = (320,), max_size: int = 1000,
                   hflip_prob: float = 0.5, photometric: bool = True, mask_ignore: bool = True) -> Compose:
    """Build a named transform policy.

    Args:
        policy: ``train`` (multi-scale resize: shortest side drawn from ``scales``, longest side capped at
            ``max_size`` px; horizontal flip with ``hflip_prob``; photometric distortion), ``val`` (resize the
            shortest side to ``max(scales)`` capped at ``max_size``, as the model does at test time), or
            ``none`` (only conversion to float).
        scales: shortest-side sizes in pixels. max_size: longest-side cap in pixels.
        mask_ignore: fill ignore regions (see the module docstring).

    Raises:
        KeyError: unknown policy, listing the valid names.
    """
    policies = {
        "train": lambda: [v2.RandomShortestSize(min_size=list(scales), max_size=max_size),
                          v2.RandomHorizontalFlip(hflip_prob)]
        + ([v2.RandomPhotometricDistort(p=0.5)] if photometric else []),
        "val": lambda: [v2.RandomShortestSize(min_size=[max(scales)], max_size=max_size)],
        "none": lambda: [],
    }
    if policy not in policies:
        raise ConfigError(f"transform policy {policy!r} is not registered! Available: {sorted(policies)}")
    steps = [V2Detection(policies[policy]())]
    if mask_ignore:
        steps.append(MaskIgnoreRegions())
    steps.append(ToFloat())
    return Compose(steps)


class ToFloat:
    """uint8 image (3, H, W) -> float32 in [0, 1]; float images pass through unchanged."""

    def __call__(self, image: torch.Tensor, target: dict) -> tuple[torch.Tensor, dict]:
        if image.dtype == torch.uint8:
            image = image.float() / 255.0
        return image, target
