"""Figure 3C both ways: antibody platforms cleaned by interactions vs by picks with context.

The same three demo models (Membrane, Carbon, Antibody) segment held-out demo tomograms once, as
in ``benchmarks/figure3_interactions.py``. Then antibody picks come from

* ``alone``: the antibody segmentation picked as it is;
* ``interactions``: the segmentation after ``interactions=antibody_platforms`` (segment's
  post-processing, applied to the stored predictions exactly as segment applies it);
* ``context``: the ``alone`` picks kept when the signed distance to the *predicted* membrane
  (``Membrane:distance``, threshold 0.5) lies in ``--band`` (default 10 < d ≤ 30 nm: the same
  numbers as the interaction rules' avoid 10 nm / colocalise 30 nm), i.e.
  ``ais-torch pick ... 'keep=["10<Membrane:distance<=30"]'``.

Each is scored against the demo's true platforms (a hit within 3 px, one-to-one); the table
prints false positives removed and true positives lost relative to ``alone``, side by side.

    python benchmarks/figure3c_context.py --models DIR [--work DIR] [--tomograms 4] [--train]

``--models`` holds Membrane.scnm, Carbon.scnm and Antibody.scnm (``--train`` trains missing
ones, 2–8 minutes each on 2 CPU cores). Segmentations in ``--work/alone`` are reused on a rerun.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figure3_interactions import (  # the sibling benchmark's helpers
    HELD_OUT_SEED,
    MATCH_PX,
    TITLES,
    interaction_set,
    score,
    train_missing,
)

VOXEL_A = 10.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("figure3_work"))
    parser.add_argument("--tomograms", type=int, default=4)
    parser.add_argument("--train", action="store_true", help="train missing models first")
    parser.add_argument("--set", default="antibody_platforms", help="the interaction set")
    parser.add_argument(
        "--band", nargs=2, type=float, default=(10.0, 30.0), metavar=("LOW", "HIGH"),
        help="keep picks with LOW < distance to the predicted membrane <= HIGH (nm)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)

    from ais_torch.formats.coordinates import read_coordinates_tsv
    from ais_torch.formats.mrc import read_volume
    from ais_torch.formats.scnm import read_metadata
    from ais_torch.interactions.plan import build_postprocess
    from ais_torch.picking.context import ContextSettings, keep_mask, signed_distance
    from ais_torch.picking.settings import PickSettings, pick_array
    from ais_torch.segmentation.batch import segment
    from ais_torch.training.synthetic import write_demo

    if args.train:
        train_missing(args.models)
    models = [args.models / f"{t}.scnm" for t in TITLES]
    missing = [str(m) for m in models if not m.exists()]
    if missing:
        parser.error(f"missing models: {', '.join(missing)} (use --train)")

    data = args.work / "tomograms"
    demo = write_demo(data, n_tomograms=args.tomograms, seed=HELD_OUT_SEED)
    t0 = time.perf_counter()
    report = segment(models, data, args.work / "alone", progress=False, verbose=False)
    if report.failed:
        raise SystemExit(f"segmentation failed: {report.failed}")
    seconds = time.perf_counter() - t0

    metadata = {t: read_metadata(m) for t, m in zip(TITLES, models, strict=True)}
    plan = build_postprocess(interaction_set(args.set), metadata, progress=False)
    settings = PickSettings(method="watershed", threshold=0.5, spacing_A=60.0, size_px=10).checked()
    low, high = args.band
    rule = f"{low:g}<Membrane:distance<={high:g}"
    context = ContextSettings.parse([], [rule])
    names = ["alone", f"interactions={args.set}", f"context keep={rule}"]
    totals = {n: {"tp": 0, "fp": 0} for n in names}
    rows = []
    t_context = 0.0
    for files in demo:
        stem = files.tomogram.stem
        truth = read_coordinates_tsv(data / f"{stem}__antibody_truth.tsv")
        alone = {t: np.array(read_volume(args.work / "alone" / f"{stem}__{t}.mrc").data)
                 for t in TITLES}  # fmt: skip
        picks = pick_array(alone["Antibody"], VOXEL_A, settings).xyz
        edited = plan({t: a.copy() for t, a in alone.items()}, VOXEL_A)
        t1 = time.perf_counter()
        distance = signed_distance(alone["Membrane"], picks, VOXEL_A, threshold=0.5)
        kept = picks[keep_mask({context.items[0].column: distance}, context.keep, len(picks))]
        t_context += time.perf_counter() - t1
        row = [stem, len(truth)]
        for name, xyz in zip(
            names, [picks, pick_array(edited["Antibody"], VOXEL_A, settings).xyz, kept], strict=True
        ):
            tp, fp = score(xyz, truth)
            totals[name]["tp"] += tp
            totals[name]["fp"] += fp
            row += [tp, fp]
        rows.append(row)

    print(f"\nAntibody picks on {len(demo)} held-out demo tomograms (watershed, threshold 0.5, "
          f"spacing 60 Å; a hit is within {MATCH_PX:g} px of a true centre; segmentation "
          f"{seconds:.0f} s, context distances {t_context:.1f} s)\n")  # fmt: skip
    print("| tomogram | true | " + " | ".join(f"TP / FP {n}" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for r in rows:
        cells = [f"{r[2 + 2 * i]} / {r[3 + 2 * i]}" for i in range(len(names))]
        print(f"| {r[0]} | {r[1]} | " + " | ".join(cells) + " |")
    base = totals["alone"]
    print("\n| route | false positives removed | true positives lost |\n|---|---|---|")
    for name in names[1:]:
        res = totals[name]
        res["fp_removed"] = 1 - res["fp"] / base["fp"] if base["fp"] else float("nan")
        res["tp_lost"] = 1 - res["tp"] / base["tp"] if base["tp"] else float("nan")
        print(f"| {name} | {res['fp_removed']:.0%} | {res['tp_lost']:.0%} |")
    if args.json:
        args.json.write_text(json.dumps(totals, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
