"""Datasets over a build's splits, read only through the on-disk build contract (docs/CONTRACTS.md).

Annotations are parsed into per-frame records first (``annotations/<split>.json``, COCO-VID), pixels are
read only in ``__getitem__`` (detectron2's "file names and labels, not images" practice).

Target dict of one frame (what the transforms and the model's loss see):

- ``boxes``: (N, 4) float32, xyxy pixels of the positives.
- ``labels``: (N,) int64, unified class id 1..K (1-based position in the build's class list).
- ``track_ids``: (N,) int64, ``instance_id`` of the COCO-VID annotation.
- ``ignore``: (M, 4) float32, xyxy pixels of the ignore regions (``iscrowd = 1``), de-duplicated (the
  build writes one ignore annotation per category for pycocotools).
- ``image_id``, ``video``, ``frame_id`` (1-based) for bookkeeping.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torchvision
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode

from builder.errors import FormatError
from builder.formats.build_layout import BUILD_SPLITS
from builder.formats.files import MissingFileError, read_json
from train.errors import ConfigError


@dataclass(frozen=True)
class FrameEntry:
    """One annotated frame of a build split, without pixels.

    Attributes:
        image: absolute path of the frame (a symlink to the raw frame inside the build).
        video: sequence directory name (``<source>__<seq>[__<first raw frame>]``).
        frame_id: 1-based frame number inside the sequence directory.
        image_id: COCO image id.
        width, height: image size in pixels.
        boxes: (N, 4) float32 xyxy pixels of the positives.
        labels: (N,) int64 unified class ids 1..K.
        track_ids: (N,) int64.
        ignore: (M, 4) float32 xyxy pixels of ignore regions.
    """

    image: Path
    video: str
    frame_id: int
    image_id: int
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    track_ids: np.ndarray
    ignore: np.ndarray


#: Suffix of a training clip directory, ``__<first raw frame, 7 digits>`` (docs/CONTRACTS.md "Build layout").
_CLIP_SUFFIX = re.compile(r"__\d{7}$")


def sequence_of(video: str) -> str:
    """The sequence a build directory shows: ``<source>__<seq>`` for a training clip
    ``<source>__<seq>__<first raw frame>``, the name itself for a val / test sequence. Track ids are unique within
    it, so ``(sequence_of(video), track id)`` names one identity (identities namespaced per source and sequence)."""
    return _CLIP_SUFFIX.sub("", video)


def identity_table(entries: Sequence[FrameEntry]) -> dict[tuple[str, int], int]:
    """``{(sequence, track id): identity index}`` over the positives of ``entries`` (indices 0.. in sorted order),
    what the identity classifier of the ``identity`` embedding loss is sized by."""
    keys = {(sequence_of(e.video), int(t)) for e in entries for t in e.track_ids if t >= 0}
    return {key: i for i, key in enumerate(sorted(keys))}


def _xywh_to_xyxy(bbox: Sequence[float], where: str) -> list[float]:
    if not isinstance(bbox, list | tuple) or len(bbox) != 4:
        raise FormatError(f"{where}: 'bbox' must be [x, y, w, h] in pixels, got {bbox!r}")
    x, y, w, h = (float(v) for v in bbox)
    return [x, y, x + w, y + h]


def load_split(build_dir: str | Path, split: str) -> list[FrameEntry]:
    """Parse ``annotations/<split>.json`` of a build into frame entries sorted by (video, frame_id).

    Args:
        build_dir: the build root (holds ``build_manifest.json``).
        split: ``train``, ``val`` or ``test``.

    Returns:
        Every image of the split (frames without boxes included, as negatives).

    Raises:
        ValueError: unknown split. FileNotFoundError: missing annotation file.
        FormatError: a missing key, or a positive whose ``category_id`` is not a category of the file
            (a label the detector's head has no row for), naming the file and the record.
    """
    if split not in BUILD_SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {BUILD_SPLITS}")
    build_dir = Path(build_dir).resolve()
    path = build_dir / "annotations" / f"{split}.json"
    if not path.is_file():
        raise MissingFileError(f"{path}: no annotations for split {split!r} in build {build_dir}")
    coco = read_json(path, what="COCO-VID annotations")
    try:
        videos = {v["id"]: v["name"] for v in coco["videos"]}
        categories = {c["id"] for c in coco["categories"]}
        anns_by_image: dict[int, list[dict]] = {}
        for ann in coco["annotations"]:
            if not ann.get("iscrowd", 0) and ann["category_id"] not in categories:
                raise FormatError(f"{path}: annotation id {ann.get('id')}: category_id "
                                       f"{ann['category_id']!r} is not one of the categories {sorted(categories)}")
            anns_by_image.setdefault(ann["image_id"], []).append(ann)
        entries = [_entry(build_dir, img, videos, anns_by_image.get(img["id"], []), path)
                   for img in coco["images"]]
    except KeyError as e:
        raise FormatError(f"{path}: missing key {e} (COCO-VID as in docs/CONTRACTS.md)") from e
    entries.sort(key=lambda e: (e.video, e.frame_id))
    return entries


def _entry(build_dir: Path, img: dict, videos: dict, anns: list[dict], path: Path) -> FrameEntry:
    boxes, labels, tids, ignore = [], [], [], set()
    for ann in anns:
        xyxy = _xywh_to_xyxy(ann["bbox"], f"{path}: annotation id {ann.get('id')}")
        if ann.get("iscrowd", 0):
            ignore.add(tuple(xyxy))
        elif xyxy[2] > xyxy[0] and xyxy[3] > xyxy[1]:
            boxes.append(xyxy)
            labels.append(int(ann["category_id"]))
            tids.append(int(ann.get("instance_id", -1)))
    return FrameEntry(
        image=build_dir / img["file_name"],
        video=videos[img["video_id"]],
        frame_id=int(img["frame_id"]),
        image_id=int(img["id"]),
        width=int(img["width"]),
        height=int(img["height"]),
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        labels=np.asarray(labels, np.int64),
        track_ids=np.asarray(tids, np.int64),
        ignore=np.asarray(sorted(ignore), np.float32).reshape(-1, 4),
    )


def read_image(path: Path) -> torch.Tensor:
    """Read a frame as a uint8 RGB tensor (3, H, W): torchvision.io's libjpeg-turbo decode for JPEG (faster than
    OpenCV's on the project's frames, same pixels; ``benchmarks/bench_data.py`` prints the ratio), any other
    format through OpenCV.

    Raises:
        FileNotFoundError: the file is missing or not a decodable image (names the path).
    """
    if Path(path).suffix.lower() in (".jpg", ".jpeg"):
        try:
            with warnings.catch_warnings():  # torchvision 0.29 announces a move of its decoders to TorchCodec
                warnings.simplefilter("ignore", DeprecationWarning)
                return torchvision.io.decode_jpeg(torchvision.io.read_file(str(path)), mode=ImageReadMode.RGB)
        except (RuntimeError, OSError):
            pass  # missing or not a JPEG after all: OpenCV decides, and the error below names the file
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"{path}: frame listed in the build's annotations is missing or unreadable "
                                "(raw data moved? run `python -m builder verify <build>`)")
    return torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1).contiguous()


def entry_target(entry: FrameEntry) -> dict:
    """Target dict of a frame entry as tensors (see the module docstring for keys and shapes)."""
    return {
        "boxes": torch.from_numpy(entry.boxes.copy()),
        "labels": torch.from_numpy(entry.labels.copy()),
        "track_ids": torch.from_numpy(entry.track_ids.copy()),
        "ignore": torch.from_numpy(entry.ignore.copy()),
        "image_id": entry.image_id,
        "video": entry.video,
        "frame_id": entry.frame_id,
    }


Transform = Callable[[torch.Tensor, dict], tuple[torch.Tensor, dict]]

#: A dataset key: an index, or ``(index, sample seed)`` as :class:`train.stage.datamodule.EpochSeededSampler`
#: yields them, so that a sample's random augmentation depends only on its seed (not on the order of
#: loading, the worker, or what else drew from the global RNG).
Key = int | tuple[int, int]


def split_key(key: Key) -> tuple[int, int | None]:
    """``(index, seed or None)`` of a dataset key."""
    return (int(key[0]), int(key[1])) if isinstance(key, tuple) else (int(key), None)


@contextmanager
def _seeded_torch(seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def seeded(seed: int | None):
    """Context in which torch's CPU RNG is seeded with ``seed`` (restored afterwards); no-op for None."""
    return nullcontext() if seed is None else _seeded_torch(seed)


