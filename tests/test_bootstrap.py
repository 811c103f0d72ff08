"""Intervals of the regression gate: a paired bootstrap over val sequences from TrackEval statistics (issue 10).

Val sets here are scripted: S sequences of a few objects moving right, tracked perfectly or degraded by dropping
boxes / switching ids, scored by the project's evaluation (TrackEval metrics) so that every metrics.json entry
carries the per-sequence statistics the bootstrap resamples.
"""

from __future__ import annotations

import numpy as np
import pytest
import trackeval

from builder.formats.motchallenge import MotTable
from train.evaluate.scoring import BUILD_MATCH_RULES, SequenceData, evaluate_sequences
from train.evaluate.stats import FIELDS, metrics_from_sums, stack
from train.regression.bootstrap import BootstrapConfig, Interval, class_stats, paired_interval
from train.regression.gate import FORGETTING, GAINED, WITHIN_NOISE, compare, verdict

BOOT = BootstrapConfig(resamples=500, seed=0, confidence=0.95)
FRAMES = 20


def sequence(name: str, *, drop: float = 0.0, switch: bool = False, objects: int = 3, cls: int = 1,
             rng: np.random.Generator | None = None) -> SequenceData:
    """``objects`` boxes of class ``cls`` moving right for FRAMES frames; the tracker copies them, dropping a
    fraction ``drop`` of the rows (seeded) and swapping two ids halfway through when ``switch``."""
    rows = [(t, i + 1, 10.0 + 5 * t + 60 * i, 20.0 + 40 * i, 30.0, 60.0)
            for t in range(1, FRAMES + 1) for i in range(objects)]
    gt = np.array([(*r, 1.0, cls, 1.0) for r in rows])
    trk = gt.copy()
    trk[:, 6] = 0.9
    if switch:
        late = trk[:, 0] > FRAMES // 2
        one, two = late & (trk[:, 1] == 1), late & (trk[:, 1] == 2)
        trk[one, 1], trk[two, 1] = 2, 1
    if drop:
        trk = trk[(rng or np.random.default_rng(0)).random(len(trk)) >= drop]
    return SequenceData(name, FRAMES, MotTable.from_matrix(gt), MotTable.from_matrix(trk))


def entry(seqs: list[SequenceData], classes: dict[str, int] | None = None) -> dict:
    """A metrics.json val-set entry (with sequence statistics) of scripted sequences."""
    return evaluate_sequences(seqs, classes or {"person": 1}, BUILD_MATCH_RULES)


def metrics_json(val_set_entry: dict) -> dict:
    return {"stage": 1, "val_sets": {"dancetrack": val_set_entry}}


def hota_row(reg):
    return next(r for r in reg.gated if r.metric == "HOTA")


def test_identical_before_and_after_give_the_interval_0_0():
    e = entry([sequence(f"s{i}", drop=0.2, rng=np.random.default_rng(i)) for i in range(6)])
    iv = paired_interval([e], [e], cls="person", metric="HOTA", point_before=[1.0], point_after=[1.0], config=BOOT)
    assert iv == Interval(0.0, 0.0, "bootstrap", 6)
    reg = compare(metrics_json(e), metrics_json(e), tolerance=1.0, bootstrap=BOOT)
    assert all(r.interval.low == r.interval.high == 0.0 for r in reg.rows) and reg.passed


def test_summed_statistics_equal_trackevals_combination_on_the_identity_resample():
    seqs = [sequence(f"s{i}", drop=0.1 * i, switch=i % 2 == 1, rng=np.random.default_rng(i)) for i in range(5)]
    seqs += [sequence(f"v{i}", cls=2, objects=2, drop=0.3, rng=np.random.default_rng(10 + i)) for i in range(3)]
    e = entry(seqs, {"person": 1, "vehicle": 2})
    names = sorted(e["sequence_stats"]["person"])
    for cls in ("person", "vehicle", "combined"):
        found = class_stats(e, cls)
        assert found is not None and found[0] == names
        summed = {f: v.sum(axis=0) for f, v in found[1].items()}
        ours = metrics_from_sums(summed)
        want = e["combined"] if cls == "combined" else e["per_class"][cls]
        for metric in ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1"):
            assert ours[metric] == pytest.approx(want[metric], abs=1e-9), (cls, metric)


