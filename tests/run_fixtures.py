"""Scripted run directories and tiny MOT sequences, written in code, for the reporting tests.

Everything here follows docs/CONTRACTS.md exactly (run directory, training_history.json,
model_info.json, metrics.json, stopping_reason.txt, .hydra/{config,overrides}.yaml, Hydra multirun
layout, build sequence layout), so the tools under test cannot tell these from real runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import OmegaConf

#: Metric keys of one val set in metrics.json ``combined`` (0-100 for ratios, integers for counts).
COMBINED_KEYS = ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDP", "IDR",
                 "IDSW", "FP", "FN", "Frag", "MT", "PT", "ML")
COUNT_KEYS = {"IDSW", "FP", "FN", "Frag", "MT", "PT", "ML"}


def base_config(**changes: Any) -> dict[str, Any]:
    """A nested Hydra-like config; ``changes`` as ``{"optim.lr": 1e-4}`` override dotted keys."""
    cfg: dict[str, Any] = {
        "seed": 42,
        "stage": {"name": "stage1_foundation", "index": 1, "monitor": "val/HOTA"},
        "optim": {"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 2e-4, "weight_decay": 1e-4},
        "scheduler": {"name": "multistep", "milestones": [7], "gamma": 0.1},
        "data": {"batch_size": 2, "build": "${paths.build_root}/demo_stage1"},
        "trainer": {"max_epochs": 4, "accumulate_grad_batches": 1},
        "paths": {"build_root": "data/builds", "output_dir": "${hydra:runtime.output_dir}"},
    }
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return cfg


def scripted_history(val_hota: Sequence[float], *, val_sets: Sequence[str] = ("dancetrack",),
                     lr: float = 2e-4, backbone_lr: float = 2e-5) -> dict[str, Any]:
    """A training_history.json whose monitored ``val/HOTA`` follows ``val_hota`` epoch by epoch.

    Losses fall as ``1/(epoch+1)``; IDF1 = HOTA + 5 and MOTA = HOTA - 5 per val set (arbitrary but
    distinct, so plots show three separable lines); the LR drops x0.1 at the last epoch.
    """
    epochs = []
    n = len(val_hota)
    for e, hota in enumerate(val_hota):
        scale = 0.1 if e == n - 1 and n > 2 else 1.0
        val: dict[str, float] = {"val/loss": 2.0 / (e + 1), "val/HOTA": float(hota)}
        for i, name in enumerate(val_sets):
            h = float(hota) - 3.0 * i
            val.update({f"val/{name}/HOTA": h, f"val/{name}/IDF1": h + 5.0, f"val/{name}/MOTA": h - 5.0})
        epochs.append({
            "epoch": e,
            "train": {"loss": 3.0 / (e + 1), "loss_classifier": 1.0 / (e + 1), "loss_box_reg": 1.5 / (e + 1),
                      "loss_objectness": 0.5 / (e + 1)},
            "lr": {"head": lr * scale, "backbone": backbone_lr * scale},
            "grad_norm": 10.0 / (e + 1),
            "val": val,
            "epoch_time_s": 12.5,
        })
    return {"epochs": epochs}


def scripted_metrics(stage: int, hota: dict[str, float],
                     classes: Sequence[str] = ("person", "vehicle")) -> dict[str, Any]:
    """metrics.json with HOTA per val set from ``hota``; other ratios derived as HOTA +/- offsets."""
    val_sets = {}
    for name, h in hota.items():
        combined = {k: (7 if k in COUNT_KEYS else round(h + (COMBINED_KEYS.index(k) - 4) * 0.5, 3))
                    for k in COMBINED_KEYS}
        combined["HOTA"] = h
        val_sets[name] = {"combined": combined, "per_class": {c: dict(combined) for c in classes},
                          "detection": {"AP": h / 2, "AP50": h, "AP75": h / 3, "APs": 1.0, "APm": 2.0,
                                        "APl": 3.0, "AR": h / 2, "per_class": {c: h / 2 for c in classes}}}
    return {"stage": stage, "val_sets": val_sets}


def write_run(run_dir: Path, *, val_hota: Sequence[float] | None = (40.0, 50.0, 55.0),
              config: dict[str, Any] | None = None, overrides: Sequence[str] = (), stage: int = 1,
              reason: str = "max_epochs", wall_time_s: float | None = 100.0,
              final_hota: dict[str, float] | None = None, val_sets: Sequence[str] = ("dancetrack",),
              model_info: bool = True, choices: dict[str, str] | None = None) -> Path:
    """Write one scripted run directory; ``val_hota=None`` writes a run that never validated.

    ``choices`` (config group -> option) goes to ``.hydra/hydra.yaml`` ``hydra.runtime.choices`` as Hydra
    records it (with Hydra's own ``hydra/...`` groups added).

    The recorded best is the max of ``val_hota`` at its epoch (as ModelCheckpoint(mode="max") keeps).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    hydra = run_dir / ".hydra"
    hydra.mkdir(exist_ok=True)
    cfg = config if config is not None else base_config()
    OmegaConf.save(OmegaConf.create(cfg), hydra / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(overrides)), hydra / "overrides.yaml")
    if choices is not None:
        runtime = {"choices": {**choices, "hydra/launcher": "basic", "hydra": "default"},
                   "output_dir": str(run_dir)}
        OmegaConf.save(OmegaConf.create({"hydra": {"runtime": runtime}}), hydra / "hydra.yaml")
    history = scripted_history(val_hota or [], val_sets=val_sets)
    (run_dir / "training_history.json").write_text(json.dumps(history, indent=2))
    best = None
    if val_hota:
        epoch = int(np.argmax(val_hota))
        best = {"metric": "val/HOTA", "value": float(val_hota[epoch]), "epoch": epoch}
    if model_info:
        info = {"stage": stage, "parent": None, "build": {"path": "data/builds/demo", "manifest_sha256": "0" * 64},
                "classes": ["person", "vehicle"], "best": best,
                "hyperparameters": {k: v for k, v in _flat(cfg).items() if not k.startswith("paths.")},
                "git_commit": "deadbeef", "versions": {"torch": "2.x"}, "wall_time_s": wall_time_s}
        (run_dir / "model_info.json").write_text(json.dumps(info, indent=2))
    lines = [f"reason: {reason}", "details: scripted"]
    (run_dir / "stopping_reason.txt").write_text("\n".join(lines) + "\n")
    if final_hota is not None:
        (run_dir / "metrics.json").write_text(json.dumps(scripted_metrics(stage, final_hota), indent=2))
    return run_dir


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else k
        out.update(_flat(v, key) if isinstance(v, dict) else {key: v})
    return out


