"""Ground truth vs tracker output, as an MP4: see matches, ID switches, misses and false positives.

Run::

    python -m train.viz --gt data/builds/demo_stage1/val/dancetrack__seq1 \\
        --results runs/stage1/latest/eval/dancetrack/tracker/dancetrack__seq1.txt --out seq1.mp4
    python -m train.viz --build data/builds/demo_stage1 --split val --seq dancetrack__seq1 \\
        --results-dir runs/stage1/latest/eval/dancetrack/tracker --out seq1.mp4
    python -m train.viz --build data/builds/demo_stage3 --split val \\
        --results-dir runs/demo/stage3/latest/eval/dancetrack/tracker    # first sequence with a result file
    python -m train.viz --gt data/raw/mot17/train/MOT17-02-FRCNN --results my_tracker/MOT17-02-FRCNN.txt \\
        --ignore-classes 0 2 7 8 12 --out mot17-02.mp4            # a raw MOT17 split, its distractors ignored

Per frame, ground truth and predictions are matched as :mod:`train.review.frame_match` describes. Then:

- green: a GT matched to the same predicted id as at its previous match (stable id);
- orange: ID switch, the GT's matched predicted id differs from its previous matched id;
- blue dashed: a missed GT (no prediction matched);
- red: a false positive (a prediction matched to no GT and to no ignore region);
- grey: an ignore region (gt conf 0, or class in ``--ignore-classes``, default 0); predictions matched to
  it (IoU >= 0.5, Hungarian, as TrackEval's MOT17 preprocessing) are drawn grey too, not red.

Box formats: MOT text files are xywh pixels (top-left corner + size); everything in memory here is xyxy
pixels, float64. Images are BGR uint8 (OpenCV). The video is written with ``cv2.VideoWriter`` (mp4v),
then opened again and counted, so a file that does not play is an error, not a surprise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from builder.errors import ArgumentParser
from builder.formats.motchallenge import (
    MotTable,
    SeqInfo,
    list_sequences,
    read_mot_file,
    read_seqinfo,
    xywh_to_xyxy,
)
from train.errors import ReviewError, cli
from train.review.frame_match import IOU_THRESHOLD, FrameBoxes, FrameMatch, match_frame

#: Box colours, BGR (OpenCV order).
GREEN = (0, 200, 0)
ORANGE = (0, 140, 255)
BLUE = (255, 90, 0)
RED = (0, 0, 255)
GREY = (170, 170, 170)
LEGEND = (("matched, stable id", GREEN, False), ("ID switch", ORANGE, False), ("missed GT", BLUE, True),
          ("false positive", RED, False), ("ignore region", GREY, False))
#: Frames shorter than this are upscaled (nearest) so labels stay readable in tiny synthetic sequences.
MIN_HEIGHT = 480
FOURCC = "mp4v"


# --- drawing ---------------------------------------------------------------------------------------

def _dashed_rect(img: np.ndarray, p1: tuple[int, int], p2: tuple[int, int], colour, thickness: int,
                 dash: int) -> None:
    (x1, y1), (x2, y2) = p1, p2
    for a, b in (((x1, y1), (x2, y1)), ((x2, y1), (x2, y2)), ((x2, y2), (x1, y2)), ((x1, y2), (x1, y1))):
        length = max(abs(b[0] - a[0]), abs(b[1] - a[1]))
        for s in range(0, length, 2 * dash):
            t0, t1 = s / max(length, 1), min(s + dash, length) / max(length, 1)
            q0 = (round(a[0] + (b[0] - a[0]) * t0), round(a[1] + (b[1] - a[1]) * t0))
            q1 = (round(a[0] + (b[0] - a[0]) * t1), round(a[1] + (b[1] - a[1]) * t1))
            cv2.line(img, q0, q1, colour, thickness, cv2.LINE_AA)


@dataclass(frozen=True)
class _Style:
    """Line and text sizes for an image of a given height (pixels)."""

    thickness: int
    font_scale: float
    dash: int

    @staticmethod
    def for_height(height: int) -> _Style:
        return _Style(thickness=max(2, height // 240), font_scale=max(0.45, height / 1100), dash=max(5, height // 80))


def _box(img: np.ndarray, box: np.ndarray, colour, label: str, style: _Style, *, dashed: bool = False,
         label_inside_bottom: bool = False) -> None:
    """Rectangle (solid or dashed) with a label on a black tab above it (below when at the top edge)."""
    p1 = (int(round(box[0])), int(round(box[1])))
    p2 = (int(round(box[2])), int(round(box[3])))
    if dashed:
        _dashed_rect(img, p1, p2, colour, style.thickness, style.dash)
    else:
        cv2.rectangle(img, p1, p2, colour, style.thickness, cv2.LINE_AA)
    if label:
        font = cv2.FONT_HERSHEY_SIMPLEX
        (tw, th), base = cv2.getTextSize(label, font, style.font_scale, 1)
        if label_inside_bottom:
            y = p2[1] - base - 2
        else:
            y = p1[1] - 3 if p1[1] - th - base - 3 >= 0 else p2[1] + th + 3
        x = max(0, min(p1[0], img.shape[1] - tw - 2))  # keep the tab inside the image
        cv2.rectangle(img, (x, y - th - base + 1), (x + tw + 2, y + base - 1), (0, 0, 0), -1)
        cv2.putText(img, label, (x + 1, y - 1), font, style.font_scale, colour, 1, cv2.LINE_AA)


def _legend_bar(width: int, lines: list[list[tuple[str, tuple[int, int, int] | None, bool]]],
                style: _Style) -> np.ndarray:
    """A dark strip with rows of (text, swatch colour or None, dashed) entries."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, style.font_scale
    row_h = cv2.getTextSize("Ag", font, scale, 1)[0][1] + 14
    bar = np.full((row_h * len(lines) + 6, width, 3), 30, np.uint8)
    for r, entries in enumerate(lines):
        x, y = 8, 6 + r * row_h + row_h // 2
        for text, colour, dashed in entries:
            if colour is not None:
                sw = row_h - 8
                box = np.array([x, y - sw // 2, x + sw, y + sw // 2], float)
                _box(bar, box, colour, "", _Style(2, scale, 3), dashed=dashed)
                x += sw + 6
            cv2.putText(bar, text, (x, y + 5), font, scale, (235, 235, 235), 1, cv2.LINE_AA)
            x += cv2.getTextSize(text, font, scale, 1)[0][0] + 16
    return bar


def _legend_rows(width: int, counter: str, style: _Style) -> list[list[tuple[str, object, bool]]]:
    """Legend entries wrapped into rows that fit ``width`` pixels; the frame counter comes first."""
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, style.font_scale
    swatch = cv2.getTextSize("Ag", font, scale, 1)[0][1] + 12
    rows: list[list[tuple[str, object, bool]]] = [[(counter, None, False)]]
    used = cv2.getTextSize(counter, font, scale, 1)[0][0] + 24
    for text, colour, dashed in LEGEND:
        need = swatch + cv2.getTextSize(text, font, scale, 1)[0][0] + 22
        if used + need > width - 8:
            rows.append([])
            used = 8
        rows[-1].append((text, colour, dashed))
        used += need
    return rows


def render_frame(image: np.ndarray, gt: FrameBoxes, pred: FrameBoxes, ignore_boxes: np.ndarray,
                 match: FrameMatch, *, frame: int, num_frames: int, min_height: int = MIN_HEIGHT) -> np.ndarray:
    """Draw one frame's GT, predictions and legend; returns a new BGR uint8 image.

    Args:
        image: (H, W, 3) BGR uint8 frame (not modified).
        gt, pred, ignore_boxes, match: as passed to and returned by ``match_frame`` (xyxy pixels).
        frame, num_frames: 1-based frame number and sequence length, for the frame counter.
        min_height: frames shorter than this are upscaled by an integer factor (nearest neighbour).

    Returns:
        (H' + bar, W', 3) uint8: the (scaled) frame with boxes, above a legend bar holding the frame
        counter, the frame's counts and the colour key. H' = k * H with k = ceil(min_height / H) (>= 1).
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ReviewError(f"expected an (H, W, 3) uint8 BGR image, got {image.shape} {image.dtype}")
    k = max(1, -(-min_height // image.shape[0]))
    canvas = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_NEAREST) if k > 1 else image.copy()
    style = _Style.for_height(canvas.shape[0])
    overlay = canvas.copy()
    for box in ignore_boxes * k:  # ignore regions: translucent grey fill + grey outline
        cv2.rectangle(overlay, (int(box[0]), int(box[1])), (int(box[2]), int(box[3])), GREY, -1)
    canvas = cv2.addWeighted(overlay, 0.3, canvas, 0.7, 0.0)
    for box in ignore_boxes * k:
        _box(canvas, box, GREY, "ignore region", style, label_inside_bottom=True)
    for p in match.ignored:
        _box(canvas, pred.boxes[p] * k, GREY, f"id {pred.ids[p]} (ignored)", style)
    for g in match.missed:
        _box(canvas, gt.boxes[g] * k, BLUE, f"missed gt {gt.ids[g]}", style, dashed=True)
    for p in match.false_positives:
        _box(canvas, pred.boxes[p] * k, RED, f"FP id {pred.ids[p]}", style)
    for (_g, p), before in zip(match.matched, match.switched, strict=True):
        colour, label = (GREEN, f"id {pred.ids[p]}") if before is None else (ORANGE, f"id {before}->{pred.ids[p]}")
        _box(canvas, pred.boxes[p] * k, colour, label, style)
    counter = (f"frame {frame}/{num_frames}  TP {len(match.matched)}  FP {len(match.false_positives)}  "
               f"FN {len(match.missed)}  IDSW {match.num_switches}")
    bar = _legend_bar(canvas.shape[1], _legend_rows(canvas.shape[1], counter, style), style)
    return np.ascontiguousarray(np.vstack([canvas, bar]))


# --- sequences and video -------------------------------------------------------------------------

@dataclass
class SequenceData:
    """A sequence's ground truth and predictions, split by frame.

    Attributes:
        seq_dir: the MOTChallenge sequence folder (``seqinfo.ini``, ``img1/``, ``gt/gt.txt``).
        info: its ``seqinfo.ini``.
        gt: positive GT rows; ``ignore``: ignore-region rows; ``pred``: prediction rows (``MotTable``).
        gt_rows, ignore_rows, pred_rows: row indices per frame (element t = frame t + 1).
    """

    seq_dir: Path
    info: SeqInfo
    gt: MotTable
    ignore: MotTable
    pred: MotTable
    gt_rows: list[np.ndarray]
    ignore_rows: list[np.ndarray]
    pred_rows: list[np.ndarray]


def load_sequence(seq_dir: Path | str, results: Path | str, *,
                  ignore_classes: Sequence[int] = (0,)) -> SequenceData:
    """Read a sequence folder's ``seqinfo.ini`` and ``gt/gt.txt`` and a result file.

    GT rows with conf 0 or a class in ``ignore_classes`` are ignore regions; the rest are positives.

    Raises:
        FileNotFoundError: seqinfo.ini, gt/gt.txt or the result file is missing (message names it).
        builder.formats.motchallenge.FormatError: a malformed file or a frame outside 1..seqLength (names file:line).
    """
    seq_dir = Path(seq_dir)
    info = read_seqinfo(seq_dir)
    table = read_mot_file(seq_dir / "gt" / "gt.txt")
    is_ignore = (table.conf == 0) | np.isin(table.classes, np.asarray(ignore_classes, np.int64))
    gt, ignore = table.select(~is_ignore), table.select(is_ignore)
    pred = read_mot_file(results)
    return SequenceData(seq_dir, info, gt, ignore, pred, gt.by_frame(info.length), ignore.by_frame(info.length),
                        pred.by_frame(info.length))


def _read_image(data: SequenceData, frame: int) -> np.ndarray:
    path = data.info.image_path(data.seq_dir, frame)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ReviewError(f"{path}: image missing or unreadable (frame {frame} of {data.seq_dir}, "
                       f"expected <imDir>/%08d<imExt> from seqinfo.ini)")
    return image


def iter_rendered(data: SequenceData, *, iou_threshold: float = IOU_THRESHOLD, min_height: int = MIN_HEIGHT,
                  max_frames: int | None = None) -> Iterator[tuple[np.ndarray, FrameMatch]]:
    """Yield (rendered frame BGR uint8, its ``FrameMatch``) for frames 1..length (or ``max_frames``)."""
    last: dict[int, int] = {}
    previous: dict[int, int] = {}  # pairs of the previous frame only (CLEAR MOT's continuation rule)
    length = data.info.length if max_frames is None else min(max_frames, data.info.length)
    for t in range(length):
        gt = FrameBoxes.from_table(data.gt, data.gt_rows[t])
        pred = FrameBoxes.from_table(data.pred, data.pred_rows[t])
        ignore = xywh_to_xyxy(data.ignore.boxes[data.ignore_rows[t]]).astype(np.float64)
        match, last = match_frame(gt, pred, ignore, last, iou_threshold=iou_threshold, previous_frame=previous)
        previous = {int(gt.ids[g]): int(pred.ids[p]) for g, p in match.matched}
        image = render_frame(_read_image(data, t + 1), gt, pred, ignore, match, frame=t + 1,
                             num_frames=data.info.length, min_height=min_height)
        yield image, match


def count_video_frames(path: Path | str) -> int:
    """Open a video with ``cv2.VideoCapture`` and count the frames it decodes (0 when it does not open)."""
    cap = cv2.VideoCapture(str(path))
    try:
        n = 0
        while cap.isOpened() and cap.read()[0]:
            n += 1
        return n
    finally:
        cap.release()


def write_video(frames: Iterator[np.ndarray], out: Path | str, fps: float) -> int:
    """Write BGR uint8 frames (all of one size) to an MP4 (mp4v); returns the number of frames written.

    Raises:
        ReviewError: no frames, frames of different sizes, or OpenCV cannot open a writer for ``out``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    writer, size, n = None, None, 0
    try:
        for frame in frames:
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*FOURCC), fps, size)
                if not writer.isOpened():
                    raise ReviewError(f"{out}: OpenCV could not open a {FOURCC} video writer at {size} px")
            if (frame.shape[1], frame.shape[0]) != size:
                raise ReviewError(f"{out}: frame {n + 1} is {frame.shape[1]}x{frame.shape[0]}, expected {size}")
            writer.write(frame)
            n += 1
    finally:
        if writer is not None:
            writer.release()
    if n == 0:
        raise ReviewError(f"{out}: no frames to write")
    return n


