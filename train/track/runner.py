"""Run a detector + a tracker over MOTChallenge-layout sequences; write result files.

One result file per sequence, ``<out>/<seq>.txt``, rows ``frame,id,x,y,w,h,score,class,-1,-1``
(1-based frames, xywh pixels, class = unified class id), and the sidecar ``<out>/results.json`` naming the class
list column 8 refers to (:mod:`train.evaluate.result_files`): column 8 is a world coordinate in other trackers'
MOTChallenge files, so without the sidecar the evaluation never reads it as a class.

Trackers by name (:data:`TRACKERS`, the ``name`` key of conf/tracker/*.yaml): ``bytetrack`` (motion only,
:class:`~train.track.bytetrack.ByteTracker`) and ``appearance`` (motion + the detector's appearance embeddings,
:class:`~train.track.appearance.AppearanceTracker`). A detector whose outputs carry ``embeddings`` passes them on;
given public detections instead (train/track/public.py) the same trackers run on the given boxes.

The command line is ``python -m train.track`` (train/track/__main__.py).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

from builder.errors import NotRegisteredError
from builder.formats.motchallenge import list_sequences, read_seqinfo, write_results, xyxy_to_xywh
from train.errors import ConfigError, TrainError
from train.evaluate.result_files import write_sidecar
from train.track.appearance import AppearanceTracker
from train.track.bytetrack import ByteTracker, Tracks

log = logging.getLogger(__name__)

#: ``detect(image_bgr uint8 (H, W, 3)) -> (boxes (N, 4) float32 xyxy px, scores (N,), labels (N,) int)``, optionally
#: followed by ``embeddings (N, D) float32`` (L2-normalised appearance) as a fourth element.
DetectFn = Callable[[np.ndarray], tuple[np.ndarray, ...]]
#: Trackers by the ``name`` of their config (conf/tracker/<name>.yaml).
TRACKERS: dict[str, type[ByteTracker]] = {"bytetrack": ByteTracker, "appearance": AppearanceTracker}
#: The tracker used when a parameter dict names none.
DEFAULT_TRACKER = "bytetrack"
#: Frames sent to the model at once by :class:`TorchDetector` (CPU and GPU both gain from batching).
DEFAULT_BATCH = 8


class TorchDetector:
    """A torchvision detector as a ``detect`` function, with a batched variant.

    Args:
        model: torchvision detection model (eval-mode output ``[{"boxes", "scores", "labels"[, "embeddings"]}]``).
        device: torch device (``"cpu"``, ``"cuda"``, a ``torch.device``).
        score_thresh: detections below this score are dropped before tracking.
        config: the resolved config the model was trained with (a checkpoint's), or None.

    Calling converts BGR uint8 (H, W, 3) images to RGB float32 (3, H, W) tensors in [0, 1] and runs the
    model in eval mode under ``torch.no_grad``; boxes come back xyxy pixels of the input image.
    """

    def __init__(self, model, device="cpu", score_thresh: float = 0.05, config: dict | None = None) -> None:
        self.model = model
        self.device = device
        self.score_thresh = score_thresh
        self.config = dict(config or {})

    @property
    def has_embedding(self) -> bool:
        """Whether the model outputs appearance embeddings (an embedding branch)."""
        from train.stage.detectors import has_embedding

        return has_embedding(self.model)

    def __call__(self, image_bgr: np.ndarray) -> tuple[np.ndarray, ...]:
        return self.batch([image_bgr])[0]

    def batch(self, images_bgr: Sequence[np.ndarray]) -> list[tuple[np.ndarray, ...]]:
        """Detections for several images at once (one forward pass); with the model's ``embeddings`` (N, D)
        float32 as a fourth element when it has an embedding branch."""
        import torch

        self.model.eval()
        tensors = [torch.from_numpy(np.ascontiguousarray(im[:, :, ::-1])).to(self.device).permute(2, 0, 1)
                   .float().div_(255.0) for im in images_bgr]
        with torch.no_grad():
            outputs = self.model(tensors)
        result = []
        for out in outputs:
            keep = out["scores"] >= self.score_thresh
            dets = (out["boxes"][keep].float().cpu().numpy(), out["scores"][keep].float().cpu().numpy(),
                    out["labels"][keep].cpu().numpy().astype(np.int64))
            if "embeddings" in out:
                dets += (out["embeddings"][keep].float().cpu().numpy(),)
            result.append(dets)
        return result


def detector_from_checkpoint(path: Path | str, device="cpu",
                             score_thresh: float = 0.05) -> tuple[TorchDetector, list[str]]:
    """Load ``best_model.pth`` (``{"state_dict", "classes", "config"}``) into a :class:`TorchDetector`.

    The file is loaded with ``torch.load(weights_only=True)`` (``train.stage.checkpoints.safe_load``): a file
    holding anything but tensors and plain containers is refused, never executed. The model is rebuilt with
    ``train.stage.models.build_model(**config["model"], num_classes=len(classes))`` (pretrained-weights path
    ignored: the checkpoint holds every weight; the identity classifier of the ``identity`` embedding loss,
    which tracking never uses, is left out).

    Returns:
        (detector, class list).

    Raises:
        TrainError: no such checkpoint, it cannot be loaded safely (``CheckpointError``: empty, corrupt, code
            inside), it lacks a required key (named), or its tensors do not fit the model its config describes.
    """
    path = Path(path)
    if not path.is_file():  # before the heavy imports below: a wrong path is reported at once
        raise TrainError(f"{path}: checkpoint not found (expected a stage run's best_model.pth)")
    from train.stage.checkpoints import safe_load
    from train.stage.embedding import BUILD_SPECIFIC
    from train.stage.models import build_model

    ckpt = safe_load(path, what="a stage run's best_model.pth")
    for key in ("state_dict", "classes", "config"):
        if not isinstance(ckpt, dict) or key not in ckpt:
            raise TrainError(f"{path}: checkpoint has no '{key}' (expected keys state_dict, classes, config)")
    model_cfg = ckpt["config"].get("model") if isinstance(ckpt["config"], dict) else None
    if not isinstance(model_cfg, dict) or not isinstance(ckpt["classes"], list | tuple):
        raise TrainError(f"{path}: expected config.model as a mapping and classes as a list (a best_model.pth)")
    cfg_model = {k: v for k, v in model_cfg.items() if k not in ("_target_", "weights_path")}
    classes = list(ckpt["classes"])
    try:
        model = build_model(**cfg_model, num_classes=len(classes))
        model.load_state_dict({k: v for k, v in ckpt["state_dict"].items() if BUILD_SPECIFIC not in k})
    except (TypeError, RuntimeError, KeyError, ValueError, AttributeError) as exc:
        raise TrainError(f"{path}: its weights do not fit the model its config describes ({exc})") from None
    model.to(device).eval()
    return TorchDetector(model, device, score_thresh, dict(ckpt["config"])), classes


def sequence_frames(seq_dir: Path, max_frames: int | None) -> tuple[float, list[tuple[int, Path | None]]]:
    """(frame rate, [(frame, image path or None when the image is missing)]) for frames 1..last image."""
    info = read_seqinfo(seq_dir)
    img_dir = seq_dir / info.im_dir
    # frame number -> file, whatever the zero padding (MOT17: 000001.jpg, DanceTrack and builds: 00000001.jpg)
    present = {int(p.stem): p for p in img_dir.glob(f"*{info.im_ext}") if p.stem.isdigit()} if img_dir.is_dir() else {}
    if not present:
        raise FileNotFoundError(f"{img_dir}: no {info.im_ext} frames found")
    last = min(max(present), info.length, max_frames or info.length)
    missing = [f for f in range(1, last + 1) if f not in present]
    if max(present) < info.length and not max_frames:
        log.warning("%s: images stop at frame %d of seqLength %d; later frames are not tracked",
                    seq_dir.name, max(present), info.length)
    if missing:
        log.warning("%s: %d frame image(s) missing before frame %d (first: %d); tracked with no detections",
                    seq_dir.name, len(missing), last, missing[0])
    return info.frame_rate, [(f, present.get(f)) for f in range(1, last + 1)]


def _detections(detect: DetectFn, frames: list[tuple[int, Path | None]],
                batch_size: int) -> Iterator[tuple[np.ndarray, ...]]:
    """Detections per frame in order, batched through ``detect.batch`` when the detector has one."""
    batch_fn = getattr(detect, "batch", None)
    empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))
    for start in range(0, len(frames), batch_size if batch_fn else 1):
        chunk = frames[start:start + (batch_size if batch_fn else 1)]
        images = {}
        for f, p in chunk:
            if p is not None:
                im = cv2.imread(str(p), cv2.IMREAD_COLOR)
                if im is None:
                    raise OSError(f"{p}: cannot read image")
                images[f] = im
        if batch_fn and images:
            dets = dict(zip(images, batch_fn(list(images.values())), strict=True))
        else:
            dets = {f: detect(im) for f, im in images.items()}
        for f, _ in chunk:
            yield dets.get(f, empty)


def tracker_class(name: str) -> type[ByteTracker]:
    """The tracker class registered as ``name`` (:data:`TRACKERS`).

    Raises:
        NotRegisteredError: an unknown name (lists the valid ones).
    """
    if name not in TRACKERS:
        raise NotRegisteredError.of("tracker", name, TRACKERS)
    return TRACKERS[name]


def tracker_parameters(cls: type[ByteTracker]) -> dict[str, inspect.Parameter]:
    """The keyword-only parameters of a tracker class and of the tracker classes it extends, by name."""
    out: dict[str, inspect.Parameter] = {}
    for klass in reversed(cls.__mro__):
        if isinstance(klass, type) and issubclass(klass, ByteTracker):
            params = inspect.signature(klass.__init__).parameters.values()
            out.update({p.name: p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY})
    return out


def make_tracker(params: dict | None, frame_rate: float) -> ByteTracker:
    """A tracker from a parameter dict (e.g. the ``tracker`` config group): ``name`` picks the class
    (:data:`TRACKERS`, default ``bytetrack``), the other keys are its keyword arguments; ``frame_rate`` is the
    sequence's unless ``params`` sets it.

    Raises:
        ConfigError: an unknown parameter name (lists the valid ones). NotRegisteredError: an unknown name.
    """
    params = dict(params or {})
    cls = tracker_class(params.pop("name", DEFAULT_TRACKER))
    valid = list(tracker_parameters(cls))
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"tracker parameter(s) {unknown} not known to {cls.__name__}; valid: {valid}")
    return cls(**{"frame_rate": frame_rate, **params})


#: ``on_detections(frame, boxes (N, 4) xyxy px, scores (N,), labels (N,))``, called before tracking.
DetectionHook = Callable[[int, np.ndarray, np.ndarray, np.ndarray], None]


def run_tracker(tracker: ByteTracker, detections: Iterable[tuple[int, tuple[np.ndarray, ...]]], out_file: Path | str,
                on_detections: DetectionHook | None = None) -> Path:
    """Feed ``(frame, (boxes, scores, labels[, embeddings]))`` in frame order to ``tracker``; write the result file
    ``out_file`` (rows ``frame,id,x,y,w,h,score,class,-1,-1``) and return its path."""
    rows: list[tuple[int, Tracks]] = []
    for f, (boxes, scores, labels, *rest) in detections:
        if on_detections is not None:
            on_detections(f, boxes, scores, labels)
        rows.append((f, tracker.update(boxes, scores, labels, rest[0] if rest else None)))
    frames_col = np.concatenate([np.full(len(t), f) for f, t in rows]) if rows else np.zeros(0)
    return write_results(out_file, frames_col, _stack(rows, "track_ids"), xyxy_to_xywh(_stack(rows, "boxes")),
                         _stack(rows, "scores"), _stack(rows, "labels"))


def track_sequence(detect: DetectFn, seq_dir: Path | str, out_file: Path | str, *, tracker_params: dict | None = None,
                   batch_size: int = DEFAULT_BATCH, max_frames: int | None = None,
                   on_detections: DetectionHook | None = None, classes: Sequence[str] | None = None) -> Path:
    """Detect and track one sequence folder (``seqinfo.ini``, ``img1/``); write its result file (and, with
    ``classes``, list it in the folder's sidecar).

    Args:
        detect: see :data:`DetectFn`; if it has a ``batch(images)`` method, frames go through it in batches.
        seq_dir: MOTChallenge sequence folder.
        out_file: result file to write.
        tracker_params: ``name`` and keyword arguments of a tracker (:func:`make_tracker`; ``frame_rate``
            defaults to seqinfo's).
        batch_size: frames per ``detect.batch`` call.
        max_frames: only frames 1..max_frames (quick evaluations during training).
        on_detections: called with every frame's raw detections (e.g. to collect them for detection AP).
        classes: the detector's class list (label k = ``classes[k - 1]``): recorded in ``results.json`` beside the
            file, so that column 8 is read as that class. Without it the file reads as another tracker's.
    """
    seq_dir = Path(seq_dir)
    frame_rate, frames = sequence_frames(seq_dir, max_frames)
    tracker = make_tracker(tracker_params, frame_rate)
    detections = zip((f for f, _ in frames), _detections(detect, frames, batch_size), strict=True)
    out = run_tracker(tracker, detections, out_file, on_detections)
    if classes is not None:
        write_sidecar(out.parent, classes, [out.stem])
    return out


def _stack(rows: list[tuple[int, Tracks]], attr: str) -> np.ndarray:
    """Concatenate one attribute of the per-frame Tracks (empty array of the right width when none)."""
    parts = [getattr(t, attr) for _, t in rows]
    return np.concatenate(parts) if parts else np.zeros((0, 4) if attr == "boxes" else 0)


def track_split(detect: DetectFn, split_dir: Path | str, out_dir: Path | str, *, tracker_params: dict | None = None,
                seqs: list[str] | None = None, progress: bool = False, batch_size: int = DEFAULT_BATCH,
                max_frames: int | None = None, classes: Sequence[str] | None = None) -> list[Path]:
    """Track every sequence of a split folder (or only ``seqs``); write ``<out_dir>/<seq>.txt`` each, and with
    ``classes`` the sidecar ``<out_dir>/results.json`` (see :func:`track_sequence`).

    Returns:
        the result files written, in sequence order.

    Raises:
        FileNotFoundError: the split folder, a requested sequence or its frames are missing (named).
    """
    split_dir, out_dir = Path(split_dir), Path(out_dir)
    names = seqs or list_sequences(split_dir)
    unknown = [n for n in names if not (split_dir / n / "seqinfo.ini").is_file()]
    if unknown:
        raise FileNotFoundError(f"{split_dir}: no sequence folder (with seqinfo.ini) for {unknown}")
    iterator = names
    if progress:
        from tqdm import tqdm

        iterator = tqdm(names, desc=f"tracking {split_dir.name}", unit="seq")
    written = []
    for name in iterator:
        written.append(track_sequence(detect, split_dir / name, out_dir / f"{name}.txt",
                                      tracker_params=tracker_params, batch_size=batch_size, max_frames=max_frames))
    if classes is not None:
        write_sidecar(out_dir, classes, [p.stem for p in written])
    return written
