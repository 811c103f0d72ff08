"""Data diagnostics of a build: is the data sane before a GPU night is spent on it?

Run::

    python -m builder diagnose data/builds/demo_stage1                 # summary + <build>/diagnostics/
    python -m builder diagnose data/builds/stage1 --out reports/        # PNG and JSON into reports/
    python -m builder diagnose data/builds/stage1 --images-per-seq 10

Reads only the build's files (DESIGN.md build layout): ``build_manifest.json`` (class list),
``<split>/<seq>/seqinfo.ini``, ``gt/gt.txt`` (rows ``frame,id,x,y,w,h,conf,class,visibility``, xywh pixels,
conf 0 = ignore region) and a sample of ``img1/`` frames. Reports, per split:

- class balance per source (positive boxes per unified class, ignore regions);
- boxes per frame (positives; frames without boxes count as 0);
- box sizes in the COCO area bins (Lin et al. 2014, pycocotools ``areaRng``): small area < 32^2,
  medium 32^2 <= area < 96^2, large >= 96^2 (pixels^2, area = w * h);
- degenerate boxes (width or height < 1 px) and out-of-frame boxes (extending more than
  ``EDGE_TOLERANCE_PX`` beyond the image);
- image sizes (read vs seqinfo.ini) and grey-level intensity mean / std (0-255) of up to
  ``images_per_seq`` evenly spaced frames per sequence, plus missing or unreadable images;
- identities (distinct (sequence, track id) among positives) and track lengths (annotated frames per
  identity).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from builder.errors import BuilderError
from builder.formats.build_layout import BUILD_SPLITS, build_classes, read_build_gt, val_set_of
from builder.formats.files import atomic_file, write_json
from builder.formats.motchallenge import SeqInfo, read_seqinfo

#: COCO area bins (pixels^2): small < 32^2 <= medium < 96^2 <= large (pycocotools COCOeval areaRng).
SMALL_MAX_AREA = 32**2
MEDIUM_MAX_AREA = 96**2
#: A box may overhang the image by this much (pixels) before it counts as out of frame (float rounding).
EDGE_TOLERANCE_PX = 0.5
#: Boxes narrower or shorter than this (pixels) are degenerate.
MIN_SIDE_PX = 1.0
DEFAULT_IMAGES_PER_SEQ = 5
MAX_EXAMPLES = 5
#: Tracks annotated in fewer frames than this are reported as short (they teach association little).
SHORT_TRACK_FRAMES = 3


@dataclass
class _SplitStats:
    """Accumulates the raw distributions of one split (arrays feed the plot, counts the summary)."""

    sequences: Counter = field(default_factory=Counter)         # source -> sequences
    frames: Counter = field(default_factory=Counter)            # source -> frames
    per_class: dict[str, Counter] = field(default_factory=dict)  # source -> class name -> positive boxes
    boxes_per_frame: list[np.ndarray] = field(default_factory=list)
    areas: dict[str, list[np.ndarray]] = field(default_factory=dict)  # class name -> areas (px^2)
    track_lengths: list[np.ndarray] = field(default_factory=list)
    identities: Counter = field(default_factory=Counter)        # source -> identities
    degenerate: int = 0
    out_of_frame: int = 0
    examples: list[str] = field(default_factory=list)
    image_sizes: Counter = field(default_factory=Counter)       # "WxH" -> images read
    intensity: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # source -> (mean, std)
    images_missing: int = 0
    size_mismatch: int = 0

    def example(self, text: str) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(text)


def _class_name(cls: int, classes: Sequence[str]) -> str:
    return classes[cls - 1] if 1 <= cls <= len(classes) else f"class {cls}"


def _box_checks(stats: _SplitStats, gt: np.ndarray, width: int, height: int, where: Path) -> None:
    x, y, w, h = gt[:, 2], gt[:, 3], gt[:, 4], gt[:, 5]
    degenerate = (w < MIN_SIDE_PX) | (h < MIN_SIDE_PX)
    tol = EDGE_TOLERANCE_PX
    outside = (x < -tol) | (y < -tol) | (x + w > width + tol) | (y + h > height + tol)
    stats.degenerate += int(degenerate.sum())
    stats.out_of_frame += int(outside.sum())
    for i in np.flatnonzero(degenerate | outside)[:MAX_EXAMPLES]:
        kind = "degenerate" if degenerate[i] else f"outside {width}x{height}"
        stats.example(f"{where}: frame {int(gt[i, 0])} id {int(gt[i, 1])} box "
                      f"{x[i]:g},{y[i]:g},{w[i]:g},{h[i]:g} ({kind})")


def _image_checks(stats: _SplitStats, seq_dir: Path, info: SeqInfo, source: str, images_per_seq: int) -> None:
    length, ext = info.length, info.im_ext or ".jpg"
    expected = (info.width, info.height)
    frames = np.unique(np.linspace(1, length, num=min(images_per_seq, length)).round().astype(int))
    for f in frames if images_per_seq > 0 else []:
        path = seq_dir / info.im_dir / f"{f:08d}{ext}"
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            stats.images_missing += 1
            stats.example(f"{path}: missing or unreadable image")
            continue
        size = (image.shape[1], image.shape[0])
        stats.image_sizes[f"{size[0]}x{size[1]}"] += 1
        if size != expected:
            stats.size_mismatch += 1
            stats.example(f"{path}: image is {size[0]}x{size[1]}, seqinfo.ini says {expected[0]}x{expected[1]}")
        stats.intensity.setdefault(source, []).append((float(image.mean()), float(image.std())))


def _add_sequence(stats: _SplitStats, seq_dir: Path, classes: Sequence[str], images_per_seq: int) -> None:
    info = read_seqinfo(seq_dir / "seqinfo.ini")
    source = info.extra.get("source") or val_set_of(seq_dir.name)
    length, width, height = info.length, info.width, info.height
    gt = read_build_gt(seq_dir / "gt" / "gt.txt")
    stats.sequences[source] += 1
    stats.frames[source] += length
    _box_checks(stats, gt, width, height, seq_dir / "gt" / "gt.txt")
    pos = gt[gt[:, 6] != 0]
    frames = pos[:, 0].astype(np.int64)
    stats.boxes_per_frame.append(np.bincount(frames[(frames >= 1) & (frames <= length)] - 1, minlength=length))
    counts = stats.per_class.setdefault(source, Counter())
    counts["ignore"] += int((gt[:, 6] == 0).sum())
    for cls in np.unique(pos[:, 7]).astype(int):
        name = _class_name(int(cls), classes)
        sel = pos[pos[:, 7] == cls]
        counts[name] += len(sel)
        stats.areas.setdefault(name, []).append(sel[:, 4] * sel[:, 5])
    ids, lengths = np.unique(pos[:, 1], return_counts=True)
    stats.identities[source] += len(ids)
    stats.track_lengths.append(lengths)
    _image_checks(stats, seq_dir, info, source, images_per_seq)


def _describe(values: np.ndarray) -> dict[str, float]:
    if values.size == 0:
        return {"n": 0}
    return {"n": int(values.size), "mean": round(float(values.mean()), 3), "median": float(np.median(values)),
            "min": float(values.min()), "max": float(values.max())}


def _size_bins(areas: np.ndarray) -> dict[str, int]:
    return {"small": int((areas < SMALL_MAX_AREA).sum()),
            "medium": int(((areas >= SMALL_MAX_AREA) & (areas < MEDIUM_MAX_AREA)).sum()),
            "large": int((areas >= MEDIUM_MAX_AREA).sum())}


def _cat(arrays: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(arrays) if arrays else np.zeros(0)


def _summarise(stats: _SplitStats) -> dict[str, Any]:
    lengths = _cat(stats.track_lengths)
    intensities = np.array([m for v in stats.intensity.values() for m, _ in v])
    return {
        "sequences": dict(stats.sequences), "frames": dict(stats.frames),
        "class_balance": {src: dict(sorted(c.items())) for src, c in sorted(stats.per_class.items())},
        "boxes_per_frame": _describe(_cat(stats.boxes_per_frame)),
        "empty_frames": int((_cat(stats.boxes_per_frame) == 0).sum()),
        "box_sizes": {name: _size_bins(_cat(a)) for name, a in sorted(stats.areas.items())},
        "degenerate_boxes": stats.degenerate, "out_of_frame_boxes": stats.out_of_frame,
        "identities": dict(stats.identities), "track_length_frames": _describe(lengths),
        "short_tracks": int((lengths < SHORT_TRACK_FRAMES).sum()),
        "images": {"sampled": int(sum(stats.image_sizes.values())), "missing": stats.images_missing,
                   "size_mismatch": stats.size_mismatch, "sizes": dict(stats.image_sizes),
                   "mean_intensity": _describe(intensities),
                   "std_intensity_mean": round(float(np.mean([s for v in stats.intensity.values() for _, s in v]))
                                               if intensities.size else 0.0, 3)},
        "examples": stats.examples,
    }


def collect(build_dir: Path | str, *, images_per_seq: int = DEFAULT_IMAGES_PER_SEQ
            ) -> tuple[dict[str, Any], dict[str, _SplitStats]]:
    """Walk a build's splits; return (JSON-able summary, raw per-split stats for plotting).

    Raises:
        BuilderError: ``build_dir`` is not a build (no split directory with sequences), or a file in it is
            malformed (the message names the file and line or key).
    """
    build = Path(build_dir)
    if not build.is_dir():
        raise BuilderError(f"{build}: not a directory (expected a build made by `python -m builder build`)")
    classes = build_classes(build)
    raw: dict[str, _SplitStats] = {}
    for split in BUILD_SPLITS:
        seqs = sorted(p for p in (build / split).glob("*") if (p / "seqinfo.ini").is_file())
        if seqs:
            raw[split] = _SplitStats()
            for seq in seqs:
                _add_sequence(raw[split], seq, classes, images_per_seq)
    if not raw:
        raise BuilderError(f"{build}: no sequences found under {', '.join(BUILD_SPLITS)} "
                           "(expected <split>/<seq>/seqinfo.ini)")
    summary = {"build": str(build), "classes": classes,
               "splits": {s: _summarise(st) for s, st in raw.items()}}
    return summary, raw


def format_summary(summary: dict[str, Any]) -> str:
    """A plain-text report of ``diagnose``'s summary (one block per split, problems flagged ``!``)."""
    lines = [f"Diagnostics of {summary['build']} (classes: {', '.join(summary['classes']) or 'unknown'})"]
    for split, s in summary["splits"].items():
        bpf, tl, img = s["boxes_per_frame"], s["track_length_frames"], s["images"]
        lines.append(f"\n[{split}] sequences {sum(s['sequences'].values())}, frames {sum(s['frames'].values())}")
        for src, counts in s["class_balance"].items():
            lines.append(f"  {src:<14} " + ", ".join(f"{k} {v}" for k, v in counts.items())
                         + f"; identities {s['identities'].get(src, 0)}")
        if bpf["n"]:
            lines.append(f"  boxes/frame mean {bpf['mean']:.2f} median {bpf['median']:g} max {bpf['max']:g}; "
                         f"empty frames {s['empty_frames']}")
        for name, bins in s["box_sizes"].items():
            lines.append(f"  {name:<14} COCO size small {bins['small']} medium {bins['medium']} large {bins['large']}")
        if tl["n"]:
            lines.append(f"  track length (frames) mean {tl['mean']:.1f} median {tl['median']:g} "
                         f"min {tl['min']:g} max {tl['max']:g}; short (<{SHORT_TRACK_FRAMES}) {s['short_tracks']}")
        mi = img["mean_intensity"]
        lines.append(f"  images sampled {img['sampled']} sizes {img['sizes']}"
                     + (f" mean intensity {mi['mean']:.1f} (std within image {img['std_intensity_mean']:.1f})"
                        if mi["n"] else ""))
        for key, label in (("degenerate_boxes", "degenerate boxes"), ("out_of_frame_boxes", "out-of-frame boxes")):
            if s[key]:
                lines.append(f"  ! {label}: {s[key]}")
        if img["missing"] or img["size_mismatch"]:
            lines.append(f"  ! images missing {img['missing']}, size mismatch {img['size_mismatch']}")
        lines += [f"    e.g. {e}" for e in s["examples"]]
    return "\n".join(lines)