def render_sequence(seq_dir: Path | str, results: Path | str, out: Path | str, *, fps: float | None = None,
                    ignore_classes: Sequence[int] = (0,), iou_threshold: float = IOU_THRESHOLD,
                    min_height: int = MIN_HEIGHT, max_frames: int | None = None) -> dict[str, int]:
    """Render a sequence's GT vs predictions to ``out`` (MP4) and check that it plays back.

    Args:
        seq_dir: MOTChallenge sequence folder (a build split's sequence or a raw DanceTrack/MOT17 one).
        results: MOT result file ``frame,id,x,y,w,h,score,class,...`` (xywh pixels).
        out: the MP4 to write.
        fps: frames per second of the video (default: seqinfo.ini frameRate).
        ignore_classes: GT classes drawn as ignore regions (besides conf 0 rows).
        iou_threshold: minimum IoU of a GT/prediction or ignore/prediction pair.
        min_height, max_frames: see ``render_frame``, ``iter_rendered``.

    Returns:
        ``{"frames", "TP", "FP", "FN", "IDSW", "ignored"}`` totals over the rendered frames.

    Raises:
        ReviewError: a missing image, an unwritable video, or a video that does not decode back to the
            number of frames written.
    """
    data = load_sequence(seq_dir, results, ignore_classes=ignore_classes)
    totals = {"frames": 0, "TP": 0, "FP": 0, "FN": 0, "IDSW": 0, "ignored": 0}

    def frames() -> Iterator[np.ndarray]:
        for image, match in iter_rendered(data, iou_threshold=iou_threshold, min_height=min_height,
                                          max_frames=max_frames):
            totals["TP"] += len(match.matched)
            totals["FP"] += len(match.false_positives)
            totals["FN"] += len(match.missed)
            totals["IDSW"] += match.num_switches
            totals["ignored"] += len(match.ignored)
            yield image

    totals["frames"] = write_video(frames(), out, fps or data.info.frame_rate)
    decoded = count_video_frames(out)
    if decoded != totals["frames"]:
        raise ReviewError(f"{out}: wrote {totals['frames']} frames but OpenCV decodes {decoded}; "
                       "the video is not playable")
    return totals


