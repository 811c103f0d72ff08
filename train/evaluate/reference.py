"""TrackEval's own runners (``trackeval.Evaluator`` with its dataset classes): the references the project's numbers
are checked against (tests/test_trackeval_equality.py, tests/test_official_protocols.py, benchmarks/bench_eval.py).
Quiet and single-process.
"""

from __future__ import annotations

from pathlib import Path

#: Evaluator settings: no printing, no files, no parallelism.
_QUIET_EVAL = {"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False, "TIME_PROGRESS": False,
               "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False, "LOG_ON_ERROR": None}


def _run(dataset) -> dict:
    import trackeval

    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR({"PRINT_CONFIG": False}),
               trackeval.metrics.Identity({"PRINT_CONFIG": False})]
    res, _ = trackeval.Evaluator(_QUIET_EVAL).evaluate([dataset], metrics)
    return res[dataset.get_name()]


def trackeval_mot17_reference(root: Path | str, tracker: str, *, split: str = "train",
                              benchmark: str = "MOT17") -> dict[str, dict]:
    """TrackEval's ``MotChallenge2DBox`` runner on ``BENCHMARK`` (MOT17 by default; MOT15, MOT16, MOT20 too).

    Layout under ``root``: ``gt/<BENCHMARK>-<split>/<seq>/{gt/gt.txt, seqinfo.ini}``,
    ``gt/seqmaps/<BENCHMARK>-<split>.txt`` and ``trackers/<BENCHMARK>-<split>/<tracker>/data/<seq>.txt``.

    Returns:
        ``{sequence name or "COMBINED_SEQ": {"HOTA": ..., "CLEAR": ..., "Identity": ...}}``: TrackEval's own
        pedestrian result fields (ratios in 0-1, HOTA-family values as arrays over the 19 alphas).
    """
    import trackeval

    root = Path(root)
    ds_cfg = {"GT_FOLDER": str(root / "gt"), "TRACKERS_FOLDER": str(root / "trackers"), "BENCHMARK": benchmark,
              "SPLIT_TO_EVAL": split, "TRACKERS_TO_EVAL": [tracker], "PRINT_CONFIG": False}
    res = _run(trackeval.datasets.MotChallenge2DBox(ds_cfg))
    return {seq: r["pedestrian"] for seq, r in res[tracker].items()}


def trackeval_bdd100k_reference(gt_folder: Path | str, trackers_folder: Path | str, tracker: str) -> dict:
    """TrackEval's ``BDD100K`` runner on every class it knows.

    Layout: ``<gt_folder>/<video>.json`` and ``<trackers_folder>/<tracker>/data/<video>.json``, BDD100K's 2020
    format (frames with ``index``, labels with integer-like ``id``, ``category``, ``box2d`` and, in the ground
    truth, ``attributes.Crowd``).

    Returns:
        ``res["COMBINED_SEQ"]``: ``{class, "HUMAN" / "VEHICLE" / "BIKE", "cls_comb_cls_av", "cls_comb_det_av":
        {"HOTA": ..., "CLEAR": ..., "Identity": ...}}``.
    """
    import trackeval

    ds_cfg = {"GT_FOLDER": str(gt_folder), "TRACKERS_FOLDER": str(trackers_folder), "TRACKERS_TO_EVAL": [tracker],
              "PRINT_CONFIG": False}
    return _run(trackeval.datasets.BDD100K(ds_cfg))[tracker]["COMBINED_SEQ"]


def perturbed_scalabel_frames(frames: list[dict], seed: int = 0) -> list[dict]:
    """A plausible tracker's Scalabel-JSON output made from BDD100K ground-truth frames, for the reference checks:
    boxes jittered (sigma 3 px), 10 % missed, two identities seen at frames 95 and 105 swapped from frame 100, 5 %
    of cars called trucks, a small false positive inside the first crowd box of a frame (removed by the crowd rule),
    and per frame one false positive of the class 'train' (none in the sample video's ground truth) and one
    pedestrian. Ids are integer strings (Scalabel's ``parse_objects`` needs that of predictions)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids: dict[str, str] = {}
    swap = sorted({lab["id"] for lab in frames[95]["labels"]} & {lab["id"] for lab in frames[105]["labels"]})[:2]
    out = []
    for f in frames:
        labels, crowds = [], [lab["box2d"] for lab in f["labels"] if lab["attributes"].get("crowd")]
        for lab in f["labels"]:
            if lab["attributes"].get("crowd") or rng.random() < 0.1:
                continue
            tid = lab["id"]
            if f["frameIndex"] >= 100 and tid in swap:
                tid = swap[1] if tid == swap[0] else swap[0]
            cat = "truck" if lab["category"] == "car" and rng.random() < 0.05 else lab["category"]
            labels.append({"id": ids.setdefault(tid, str(len(ids) + 1)), "category": cat, "score": 0.9,
                           "box2d": {k: v + rng.normal(0, 3) for k, v in lab["box2d"].items()}})
        extra = [("crowd", "car", crowds[0]["x1"] + 1, crowds[0]["y1"] + 1, 5, 5)] if crowds else []
        for k, cat in enumerate(("train", "pedestrian")):
            extra.append((f"fp{k}", cat, rng.uniform(0, 1100), rng.uniform(0, 600), 60, 90))
        for key, cat, x, y, w, h in extra:
            labels.append({"id": ids.setdefault(key, str(len(ids) + 1)), "category": cat, "score": 0.4,
                           "box2d": {"x1": x, "y1": y, "x2": x + w, "y2": y + h}})
        out.append({"name": f["name"], "videoName": f["videoName"], "frameIndex": f["frameIndex"], "labels": labels})
    return out


def perturbed_mot_table(gt, rng):
    """A plausible tracker's output made from a MOTChallenge gt table (``MotTable``), for the reference checks: every
    row (distractors too) kept with probability 0.9 and jittered (sigma 4 px, sizes >= 2 px), two identities swapped
    from the middle frame on, ids + 1000, 10 % false positives (at least 3); column 8 = 1 on every row."""
    import numpy as np

    from builder.formats.motchallenge import MotTable

    keep = rng.random(len(gt)) > 0.1
    out = gt.select(keep)
    out.boxes = out.boxes + rng.normal(0, 4, out.boxes.shape)
    out.boxes[:, 2:] = np.maximum(out.boxes[:, 2:], 2)
    ids = out.ids.copy()
    uniq = np.unique(ids)
    if len(uniq) >= 2:  # swap two identities from the middle frame on: ID switches
        a, b = uniq[:2]
        late = out.frames >= np.median(out.frames)
        ids[late & (out.ids == a)], ids[late & (out.ids == b)] = b, a
    n_fp = max(3, len(out) // 10)
    fp = np.column_stack([rng.choice(np.unique(gt.frames), n_fp), 5000 + np.arange(n_fp),
                          rng.uniform(0, 1500, (n_fp, 2)), rng.uniform(20, 120, (n_fp, 2)), np.full(n_fp, 0.5),
                          np.ones(n_fp)])
    rows = np.concatenate([np.column_stack([out.frames, ids + 1000, out.boxes, rng.uniform(0.3, 1, len(out)),
                                            np.ones(len(out))]), fp])
    return MotTable.from_matrix(rows)
