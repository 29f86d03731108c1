"""Seconds per training epoch per architecture on the paper's training-set size.

The paper (Table 1) trained on 53 positive 64x64 boxes x 10 copies with negatives at 1.3:1
(= 530 + 689 = 1219 samples), batch 32, 50 epochs, on an NVIDIA Quadro P2200. This script times
the same number of optimisation steps on random boxes (speed does not depend on content) and
prints seconds per epoch and the projected 50-epoch time beside the paper's.

    python benchmarks/train_speed.py                 # all paper architectures, this machine
    python benchmarks/train_speed.py --device cuda --precision bf16-mixed
    python benchmarks/train_speed.py --archs vggnet_m unet_s --epochs 2
"""

from __future__ import annotations

import argparse
import time

import torch

from ais_torch import archs

# Paper Table 1 (50 epochs, Quadro P2200): total training time in seconds.
PAPER_SECONDS = {
    "eman2": 38,
    "inceptionnet": 462,
    "unet_s": 132,
    "vggnet_s": 91,
    "vggnet_m": None,  # not in the paper; ais_torch's and the original's default since 1.0.36
    "resnet_paper": 1533,
    "pix2pix_paper": 793,
}
N_SAMPLES = 530 + 689
BOX = 64
BATCH = 32


def time_epochs(name: str, device: str, precision: str, epochs: int, steps: int | None) -> float:
    """Mean wall seconds of one epoch (after one warm-up epoch), Lightning loop included.

    With ``steps``, each epoch is cut to that many batches and the time is scaled to a full
    epoch (for slow CPUs; the per-step cost does not change within an epoch).
    """
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    x = torch.randn(N_SAMPLES, 1, BOX, BOX)
    y = (torch.rand(N_SAMPLES, 1, BOX, BOX) > 0.8).float()
    loader = DataLoader(TensorDataset(x, y), batch_size=BATCH, shuffle=True)
    model = archs.build(name)
    timings: list[float] = []

    class Timer(L.Callback):
        def on_train_epoch_start(self, trainer, module):
            if device == "cuda":
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            if device == "cuda":
                torch.cuda.synchronize()
            timings.append(time.perf_counter() - self.t0)

    n_batches = -(-N_SAMPLES // BATCH)
    trainer = L.Trainer(
        max_epochs=epochs + 1,
        limit_train_batches=steps or 1.0,
        accelerator="gpu" if device == "cuda" else "cpu",
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Timer()],
    )
    trainer.fit(model, loader)
    per_epoch = sum(timings[1:]) / max(len(timings) - 1, 1)
    return per_epoch * n_batches / steps if steps else per_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="*", default=list(PAPER_SECONDS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs (plus one warm-up)")
    parser.add_argument("--steps", type=int, default=None, help="batches per timed epoch")
    args = parser.parse_args()

    print(
        f"{N_SAMPLES} samples of {BOX}x{BOX}, batch {BATCH}, device {args.device}, "
        f"precision {args.precision}, torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    print(
        "| arch | params (Keras count) | s/epoch | 50 epochs (s) | paper: 50 epochs on P2200 (s) |"
    )
    print("|---|---|---|---|---|")
    for name in args.archs:
        params = archs.build(name).n_parameters  # Keras count_params (Pix2pix: generator)
        seconds = time_epochs(name, args.device, args.precision, args.epochs, args.steps)
        paper = PAPER_SECONDS.get(name) or "–"
        print(f"| {name} | {params:,} | {seconds:.2f} | {50 * seconds:.0f} | {paper} |", flush=True)


if __name__ == "__main__":
    main()
