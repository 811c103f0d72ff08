"""Per-sequence TrackEval statistics, and the metrics recomputed from their sums (for a bootstrap over sequences).

TrackEval combines sequences by summing counts and TP-weighted averages, then recomputing the ratios
(``trackeval/metrics/hota.py`` ``combine_sequences`` / ``combine_classes_det_averaged`` / ``_compute_final_fields``,
``clear.py`` and ``identity.py`` likewise). A sequence's statistics are therefore the summable fields below; any
multiset of sequences (a bootstrap resample) is scored by summing its sequences' statistics and applying
:func:`metrics_from_sums`, which equals TrackEval's combined figure for the same multiset (the test checks it on
the identity resample). Classes combine the same way (detection-averaged), so a val set's ``combined`` entry is
the sum over its classes.

Fields (per sequence and class; arrays have one value per HOTA localisation threshold alpha = 0.05..0.95):
``HOTA_TP``, ``HOTA_FN``, ``HOTA_FP`` (19 each), ``AssA_w``, ``AssRe_w``, ``AssPr_w``, ``LocA_w`` (19 each: the field
times ``HOTA_TP``), ``CLR_TP``, ``CLR_FN``, ``CLR_FP``, ``IDSW``, ``MOTP_sum``, ``IDTP``, ``IDFN``, ``IDFP``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: HOTA fields summed over sequences (arrays over the 19 alphas).
HOTA_SUMMED = ("HOTA_TP", "HOTA_FN", "HOTA_FP")
#: HOTA fields TrackEval averages weighted by HOTA_TP; stored as ``<field>_w`` = field x HOTA_TP.
HOTA_WEIGHTED = ("AssA", "AssRe", "AssPr", "LocA")
#: Scalar CLEAR / Identity fields summed over sequences.
SCALAR_SUMMED = ("CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "MOTP_sum", "IDTP", "IDFN", "IDFP")
#: Every stored field, in order.
FIELDS = (*HOTA_SUMMED, *(f"{f}_w" for f in HOTA_WEIGHTED), *SCALAR_SUMMED)
#: Metrics :func:`metrics_from_sums` returns (0-100 scale, as metrics.json).
METRICS = ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1")


def sequence_stats(res: Mapping[str, Mapping]) -> dict[str, list]:
    """The summable statistics of one sequence (and class) from TrackEval's ``eval_sequence`` results.

    Args:
        res: ``{"HOTA": ..., "CLEAR": ..., "Identity": ...}`` as the trackeval metric objects return them.

    Returns:
        ``{field: list}`` (JSON-ready): arrays of 19 floats for the HOTA fields, one number for the others.
    """
    hota, clear, ident = res["HOTA"], res["CLEAR"], res["Identity"]
    out: dict[str, list] = {f: np.asarray(hota[f], np.float64).tolist() for f in HOTA_SUMMED}
    tp = np.asarray(hota["HOTA_TP"], np.float64)
    out.update({f"{f}_w": (np.asarray(hota[f], np.float64) * tp).tolist() for f in HOTA_WEIGHTED})
    out.update({f: float(clear[f]) for f in ("CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "MOTP_sum")})
    out.update({f: float(ident[f]) for f in ("IDTP", "IDFN", "IDFP")})
    return out


def stack(per_sequence: Mapping[str, Mapping[str, list]], names: Sequence[str]) -> dict[str, np.ndarray]:
    """``{field: (S, ...) float64}`` for the sequences ``names`` in that order (the bootstrap's data matrix)."""
    return {f: np.asarray([per_sequence[n][f] for n in names], np.float64) for f in FIELDS}


def add(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Field-wise sum of two stacked statistics (combining classes, detection-averaged)."""
    return {f: np.asarray(a[f]) + np.asarray(b[f]) for f in FIELDS}


def resample_sums(stacked: Mapping[str, np.ndarray], counts: np.ndarray) -> dict[str, np.ndarray]:
    """Sums over resampled sequences: ``counts`` (B, S) says how often each sequence is drawn in each of B
    resamples; returns ``{field: (B, ...)}``."""
    return {f: np.tensordot(counts, np.asarray(stacked[f]), axes=(1, 0)) for f in FIELDS}


def metrics_from_sums(s: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TrackEval's combined metrics from summed statistics, vectorised over leading axes (0-100 scale).

    Formulas (trackeval/metrics): DetA = TP / max(1, TP + FN + FP) and AssA = sum(AssA x TP) / max(1, TP) per
    alpha, HOTA = mean over alpha of sqrt(DetA x AssA); LocA = max(1e-10, sum(LocA x TP)) / max(1e-10, TP);
    MOTA = (CLR_TP - CLR_FP - IDSW) / max(1, CLR_TP + CLR_FN); MOTP = MOTP_sum / max(1, CLR_TP);
    IDF1 = IDTP / max(1, IDTP + 0.5 IDFP + 0.5 IDFN).
    """
    tp, fn, fp = (np.asarray(s[f], np.float64) for f in HOTA_SUMMED)
    det_a = tp / np.maximum(1.0, tp + fn + fp)
    ass_a = np.asarray(s["AssA_w"]) / np.maximum(1.0, tp)
    loc_a = np.maximum(1e-10, np.asarray(s["LocA_w"])) / np.maximum(1e-10, tp)
    clr_tp, clr_fn, clr_fp, idsw = (np.asarray(s[f], np.float64) for f in ("CLR_TP", "CLR_FN", "CLR_FP", "IDSW"))
    idtp, idfn, idfp = (np.asarray(s[f], np.float64) for f in ("IDTP", "IDFN", "IDFP"))
    return {
        "HOTA": 100.0 * np.sqrt(det_a * ass_a).mean(axis=-1),
        "DetA": 100.0 * det_a.mean(axis=-1),
        "AssA": 100.0 * ass_a.mean(axis=-1),
        "LocA": 100.0 * loc_a.mean(axis=-1),
        "MOTA": 100.0 * (clr_tp - clr_fp - idsw) / np.maximum(1.0, clr_tp + clr_fn),
        "MOTP": 100.0 * np.asarray(s["MOTP_sum"]) / np.maximum(1.0, clr_tp),
        "IDF1": 100.0 * idtp / np.maximum(1.0, idtp + 0.5 * idfp + 0.5 * idfn),
    }