class FrameDataset(Dataset):
    """Frames of one build split: ``ds[i] -> (image, target)`` (or ``ds[(i, seed)]``, see :data:`Key`).

    ``image`` is whatever the transform returns (float32 (3, H, W) in [0, 1] with the default policies);
    ``target`` as in the module docstring, in the transformed image's pixel coordinates.

    Args:
        build_dir: build root. split: ``train`` / ``val`` / ``test``.
        transform: ``(image uint8 (3,H,W), target) -> (image, target)``; None keeps the uint8 image.
        sequences: optional sequence-dir names to keep (e.g. one val set); None keeps all.
        max_frames: keep only the first ``max_frames`` entries (debug / quick validation).
    """

    def __init__(self, build_dir: str | Path, split: str, transform: Transform | None = None, *,
                 sequences: Sequence[str] | None = None, max_frames: int | None = None) -> None:
        entries = load_split(build_dir, split)
        if sequences is not None:
            keep = set(sequences)
            entries = [e for e in entries if e.video in keep]
        self.entries = entries[:max_frames] if max_frames else entries
        self.transform = transform

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, key: Key) -> tuple[torch.Tensor, dict]:
        index, seed = split_key(key)
        entry = self.entries[index]
        image, target = read_image(entry.image), entry_target(entry)
        if self.transform is not None:
            with seeded(seed):
                image, target = self.transform(image, target)
        return image, target