# --- plot -------------------------------------------------------------------------------------------

def _plot_class_balance(ax: Axes, summary: dict[str, Any]) -> None:
    groups = [(split, src, c) for split, s in summary["splits"].items() for src, c in s["class_balance"].items()]
    names = sorted({k for *_, c in groups for k in c}, key=lambda k: (k == "ignore", k))
    x = np.arange(len(groups))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        values = [c.get(name, 0) for *_, c in groups]
        bars = ax.bar(x + (i - (len(names) - 1) / 2) * width, values, width, label=name,
                      color="0.6" if name == "ignore" else colormaps["tab10"](i))
        ax.bar_label(bars, fontsize=7, padding=1)
    ax.margins(y=0.15)
    ax.set_xticks(x, [f"{split}/{src}" for split, src, _ in groups], fontsize=8, rotation=30, ha="right",
                  rotation_mode="anchor")
    ax.set_title("Class balance per split and source")
    ax.set_ylabel("boxes (count)")
    if names:
        ax.legend(fontsize=8)


def _plot_hist(ax: Axes, data: dict[str, np.ndarray], title: str, xlabel: str, *, integer: bool = True,
               labels: dict[str, str] | None = None, bins: np.ndarray | None = None) -> None:
    """Side-by-side histogram bars, one colour per key of ``data`` (integer bins when ``integer``)."""
    data = {k: v for k, v in data.items() if v.size}
    if not data:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center")
    else:
        top = max(float(v.max()) for v in data.values())
        if bins is None:
            bins = np.arange(-0.5, top + 1.5) if integer and top < 60 else np.linspace(0.0, max(top, 1.0), 41)
        names = [(labels or {}).get(k, f"{k} (n={v.size})") for k, v in data.items()]
        ax.hist(list(data.values()), bins=bins, histtype="bar", label=names, rwidth=0.9)
        ax.legend(fontsize=8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.grid(True, alpha=0.3)


def _plot_sizes(ax: Axes, raw: dict[str, _SplitStats]) -> None:
    by_class: dict[str, list[np.ndarray]] = {}
    for st in raw.values():
        for name, arrays in st.areas.items():
            by_class.setdefault(name, []).extend(arrays)
    areas = {name: np.clip(_cat(a), 0, None) for name, a in sorted(by_class.items())}
    labels = {name: f"{name} (S {b['small']} / M {b['medium']} / L {b['large']})"
              for name, b in ((n, _size_bins(a)) for n, a in areas.items())}
    _plot_hist(ax, {n: np.sqrt(a) for n, a in areas.items()}, "Box size, all splits (COCO bins)",
               "sqrt(box area) (pixels)", integer=False, labels=labels)
    for edge, text in ((32, "small | medium"), (96, "medium | large")):
        ax.axvline(edge, color="0.3", linestyle="--", linewidth=1)
        ax.text(edge, 0.97, f" {text}", transform=ax.get_xaxis_transform(), fontsize=7, va="top")


def _plot_intensity(ax: Axes, raw: dict[str, _SplitStats]) -> None:
    by_source: dict[str, list[float]] = {}
    for st in raw.values():
        for src, pairs in st.intensity.items():
            by_source.setdefault(src, []).extend(m for m, _ in pairs)
    sizes = Counter()
    for st in raw.values():
        sizes.update(st.image_sizes)
    data = {src: np.asarray(v) for src, v in sorted(by_source.items())}
    _plot_hist(ax, data, "Image mean intensity (sampled frames)", "mean grey level (0-255)", integer=False,
               bins=np.linspace(0, 255, 52))  # 5 grey levels per bin
    ax.set_xlim(0, 255)
    ax.text(0.02, 0.97, "sizes: " + ", ".join(f"{k} ({v})" for k, v in sizes.most_common(4)),
            transform=ax.transAxes, fontsize=7, va="top")


def _plot_problems(ax: Axes, summary: dict[str, Any]) -> None:
    ax.axis("off")
    lines = ["Data problems", ""]
    prefix = summary["build"].rstrip("/") + "/"
    for split, s in summary["splits"].items():
        img = s["images"]
        lines.append(f"[{split}]")
        lines.append(f"  degenerate boxes {s['degenerate_boxes']:>6}   out of frame {s['out_of_frame_boxes']:>6}")
        lines.append(f"  missing images   {img['missing']:>6}   size mismatch {img['size_mismatch']:>5}")
        lines.append(f"  short tracks (<{SHORT_TRACK_FRAMES} frames) {s['short_tracks']}")
        for e in s["examples"][:3]:
            e = e.replace(prefix, "")
            lines.append("  e.g. " + (e if len(e) <= 90 else e[:87] + "..."))
        lines.append("")
    bad = any(s["degenerate_boxes"] or s["out_of_frame_boxes"] or s["images"]["missing"]
              or s["images"]["size_mismatch"] for s in summary["splits"].values())
    lines.insert(1, "PROBLEMS FOUND (see examples)" if bad else "none found")
    ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=7.5, family="monospace",
            color="darkred" if bad else "darkgreen", transform=ax.transAxes)


