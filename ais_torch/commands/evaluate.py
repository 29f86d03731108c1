"""``python -m ais_torch.evaluate``: score a segmentation against labels, or picks against truth.

Why a command: the team compares its picks and segmentations with the original Ais's on the same
files, and users compare settings (threshold, spacing) on a labelled tomogram; both need the same
scorer, a readable table and a JSON record. Matching is one-to-one (Hungarian), like the scorer
that produced the reference kit's F1 numbers.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ais_torch.commands.shell import command_main, number_arg, parse_key_values
from ais_torch.errors import AisInputError, ConfigError

USAGE = """\
usage: python -m ais_torch.evaluate [seg=S.mrc label=L.mrc] [picks=P.star truth=T.tsv] [json=OUT]

Segmentation:  Dice and IoU of seg (> threshold) against label (> 0).
  seg          segmentation .mrc (uint 0-255 as `ais segment` writes, or float 0-1)
  label        label volume .mrc of the same shape (nonzero = feature)
  threshold    grey level 0-255 or probability 0-1 (default 128)
Picking:  precision, recall, F1 (one-to-one matching) and the CZII F-beta.
  picks        .star / .txt / .tsv / copick .json of picked particles (voxels)
  truth        true centres in any of those formats
  match_px     a pick within this distance of a true centre is a hit (default 5)
  radius       particle radius in Å for the CZII score (hit within 0.5 x radius) ...
  radius_px    ... or in voxels (default: 2 x match_px, so both use the same distance)
  beta         F-beta's beta (default 4, the CZII challenge's)
  voxel_size_A voxel size in Å (for radius= and copick .json without one)
json           write all numbers to this file
"""

_KEYS = (
    "seg",
    "label",
    "threshold",
    "picks",
    "truth",
    "match_px",
    "radius",
    "radius_px",
    "beta",
    "voxel_size_A",
    "json",
)


def evaluate_segmentation(seg: Path, label: Path, threshold: float = 128.0) -> dict[str, Any]:
    """Dice and IoU of ``seg > threshold`` (grey or probability; postprocess/scale) vs label > 0."""
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
) -> dict[str, Any]:
    """Matched precision/recall/F1 plus the CZII F-beta of one pick file against the truth."""
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


def table(report: dict[str, Any]) -> str:
    lines = []
    if "segmentation" in report:
        s = report["segmentation"]
        lines += [
            f"segmentation  {s['segmentation']}  vs  {s['label']}  (threshold {s['threshold']:g})",
            f"  Dice {s['dice']:.4f}   IoU {s['iou']:.4f}   "
            f"voxels predicted {s['predicted_voxels']}, labelled {s['label_voxels']}",
        ]
    if "picking" in report:
        p = report["picking"]
        c = p["czii"]
        lines += [
            f"picks  {p['picks']}  vs  {p['truth']}",
            f"  {'picks':>6} {'truth':>6} {'TP':>4} {'precision':>9} {'recall':>7} {'F1':>6}"
            f"   (hit ≤ {p['match_distance']:g} px, one-to-one)",
            f"  {p['n_picks']:>6} {p['n_truth']:>6} {p['tp']:>4} {p['precision']:>9.3f} "
            f"{p['recall']:>7.3f} {p['f1']:>6.3f}",
            f"  CZII F{c['beta']:g} {c['fbeta']:.3f}  (TP {c['tp']}, FP {c['fp']}, FN {c['fn']}; "
            f"hit ≤ {c['hit_distance']:g} px = 0.5 x radius {c['radius_px']:g} px)",
        ]
    return "\n".join(lines)


def run(args: Sequence[str]) -> int:
    given = parse_key_values(args, _KEYS, example="picks=p.star truth=t.tsv")
    report: dict[str, Any] = {}
    if ("seg" in given) != ("label" in given):
        raise ConfigError("give seg= and label= together (segmentation and its label volume)")
    if ("picks" in given) != ("truth" in given):
        raise ConfigError("give picks= and truth= together (picked and true coordinates)")
    if "seg" not in given and "picks" not in given:
        raise ConfigError("nothing to score: give seg= label= and/or picks= truth= (see --help)")
    voxel = number_arg(given, "voxel_size_A", None)
    if "seg" in given:
        report["segmentation"] = evaluate_segmentation(
            Path(given["seg"]), Path(given["label"]), number_arg(given, "threshold", 128.0)
        )
    if "picks" in given:
        radius_px = number_arg(given, "radius_px", None)
        if "radius" in given:
            if voxel is None:
                raise ConfigError("radius= is in Å: also give voxel_size_A=, or use radius_px=")
            radius_px = number_arg(given, "radius", 0.0) / voxel
        report["picking"] = evaluate_picks(
            Path(given["picks"]),
            Path(given["truth"]),
            match_px=number_arg(given, "match_px", 5.0),
            radius_px=radius_px,
            beta=number_arg(given, "beta", 4.0),
            voxel_size_A=voxel,
        )
    print(table(report))
    if "json" in given:
        from ais_torch.formats.atomic import atomic_output

        with atomic_output(given["json"]) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {given['json']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return command_main(argv, USAGE, run)


if __name__ == "__main__":
    sys.exit(main())
