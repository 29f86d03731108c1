"""Training side by side: the original ``ais train`` and ``ais-torch train`` on the same .scnt.

Same training set (the reference kit's seed1 Membrane ``.scnt``, made by the original's
``ais extract``), same batch size, the same number of optimiser steps; both models are then
applied by our ``segment_volume`` to the held-out reference tomogram seed101 and scored
(Dice at 128/255 against its true membrane). Prints one row per architecture and run, the
median over runs, and each run's wall time (both tools on this machine's CPU).

    python benchmarks/training_parity.py                      # Eman2, VGGNet S, UNet S × 3 runs
    python benchmarks/training_parity.py --archs "VGGNet S" --runs 1 --steps 160
    python benchmarks/training_parity.py --tools original --results runs.json  # then
    python benchmarks/training_parity.py --tools ours --results runs.json      # one table of both
    python benchmarks/training_parity.py --tools ours --label torch-init --ours arch.init=pytorch

``--results`` keeps every finished run in a JSON file (rows are keyed by architecture, tool
label, steps and batch), so the two tools can be run at different times and one table printed;
``--ours`` passes extra overrides to ``ais-torch train`` and ``--label`` names that variant.

Needs the original (``../shared/tools/setup_original_ais.sh``; ``AIS_ORIGINAL_PYTHON``) and the
reference kit (``../shared/reference``). Budget on 2 CPU cores: about 1-2 min per run and tool
at 480 steps of 64×64 boxes for the small networks (TensorFlow start-up included).

How steps are matched: the original trains ``epochs × copies × (n_boxes // batch)`` steps and
keeps the epoch with the lowest loss; we train ``trainer.max_steps`` steps and keep the last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "reference"
SCNT = SHARED / "training_sets" / "seed1" / "64x64x1_10.00Apx_Membrane.scnt"
TOMO = SHARED / "tomograms" / "seed101"
ORIGINAL = Path(os.environ.get("AIS_ORIGINAL_PYTHON", "/root/.cache/ais-original/bin/python"))
ARCHS = {"Eman2": "eman2", "VGGNet S": "vggnet_s", "UNet S": "unet_s", "VGGNet M": "vggnet_m"}
N_BOXES = 36

TRAIN_ORIGINAL = textwrap.dedent(
    """
    import sys
    from Ais.core import cli_fn
    scnt, out, arch, epochs, batch, copies = sys.argv[1:7]
    if arch in ("Eman2", "InceptionNet", "ResNet"):  # include = False in its library
        from Ais.core.se_model import SEModel
        import importlib
        SEModel.load_models()
        module = importlib.import_module("Ais.models." + arch.lower())
        SEModel.MODELS[module.title] = module.create
        SEModel.MODEL_MODULES[module.title] = module
        SEModel.AVAILABLE_MODELS = list(SEModel.MODELS)
    cli_fn.train_model(training_data=[scnt], output_directory=out, architecture=arch,
                       epochs=int(epochs), batch_size=int(batch), copies=int(copies),
                       name="Membrane", gpus="0")
    """
)


def train_original(arch: str, steps: int, batch: int, out: Path) -> Path:
    per_copy = N_BOXES // batch
    copies = 8
    epochs = max(1, round(steps / (per_copy * copies)))
    args = [str(SCNT), str(out), arch, str(epochs), str(batch), str(copies)]
    run = subprocess.run(
        [str(ORIGINAL), "-c", TRAIN_ORIGINAL, *args], capture_output=True, text=True, timeout=3600
    )
    model = out / "Membrane.scnm"
    if not model.is_file():
        raise RuntimeError(
            f"ais train {arch} wrote no model:\n{run.stdout[-1500:]}{run.stderr[-1500:]}"
        )
    return model


def train_ours(arch: str, steps: int, batch: int, out: Path, seed: int, extra: list[str]) -> Path:
    cmd = [
        sys.executable, "-m", "ais_torch.train", "data=scnt", f"data.scnt=[{SCNT}]",
        f"arch={ARCHS[arch]}", "title=Membrane", f"data.batch_size={batch}",
        f"trainer.max_steps={steps}", "trainer.max_epochs=10000", "logger=none",
        "trainer.enable_progress_bar=false", f"seed={seed}", f"hydra.run.dir={out}", *extra,
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=out.parent)
    model = out / "Membrane.scnm"
    if not model.is_file():
        raise RuntimeError(f"ais-torch train {arch} wrote no model:\n{run.stderr[-2000:]}")
    return model


def dice_on_heldout(model: Path) -> float:
    import mrcfile

    import ais_torch
    from ais_torch.evaluation.metrics import dice
    from ais_torch.formats.mrc import read_volume

    volume = read_volume(TOMO / "tomo.mrc")
    truth = mrcfile.read(TOMO / "membrane.mrc.gz")  # the kit's labels are gzipped
    grey = next(iter(ais_torch.segment_volume(volume, str(model)).values()))
    return dice(np.asarray(grey) / 255.0, np.asarray(truth), threshold=128 / 255)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["Eman2", "VGGNet S", "UNet S"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--first-run", type=int, default=0, help="seed of the first run (ours)")
    parser.add_argument("--steps", type=int, default=480)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--tools", nargs="+", default=["original", "ours"])
    parser.add_argument("--results", type=Path, help="JSON file that keeps finished runs")
    parser.add_argument("--ours", nargs="*", default=[], help="extra ais-torch train overrides")
    parser.add_argument("--label", default="ours", help="name of our variant in the table")
    args = parser.parse_args()
    if "original" in args.tools and not ORIGINAL.is_file():
        sys.exit(f"the original Ais is not installed at {ORIGINAL}; set AIS_ORIGINAL_PYTHON")
    saved = json.loads(args.results.read_text()) if args.results and args.results.is_file() else {}
    labels = [args.label if tool == "ours" else tool for tool in args.tools]
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.archs:
            for run in range(args.first_run, args.first_run + args.runs):
                for tool, label in zip(args.tools, labels, strict=True):
                    out = Path(tmp) / f"{ARCHS[arch]}_{label}_{run}"
                    out.mkdir()
                    start = time.perf_counter()
                    if tool == "original":
                        model = train_original(arch, args.steps, args.batch, out)
                    else:
                        model = train_ours(arch, args.steps, args.batch, out, run, args.ours)
                    seconds = time.perf_counter() - start
                    score = dice_on_heldout(model)
                    key = f"{arch}|{label}|{args.steps}|{args.batch}"
                    saved.setdefault(key, []).append([score, seconds])
                    if args.results:
                        args.results.write_text(json.dumps(saved, indent=1))
                    print(f"{arch:9s} {label:10s} run {run}: Dice {score:.3f}  ({seconds:.0f} s)",
                          flush=True)  # fmt: skip
    print_table(saved, args.archs, args.steps, args.batch)


def print_table(
    saved: dict[str, list[list[float]]], archs: list[str], steps: int, batch: int
) -> None:
    """Median Dice and seconds per architecture and tool, every saved tool side by side."""
    tools = sorted({key.split("|")[1] for key in saved}, key=lambda t: (t != "original", t))
    print(f"\nmedian (runs), {steps} steps of batch {batch}, 64×64 boxes, held-out Dice at 128/255")
    print(f"{'architecture':12s} " + " ".join(f"{t:>24s}" for t in tools))
    for arch in archs:
        cells = []
        for tool in tools:
            runs = saved.get(f"{arch}|{tool}|{steps}|{batch}", [])
            if not runs:
                cells.append(f"{'-':>24s}")
                continue
            dice_ = statistics.median(r[0] for r in runs)
            secs = statistics.median(r[1] for r in runs)
            cells.append(f"{f'{dice_:.3f} ({len(runs)}) {secs:.0f} s':>24s}")
        print(f"{arch:12s} " + " ".join(cells))


if __name__ == "__main__":
    main()
