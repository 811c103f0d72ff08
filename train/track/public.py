"""Tracking from given detections (the MOTChallenge public-detection protocol) instead of running a detector.

Each sequence's ``det/det.txt`` (rows ``frame,-1,x,y,w,h,score[,...]``, xywh pixels, 1-based frames) gives the
boxes; every row is a detection of class ``det_class``. The tracker is the one ``tracker_params`` names
(:func:`train.track.runner.make_tracker`), fed frame by frame exactly as with a detector.

- Without an embedder the tracker runs on motion alone and needs no images: frames 1..seqLength (or 1..the last
  image when the sequence has an ``img1/`` folder that stops early, as the detector path does).
- With an embedder (a checkpoint whose detector has an embedding branch) the given boxes of each frame are embedded
  from the frame: the detector's backbone and RoIAlign on its FPN features (:func:`train.stage.detectors.
  embed_boxes`), so the appearance tracker can use them. Frames then need their images.

Run: ``python -m train.track --public-detections --root <MOT17> --split train --out <dir> [--checkpoint ...]``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from builder.formats.files import MissingFileError
from builder.formats.motchallenge import list_sequences, read_mot_file, read_seqinfo, xywh_to_xyxy
from train.evaluate.result_files import write_sidecar
from train.track.runner import DEFAULT_BATCH, make_tracker, run_tracker, sequence_frames

log = logging.getLogger(__name__)

#: Detections of one frame: boxes (N, 4) float32 xyxy px, scores (N,) float32, labels (N,) int64.
Detections = tuple[np.ndarray, np.ndarray, np.ndarray]


class BoxEmbedder:
    """Embeds given boxes with a detector's embedding branch.

    ``embedder(images_bgr, boxes) -> embeddings``: ``images_bgr`` uint8 (H, W, 3) frames, ``boxes`` (N_i, 4) float
    xyxy px per frame; returns (N_i, D) float32 L2-normalised embeddings per frame.
    """

    def __init__(self, model, device="cpu") -> None:
        self.model, self.device = model, device

    def __call__(self, images_bgr: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        from train.stage.detectors import embed_boxes

        tensors = [torch.from_numpy(np.ascontiguousarray(im[:, :, ::-1])).to(self.device).permute(2, 0, 1)
                   .float().div_(255.0) for im in images_bgr]
        out = embed_boxes(self.model, tensors, [torch.as_tensor(b, dtype=torch.float32) for b in boxes])
        return [e.float().cpu().numpy() for e in out]


def read_public_detections(seq_dir: Path, last_frame: int, *, det_class: int = 1,
                           min_score: float | None = None) -> list[Detections]:
    """Detections of frames 1..``last_frame`` from ``<seq_dir>/det/det.txt`` (element ``t`` = frame ``t + 1``).

    Rows of later frames are ignored; with ``min_score`` rows scoring below it are dropped.

    Raises:
        MissingFileError: no det/det.txt. FormatError: a malformed row (file and line).
    """
    path = seq_dir / "det" / "det.txt"
    if not path.is_file():
        raise MissingFileError(f"{path}: public detections not found (expected det/det.txt, MOTChallenge rows "
                               "frame,-1,x,y,w,h,score)")
    table = read_mot_file(path)
    keep = (table.frames >= 1) & (table.frames <= last_frame)
    if min_score is not None:
        keep &= table.conf >= min_score
    table = table.select(keep)
    out = []
    for rows in table.by_frame(last_frame):
        out.append((xywh_to_xyxy(table.boxes[rows]).astype(np.float32), table.conf[rows].astype(np.float32),
                    np.full(len(rows), det_class, np.int64)))
    return out


def _public_frames(seq_dir: Path, max_frames: int | None, need_images: bool) -> tuple[float, list[tuple[int, Path | None]]]:
    """(frame rate, [(frame, image or None)]): the detector path's frames when images are needed or present, else
    1..seqLength (capped by ``max_frames``) without images."""
    info = read_seqinfo(seq_dir)
    img_dir = seq_dir / info.im_dir
    if need_images or (img_dir.is_dir() and any(img_dir.glob(f"*{info.im_ext}"))):
        return sequence_frames(seq_dir, max_frames)
    last = min(info.length, max_frames or info.length)
    return info.frame_rate, [(f, None) for f in range(1, last + 1)]


def _with_embeddings(frames: list[tuple[int, Path | None]], dets: list[Detections], embedder: BoxEmbedder | None,
                     batch_size: int) -> Iterator[tuple[int, tuple[np.ndarray, ...]]]:
    """``(frame, detections[ + embeddings])`` in order; frames are read and embedded ``batch_size`` at a time."""
    for start in range(0, len(frames), batch_size):
        chunk = frames[start:start + batch_size]
        chunk_dets = dets[start:start + batch_size]
        embedded: dict[int, np.ndarray] = {}
        if embedder is not None:
            todo = [(f, p, d) for (f, p), d in zip(chunk, chunk_dets, strict=True) if p is not None and len(d[0])]
            images = [cv2.imread(str(p), cv2.IMREAD_COLOR) for _, p, _ in todo]
            unreadable = [str(p) for (_, p, _), im in zip(todo, images, strict=True) if im is None]
            if unreadable:
                raise OSError(f"{unreadable[0]}: cannot read image")
            if todo:
                embedded = dict(zip([f for f, _, _ in todo], embedder(images, [d[0] for _, _, d in todo]),
                                    strict=True))
        for (f, _), d in zip(chunk, chunk_dets, strict=True):
            yield f, (*d, embedded[f]) if f in embedded else d


def track_public_sequence(seq_dir: Path | str, out_file: Path | str, *, embedder: BoxEmbedder | None = None,
                          tracker_params: dict | None = None, det_class: int = 1, min_score: float | None = None,
                          max_frames: int | None = None, batch_size: int = DEFAULT_BATCH) -> Path:
    """Track one sequence's public detections (see the module docstring); write ``out_file``.

    Args:
        seq_dir: MOTChallenge sequence folder (``seqinfo.ini``, ``det/det.txt``, ``img1/`` when embedding).
        out_file: result file to write (rows ``frame,id,x,y,w,h,score,class,-1,-1``).
        embedder: embeds the given boxes from the frames (None: motion only, no images needed).
        tracker_params: ``name`` and keyword arguments of the tracker (frame_rate defaults to seqinfo's).
        det_class: class id written for every detection. min_score: drop rows scoring below it (None keeps all).
        max_frames: only frames 1..max_frames. batch_size: frames embedded per forward pass.
    """
    seq_dir = Path(seq_dir)
    frame_rate, frames = _public_frames(seq_dir, max_frames, need_images=embedder is not None)
    dets = read_public_detections(seq_dir, len(frames), det_class=det_class, min_score=min_score)
    tracker = make_tracker(tracker_params, frame_rate)
    return run_tracker(tracker, _with_embeddings(frames, dets, embedder, batch_size), out_file)


def track_public_split(split_dir: Path | str, out_dir: Path | str, *, seqs: list[str] | None = None,
                       classes: Sequence[str] | None = None, **kwargs) -> list[Path]:
    """:func:`track_public_sequence` for every sequence of a split folder (or only ``seqs``); keyword arguments are
    passed on. With ``classes`` (the class list ``det_class`` indexes, 1-based) the folder's sidecar
    ``results.json`` names them (``train.evaluate.result_files.write_sidecar``). Returns the result files written,
    in sequence order.

    Raises:
        FileNotFoundError: the split folder or a requested sequence is missing (named).
    """
    split_dir, out_dir = Path(split_dir), Path(out_dir)
    names = seqs or list_sequences(split_dir)
    unknown = [n for n in names if not (split_dir / n / "seqinfo.ini").is_file()]
    if unknown:
        raise FileNotFoundError(f"{split_dir}: no sequence folder (with seqinfo.ini) for {unknown}")
    written = [track_public_sequence(split_dir / n, out_dir / f"{n}.txt", **kwargs) for n in names]
    if classes is not None:
        write_sidecar(out_dir, classes, [p.stem for p in written])
    return written
