"""Benchmark (GPU): training and tracking throughput of a real stage config on generated full-HD frames.

For a stage config (default ``stage=stage1_foundation``: Faster R-CNN ResNet-50 FPN, the plan's scales 608..800 px,
longest side 1000 px, batch 2; random init, since throughput does not depend on the weights) it measures on the GPU:

- training: images/s and step time (forward + backward + optimizer step, bf16 autocast when the GPU supports it),
  and the fraction of wall time spent waiting for the DataLoader (decode + the stage's train augmentation, in
  ``--workers`` worker processes);
- tracking inference: frames/s of the detector (batched as ``train.track.runner`` runs it) plus the tracker;
- peak GPU memory (``torch.cuda.max_memory_allocated``) of each phase.

Frames: ``--frames`` generated 1920x1080 JPEGs (benchmarks/bench_data.py's generator) with 10 boxes each.
Without a GPU it prints why and exits 0 (``--allow-cpu`` runs the same code on the CPU, for checking the script:
``--smoke`` shrinks it to the tiny model and a few steps).

Usage::

    python benchmarks/bench_gpu.py                               # stage 1 config, 30 steps after 5 warm-up
    python benchmarks/bench_gpu.py --stage stage3_aerial --steps 50 --workers 8
    python benchmarks/bench_gpu.py --allow-cpu --smoke           # the script's own check, on the CPU
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import hydra
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_data import generated_frames, target_for  # noqa: E402

from train.config import compose  # noqa: E402
from train.stage.datasets import collate_frames, read_image  # noqa: E402
from train.stage.distributed import auto_num_workers, usable_cpus  # noqa: E402
from train.stage.module import model_targets  # noqa: E402
from train.stage.transforms import make_transform  # noqa: E402
from train.track.runner import TorchDetector, make_tracker  # noqa: E402

SMOKE = ["model=tiny", "data.scales=[96]", "data.max_size=160", "data.eval_size=96", "model.tiny_channels=[16,32,64]",
         "model.fpn_channels=32", "model.box_head_dim=64"]


class Frames(Dataset):
    """Generated frames through the stage's train pipeline: ``(image float (3, H, W), target)``."""

    def __init__(self, paths: list[Path], transform) -> None:
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        image = read_image(self.paths[i])
        return self.transform(image, target_for(image, 10))


def bench_training(model, loader, device, steps: int, warmup: int, amp: bool) -> dict:
    """Run ``warmup + steps`` optimizer steps; time the measured ones."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model.train()
    it, waited, images = iter(loader), 0.0, 0
    torch.cuda.reset_peak_memory_stats() if device.type == "cuda" else None
    for k in range(warmup + steps):
        if k == warmup:
            _sync(device)
            start, waited, images = time.perf_counter(), 0.0, 0
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        waited += time.perf_counter() - t0
        imgs = [im.to(device, non_blocking=True) for im in batch[0]]
        tgts = [{k: v.to(device) for k, v in t.items()} for t in model_targets(batch[1])]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = sum(model(imgs, tgts).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        images += len(imgs)
    _sync(device)
    wall = time.perf_counter() - start
    return {"images_per_s": images / wall, "step_s": wall / steps, "data_wait_fraction": waited / wall,
            "peak_gb": _peak(device)}


def bench_inference(model, paths: list[Path], device, batch: int, amp: bool, tracker_params: dict) -> dict:
    """Detector (+ its embeddings) + the stage's tracker over the frames, batched as the tracking runner does."""
    import cv2

    detect, tracker = TorchDetector(model, device, 0.05), make_tracker(tracker_params, 30.0)
    frames = [cv2.imread(str(p)) for p in paths]
    torch.cuda.reset_peak_memory_stats() if device.type == "cuda" else None
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        detect.batch(frames[:batch])  # warm-up
        _sync(device)
        start = time.perf_counter()
        for i in range(0, len(frames), batch):
            for detections in detect.batch(frames[i:i + batch]):
                tracker.update(*detections)
        _sync(device)
    return {"frames_per_s": len(frames) / (time.perf_counter() - start), "peak_gb": _peak(device)}


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak(device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def main() -> int:
    """Parse arguments, skip without a GPU, else measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="stage1_foundation")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--workers", type=int, default=max(1, auto_num_workers(usable_cpus())),
                        help="DataLoader workers (default: what data.num_workers=auto gives one GPU here)")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU when there is no GPU")
    parser.add_argument("--smoke", action="store_true", help="tiny model, small frames, 2 steps")
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.allow_cpu:
        print("bench_gpu: no CUDA GPU visible (torch.cuda.is_available() is False): nothing measured. Run it on a "
              "GPU machine; --allow-cpu --smoke checks the script on the CPU.")
        return 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = device.type == "cuda" and torch.cuda.is_bf16_supported()
    cfg = compose([f"stage={args.stage}", *(SMOKE if args.smoke else [])])
    steps, warmup, n_frames = (2, 1, 4) if args.smoke else (args.steps, args.warmup, args.frames)
    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    model_cfg["weights_path"] = None  # throughput does not depend on the weights
    model = hydra.utils.instantiate(model_cfg, num_classes=2).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    tf = make_transform("train", scales=list(cfg.data.scales), max_size=int(cfg.data.max_size))
    with tempfile.TemporaryDirectory() as tmp:
        size = (320, 180) if args.smoke else (1920, 1080)
        paths = generated_frames(Path(tmp), n_frames, size)
        loader = DataLoader(Frames(paths, tf), batch_size=int(cfg.data.batch_size), shuffle=True,
                            num_workers=0 if args.smoke else args.workers, collate_fn=collate_frames,
                            pin_memory=device.type == "cuda", persistent_workers=not args.smoke and args.workers > 0)
        train = bench_training(model, loader, device, steps, warmup, amp)
        tracker_params = OmegaConf.to_container(cfg.tracker, resolve=True)
        infer = bench_inference(model, paths, device, batch=8, amp=amp, tracker_params=tracker_params)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"{name}: stage config {args.stage}, model {cfg.model.arch}/{cfg.model.backbone}, batch "
          f"{cfg.data.batch_size}, scales {list(cfg.data.scales)}, max side {cfg.data.max_size}, bf16 {amp}, "
          f"workers {0 if args.smoke else args.workers}")
    print(f"  training : {train['images_per_s']:.1f} images/s, {1000 * train['step_s']:.0f} ms/step, "
          f"waiting for data {100 * train['data_wait_fraction']:.0f}% of the time, peak memory "
          f"{train['peak_gb'] if train['peak_gb'] is None else round(train['peak_gb'], 2)} GiB")
    print(f"  tracking : {infer['frames_per_s']:.1f} frames/s (detector batch 8 + tracker {tracker_params['name']}), peak memory "
          f"{infer['peak_gb'] if infer['peak_gb'] is None else round(infer['peak_gb'], 2)} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
