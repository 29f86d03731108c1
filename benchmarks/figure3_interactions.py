"""A small reproduction of the paper's Figure 3: model interactions clean up antibody picks.

Three demo models (Membrane, Carbon, Antibody, trained by ``python -m ais_torch.train
+experiment=...``) segment held-out demo tomograms twice — alone, and with the
``antibody_platforms`` interaction set (membrane avoids carbon; antibody avoids the membrane
within 10 nm but colocalises with it within 30 nm). Antibody particles are picked from both with
the same settings and scored against the demo's true particle list; the table shows how many
false-positive picks the interactions removed and how many true ones they cost.

    python benchmarks/figure3_interactions.py --models DIR [--work DIR] [--tomograms 4]

``--models`` is a folder with Membrane.scnm, Carbon.scnm and Antibody.scnm; ``--train`` trains
the missing ones first (about 4–5 minutes each on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TITLES = ("Membrane", "Carbon", "Antibody")
HELD_OUT_SEED = 100  # training used demo seeds 0-2; these tomograms were never seen
MATCH_PX = 3.0  # a pick within 3 voxels (3 nm = the particle radius) of a true centre is a hit


def train_missing(models: Path) -> None:
    for title in TITLES:
        target = models / f"{title}.scnm"
        if target.exists():
            continue
        run_dir = models / f"run_{title.lower()}"
        cmd = [
            sys.executable, "-m", "ais_torch.train", f"+experiment={title.lower()}",
            f"hydra.run.dir={run_dir}", "logger=none",
        ]  # fmt: skip
        print("training:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        (run_dir / f"{title}.scnm").replace(target)


def score(picks_xyz: np.ndarray, truth_xyz: np.ndarray) -> tuple[int, int]:
    """(true positives, false positives) with one-to-one matching within MATCH_PX."""
    from ais_torch.postprocess.pick_metrics import score_picks

    s = score_picks(picks_xyz, truth_xyz, max_distance=MATCH_PX)
    return s.tp, s.n_picks - s.tp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("figure3_work"))
    parser.add_argument("--tomograms", type=int, default=4)
    parser.add_argument("--train", action="store_true", help="train missing models first")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from ais_torch.config import config_dir
    from ais_torch.data.synthetic import write_demo
    from ais_torch.io.coordinates import read_coordinates_tsv
    from ais_torch.io.mrc import read_volume
    from ais_torch.postprocess.picking import PickSettings, pick_array
    from ais_torch.segment import segment

    if args.train:
        train_missing(args.models)
    models = [args.models / f"{t}.scnm" for t in TITLES]
    missing = [str(m) for m in models if not m.exists()]
    if missing:
        parser.error(f"missing models: {', '.join(missing)} (use --train)")

    data = args.work / "tomograms"
    demo = write_demo(data, n_tomograms=args.tomograms, seed=HELD_OUT_SEED)
    with initialize_config_dir(str(config_dir()), version_base=None):
        cfg = compose("segment", overrides=["interactions=antibody_platforms", "model=x",
                                            "tomograms=x", "out=x"])  # fmt: skip
    rules = OmegaConf.to_container(cfg.interactions, resolve=True)

    timings = {}
    for name, interactions, post in (("alone", None, None), ("interactions", rules, "auto")):
        t0 = time.perf_counter()
        report = segment(models, data, args.work / name, interactions=interactions,
                         postprocess=post, progress=False, verbose=False)  # fmt: skip
        if report.failed:
            raise SystemExit(f"segmentation failed: {report.failed}")
        timings[name] = time.perf_counter() - t0

    settings = PickSettings(method="watershed", threshold=0.5, spacing_A=60.0, size_px=10)
    rows, totals = [], {"alone": [0, 0], "interactions": [0, 0]}
    n_true = 0
    for files in demo:
        stem = files.tomogram.stem
        truth = read_coordinates_tsv(data / f"{stem}__antibody_truth.tsv")
        n_true += len(truth)
        row = [stem, len(truth)]
        for name in ("alone", "interactions"):
            seg = read_volume(args.work / name / f"{stem}__Antibody.mrc")
            picks = pick_array(np.asarray(seg.data), seg.voxel_size_A, settings.checked())
            tp, fp = score(picks.xyz, truth)
            totals[name][0] += tp
            totals[name][1] += fp
            row += [tp, fp]
        rows.append(row)

    (tp0, fp0), (tp1, fp1) = totals["alone"], totals["interactions"]
    fp_removed = 1 - fp1 / fp0 if fp0 else float("nan")
    tp_lost = 1 - tp1 / tp0 if tp0 else float("nan")
    print(f"\nAntibody picks on {len(demo)} held-out demo tomograms (watershed, threshold 0.5, "
          f"spacing 60 Å; a hit is within {MATCH_PX:g} px of a true centre)\n")  # fmt: skip
    print("| tomogram | true | TP alone | FP alone | TP with interactions | FP with interactions |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(str(v) for v in r) + " |")
    print(f"| **all** | {n_true} | {tp0} | {fp0} | {tp1} | {fp1} |")
    print(f"\nfalse positives removed: {fp_removed:.0%}   true positives lost: {tp_lost:.0%}")
    print(f"segmentation time: alone {timings['alone']:.1f} s, "
          f"with interactions {timings['interactions']:.1f} s")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({
            "n_true": n_true, "alone": {"tp": tp0, "fp": fp0},
            "interactions": {"tp": tp1, "fp": fp1},
            "fp_removed": fp_removed, "tp_lost": tp_lost, "seconds": timings,
        }, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
