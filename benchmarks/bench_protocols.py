"""Figures: each benchmark's official protocol against the official tool, on the data this project can reach, and
what a build does to a score (raw ground truth since issue 9, vs the clipped and rounded ground truth before).

Prints, per benchmark (HOTA / MOTA / IDF1 / FP, 0-100; tracker outputs are the ground truth perturbed by
``train.evaluate.reference``: jitter, misses, identity swaps, false positives):

- MOT17, the real sample of ../shared/realdata (7 sequences): TrackEval's ``MotChallenge2DBox`` runner vs the
  official protocol; on the 4 sequences a build locks as val, the official figure, the unified protocol on the raw
  split, through the build, and through a copy of the build clipped and rounded as builders did before issue 9;
- MOT15: a scripted 10-column sequence, TrackEval (``BENCHMARK = MOT15``) vs the official protocol;
- DanceTrack: the synthetic ``tiny`` val split, TrackEval's runner (DanceTrack's evaluation: MOT17 rules) vs ours;
- BDD100K, the real val video of ../shared/realdata: TrackEval's BDD100K runner (2020 box convention) vs ours
  (combined), the Scalabel-convention class means (equal to Scalabel 0.3.1's: benchmarks/scalabel_crosscheck.py),
  and the 2-class unified protocol on the same files.

Usage::

    python benchmarks/bench_protocols.py
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from builder.formats.motchallenge import (
    list_sequences,
    read_mot_file,
    read_seqinfo,
    write_results,
    write_seqmap,
    xywh_to_xyxy,
)
from train.evaluate.benchmarks import evaluate_raw
from train.evaluate.reference import (
    perturbed_mot_table,
    perturbed_scalabel_frames,
    trackeval_bdd100k_reference,
    trackeval_mot17_reference,
)
from train.evaluate.result_files import write_sidecar
from train.evaluate.results import evaluate_build, evaluate_mot

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
TRACKER = "perturbed"
KEYS = ("HOTA", "MOTA", "IDF1", "FP")


def _fmt(name: str, m: dict) -> str:
    return f"  {name:62s} " + "  ".join(f"{k} {m[k]:8.3f}" if k != "FP" else f"FP {int(m[k]):5d}" for k in KEYS)


def _trackeval(fields: dict) -> dict:
    return {"HOTA": 100 * float(np.mean(fields["HOTA"]["HOTA"])), "MOTA": 100 * fields["CLEAR"]["MOTA"],
            "IDF1": 100 * fields["Identity"]["IDF1"], "FP": fields["CLEAR"]["CLR_FP"]}


def _trackeval_layout(split_dir: Path, names: list[str], root: Path, benchmark: str) -> Path:
    """TrackEval's layout of ``names`` (gt copied, a perturbed tracker written); returns the tracker's data dir."""
    rng = np.random.default_rng(0)
    data = root / "trackers" / f"{benchmark}-train" / TRACKER / "data"
    for name in names:
        dst = root / "gt" / f"{benchmark}-train" / name
        (dst / "gt").mkdir(parents=True)
        shutil.copy(split_dir / name / "seqinfo.ini", dst / "seqinfo.ini")
        shutil.copy(split_dir / name / "gt" / "gt.txt", dst / "gt" / "gt.txt")
        t = perturbed_mot_table(read_mot_file(dst / "gt" / "gt.txt"), rng)
        write_results(data / f"{name}.txt", t.frames, t.ids, t.boxes, t.conf, t.classes)
    write_seqmap(root / "gt" / "seqmaps" / f"{benchmark}-train.txt", names)
    return data


def mot17(tmp: Path) -> None:
    src = REALDATA / "mot17-mini"
    if not src.is_dir():
        print("MOT17: ../shared/realdata/mot17-mini not present")
        return
    names = list_sequences(src / "train")
    data = _trackeval_layout(src / "train", names, tmp, "MOT17")
    print(f"MOT17 (real sample, {len(names)} sequences, 39 frames)")
    print(_fmt("TrackEval MotChallenge2DBox runner", _trackeval(trackeval_mot17_reference(tmp, TRACKER)["COMBINED_SEQ"])))
    print(_fmt("official protocol", evaluate_raw("mot17", tmp / "gt", "MOT17-train", data)["val_sets"]["mot17"][
        "combined"]))
    _mot17_through_a_build(src, data, tmp)


def _mot17_through_a_build(src: Path, data: Path, tmp: Path) -> None:
    from builder.build import build
    from builder.classmap import ClassMap, default_classmap_path
    from builder.manifest import lock_manifest
    from builder.records import WarningCounter
    from builder.sources import get_source

    adapter = get_source("mot17")(src, ClassMap.load(default_classmap_path("mot17"), ["person"]), WarningCounter())
    lock_manifest(adapter, tmp / "m.json", source="mot17", classes=["person"], n_val=4, n_test=2, split="train")
    (tmp / "r.toml").write_text(f'name = "b"\nseed = 0\nclasses = ["person"]\n[sources.mot17]\nroot = "{src}"\n'
                                f'manifest = "{tmp / "m.json"}"\nframe_budget = 1\nclip_length = 1\n')
    build_dir = build(tmp / "r.toml", build_root=tmp / "builds")
    val = sorted(p.name for p in (build_dir / "val").iterdir())
    raw_names = [read_seqinfo(build_dir / "val" / n).extra["rawSequence"] for n in val]
    res = tmp / "res"
    for n, raw in zip(val, raw_names, strict=True):
        t = read_mot_file(data / f"{raw}.txt")
        for folder, name in ((res / "build", n), (res / "raw", raw)):
            write_results(folder / f"{name}.txt", t.frames, t.ids, t.boxes, t.conf, np.ones(len(t)))
            write_sidecar(folder, ["person"], [name])
    seqmap = write_seqmap(tmp / "val.txt", raw_names)
    print(f"  -- the {len(val)} sequences a build locks as val ({', '.join(raw_names)}):")
    print(_fmt("official protocol", evaluate_raw("mot17", tmp / "gt", "MOT17-train", data, seqmap=seqmap)[
        "val_sets"]["mot17"]["combined"]))
    print(_fmt("unified protocol, raw split", evaluate_raw("mot17", src, "train", res / "raw", protocol="unified",
                                                           classes=["person"], seqmap=seqmap)["val_sets"]["mot17"][
        "combined"]))
    print(_fmt("unified protocol, through the build (raw ground truth)", evaluate_build(
        build_dir, "val", res / "build")["val_sets"]["mot17"]["combined"]))
    clipped = tmp / "clipped"
    shutil.copytree(build_dir / "val", clipped, symlinks=True)
    for seq in clipped.iterdir():  # as builders wrote gt.txt before issue 9: clipped to the frame, 0.01 px
        info, gt = read_seqinfo(seq), read_mot_file(seq / "gt" / "gt.txt")
        b = np.round(np.clip(xywh_to_xyxy(gt.boxes), 0, [info.width, info.height] * 2), 2)
        rows = np.column_stack([gt.frames, gt.ids, b[:, :2], b[:, 2:] - b[:, :2], gt.conf, gt.classes, gt.visibility])
        (seq / "gt" / "gt.txt").write_text("".join(",".join(f"{v:g}" for v in r) + "\n" for r in rows))
    print(_fmt("unified protocol, through a build clipped as before issue 9",
               evaluate_mot(clipped, res / "build", classes=["person"])["combined"]))


def mot15(tmp: Path) -> None:
    seq = tmp / "gt" / "MOT15-train" / "S"
    (seq / "gt").mkdir(parents=True)
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=S\nimDir=img1\nframeRate=7\nseqLength=50\nimWidth=768\n"
                                     "imHeight=576\nimExt=.jpg\n")
    rng = np.random.default_rng(0)
    gt = [f"{t},{k + 1},{40 + 90 * k + 3 * t},{150 + 20 * k},40,100,{int(rng.random() > 0.03)},-1,-1,-1"
          for t in range(1, 51) for k in range(6)]
    (seq / "gt" / "gt.txt").write_text("\n".join(gt) + "\n")
    t = perturbed_mot_table(read_mot_file(seq / "gt" / "gt.txt", class_column=False), rng)
    data = tmp / "trackers" / "MOT15-train" / TRACKER / "data"
    write_results(data / "S.txt", t.frames, t.ids, t.boxes, t.conf, -np.ones(len(t)))
    write_seqmap(tmp / "gt" / "seqmaps" / "MOT15-train.txt", ["S"])
    print("MOT15 (scripted 10-column sequence: 50 frames x 6 pedestrians, class -1)")
    print(_fmt("TrackEval MotChallenge2DBox runner, BENCHMARK=MOT15",
               _trackeval(trackeval_mot17_reference(tmp, TRACKER, benchmark="MOT15")["COMBINED_SEQ"])))
    print(_fmt("official protocol", evaluate_raw("mot15", tmp / "gt", "MOT15-train", data)["val_sets"]["mot15"][
        "combined"]))


def dancetrack(tmp: Path) -> None:
    from builder.synth import write_synth

    roots = write_synth(tmp / "synth", scale="tiny", seed=0, sources=["dancetrack"])
    split = roots["dancetrack"] / "val"
    names = list_sequences(split)
    data = _trackeval_layout(split, names, tmp / "te", "MOT17")
    print(f"DanceTrack (synthetic tiny val split, {len(names)} sequences)")
    print(_fmt("TrackEval MotChallenge2DBox runner (DanceTrack: MOT17 rules)",
               _trackeval(trackeval_mot17_reference(tmp / "te", TRACKER)["COMBINED_SEQ"])))
    print(_fmt("official protocol", evaluate_raw("dancetrack", tmp / "te" / "gt", "MOT17-train", data)[
        "val_sets"]["dancetrack"]["combined"]))


def bdd100k(tmp: Path) -> None:
    source = REALDATA / "bdd100k-boxtrack" / "b1c66a42-6f7d68ca.json"
    if not source.is_file():
        print("BDD100K: ../shared/realdata/bdd100k-boxtrack not present")
        return
    frames = json.loads(source.read_text())
    labels = tmp / "raw" / "labels" / "box_track_20" / "val"
    labels.mkdir(parents=True)
    shutil.copy(source, labels / source.name)
    preds = perturbed_scalabel_frames(frames)
    (tmp / "preds.json").write_text(json.dumps(preds))
    te_ids: dict[str, int] = {}
    for name, rows, gt in (("te_gt", frames, True), (f"te_trk/{TRACKER}/data", preds, False)):
        (tmp / name).mkdir(parents=True)
        (tmp / name / source.name).write_text(json.dumps([{"name": f["name"], "index": f["frameIndex"], "labels": [
            {"id": te_ids.setdefault(f"{name}{lab['id']}", len(te_ids)), "category": lab["category"],
             "box2d": lab["box2d"]} | ({"attributes": {"Crowd": bool(lab["attributes"].get("crowd"))}} if gt else {})
            for lab in f["labels"]]} for f in rows]))
    official = trackeval_bdd100k_reference(tmp / "te_gt", tmp / "te_trk", TRACKER)
    print("BDD100K (real val video b1c66a42-6f7d68ca, 202 frames)")
    print(_fmt("TrackEval BDD100K runner, combined (2020 box convention)", _trackeval(official["cls_comb_det_av"])))
    old = evaluate_raw("bdd100k", tmp / "raw", "val", tmp / "preds.json", box_convention="2020")["val_sets"]["bdd100k"]
    print(_fmt("official protocol, combined, --box-convention 2020", old["combined"]))
    new = evaluate_raw("bdd100k", tmp / "raw", "val", tmp / "preds.json")["val_sets"]["bdd100k"]
    print(_fmt("official protocol, combined (Scalabel convention)", new["combined"]))
    mean = new["class_mean"]
    print(f"  {'official protocol, class means (Scalabel convention)':62s} mHOTA {mean['HOTA']:8.3f}  "
          f"mMOTA {mean['MOTA']:8.3f}  mIDF1 {mean['IDF1']:8.3f}")
    unified = _unified_bdd(preds, tmp / "unified")
    print(_fmt("unified protocol (person, vehicle), combined", evaluate_raw(
        "bdd100k", tmp / "raw", "val", unified, protocol="unified")["val_sets"]["bdd100k"]["combined"]))


#: The unified class of each BDD100K category (conf/classmaps/bdd100k.toml); two-wheelers are ignore regions there.
UNIFIED = {"pedestrian": 1, "rider": 1, "car": 2, "truck": 2, "bus": 2, "train": 2}


def _unified_bdd(preds: list[dict], out: Path) -> Path:
    """The same predictions as MOTChallenge text with the project's sidecar (person, vehicle)."""
    video = preds[0]["videoName"]
    rows = [(f["frameIndex"] + 1, int(lab["id"]), lab["box2d"]["x1"], lab["box2d"]["y1"],
             lab["box2d"]["x2"] - lab["box2d"]["x1"], lab["box2d"]["y2"] - lab["box2d"]["y1"], UNIFIED[lab["category"]])
            for f in preds for lab in f["labels"] if lab["category"] in UNIFIED]
    m = np.array(rows, float)
    write_results(out / f"{video}.txt", m[:, 0], m[:, 1], m[:, 2:6], np.ones(len(m)), m[:, 6])
    write_sidecar(out, ["person", "vehicle"], [video])
    return out


def main() -> None:
    for section in (mot17, mot15, dancetrack, bdd100k):
        with tempfile.TemporaryDirectory() as tmp:
            section(Path(tmp))
        print()


if __name__ == "__main__":
    main()