class ClipDataset(Dataset):
    """Clips of ``clip_length`` frames of one sequence, for association learning.

    ``ds[i] -> list of (image, target)`` of length ``clip_length``, each target with ``"clip": i``. Clip ``i``
    starts at the ``i``-th non-overlapping window of ``clip_length`` consecutive frames of a build clip (a
    sequence shorter than ``clip_length`` yields none) and takes every ``s``-th frame from there, ``s`` drawn
    uniformly from ``1 .. frame_range`` (as far as the build clip reaches; never across its end) with the
    sample's seed: with ``frame_range`` R > 1 the reference frame of a pair lies up to R frames after the key
    frame, as QDTrack samples it (mmtracking's ``ref_img_sampler.frame_range``), so the embedding learns
    identity over time and not only the look of the next frame. Every frame of a clip gets the same random
    augmentation (same scale, flip and photometric change: the transform runs under the same seed for each
    frame), so motion between the frames stays the real motion.

    Raises:
        train.errors.ConfigError: ``clip_length < 1`` or ``frame_range < 1``.
    """

    def __init__(self, build_dir: str | Path, split: str, clip_length: int,
                 transform: Transform | None = None, *, max_frames: int | None = None, frame_range: int = 1) -> None:
        if clip_length < 1:
            raise ConfigError(f"data.clip_length must be >= 1, got {clip_length}")
        if frame_range < 1:
            raise ConfigError(f"data.frame_range must be >= 1, got {frame_range}")
        self.frames = FrameDataset(build_dir, split, transform, max_frames=max_frames)
        self.clips = _clip_starts(self.frames.entries, clip_length)
        self.clip_length, self.frame_range = clip_length, frame_range

    def __len__(self) -> int:
        return len(self.clips)

    def stride(self, index: int, seed: int) -> int:
        """Frame step of clip ``index`` under ``seed``: uniform in ``1 .. min(frame_range, what fits)``."""
        start, end = self.clips[index]
        fits = (end - 1 - start) // (self.clip_length - 1) if self.clip_length > 1 else 1
        top = max(1, min(self.frame_range, fits))
        return 1 if top == 1 else int(np.random.default_rng(seed).integers(1, top + 1))

    def __getitem__(self, key: Key) -> list[tuple[torch.Tensor, dict]]:
        index, seed = split_key(key)
        if seed is None:  # one draw from the global RNG for the whole clip
            seed = int(torch.randint(0, 2**62, ()))
        start, step = self.clips[index][0], self.stride(index, seed)
        frames = [self.frames[(start + k * step, seed)] for k in range(self.clip_length)]
        for _, target in frames:
            target["clip"] = index  # the quasi-dense loss pairs the frames of one clip (train.stage.module)
        return frames


def _clip_starts(entries: list[FrameEntry], clip_length: int) -> list[tuple[int, int]]:
    """``(start, end of its build clip)`` entry indices of every window of ``clip_length`` frames."""
    starts, run_start = [], 0
    for i in range(1, len(entries) + 1):
        if i == len(entries) or entries[i].video != entries[run_start].video:
            starts.extend((s, i) for s in range(run_start, i - clip_length + 1, clip_length))
            run_start = i
    return starts


def collate_frames(batch: list) -> tuple[list[torch.Tensor], list[dict]]:
    """Collate frames (or clips, flattened in order) into ``(images, targets)`` lists, as torchvision
    detection models take them (images of different sizes are batched by the model itself)."""
    flat = [item for sample in batch for item in (sample if isinstance(sample, list) else [sample])]
    images, targets = zip(*flat, strict=True) if flat else ((), ())
    return list(images), list(targets)