def plot_diagnostics(summary: dict[str, Any], raw: dict[str, _SplitStats], out_png: Path | str) -> Path:
    """Write the 2x3 diagnostics figure (1600x900 px) to ``out_png``; returns the path."""
    fig = Figure(figsize=(16, 9), dpi=100, layout="constrained")  # bare Figure: Agg canvas, no pyplot state
    axes = fig.subplots(2, 3)
    _plot_class_balance(axes[0, 0], summary)
    _plot_hist(axes[0, 1], {s: _cat(st.boxes_per_frame) for s, st in raw.items()},
               "Positive boxes per frame", "boxes in a frame")
    _plot_sizes(axes[0, 2], raw)
    _plot_hist(axes[1, 0], {s: _cat(st.track_lengths) for s, st in raw.items()},
               "Track length (annotated frames per identity)", "frames")
    _plot_intensity(axes[1, 1], raw)
    _plot_problems(axes[1, 2], summary)
    fig.suptitle(f"Data diagnostics of build {Path(summary['build']).name}", fontsize=13, fontweight="bold")
    out = Path(out_png)
    with atomic_file(out) as fh:  # replaces a symlink at out_png, never writes through it
        fig.savefig(fh, format="png")
    return out


def diagnose(build_dir: Path | str, out_png: Path | str | None = None, *,
             images_per_seq: int = DEFAULT_IMAGES_PER_SEQ) -> dict[str, Any]:
    """Diagnose a build; optionally write the PNG.

    Returns:
        JSON-able dict: ``build``, ``classes``, ``splits`` {split: {sequences, frames (per source),
        class_balance {source: {class: boxes, "ignore": n}}, boxes_per_frame {n, mean, median, min, max},
        empty_frames, box_sizes {class: {small, medium, large}}, degenerate_boxes, out_of_frame_boxes,
        identities {source: n}, track_length_frames {...}, short_tracks, images {sampled, missing,
        size_mismatch, sizes, mean_intensity, std_intensity_mean}, examples}}, and ``png`` when written.

    Raises:
        BuilderError: not a build, or a malformed file (see ``collect``).
    """
    summary, raw = collect(build_dir, images_per_seq=images_per_seq)
    if out_png is not None:
        summary["png"] = str(plot_diagnostics(summary, raw, out_png))
    return summary


