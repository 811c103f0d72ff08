"""Training throughput: the Lightning module vs a bare PyTorch loop on the same model and batches.

Run::

    python benchmarks/bench_train.py --build data/builds/demo_stage1            # CPU, tiny model
    python benchmarks/bench_train.py --build data/builds/stage1 --model fasterrcnn_resnet50 --device cuda

Both loops train the same freshly built detector (same seed, same config) for ``--steps`` optimizer
steps on the same batches, in the same process, after ``--warmup`` untimed steps each:

- bare: ``for images, targets in loader: loss = sum(model(images, targets).values()); backward; clip; step``
- Lightning: ``Trainer(max_steps=...).fit(DetectionModule, loader)`` with the stage config's callbacks
  reduced to none, no logger, no checkpointing (what remains is Lightning's own loop, logging of every loss
  component and the gradient-norm hook).

Reported: steps/s of each, the ratio Lightning / bare (target >= 0.95), and the fraction of the bare
loop's step time spent waiting for the DataLoader (time in ``next(iterator)`` / total).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lightning as L
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from train.stage.datamodule import BuildDataModule
from train.stage.module import DetectionModule, model_targets

CONF = Path(__file__).resolve().parent.parent / "conf"


def _parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--build", required=True, help="build directory (e.g. data/builds/demo_stage1)")
    p.add_argument("--model", default="tiny", help="conf/model/<name>.yaml (default tiny)")
    p.add_argument("--steps", type=int, default=30, help="timed optimizer steps per loop")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--overrides", nargs="*", default=["experiment=demo"], help="extra Hydra overrides")
    return p.parse_args(argv)


def _setup(args: argparse.Namespace):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=[*args.overrides, f"model={args.model}", "paths.output_dir=/tmp/bench"])
    dm = BuildDataModule(args.build, batch_size=args.batch_size, num_workers=args.workers,
                         scales=list(cfg.data.scales), max_size=cfg.data.max_size, eval_size=cfg.data.eval_size,
                         clip_length=cfg.data.clip_length)
    dm.setup()
    return cfg, dm


def _model(cfg, classes: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return instantiate(cfg.model, num_classes=classes)


def _to(batch, device):
    images, targets = batch
    return ([i.to(device, non_blocking=True) for i in images],
            [{k: v.to(device) for k, v in t.items()} for t in model_targets(targets)])


def bare_loop(cfg, dm: BuildDataModule, args: argparse.Namespace) -> dict:
    """Plain PyTorch: returns steps/s and the fraction of wall time spent in ``next(loader)``."""
    model = _model(cfg, len(dm.classes)).to(args.device).train()
    optimizer = instantiate(cfg.optim)(model.parameters())
    loader = iter(_cycle(dm.train_dataloader()))
    wait = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            _sync(args.device)
            t0, wait = time.perf_counter(), 0.0
        tw = time.perf_counter()
        images, targets = _to(next(loader), args.device)
        wait += time.perf_counter() - tw
        loss = sum(model(images, targets).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg.trainer.gradient_clip_val))
        optimizer.step()
    _sync(args.device)
    total = time.perf_counter() - t0
    return {"steps_per_s": args.steps / total, "data_wait_fraction": wait / total}


class _StepTimer(L.Callback):
    def __init__(self, warmup: int, device: str) -> None:
        self.warmup, self.device, self.t0 = warmup, device, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.warmup and self.t0 is None:
            _sync(self.device)
            self.t0 = time.perf_counter()


def lightning_loop(cfg, dm: BuildDataModule, args: argparse.Namespace) -> dict:
    """The project's DetectionModule under a Lightning Trainer: returns steps/s."""
    module = DetectionModule(_model(cfg, len(dm.classes)), instantiate(cfg.optim), None)
    timer = _StepTimer(args.warmup, args.device)
    trainer = L.Trainer(max_steps=args.warmup + args.steps, accelerator=args.device.split(":")[0], devices=1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                        gradient_clip_val=float(cfg.trainer.gradient_clip_val), callbacks=[timer])
    trainer.fit(module, train_dataloaders=_Repeat(dm.train_dataloader(), args.warmup + args.steps))
    _sync(args.device)
    return {"steps_per_s": args.steps / (time.perf_counter() - timer.t0)}


def _cycle(loader):
    while True:
        yield from loader


class _Repeat:
    """An iterable of exactly ``n`` batches cycling over ``loader`` (one Lightning epoch of n steps)."""

    def __init__(self, loader, n: int) -> None:
        self.loader, self.n = loader, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        it = _cycle(self.loader)
        return (next(it) for _ in range(self.n))


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    cfg, dm = _setup(args)
    print(f"model={args.model} build={args.build} batch={args.batch_size} workers={args.workers} "
          f"device={args.device} threads={torch.get_num_threads()} steps={args.steps}")
    bare = bare_loop(cfg, dm, args)
    light = lightning_loop(cfg, dm, args)
    bare2 = bare_loop(cfg, dm, args)  # again, to see the machine's drift between the two measurements
    ratio = light["steps_per_s"] / ((bare["steps_per_s"] + bare2["steps_per_s"]) / 2)
    print(f"bare PyTorch : {bare['steps_per_s']:.3f} / {bare2['steps_per_s']:.3f} steps/s "
          f"(data wait {100 * bare['data_wait_fraction']:.1f}% / {100 * bare2['data_wait_fraction']:.1f}% of step time)")
    print(f"Lightning    : {light['steps_per_s']:.3f} steps/s")
    print(f"ratio Lightning / bare = {ratio:.3f} (target >= 0.95)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
