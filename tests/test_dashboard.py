"""train.review.dashboard on scripted run directories (tests/run_fixtures.py)."""

from __future__ import annotations

import json
import math

import cv2
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from run_fixtures import write_curriculum, write_regression, write_run

from train.errors import ReviewError
from train.review.dashboard import (
    _stack_labels,
    build_figure,
    load_run,
    main,
    make_dashboard,
    order_runs,
)

SIZE = (900, 1600, 3)  # FIGSIZE_IN (16, 9) x DPI 100, BGR


def _decoded(path):
    image = cv2.imread(str(path))
    assert image is not None, f"{path} does not decode as an image"
    return image


def test_single_run_png(tmp_path):
    run = write_run(tmp_path / "run", val_hota=(30.0, 45.0, 50.0, 49.0), final_hota={"dancetrack": 50.0})
    assert main([str(run)]) == 0
    image = _decoded(run / "dashboard.png")
    assert image.shape == SIZE and image.std() > 10


def test_curriculum_png_flags_forgetting(tmp_path):
    runs = write_curriculum(tmp_path)
    out = make_dashboard(list(reversed(runs)), tmp_path / "curriculum.png")  # order comes from model_info
    assert _decoded(out).shape == SIZE
    curves = order_runs([load_run(r) for r in reversed(runs)])
    assert [c.stage for c in curves] == [1, 2, 3]
    fig = build_figure(curves)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    legend = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    # the gate's verdicts (regression.json): dancetrack 55 -> 48 (-7 [-9, -5]) is FORGETTING for each class;
    # bdd100k 38 -> 37 (-1, within the tolerance) is not; every change carries its interval.
    assert [t for t in legend if "FORGETTING" in t] == [
        "FORGETTING: dancetrack / person (-7.0 [-9.0, -5.0]) at stage 3",
        "FORGETTING: dancetrack / vehicle (-7.0 [-9.0, -5.0]) at stage 3"]
    assert "48.0 (-7.0 [-9.0, -5.0])" in texts and "37.0 (-1.0 [-3.0, +1.0])" in texts and "50.0" in texts
    labels = {tick.get_text() for ax in fig.axes for tick in ax.get_xticklabels()}
    assert {"stage 1", "stage 2", "stage 3"} <= labels


def test_stage_boundaries_break_the_lines(tmp_path):
    runs = [load_run(r) for r in write_curriculum(tmp_path)]
    fig = build_figure(runs)
    loss_ax = fig.axes[0]
    total = next(line for line in loss_ax.lines if line.get_label() == "loss")
    ys = list(total.get_ydata())
    # 3 stages x 3 epochs, plus one NaN break before each of stages 2 and 3.
    assert len(ys) == 9 + 2 and sum(math.isnan(y) for y in ys) == 2


def test_run_without_epochs_renders_placeholders(tmp_path):
    run = write_run(tmp_path / "r", val_hota=None)
    assert _decoded(make_dashboard([run], tmp_path / "d.png")).shape == SIZE
    fig = build_figure([load_run(run)])
    assert any(t.get_text() == "no data recorded" for ax in fig.axes for t in ax.texts)


def test_bad_inputs(tmp_path, capsys):
    with pytest.raises(ReviewError, match="not a directory"):
        load_run(tmp_path / "nope")
    (tmp_path / "r").mkdir()
    with pytest.raises(ReviewError, match="training_history.json: missing"):
        load_run(tmp_path / "r")
    (tmp_path / "r" / "training_history.json").write_text(json.dumps({"epochs": 3}))
    with pytest.raises(ReviewError, match="'epochs' must be a list"):
        load_run(tmp_path / "r")
    (tmp_path / "r" / "training_history.json").write_text("{\n  oops")
    assert main([str(tmp_path / "r")]) == 2
    assert "training_history.json:2:3: malformed JSON" in capsys.readouterr().err


def test_stack_labels_keeps_order_and_gap():
    values = [50.0, 50.3, 49.9, 80.0]
    heights = _stack_labels(values, gap=2.0)
    ranked = sorted(range(4), key=lambda i: values[i])
    assert [heights[i] for i in ranked] == sorted(heights)  # label order = value order
    assert all(b - a >= 2.0 - 1e-9 for a, b in zip(sorted(heights), sorted(heights)[1:], strict=False))
    assert _stack_labels([10.0], gap=2.0) == [10.0] and _stack_labels([], gap=2.0) == []


def test_close_final_values_get_non_overlapping_labels(tmp_path):
    """Four val sets within 0.6 HOTA at every stage: the value labels' boxes must not overlap."""
    finals = [{"a": 50.0, "b": 50.2, "c": 50.4, "d": 50.6}, {"a": 52.0, "b": 51.9, "c": 52.1, "d": 52.2},
              {"a": 48.0, "b": 48.3, "c": 48.1, "d": 48.2}]
    dirs = [write_run(tmp_path / f"s{k}", stage=k, final_hota=f, val_sets=tuple(f)) for k, f in enumerate(finals, 1)]
    for parent, run in zip(dirs, dirs[1:], strict=False):
        write_regression(run, parent, half_width=0.5)
    runs = [load_run(d) for d in dirs]
    fig = build_figure(runs)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    panel = fig.axes[-1]
    renderer = canvas.get_renderer()
    boxes = [Text.get_window_extent(t, renderer) for t in panel.texts]  # the text, not its leader line
    assert len(boxes) == 12
    overlaps = [(i, j) for i in range(12) for j in range(i + 1, 12) if boxes[i].overlaps(boxes[j])]
    assert overlaps == []
    assert sum("FORGETTING" in t.get_text() for t in panel.get_legend().get_texts()) == 8  # 4 sets x 2 classes
