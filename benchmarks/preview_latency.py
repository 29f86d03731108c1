"""Live-preview latency of the napari widget: model load, first slice, slice change, cached slice.

    python benchmarks/preview_latency.py                      # UNet S, Eman2, VGGNet S/M, 512²
    python benchmarks/preview_latency.py --archs unet_s --size 1024 --device cuda

Random weights (the speed of a network does not depend on them), a random 10 Å tomogram of
``--depth`` × size × size written as MRC and read memory-mapped as the widget does. "first" is
the first slice after loading (what a user waits for after training or opening a model);
"change" the mean over the next ``--changes`` new slices; "cached" a slice already seen.
The latency target (issue 14): first preview of a 512² slice with UNet S or Eman2 ≤ 1 s on CPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ais_torch import archs
from ais_torch.formats.mrc import read_volume, write_volume
from ais_torch.formats.scnm import ModelMetadata, save_scnm
from ais_torch.napari.preview import SlicePredictor

DEFAULT_ARCHS = ("unet_s", "eman2", "vggnet_s", "vggnet_m")


def model_file(folder: Path, arch: str) -> Path:
    torch.manual_seed(0)
    net = archs.build(arch).eval()
    meta = ModelMetadata(
        title=arch,
        apix=10.0,
        box_size=64,
        normalization="global_mad",
        arch_name=net.arch_name,
        arch_hparams=dict(net.hparams),
    )
    return save_scnm(folder / f"{arch}.scnm", net, meta)


def measure(volume_path: Path, model: Path, device: str, changes: int) -> dict[str, float]:
    volume = read_volume(volume_path, check_finite=False)
    t0 = time.perf_counter()
    predictor = SlicePredictor(volume, model, device=device)
    t1 = time.perf_counter()
    z = volume.shape[0] // 2
    predictor.predict(z)
    t2 = time.perf_counter()
    for dz in range(1, changes + 1):
        predictor.predict(z + dz)
    t3 = time.perf_counter()
    predictor.predict(z)
    t4 = time.perf_counter()
    return {
        "load": t1 - t0,
        "first": t2 - t1,
        "change": (t3 - t2) / changes,
        "cached": t4 - t3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", nargs="+", default=list(DEFAULT_ARCHS))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--depth", type=int, default=32)
    parser.add_argument("--changes", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = as is)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rng = np.random.default_rng(0)
        shape = (args.depth, args.size, args.size)
        tomo = write_volume(
            folder / "tomo.mrc", rng.normal(size=shape).astype(np.float32), voxel_size_A=10.0
        )
        device = args.device
        print(
            f"slice {args.size}x{args.size}, device {device}, torch threads "
            f"{torch.get_num_threads()}"
        )
        print(
            "| architecture | model load (s) | first preview (s) | slice change (s) | cached (s) |"
        )
        print("| --- | ---: | ---: | ---: | ---: |")
        for arch in args.archs:
            t = measure(tomo, model_file(folder, arch), device, args.changes)
            print(
                f"| {arch} | {t['load']:.2f} | {t['first']:.2f} | {t['change']:.2f} | "
                f"{t['cached']:.4f} |"
            )


if __name__ == "__main__":
    main()