def test_statistics_recombine_with_trackevals_own_combine_sequences():
    """A resample that draws one sequence twice scores as TrackEval's combine_sequences of that multiset."""
    seqs = [sequence(f"s{i}", drop=0.15 * i, rng=np.random.default_rng(i)) for i in range(3)]
    metric = trackeval.metrics.HOTA()
    raw = {}
    for s in seqs:
        data = evaluate_sequences([s], {"person": 1}, BUILD_MATCH_RULES)  # statistics of one sequence
        raw[s.name] = data
    multiset = {"a": "s0", "b": "s0", "c": "s2"}
    stats = stack({k: raw[v]["sequence_stats"]["person"][v] for k, v in multiset.items()}, list(multiset))
    ours = metrics_from_sums({f: stats[f].sum(axis=0) for f in FIELDS})["HOTA"]
    from train.evaluate.scoring import preprocess

    per_seq = {k: metric.eval_sequence(preprocess(next(s for s in seqs if s.name == v), 1, BUILD_MATCH_RULES,
                                                  single_class=True)) for k, v in multiset.items()}
    assert ours == pytest.approx(100 * float(np.mean(metric.combine_sequences(per_seq)["HOTA"])), abs=1e-9)


def test_small_drop_on_few_sequences_is_within_noise():
    perfect = [sequence(f"s{i}") for i in range(6)]
    worse = [sequence("s0", drop=0.5, switch=True)] + perfect[1:]
    reg = compare(metrics_json(entry(perfect)), metrics_json(entry(worse)), tolerance=1.0, bootstrap=BOOT)
    row = hota_row(reg)
    assert row.delta < -1.0  # beyond the tolerance ...
    assert row.interval.low < 0 <= row.interval.high  # ... but one sequence of six: the interval reaches zero
    assert row.verdict == WITHIN_NOISE and reg.passed


def test_large_drop_on_every_sequence_is_forgetting_and_the_reverse_gained():
    perfect = [sequence(f"s{i}") for i in range(6)]
    worse = [sequence(f"s{i}", drop=0.4, switch=True, rng=np.random.default_rng(i)) for i in range(6)]
    reg = compare(metrics_json(entry(perfect)), metrics_json(entry(worse)), tolerance=1.0, bootstrap=BOOT)
    row = hota_row(reg)
    assert row.delta < -10 and row.interval.high < 0 and row.verdict == FORGETTING
    assert reg.forgetting == [row] and not reg.passed
    back = compare(metrics_json(entry(worse)), metrics_json(entry(perfect)), tolerance=1.0, bootstrap=BOOT)
    assert hota_row(back).verdict == GAINED and hota_row(back).interval.low > 0


def test_interval_is_deterministic_for_a_seed_and_moves_with_it():
    before = entry([sequence(f"s{i}", drop=0.1, rng=np.random.default_rng(i)) for i in range(8)])
    after = entry([sequence(f"s{i}", drop=0.3, rng=np.random.default_rng(50 + i)) for i in range(8)])

    def interval(seed: int) -> Interval:
        return paired_interval([before], [after], cls="person", metric="HOTA", point_before=[0.0],
                               point_after=[0.0], config=BootstrapConfig(500, seed, 0.95))

    assert interval(0) == interval(0)
    assert interval(0) != interval(1)


def test_unpaired_val_sets_and_old_records_get_no_interval():
    a = entry([sequence(f"s{i}") for i in range(4)])
    b = entry([sequence(f"t{i}") for i in range(4)])
    assert paired_interval([a], [b], cls="person", metric="HOTA", point_before=[1.0], point_after=[1.0],
                           config=BOOT) is None
    old = {k: v for k, v in a.items() if k != "sequence_stats"}
    reg = compare(metrics_json(old), metrics_json(a), tolerance=1.0, bootstrap=BOOT)
    assert all(r.interval is None for r in reg.rows)


def test_several_seeds_add_their_spread_to_the_interval():
    perfect = [sequence(f"s{i}") for i in range(6)]
    runs_before = [metrics_json(entry(perfect)) for _ in range(2)]
    runs_after = [metrics_json(entry([sequence(f"s{i}", drop=d, rng=np.random.default_rng(i)) for i in range(6)]))
                  for d in (0.05, 0.3)]
    reg = compare(runs_before, runs_after, tolerance=1.0, bootstrap=BOOT)
    row = hota_row(reg)
    single = hota_row(compare(runs_before[0], runs_after[0], tolerance=1.0, bootstrap=BOOT))
    assert row.interval.method == "bootstrap+seeds" and (reg.runs_before, reg.runs_after) == (2, 2)
    assert row.after == pytest.approx(np.mean([r["val_sets"]["dancetrack"]["per_class"]["person"]["HOTA"]
                                               for r in runs_after]))
    assert row.interval.high - row.interval.low > single.interval.high - single.interval.low
    assert row.interval.low < row.delta < row.interval.high


def test_verdict_levels():
    assert verdict(-2.0, Interval(-3.0, -1.0, "bootstrap", 5), 1.0) == FORGETTING
    assert verdict(-2.0, Interval(-3.0, 0.5, "bootstrap", 5), 1.0) == WITHIN_NOISE
    assert verdict(-0.5, Interval(-0.8, -0.2, "bootstrap", 5), 1.0) == WITHIN_NOISE
    assert verdict(2.0, Interval(1.0, 3.0, "bootstrap", 5), 1.0) == GAINED