def write_diagnostics(build_dir: Path | str, out: Path | str | None = None, *,
         images_per_seq: int = DEFAULT_IMAGES_PER_SEQ) -> int:
    """Print the text summary and write ``diagnostics.png`` + ``diagnostics.json``; returns 0.

    ``out`` is a folder (default ``<build>/diagnostics``) or a ``.png`` path (the JSON goes next to it). Both
    files are written atomically: a symlink in their place is replaced, never written through.

    Raises:
        BuilderError: see ``collect`` (``python -m builder`` turns it into exit code 2); the default
            ``<build>/diagnostics`` is a symlink (it could lead the output anywhere on the disk).
    """
    build = Path(build_dir)
    target = Path(out) if out is not None else build / "diagnostics"
    if out is None and target.is_symlink():
        raise BuilderError(f"{target}: is a symlink (to {os.readlink(target)}); diagnose writes into the build only. "
                           "Remove the link, or pass --out <folder> to write elsewhere")
    png = target if target.suffix.lower() == ".png" else target / "diagnostics.png"
    summary = diagnose(build, png, images_per_seq=images_per_seq)
    write_json(png.with_suffix(".json"), summary)
    print(format_summary(summary))
    print(f"\nwrote {png} and {png.with_suffix('.json')}")
    return 0
