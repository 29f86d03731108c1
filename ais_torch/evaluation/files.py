"""Scoring files: a segmentation .mrc against its label, a pick file against true centres.

Why apart from :mod:`.metrics`: the metrics are array-in and know nothing of files; these read
the files the way every command reads them (volumes through :mod:`ais_torch.formats.mrc`, a
threshold through :mod:`ais_torch.formats.encoding`, coordinates through
:func:`ais_torch.formats.coordinates.read_coordinates`) and return one JSON-ready record, which
``ais-torch evaluate`` prints and a notebook or benchmark can keep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ais_torch.errors import AisInputError, ConfigError

if TYPE_CHECKING:
    from pathlib import Path

Report = dict[str, str | float | int | dict[str, float | int | None] | None]
"""One evaluation's numbers and file names, as written to ``json=``."""


def evaluate_segmentation(seg: Path, label: Path, threshold: float = 128.0) -> Report:
    """Dice and IoU of ``seg > threshold`` (grey level or probability) against ``label > 0``."""
    import numpy as np

    from ais_torch.evaluation.metrics import dice_iou
    from ais_torch.formats.encoding import threshold_on
    from ais_torch.formats.mrc import read_volume

    s = read_volume(seg)
    lab = read_volume(label, check_finite=False)
    if s.shape != lab.shape:
        raise AisInputError(
            f"{seg}: shape {s.shape} differs from the label {label} {lab.shape}; "
            "score a segmentation of the labelled tomogram"
        )
    data = np.asarray(s.data)
    pred = data > threshold_on(data, threshold)
    truth = np.asarray(lab.data) > 0
    dice, iou = dice_iou(pred, truth)
    return {
        "segmentation": str(seg),
        "label": str(label),
        "threshold": float(threshold),
        "dice": dice,
        "iou": iou,
        "predicted_voxels": int(pred.sum()),
        "label_voxels": int(truth.sum()),
    }


def evaluate_picks(
    picks: Path,
    truth: Path,
    *,
    match_px: float = 5.0,
    radius_px: float | None = None,
    beta: float = 4.0,
    voxel_size_A: float | None = None,
) -> Report:
    """Matched precision/recall/F1 plus the CZII F-beta of one pick file against the truth.

    ``radius_px`` defaults to ``2 × match_px``, so the CZII hit distance (0.5 × radius) equals
    the matching distance.
    """
    from ais_torch.evaluation.metrics import czii_fbeta, score_picks
    from ais_torch.formats.coordinates import read_coordinates

    if match_px <= 0:
        raise ConfigError(f"match_px={match_px} must be > 0")
    radius = 2.0 * match_px if radius_px is None else radius_px
    if radius <= 0:
        raise ConfigError(f"radius={radius} must be > 0")
    p = read_coordinates(picks, voxel_size_A=voxel_size_A)
    t = read_coordinates(truth, voxel_size_A=voxel_size_A)
    score = score_picks(p, t, match_px)
    czii = czii_fbeta(p, t, radius, beta=beta)
    return {
        "picks": str(picks),
        "truth": str(truth),
        **score.as_dict(),
        "czii": {**czii.as_dict(), "radius_px": radius},
    }