def build_parser() -> ArgumentParser:
    """Command-line interface of ``python -m train.viz``."""
    parser = ArgumentParser(prog="python -m train.viz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gt", type=Path, help="sequence folder with seqinfo.ini, img1/ and gt/gt.txt")
    parser.add_argument("--results", type=Path, help="MOT result file of that sequence")
    parser.add_argument("--build", type=Path, help="a build directory (with --split, --seq, --results-dir)")
    parser.add_argument("--split", default="val", help="build split (default val)")
    parser.add_argument("--seq", help="sequence folder name inside <build>/<split>/ (default: the first one "
                                      "with a result file in --results-dir)")
    parser.add_argument("--results-dir", type=Path, help="folder of <seq>.txt result files")
    parser.add_argument("--out", type=Path, default=None, help="output MP4 (default: <seq>.mp4 here)")
    parser.add_argument("--fps", type=float, default=None, help="video frame rate (default: seqinfo frameRate)")
    parser.add_argument("--ignore-classes", type=int, nargs="*", default=[0],
                        help="GT classes shown as ignore regions (default 0; raw MOT17: 0 2 7 8 12)")
    parser.add_argument("--max-frames", type=int, default=None, help="render only the first N frames")
    return parser


def _resolve_inputs(args: argparse.Namespace) -> tuple[Path, Path]:
    if args.gt is not None:
        if args.results is None:
            raise ReviewError("--gt needs --results <result file>")
        return args.gt, args.results
    if args.build is None or args.results_dir is None:
        raise ReviewError("give either --gt SEQ_DIR --results FILE, or --build B --split S [--seq NAME] --results-dir R")
    seq = args.seq
    if seq is None:  # the first sequence of the split that has a result file
        split = args.build / args.split
        with_results = [n for n in list_sequences(split) if (args.results_dir / f"{n}.txt").is_file()]
        if not with_results:
            raise ReviewError(f"{args.results_dir}: no <seq>.txt result file for any sequence of {split}")
        seq = with_results[0]
    return args.build / args.split / seq, args.results_dir / f"{seq}.txt"


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    seq_dir, results = _resolve_inputs(args)
    out = args.out if args.out is not None else Path(f"{seq_dir.name}.mp4")
    totals = render_sequence(seq_dir, results, out, fps=args.fps, ignore_classes=args.ignore_classes,
                             max_frames=args.max_frames)
    print(f"wrote {out}: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m train.viz``; returns the exit code (0 ok, 2 bad input)."""
    return cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
