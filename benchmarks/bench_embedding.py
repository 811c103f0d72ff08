"""What the appearance embedding costs: training step, inference per frame, tracker update, as ratios in one run.

Run (after ``make demo`` or ``make build-data STAGE=1 CURRICULUM=demo``; 2-core CPU, about two minutes)::

    python benchmarks/bench_embedding.py                                   # tiny demo model, data/builds/demo_stage1
    python benchmarks/bench_embedding.py --model fasterrcnn_resnet50 --size 800      # the stage model at its size
    python benchmarks/bench_embedding.py --model fasterrcnn_resnet50 --build data/builds/stage1 --device cuda

Every pair is measured in the same process, alternately (baseline, embedding, baseline, embedding, ...), on the same
inputs, and printed as a ratio embedding / baseline:

1. training step: the model config with ``model.embedding.enabled`` true vs false (same seed, same batches of clip
   pairs from the build, forward + backward + AdamW step); target <= 1.15;
2. inference per frame: eval-mode forward on the build's val frames at the eval size (embeddings of every detection
   included); target <= 1.20;
3. tracker update at ``--detections`` detections per frame: ``appearance`` with ``--dim``-d embeddings vs
   ``bytetrack`` on the same scene (benchmarks/bench_tracker.py's); target < 2 ms per frame.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from train.stage.datamodule import BuildDataModule
from train.stage.module import model_targets
from train.track.appearance import AppearanceTracker
from train.track.bytetrack import ByteTracker

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conf"


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", type=Path, default=REPO / "data/builds/demo_stage1")
    p.add_argument("--model", default="tiny", help="conf/model/<name>.yaml")
    p.add_argument("--steps", type=int, default=20, help="timed training steps per model and round")
    p.add_argument("--frames", type=int, default=24, help="timed inference frames per model and round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (baseline, embedding)")
    p.add_argument("--detections", type=int, default=100)
    p.add_argument("--dim", type=int, nargs="+", default=[64, 256], help="embedding sizes for the tracker")
    p.add_argument("--device", default="cpu")
    p.add_argument("--overrides", nargs="*", default=["experiment=demo"])
    p.add_argument("--size", type=int, default=240,
                   help="shortest image side in px, training and inference (240: the demo's; 800: the stage configs')")
    return p.parse_args(argv)


def _models(args: argparse.Namespace, classes: int) -> tuple[torch.nn.Module, torch.nn.Module, object]:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*args.overrides, f"model={args.model}", "paths.output_dir=/tmp/bench"])
    out = []
    for enabled in (False, True):
        torch.manual_seed(0)
        out.append(instantiate(cfg.model, num_classes=classes, embedding={**cfg.model.embedding,
                                                                           "enabled": enabled}).to(args.device))
    return out[0], out[1], cfg


def _batches(dm: BuildDataModule, n: int, device: str) -> list:
    loader, batches = iter(dm.train_dataloader()), []
    for _ in range(n):
        images, targets = next(loader)
        batches.append(([i.to(device) for i in images],
                        [{k: v.to(device) for k, v in t.items()} for t in model_targets(targets)]))
    return batches


def _train_time(model: torch.nn.Module, batches: list, device: str) -> float:
    """Seconds per training step (forward + backward + AdamW step) over ``batches``."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    _sync(device)
    start = time.perf_counter()
    for images, targets in batches:
        loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _sync(device)
    return (time.perf_counter() - start) / len(batches)


@torch.no_grad()
def _infer_time(model: torch.nn.Module, frames: list[torch.Tensor], device: str) -> float:
    """Seconds per frame of eval-mode forward, one frame at a time."""
    model.eval()
    _sync(device)
    start = time.perf_counter()
    for f in frames:
        model([f])
    _sync(device)
    return (time.perf_counter() - start) / len(frames)


def _tracker_time(tracker: ByteTracker, detections: int, dim: int | None, frames: int = 200) -> float:
    """Seconds per ``update`` at about ``detections`` detections (bench_tracker.py's scene) after 20 warm-up frames."""
    from bench_tracker import scene

    rng = np.random.default_rng(0)
    times = []
    for t, (boxes, scores, labels) in enumerate(scene(detections, frames + 20)):
        emb = None if dim is None else rng.normal(size=(len(boxes), dim)).astype(np.float32)
        start = time.perf_counter()
        tracker.update(boxes, scores, labels, emb)
        if t >= 20:
            times.append(time.perf_counter() - start)
    return float(np.mean(times))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _alternate(fn_base, fn_embed, rounds: int) -> tuple[float, float]:
    base, embed = [], []
    for _ in range(rounds):
        base.append(fn_base())
        embed.append(fn_embed())
    return float(np.median(base)), float(np.median(embed))


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    dm = BuildDataModule(args.build, batch_size=4, num_workers=0, scales=[args.size], eval_size=args.size,
                         max_size=2 * args.size,
                         clip_length=2, seed=0)
    dm.setup()
    plain, embed, cfg = _models(args, len(dm.classes))
    print(f"model={args.model} build={args.build} device={args.device} threads={torch.get_num_threads()} "
          f"embedding={dict(cfg.model.embedding)}")
    batches = _batches(dm, args.steps, args.device)
    _train_time(plain, batches[:2], args.device), _train_time(embed, batches[:2], args.device)  # warm-up
    base, emb = _alternate(lambda: _train_time(plain, batches, args.device),
                           lambda: _train_time(embed, batches, args.device), args.rounds)
    print(f"training step (4 frames = 2 clip pairs): {1000 * base:.1f} ms -> {1000 * emb:.1f} ms, "
          f"ratio {emb / base:.3f} (target <= 1.15)")
    frames = [dm.val_set[i][0].to(args.device) for i in range(min(args.frames, len(dm.val_set)))]
    _infer_time(plain, frames[:2], args.device), _infer_time(embed, frames[:2], args.device)
    base, emb = _alternate(lambda: _infer_time(plain, frames, args.device),
                           lambda: _infer_time(embed, frames, args.device), args.rounds)
    print(f"inference per frame ({tuple(frames[0].shape[-2:])} px): {1000 * base:.1f} ms -> {1000 * emb:.1f} ms, "
          f"ratio {emb / base:.3f} (target <= 1.20)")
    for dim in args.dim:
        base, emb = _alternate(lambda: _tracker_time(ByteTracker(), args.detections, None),
                               lambda d=dim: _tracker_time(AppearanceTracker(), args.detections, d), args.rounds)
        print(f"tracker update at ~{args.detections} detections, {dim}-d embeddings: bytetrack {1000 * base:.2f} ms, "
              f"appearance {1000 * emb:.2f} ms per frame, ratio {emb / base:.2f} (target < 2 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
