"""Cross-check: the official BDD100K protocol against Scalabel's own ``evaluate_track`` on the same files.

Scalabel 0.3.1 (the BDD100K toolkit's MOT evaluation, ``scalabel/eval/mot.py``) needs pydantic < 2 and numpy < 2,
which this project's environment does not have, so the check runs in two steps and two environments:

1. here (``.venv``): write a raw BDD100K root with the real val video of ../shared/realdata, a tracker's Scalabel
   JSON predictions (``train.evaluate.reference.perturbed_scalabel_frames``: the ground truth jittered, with
   misses, an identity swap, class confusions, false positives, some inside crowd boxes, predictions of the absent
   class 'train') and our figures::

       .venv/bin/python benchmarks/scalabel_crosscheck.py write /tmp/scal

2. in a separate environment with Scalabel (``uv venv /tmp/sv && VIRTUAL_ENV=/tmp/sv uv pip install scalabel
   "pydantic<2" "numpy<2" "pandas<2.2"``): run Scalabel on the same files and compare every figure::

       /tmp/sv/bin/python benchmarks/scalabel_crosscheck.py check /tmp/scal

Step 2 imports nothing of this project (only json and scalabel). Expected: every class, super category and the
OVERALL row equal on MOTA, IDF1, MOTP, FP, FN, IDSw, MT, PT, ML, FM, except MOTA of 'train' (no ground truth: -inf
in Scalabel, -100 x FP in TrackEval's formula here; both count 0 in the class mean); mMOTA, mIDF1, mMOTP equal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

#: Our keys of Scalabel's metrics.
KEYS = {"MOTA": "MOTA", "IDF1": "IDF1", "MOTP": "MOTP", "FP": "FP", "FN": "FN", "IDSw": "IDSW", "MT": "MT",
        "PT": "PT", "ML": "ML", "FM": "Frag"}
#: Scalabel's label config for box_track (bdd100k/configs/box_track.toml [scalabel]).
CONFIG = """[imageSize]
height = 720
width = 1280
[[attributes]]
name = "crowd"
type = "switch"
tag = "c"
""" + "".join(f'[[categories]]\nname = "{sup}"\n' + "".join(
    f'  [[categories.subcategories]]\n  name = "{c}"\n' for c in cs) for sup, cs in (
    ("human", ("pedestrian", "rider")), ("vehicle", ("car", "truck", "bus", "train")),
    ("bike", ("motorcycle", "bicycle"))))


def write(out: Path) -> None:
    """Step 1: the raw root, the predictions, our figures (ours.json) and Scalabel's config (config.toml)."""
    from train.evaluate.benchmarks import evaluate_raw
    from train.evaluate.reference import perturbed_scalabel_frames

    source = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "bdd100k-boxtrack" / "b1c66a42-6f7d68ca.json"
    frames = json.loads(source.read_text())
    labels = out / "raw" / "labels" / "box_track_20" / "val"
    labels.mkdir(parents=True, exist_ok=True)
    (labels / source.name).write_text(source.read_text())
    (out / "preds.json").write_text(json.dumps(perturbed_scalabel_frames(frames)))
    (out / "config.toml").write_text(CONFIG)
    ours = evaluate_raw("bdd100k", out / "raw", "val", out / "preds.json")["val_sets"]["bdd100k"]
    (out / "ours.json").write_text(json.dumps(ours))
    print(f"wrote {out}: ours mMOTA {ours['class_mean']['MOTA']:.4f} mIDF1 {ours['class_mean']['IDF1']:.4f}")


def check(out: Path) -> None:
    """Step 2 (Scalabel's environment): Scalabel's figures vs ours.json, row by row."""
    from scalabel.eval.mot import acc_single_video_mot, evaluate_track
    from scalabel.label.io import group_and_sort, load, load_label_config

    result = evaluate_track(acc_single_video_mot, group_and_sort(load(str(out / "raw" / "labels" / "box_track_20" /
                                                                           "val")).frames),
                            group_and_sort(load(str(out / "preds.json")).frames),
                            load_label_config(str(out / "config.toml")), nproc=1).dict()
    ours = json.loads((out / "ours.json").read_text())
    rows = {**ours["per_class"], **ours["super_categories"], "OVERALL": ours["combined"]}
    for m in ("MOTA", "IDF1", "MOTP"):
        print(f"m{m}: scalabel {result['m' + m]!r}  ours {ours['class_mean'][m]!r}")
    for name, ours_row in rows.items():
        theirs = {m: next(g[name] for g in result[m] if name in g) for m in KEYS}
        diff = {m: (v, ours_row[KEYS[m]]) for m, v in theirs.items()
                if not abs((v if v == v else 0.0) - ours_row[KEYS[m]]) < 1e-6}
        print(f"{name:10s} " + ("equal on " + ", ".join(KEYS) if not diff else f"differ: {diff}"))


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit(__doc__)
    (write if sys.argv[1] == "write" else check)(Path(sys.argv[2]))
