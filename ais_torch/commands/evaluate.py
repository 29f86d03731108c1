"""``ais-torch evaluate``: score a segmentation against labels, or picks against truth.

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

from ais_torch.commands.shell import (
    Key,
    command_main,
    key_names,
    number_arg,
    parse_key_values,
    render_help,
)
from ais_torch.errors import ConfigError
from ais_torch.evaluation.files import evaluate_picks, evaluate_segmentation

KEYS = (
    Key("seg", "segmentation .mrc (grey 0-255 as segment writes, or float 0-1)", "file",
        "seg=tomo__Membrane.mrc"),
    Key("label", "label volume .mrc of the same shape (nonzero = feature)", "file",
        "label=membrane_label.mrc"),
    Key("threshold", "seg voxels above it count: grey level 0-255 or probability 0-1",
        "grey level or probability", "threshold=0.5", "128"),
    Key("picks", "picked particles: .star, .txt, .tsv or copick .json", "file (voxels)",
        "picks=tomo__Antibody_coords.star"),
    Key("truth", "true centres, in any of those formats", "file (voxels)",
        "truth=tomo_truth.tsv"),
    Key("match_px", "a pick this close to a true centre is a hit (one-to-one)", "voxels",
        "match_px=4", "5"),
    Key("radius", "particle radius for the CZII score (hit within 0.5 x radius); needs "
        "voxel_size_A", "Å", "radius=60"),
    Key("radius_px", "... the same in voxels", "voxels", "radius_px=6", "2 x match_px"),
    Key("beta", "the F-beta's beta (the CZII challenge's)", "", "beta=1", "4"),
    Key("voxel_size_A", "voxel size, for radius= and copick .json without one", "Å",
        "voxel_size_A=10"),
    Key("json", "write all numbers to this file", "file", "json=scores.json"),
)  # fmt: skip
"""Every key of the command, once: the parser and ``--help`` both read it."""

_KEYS = key_names(KEYS)
USAGE = render_help(
    "usage: ais-torch evaluate [seg=S.mrc label=L.mrc] [picks=P.star truth=T.tsv] [json=OUT]",
    """\
Segmentation: Dice and IoU of seg (> threshold) against label (> 0). Picking: precision,
recall, F1 (one-to-one matching) and the CZII F-beta. Also runs as python -m ais_torch.evaluate.""",
    KEYS,
)


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
        from ais_torch.formats.atomic import atomic_output, output_key

        with output_key("json"), atomic_output(given["json"]) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {given['json']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return command_main(argv, USAGE, run)


if __name__ == "__main__":
    sys.exit(main())
