"""Scores for segmentations and picks: Dice/IoU, matched precision/recall/F1, CZII F-beta.

Picks are matched to true centres one-to-one with the Hungarian algorithm (a pick can explain one
particle only), maximising the number of pairs closer than the match distance — the rule the
reference kit's scorer uses for the original's F1 (TP = pick within 5 px of a true centre).
The CZII cryo-ET challenge score is computed its own way: a true particle counts as found when any
pick lies within ``0.5 × radius`` of it, and F-beta uses β = 4 (recall weighs 16× precision).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt


@dataclass(frozen=True)
class PickScore:
    n_picks: int
    n_truth: int
    tp: int
    precision: float
    recall: float
    f1: float
    match_distance: float
    mean_error: float | None
    """Mean distance of matched pairs (voxels); None without matches."""

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


@dataclass(frozen=True)
class CziiScore:
    tp: int
    fp: int
    fn: int
    precision: float
    recall: float
    fbeta: float
    beta: float
    hit_distance: float

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _points(xyz: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(xyz, dtype=np.float64)
    return arr.reshape(-1, 3) if arr.size else np.zeros((0, 3))


def match_picks(
    picks: npt.ArrayLike, truth: npt.ArrayLike, max_distance: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one pairs ``(pick index, truth index)`` closer than ``max_distance`` (inclusive).

    Maximises the number of pairs, and among equally many the total distance.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    p, t = _points(picks), _points(truth)
    if len(p) == 0 or len(t) == 0:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int)
    dist = cdist(p, t)
    close = dist <= max_distance
    # A pair beyond reach costs more than any set of reachable pairs can save, so the assignment
    # first maximises the count, then minimises the summed distance of those pairs.
    big = 1.0 + close.sum() * max_distance
    cost = np.where(close, dist, big)
    rows, cols = linear_sum_assignment(cost)
    ok = close[rows, cols]
    return rows[ok], cols[ok]


def score_picks(picks: npt.ArrayLike, truth: npt.ArrayLike, max_distance: float = 5.0) -> PickScore:
    """Precision, recall and F1 of ``picks`` against ``truth`` (both ``(N, 3)``, same units)."""
    p, t = _points(picks), _points(truth)
    rows, cols = match_picks(p, t, max_distance)
    tp = len(rows)
    precision = tp / len(p) if len(p) else 0.0
    recall = tp / len(t) if len(t) else 0.0
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    error = float(np.linalg.norm(p[rows] - t[cols], axis=1).mean()) if tp else None
    return PickScore(len(p), len(t), tp, precision, recall, f1, float(max_distance), error)


def czii_fbeta(
    picks: npt.ArrayLike,
    truth: npt.ArrayLike,
    radius: float,
    beta: float = 4.0,
    factor: float = 0.5,
) -> CziiScore:
    """The CZII challenge's F-beta: a true particle is a hit when a pick lies within
    ``factor × radius``; TP = true particles hit, FP = picks − TP, FN = truth − TP."""
    from scipy.spatial import cKDTree

    p, t = _points(picks), _points(truth)
    reach = factor * float(radius)
    if len(p) and len(t):
        hits = cKDTree(p).query_ball_point(t, r=reach)
        tp = int(sum(1 for h in hits if h))
    else:
        tp = 0
    fp, fn = max(len(p) - tp, 0), len(t) - tp
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    b2 = beta * beta
    denom = b2 * precision + recall
    fbeta = (1 + b2) * precision * recall / denom if denom else 0.0
    return CziiScore(tp, fp, fn, precision, recall, fbeta, float(beta), reach)


def dice_iou(prediction: npt.ArrayLike, label: npt.ArrayLike) -> tuple[float, float]:
    """Dice and IoU of two boolean volumes (1.0 for two empty ones: nothing to find, none found)."""
    pred, lab = np.asarray(prediction, dtype=bool), np.asarray(label, dtype=bool)
    if pred.shape != lab.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {lab.shape}")
    inter = int(np.count_nonzero(pred & lab))
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(lab))
    if total == 0:
        return 1.0, 1.0
    return 2.0 * inter / total, inter / (total - inter)


def dice(prediction: npt.ArrayLike, truth: npt.ArrayLike, threshold: float = 0.5) -> float:
    """Dice of ``prediction > threshold`` against ``truth > 0`` (1.0 when both are empty).

    One formula for every segmentation Dice reported (training preview, ``evaluate``), so
    their numbers compare. ``threshold`` is on ``prediction``'s own scale (0.5 for
    probabilities; :func:`ais_torch.formats.encoding.threshold_on` converts a grey level).
    """
    return dice_iou(np.asarray(prediction) > threshold, np.asarray(truth) > 0)[0]