def write_multirun(root: Path, jobs: Sequence[dict[str, Any]]) -> Path:
    """A Hydra multirun dir: ``multirun.yaml`` + numbered job dirs ``0/``, ``1/``, ... from ``write_run`` kwargs."""
    root.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create({"hydra": {"mode": "MULTIRUN"}}), root / "multirun.yaml")
    for i, job in enumerate(jobs):
        write_run(root / str(i), **job)
    return root


def write_regression(run_dir: Path, parent: Path, *, half_width: float = 2.0) -> Path:
    """regression.json of ``run_dir`` against ``parent`` (their scripted metrics.json), as the gate writes it,
    with a scripted interval ``delta +- half_width`` on every row (scripted metrics carry no sequence
    statistics to bootstrap)."""
    from dataclasses import replace

    from train.regression.bootstrap import Interval
    from train.regression.gate import Regression, compare, verdict

    before, after = (json.loads((d / "metrics.json").read_text()) for d in (parent, run_dir))
    reg = compare(before, after, tolerance=1.0)
    rows = []
    for r in reg.rows:
        iv = None if r.delta is None else Interval(r.delta - half_width, r.delta + half_width, "scripted", 4)
        rows.append(replace(r, interval=iv, verdict=verdict(r.delta, iv, reg.tolerance)))
    scripted = Regression(rows, reg.tolerance, baseline=reg.baseline, missing=reg.missing, runs_before=1)
    (run_dir / "regression.json").write_text(json.dumps(scripted.to_dict(), indent=2))
    return run_dir / "regression.json"


def write_curriculum(root: Path) -> list[Path]:
    """Three stage runs (stage 1..3) whose final metrics show person HOTA forgotten at stage 3.

    dancetrack HOTA per stage: 50, 55, 48 (a 7-point drop at stage 3); bdd100k 30, 38, 37;
    visdrone appears only at stage 3 (20). Stages 2 and 3 hold the gate's regression.json against the stage
    before (intervals delta +- 2: the 7-point drop is FORGETTING, the 1-point drop within noise).
    """
    finals = [{"dancetrack": 50.0, "bdd100k": 30.0}, {"dancetrack": 55.0, "bdd100k": 38.0},
              {"dancetrack": 48.0, "bdd100k": 37.0, "visdrone": 20.0}]
    curves = [(30.0, 42.0, 50.0), (51.0, 53.0, 55.0), (40.0, 45.0, 48.0)]
    runs = []
    for stage, (final, curve) in enumerate(zip(finals, curves, strict=True), 1):
        runs.append(write_run(root / f"stage{stage}" / "2026-01-01_00-00-00", val_hota=curve, stage=stage,
                              final_hota=final, val_sets=tuple(final)))
        if stage > 1:
            write_regression(runs[-1], runs[-2])
    return runs


