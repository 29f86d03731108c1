"""Third-party end-to-end check: train on DeepFinder's simulated tomograms, segment, pick, score.

DeepFinder (Moebel et al. 2021) ships 100³ simulated tomograms with exact 9-class label maps and
particle lists, and its own predictions on them (``../shared/realdata/deepfinder_synthetic/``).
This script trains one ais_torch model per class on tomo1 + tomo2 (dense labels, the way a user
would paint them in a few tomograms), segments the held-out tomo9 + tomo10 with all nine models
at once (competition: every model emits and absorbs, so each voxel keeps its strongest class),
picks each class with the paper's watershed, and prints per-class Dice and picking F1 next to
DeepFinder's own result on the same files (DeepFinder was trained on 250 other tomograms of
the same simulation; ais_torch sees two).

    python benchmarks/deepfinder_synthetic.py --work df_work [--epochs 6] [--classes 1 2] [--detect]

``--detect`` adds detection + classification: one more model trained on every particle (all
classes as one feature) finds the particles, and each pick takes the class whose model responds
most within ``--vote-radius`` voxels of it (each class's response divided by its mean over the
tomogram's picks, so a model that fires everywhere does not take every pick); an extra column
gives that F1.

About 1–2 minutes of training per class on 2 CPU cores. The voxel size (10 Å) is the data
folder's placeholder; particle sizes below are in voxels.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "deepfinder_synthetic"
TRAIN = ("tomo1", "tomo2")
TEST = ("tomo9", "tomo10")
CLASSES = tuple(range(1, 10))
MATCH_PX = 5.0  # the data README's criterion: a hit within 5 voxels, one-to-one


def title(c: int) -> str:
    return f"class{c}"


def read_labels(name: str, kind: str = "groundtruth") -> np.ndarray:
    from ais_torch.formats.mrc import read_volume

    path = DATA / f"{name}_labels_{kind}.mrc"
    return np.asarray(read_volume(path, check_finite=False).data)


def read_objlist(path: Path) -> dict[int, np.ndarray]:
    """class → (N, 3) x y z voxels (MRC convention, as the data README says)."""
    out: dict[int, list[list[float]]] = {}
    with open(path) as fh:
        for row in csv.DictReader(fh):
            xyz = [float(row["x_vox"]), float(row["y_vox"]), float(row["z_vox"])]
            out.setdefault(int(row["class_label"]), []).append(xyz)
    return {c: np.asarray(v) for c, v in out.items()}


def write_class_labels(work: Path, classes: tuple[int, ...]) -> dict[int, list[Path]]:
    """One 0/1 int8 label volume per training tomogram and class."""
    from ais_torch.formats.mrc import write_volume

    paths: dict[int, list[Path]] = {c: [] for c in classes}
    for name in TRAIN:
        labels = read_labels(name)
        for c in classes:
            path = work / "labels" / f"{name}__{title(c)}.mrc"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_volume(path, (labels == c).astype(np.int8), voxel_size_A=10.0)
            paths[c].append(path)
    return paths


DETECTOR = "particle"


def write_union_labels(work: Path) -> list[Path]:
    """One 0/1 int8 volume per training tomogram: any particle of any class."""
    from ais_torch.formats.mrc import write_volume

    paths = []
    for name in TRAIN:
        path = work / "labels" / f"{name}__{DETECTOR}.mrc"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_volume(path, (read_labels(name) > 0).astype(np.int8), voxel_size_A=10.0)
        paths.append(path)
    return paths


def vote(picks_xyz: np.ndarray, classes: dict[int, np.ndarray], radius_px: float) -> np.ndarray:
    """The class of each pick: the largest summed response within ``radius_px``, each class's
    sums first divided by their mean over all picks (0 where no class responds)."""
    if len(picks_xyz) == 0:
        return np.zeros(0, dtype=int)
    shape = np.asarray(next(iter(classes.values())).shape)
    sums = np.zeros((len(picks_xyz), len(classes)))
    for i, (x, y, z) in enumerate(picks_xyz):
        centre = np.array([z, y, x])
        lo = np.maximum(np.floor(centre - radius_px), 0).astype(int)
        hi = np.minimum(np.floor(centre + radius_px).astype(int) + 1, shape)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        zz, yy, xx = np.ogrid[box]  # only the voxels that can lie within the radius
        near = (zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= radius_px**2
        sums[i] = [float(v[box][near].sum()) for v in classes.values()]
    sums /= np.maximum(sums.mean(axis=0, keepdims=True), 1e-9)
    labels = np.asarray(list(classes))[sums.argmax(axis=1)]
    return np.where(sums.max(axis=1) > 0, labels, 0)


def train(work: Path, c: int | str, labels: list[Path], epochs: int) -> Path:
    name = c if isinstance(c, str) else title(c)
    model = work / "models" / f"{name}.scnm"
    if model.exists():
        return model
    run_dir = work / "runs" / name
    tomos = ",".join(str(DATA / f"{n}_tomogram.mrc") for n in TRAIN)
    cmd = [
        sys.executable, "-m", "ais_torch.train", "data=annotations", f"title={name}",
        f"data.feature={name}", f"data.tomograms=[{tomos}]",
        f"data.labels=[{','.join(map(str, labels))}]", "arch=unet_s", "arch.loss=bce_dice",
        "arch.bce_weight=0.1", "data.box_size=32", "data.stride=16", "data.n_copies=4",
        f"trainer.max_epochs={epochs}", "trainer.precision=auto", "evaluate=false",
        "logger=none", "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    print(f"training {name} ...", flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    model.parent.mkdir(parents=True, exist_ok=True)
    (run_dir / f"{name}.scnm").replace(model)
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("deepfinder_work"))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--classes", type=int, nargs="+", default=list(CLASSES))
    parser.add_argument(
        "--size-px", type=float, default=200, help="dust below this many voxels (particles: 540+)"
    )
    parser.add_argument("--detect", action="store_true", help="add detection + classification")
    parser.add_argument("--vote-radius", type=float, default=3.0, help="voxels (with --detect)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        parser.error(f"{DATA} not found")

    from ais_torch.evaluation.metrics import dice_iou, score_picks
    from ais_torch.formats.mrc import read_volume
    from ais_torch.picking.settings import PickSettings, pick_array
    from ais_torch.segmentation.batch import segment

    classes = tuple(args.classes)
    t0 = time.perf_counter()
    labels = write_class_labels(args.work, classes)
    models = [train(args.work, c, labels[c], args.epochs) for c in classes]
    if args.detect:
        detector = train(args.work, DETECTOR, write_union_labels(args.work), args.epochs)
    t_train = time.perf_counter() - t0

    titles = [title(c) for c in classes]
    compete = {"competition": True, "emit": titles, "absorb": titles, "rules": []}
    t1 = time.perf_counter()
    report = segment(
        models,
        [str(DATA / f"{n}_tomogram.mrc") for n in TEST],
        args.work / "segmented",
        interactions=compete,
        progress=False,
        verbose=False,
    )
    if report.failed:
        raise SystemExit(f"segmentation failed: {report.failed}")
    if args.detect:
        report = segment([detector], [str(DATA / f"{n}_tomogram.mrc") for n in TEST],
                         args.work / "detected", progress=False, verbose=False)  # fmt: skip
        if report.failed:
            raise SystemExit(f"segmentation failed: {report.failed}")
    t_segment = time.perf_counter() - t1

    settings = PickSettings(threshold=0.5, spacing_px=6, size_px=args.size_px).checked()
    rows = []
    # every truth and DeepFinder file once, not once per class
    labels = {n: read_labels(n) for n in TEST}
    truths = {n: read_objlist(DATA / f"{n}_objlist_groundtruth.csv") for n in TEST}
    theirs = {n: read_objlist(DATA / f"{n}_objlist_deepfinder_prediction.csv") for n in TEST}
    their_labels = read_labels("tomo10", "deepfinder_prediction")
    none = np.zeros((0, 3))
    ours = {(n, c): read_volume(args.work / "segmented" / f"{n}_tomogram__{title(c)}.mrc")
            for n in TEST for c in classes}  # fmt: skip
    voted: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # name -> (picks, their classes)
    detection = {"tp": 0, "picks": 0, "true": 0}
    for name in TEST if args.detect else ():
        seg = read_volume(args.work / "detected" / f"{name}_tomogram__{DETECTOR}.mrc")
        picks = pick_array(np.asarray(seg.data), seg.voxel_size_A, settings).xyz
        every = np.concatenate([truths[name].get(c, none) for c in CLASSES])
        s = score_picks(picks, every, MATCH_PX)
        detection = {"tp": detection["tp"] + s.tp, "picks": detection["picks"] + s.n_picks,
                     "true": detection["true"] + len(every)}  # fmt: skip
        responses = {c: np.asarray(ours[name, c].data, dtype=np.float32) for c in classes}
        voted[name] = (picks, vote(picks, responses, args.vote_radius))
    for c in classes:
        row: dict[str, float | int | str] = {"class": c}
        ours_dice, ours_tp, ours_picks, df_tp, df_picks, n_true = [], 0, 0, 0, 0, 0
        for name in TEST:
            seg = ours[name, c]
            data = np.asarray(seg.data)
            ours_dice.append(dice_iou(data >= 128, labels[name] == c)[0])
            truth = truths[name].get(c, none)
            s = score_picks(pick_array(data, seg.voxel_size_A, settings).xyz, truth, MATCH_PX)
            ours_tp, ours_picks, n_true = (
                ours_tp + s.tp,
                ours_picks + s.n_picks,
                n_true + len(truth),
            )
            s = score_picks(theirs[name].get(c, none), truth, MATCH_PX)
            df_tp, df_picks = df_tp + s.tp, df_picks + s.n_picks
        df_dice = dice_iou(their_labels == c, labels["tomo10"] == c)[0]
        if args.detect:
            hits = picked = 0
            for name in TEST:
                picks, classes_of = voted[name]
                s = score_picks(picks[classes_of == c], truths[name].get(c, none), MATCH_PX)
                hits, picked = hits + s.tp, picked + s.n_picks
            total = picked + n_true
            row["f1_detect_vote"] = 2 * hits / total if total else float("nan")
        row.update(
            dice_ours=float(np.mean(ours_dice)),
            dice_deepfinder_tomo10=df_dice,
            f1_ours=2 * ours_tp / (ours_picks + n_true) if ours_picks + n_true else float("nan"),
            f1_deepfinder=2 * df_tp / (df_picks + n_true) if df_picks + n_true else float("nan"),
            picks_ours=ours_picks,
            tp_ours=ours_tp,
            n_true=n_true,
        )
        rows.append(row)

    print(f"\nDeepFinder synthetic: trained on {' + '.join(TRAIN)}, tested on {' + '.join(TEST)}")
    print(f"(training {t_train:.0f} s for {len(classes)} models, segmentation {t_segment:.0f} s)\n")
    vote_head = " F1 ours detect+vote |" if args.detect else ""
    print("| class | Dice ours | Dice DeepFinder (tomo10) | F1 ours | F1 DeepFinder | picks ours "
          f"(TP / true) |{vote_head}")  # fmt: skip
    print("|---|---|---|---|---|---|" + ("---|" if args.detect else ""))
    for r in rows:
        vote_cell = f" {r['f1_detect_vote']:.3f} |" if args.detect else ""
        print(
            f"| {r['class']} | {r['dice_ours']:.3f} | {r['dice_deepfinder_tomo10']:.3f} | "
            f"{r['f1_ours']:.3f} | {r['f1_deepfinder']:.3f} | {r['picks_ours']} "
            f"({r['tp_ours']} / {r['n_true']}) |{vote_cell}"
        )
    keys = ["dice_ours", "dice_deepfinder_tomo10", "f1_ours", "f1_deepfinder"]
    keys += ["f1_detect_vote"] if args.detect else []
    mean = {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
    vote_cell = f" {mean['f1_detect_vote']:.3f} |" if args.detect else ""
    print(
        f"| **mean** | {mean['dice_ours']:.3f} | {mean['dice_deepfinder_tomo10']:.3f} | "
        f"{mean['f1_ours']:.3f} | {mean['f1_deepfinder']:.3f} | |{vote_cell}"
    )
    if args.detect:
        d = detection
        f1 = 2 * d["tp"] / (d["picks"] + d["true"]) if d["picks"] + d["true"] else float("nan")
        print(f"\ndetection (any class, model '{DETECTOR}'): {d['picks']} picks, {d['tp']} of "
              f"{d['true']} particles found, F1 {f1:.3f}")  # fmt: skip
        mean["f1_detection"] = f1
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "mean": mean}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
