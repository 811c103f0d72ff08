"""Benchmark (CPU): frames per second one data-loader worker delivers, against the decode-only floor.

For each image set it times, in one process (= one DataLoader worker), over ``--repeat`` passes:

- decode only, OpenCV (``cv2.imread`` + BGR->RGB + HWC->CHW tensor: the project's former path) and
  ``train.stage.datasets.read_image`` (``torchvision.io.decode_jpeg`` of the file bytes: libjpeg-turbo);
- ``read_image`` + the training pipeline of a real stage config (``make_transform("train", ...)`` with the default
  data config: shortest side drawn from 608..800 px, longest side <= 1000 px, horizontal flip, photometric
  distortion, ignore-region masking, float conversion) on a target with 20 boxes.

Image sets: the real MOT17 sample's 1920x1080 frames (../shared/realdata/mot17-mini, when present; its 640x480
sequence left out) and generated
1280x720 JPEGs (BDD100K's frame size; quality 90). The figures are ratios inside one run (this machine is
shared): ``augment / decode`` is the share of a worker's time the pipeline adds, and ``workers for N img/s`` =
N / (frames/s of one worker) is how many workers a GPU consuming N images/s needs (and n workers on n free cores
feed n times one worker's rate: a projection, the processes share nothing).

Usage::

    python benchmarks/bench_data.py                      # both sets, 3 passes, best pass counts
    python benchmarks/bench_data.py --target 40 --repeat 5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from omegaconf import OmegaConf

from builder.formats.motchallenge import read_seqinfo
from train.config import CONF_DIR
from train.stage.datasets import read_image
from train.stage.transforms import make_transform

REPO = Path(__file__).resolve().parents[1]
MOT17 = REPO.parent / "shared" / "realdata" / "mot17-mini" / "train"
#: Worker counts whose throughput is printed (8 = the ceiling of data.num_workers=auto).
FEED_WORKERS = (1, 2, 4, 8)


def generated_frames(folder: Path, n: int, size: tuple[int, int] = (1280, 720)) -> list[Path]:
    """``n`` 1280x720 JPEGs (quality 90) of smooth gradients, blobs and noise: a realistic compression load."""
    rng = np.random.default_rng(0)
    w, h = size
    paths = []
    for i in range(n):
        base = np.add.outer(np.linspace(30, 200, h), np.linspace(0, 40, w)).astype(np.float32)
        img = np.stack([base, base * 0.8 + 20, base * 0.6 + 40], axis=-1)
        for _ in range(40):
            x, y = rng.integers(0, w - 80), rng.integers(0, h - 160)
            img[y:y + 160, x:x + 80] = rng.uniform(0, 255, 3)
        img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i:06d}.jpg"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def decode_cv2(path: Path) -> torch.Tensor:
    """OpenCV decode to a uint8 RGB (3, H, W) tensor (the project's current path)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1])).permute(2, 0, 1).contiguous()


def target_for(image: torch.Tensor, n: int = 20) -> dict:
    """A target with ``n`` boxes (xyxy px, 60 x 150) spread over the image, one ignore region."""
    _, h, w = image.shape
    bw, bh = min(60.0, w / 4), min(150.0, h / 2)
    xs = torch.linspace(0, w - bw - 1, n)
    boxes = torch.stack([xs, torch.full((n,), h / 4), xs + bw, torch.full((n,), h / 4 + bh)], dim=1)
    return {"boxes": boxes, "labels": torch.ones(n, dtype=torch.int64), "track_ids": torch.arange(n),
            "ignore": torch.tensor([[0.0, 0.0, 50.0, 50.0]]), "image_id": 0, "video": "v", "frame_id": 1}


def frames_per_second(paths: list[Path], step: Callable[[Path], object], repeat: int) -> float:
    """Best of ``repeat`` passes over ``paths`` (a shared machine: the fastest pass is the least disturbed)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for p in paths:
            step(p)
        best = min(best, time.perf_counter() - start)
    return len(paths) / best


def bench(name: str, paths: list[Path], repeat: int, target_rate: float) -> None:
    """Print the figures of one image set."""
    data = OmegaConf.load(CONF_DIR / "data" / "default.yaml")
    train_tf = make_transform("train", scales=list(data.scales), max_size=int(data.max_size),
                              hflip_prob=float(data.hflip_prob), photometric=bool(data.photometric),
                              mask_ignore=bool(data.mask_ignore))
    torch.manual_seed(0)
    cv_fps = frames_per_second(paths, decode_cv2, repeat)
    tv_fps = frames_per_second(paths, read_image, repeat)

    def full(p: Path) -> object:
        image = read_image(p)
        return train_tf(image, target_for(image))

    full_fps = frames_per_second(paths, full, repeat)
    print(f"{name}: {len(paths)} frames, one worker (torch threads {torch.get_num_threads()})")
    print(f"  decode only, OpenCV                 {cv_fps:7.1f} frames/s")
    print(f"  decode only, read_image (turbo)     {tv_fps:7.1f} frames/s  ({tv_fps / cv_fps:.2f}x OpenCV)")
    print(f"  read_image + train augmentation     {full_fps:7.1f} frames/s  ({full_fps / tv_fps:.2f}x the decode "
          f"floor)")
    print(f"  workers for {target_rate:g} img/s: {target_rate / full_fps:.1f}")
    feeds = ", ".join(f"{n}: {n * full_fps:.0f}" for n in FEED_WORKERS)
    print(f"  n workers on n free cores feed n x one worker: {feeds} img/s")


def main() -> int:
    """Run both image sets."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frames", type=int, default=24, help="generated 1280x720 frames")
    parser.add_argument("--target", type=float, default=30.0, help="images/s a GPU consumes (for the worker count)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # a DataLoader worker runs with one thread
    # full-HD sequences only (the sample's MOT17-05 is 640x480)
    real = sorted(p for seq in sorted(MOT17.glob("*/seqinfo.ini"))
                  if (read_seqinfo(seq).width, read_seqinfo(seq).height) == (1920, 1080)
                  for p in seq.parent.glob("img1/*.jpg"))
    if real:
        bench("real MOT17 1920x1080", real, args.repeat, args.target)
    else:
        print(f"{MOT17}: not present; real-frame figures skipped")
    with tempfile.TemporaryDirectory() as tmp:
        bench("generated 1280x720", generated_frames(Path(tmp), args.frames), args.repeat, args.target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