# --- tiny MOT sequences -----------------------------------------------------------------------------

def write_sequence(seq_dir: Path, *, gt_rows: Sequence[Sequence[float]], length: int, width: int = 160,
                   height: int = 120, frame_rate: int = 10, source: str = "synth", ext: str = ".jpg") -> Path:
    """A MOTChallenge sequence: ``img1/NNNNNNNN.jpg`` (dark grey gradient), ``gt/gt.txt``, ``seqinfo.ini``.

    ``gt_rows`` are ``frame,id,x,y,w,h,conf,class,visibility`` (1-based frames, xywh pixels).
    """
    (seq_dir / "img1").mkdir(parents=True, exist_ok=True)
    (seq_dir / "gt").mkdir(exist_ok=True)
    base = np.tile(np.linspace(40, 90, width, dtype=np.float32), (height, 1)).astype(np.uint8)
    for f in range(1, length + 1):
        cv2.imwrite(str(seq_dir / "img1" / f"{f:08d}{ext}"), cv2.merge([base, base, base]))
    text = "".join(",".join(_num(v) for v in row) + "\n" for row in gt_rows)
    (seq_dir / "gt" / "gt.txt").write_text(text)
    (seq_dir / "seqinfo.ini").write_text(
        f"[Sequence]\nname={seq_dir.name}\nimDir=img1\nframeRate={frame_rate}\nseqLength={length}\n"
        f"imWidth={width}\nimHeight={height}\nimExt={ext}\nsource={source}\nrawSequence={seq_dir.name}\n"
        f"rawFrames=1:{length}:1\n")
    return seq_dir


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.2f}"


def moving_gt(length: int) -> list[list[float]]:
    """Two people crossing a 160x120 frame plus one static ignore region, for ``length`` frames.

    Person 1 walks right from x=10 (4 px/frame), person 2 walks left from x=120; both 20x40 px.
    The ignore region (conf 0, class 0) sits at (60, 80, 30, 30) in every frame.
    """
    rows: list[list[float]] = []
    for f in range(1, length + 1):
        rows.append([f, 1, 10 + 4 * (f - 1), 20, 20, 40, 1, 1, 1.0])
        rows.append([f, 2, 120 - 4 * (f - 1), 30, 20, 40, 1, 1, 1.0])
        rows.append([f, 3, 60, 80, 30, 30, 0, 0, 1.0])
    return rows


def write_tiny_build(root: Path, *, length: int = 6) -> Path:
    """A hand-made build (DESIGN.md layout): two sources, train clips and locked val sequences.

    ``synthA`` has people only; ``synthB`` has people and one vehicle (class 2), a degenerate box
    (w = 0) and a box reaching outside the frame, so diagnostics have something to find.
    """
    root.mkdir(parents=True, exist_ok=True)
    people = moving_gt(length)
    with_vehicle = people + [[f, 9, 5, 5, 50, 20, 1, 2, 1.0] for f in range(1, length + 1)]
    bad = with_vehicle + [[1, 10, 30, 30, 0, 10, 1, 1, 1.0], [2, 11, 150, 100, 30, 30, 1, 2, 1.0]]
    splits = {"train": {"synthA__a1__0000001": ("synthA", people), "synthB__b1__0000001": ("synthB", bad)},
              "val": {"synthA__a2": ("synthA", people), "synthB__b2": ("synthB", with_vehicle)}}
    manifest: dict[str, Any] = {"classes": ["person", "vehicle"], "splits": {}, "seed": 0}
    for split, seqs in splits.items():
        manifest["splits"][split] = {}
        for name, (source, rows) in seqs.items():
            write_sequence(root / split / name, gt_rows=rows, length=length, source=source)
            manifest["splits"][split][name] = {"source": source, "raw_split": split,
                                               "raw_sequence": name.split("__")[1],
                                               "frames": list(range(1, length + 1))}
        (root / "seqmaps").mkdir(exist_ok=True)
        (root / "seqmaps" / f"{split}.txt").write_text("name\n" + "".join(f"{s}\n" for s in seqs))
    (root / "build_manifest.json").write_text(json.dumps(manifest, indent=2))
    return root
