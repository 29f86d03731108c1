"""Segmentation speed per architecture: ms per 720×511 slice, seconds per 720×511×300 volume.

Every run is a fresh process (``python -m ais_torch.segment``-equivalent: imports, model load,
read, preprocessing, inference, writing — end to end), on a synthetic float32 tomogram of
720×511×``--slices`` at 10 Å; the 300-slice figure is measured when ``--slices 300``, else
extrapolated from the measured run (start-up once + per-slice time × 300). Peak RSS is the
child's own ``ru_maxrss``. ``--original`` also runs the original ``ais segment`` (Ais 1.2.40,
TensorFlow CPU) on the same tomogram with the reference kit's VGGNet M model, in the same
invocation, and prints the ratio.

    python benchmarks/segment_speed.py --slices 4 --archs vggnet_m --original
    python benchmarks/segment_speed.py --slices 30 --archs vggnet_m-original --original \
        --precisions fp32 bf16 --compile                               # the CPU fast path
    python benchmarks/segment_speed.py --slices 300 --device cuda      # on a GPU machine
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAPE_YX = (511, 720)
FULL_SLICES = 300
ORIGINAL = Path("/root/.cache/ais-original/bin/ais")
REFERENCE_MODEL = REPO.parent / "shared" / "reference" / "models" / "VGGNet_M" / "Membrane.scnm"
ARCHS = ["eman2", "unet_s", "vggnet_s", "vggnet_m"]
LOAD_BEFORE = 0.0


def make_tomogram(path: Path, n_slices: int) -> Path:
    """Smooth random density (content does not change the speed), 10 Å voxels."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    from ais_torch.formats.mrc import write_volume

    rng = np.random.default_rng(0)
    vol = gaussian_filter(rng.normal(size=(n_slices, *SHAPE_YX)).astype(np.float32), 1.0)
    return write_volume(path, vol, voxel_size_A=10.0)


def make_model(arch: str, folder: Path) -> Path:
    """The reference kit's trained VGGNet M for ``vggnet_m-original``, else random weights."""
    if arch == "vggnet_m-original":
        return REFERENCE_MODEL
    from ais_torch import archs
    from ais_torch.formats.scnm import ModelMetadata, save_scnm

    net = archs.build(arch).eval()
    meta = ModelMetadata(
        title=f"bench_{arch}",
        apix=10.0,
        normalization="global_mad",
        arch_name=net.arch_name,
        arch_hparams=dict(net.hparams),
    )
    return save_scnm(folder / f"{arch}.scnm", net, meta)


def flops_per_slice(model: Path) -> float:
    """Network FLOPs for one 720×511 slice as the original pads it (multiple of 32, +64).

    Why: both programs run the same network on the same padded slices, so FLOPs / time says
    how close each comes to the CPU's arithmetic peak — the ceiling no scheduler can beat.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ais_torch.segmentation.loading import load_models
    from ais_torch.segmentation.preprocess import padding_for

    loaded = load_models(str(model))[0][0]
    net = loaded.module.eval()
    shape = [n + sum(padding_for(n, 32)) for n in SHAPE_YX]
    x = torch.zeros(1, loaded.depth, *shape)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(x)
    return float(counter.get_total_flops())


def matmul_ceiling(dtype_name: str, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of a large matrix product on this CPU, all threads: the practical peak."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    t0 = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * n**3 * repeats / (time.perf_counter() - t0) / 1e9


def child(args: argparse.Namespace) -> None:
    """One end-to-end segmentation in this process; prints a JSON line with its numbers."""
    started = time.perf_counter()
    from ais_torch.segmentation.batch import segment

    imported = time.perf_counter()
    report = segment(
        args.model,
        args.tomogram,
        args.out,
        device=args.device,
        backend=args.backend,
        batch_size=args.batch_size if args.batch_size == "auto" else int(args.batch_size),
        tta=args.tta,
        precision=args.precision,
        compile=args.compile,
        overwrite=True,
        progress=False,
        verbose=False,
    )
    if not report.ok:
        raise SystemExit(f"segmentation failed: {report.failed}")
    done = time.perf_counter()
    print(
        "RESULT "
        + json.dumps(
            {
                "import_s": imported - started,
                "segment_s": done - imported,
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "estimate_mb": report.memory_bytes / 2**20,
            }
        )
    )


def _precision_tag(args: argparse.Namespace) -> str:
    return (", bf16" if args.precision == "bf16" else "") + (", compiled" if args.compile else "")


def run_child(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall seconds, the child's own peak RSS (MB, via wait4) and its output."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    output = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{output[-3000:]}")
    return wall, usage.ru_maxrss / 1024, output


def ours(arch: str, model: Path, tomo: Path, out: Path, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--_child", "--model", str(model), "--tomogram", str(tomo)]
    cmd += ["--out", str(out), "--device", args.device, "--backend", args.backend]
    cmd += ["--batch-size", str(args.batch_size), "--tta", str(args.tta)]
    cmd += ["--precision", args.precision] + (["--compile"] if args.compile else [])
    wall, rss, output = run_child(cmd)
    result = json.loads(output.split("RESULT ", 1)[1].splitlines()[0])
    per_slice = result["segment_s"] / args.slices
    startup = wall - result["segment_s"]
    return {
        "arch": arch,
        "name": f"ais_torch {arch} ({args.backend}{_precision_tag(args)})",
        "ms_slice": per_slice * 1000,
        "wall": wall,
        "full": wall if args.slices == FULL_SLICES else startup + per_slice * FULL_SLICES,
        "rss": rss,
        "estimate": result["estimate_mb"],
    }


def original(tomo: Path, out: Path, args: argparse.Namespace) -> dict:
    """The original ``ais segment`` on CPU (TensorFlow), same model and tomogram."""
    cmd = [str(ORIGINAL), "segment", "-m", str(REFERENCE_MODEL), "-d", str(tomo)]
    cmd += ["-ou", str(out), "-gpu", "0", "-overwrite", "1"]
    if args.tta > 1:
        cmd += ["-tta", str(args.tta)]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}
    wall, rss, output = run_child(cmd, env)
    # its own per-tomogram clock, "(mm:ss this tomo)": preprocessing + inference, 1 s steps
    hit = re.findall(r"(\d+):(\d+) this tomo", output)
    own = int(hit[-1][0]) * 60 + int(hit[-1][1]) if hit else None
    if not (out / f"{tomo.stem}__Membrane.mrc").exists():
        raise SystemExit(f"the original wrote no output:\n{output[-3000:]}")
    per_slice = (own if own is not None else wall) / args.slices
    startup = wall - (own if own is not None else 0)
    return {
        "arch": "vggnet_m-original",
        "name": "original ais segment (TF CPU)",
        "ms_slice": per_slice * 1000,
        "wall": wall,
        "full": wall if args.slices == FULL_SLICES else startup + per_slice * FULL_SLICES,
        "rss": rss,
        "estimate": float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=ARCHS, help="presets (random weights)")
    parser.add_argument("--slices", type=int, default=FULL_SLICES, help="volume depth to run")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--backends",
        nargs="+",
        default=["torch"],
        choices=["torch", "onnx"],
        help="run each architecture with each backend (onnx: exported once, outside the timing)",
    )
    parser.add_argument("--backend", default="torch", help=argparse.SUPPRESS)
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["fp32"],
        choices=["fp32", "bf16"],
        help="torch runs per precision (bf16: autocast; fast on CPUs with AVX512-BF16/AMX)",
    )
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also run each torch precision with compile=true (compile time counts as run time)",
    )
    parser.add_argument("--batch-size", default="auto", help="slices per call (auto: by memory)")
    parser.add_argument("--tta", type=int, default=1)
    parser.add_argument("--original", action="store_true", help="also time the original Ais")
    parser.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--tomogram", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        child(args)
        return

    global LOAD_BEFORE
    LOAD_BEFORE = os.getloadavg()[0]
    rows: list[dict] = []
    flops: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="segment_speed_") as tmp_name:
        tmp = Path(tmp_name)
        tomo = make_tomogram(tmp / "bench.mrc", args.slices)
        names = list(args.archs)
        if args.original and "vggnet_m-original" not in names:
            names.append("vggnet_m-original")
        for arch in names:
            model = make_model(arch, tmp)
            flops[arch] = flops_per_slice(model)
            compiles = [False, True] if args.compile else [False]
            runs = [(b, p, c) for b in args.backends for p in args.precisions for c in compiles]
            compile_requested = args.compile
            for backend, precision, compiled in runs:
                if backend == "onnx" and (precision != "fp32" or compiled):
                    continue  # onnxruntime runs the exported float32 graph
                args.backend, args.precision, args.compile = backend, precision, compiled
                if backend == "onnx":  # export once, outside the timing (cached by hash)
                    from ais_torch.segmentation.loading import as_onnx, load_models

                    as_onnx(load_models(str(model))[0][0])
                out = tmp / f"out_{arch}_{backend}_{precision}"
                rows.append(ours(arch, model, tomo, out, args))
                print(f"  {rows[-1]['name']}: {rows[-1]['ms_slice']:.0f} ms/slice", flush=True)
            args.compile = compile_requested
        if args.original:
            if not ORIGINAL.exists():
                raise SystemExit(f"--original: {ORIGINAL} not found")
            rows.append(original(tomo, tmp / "out_original", args))
            print(f"  {rows[-1]['name']}: {rows[-1]['ms_slice']:.0f} ms/slice", flush=True)

    ceiling = (
        {d: matmul_ceiling(d) for d in ("float32", "bfloat16")} if args.device == "cpu" else {}
    )
    z = args.slices
    print()
    print(
        f"Segmentation speed, {SHAPE_YX[1]}x{SHAPE_YX[0]} slices, device={args.device}, "
        f"tta={args.tta}, batch={args.batch_size}, {os.cpu_count()} CPU threads, "
        f"load average before the run {LOAD_BEFORE:.1f}"
    )
    kind = "measured" if z == FULL_SLICES else f"extrapolated from {z} slices"
    print(
        f"| run | ms / slice | network GFLOP/s | s end-to-end ({z} slices) | "
        f"s / {FULL_SLICES}-slice volume ({kind}) | peak RSS MB | printed bound MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        gflops = flops[r["arch"]] / (r["ms_slice"] / 1000) / 1e9
        print(
            f"| {r['name']} | {r['ms_slice']:.0f} | {gflops:.0f} | {r['wall']:.1f} | "
            f"{r['full']:.0f} | {r['rss']:.0f} | {r['estimate']:.0f} |"
        )
    for arch, f in flops.items():
        print(f"{arch}: {f / 1e9:.0f} GFLOP per padded slice (torch.utils.flop_counter)")
    if args.device == "cpu":
        print(
            f"this CPU's ceiling (torch.mm 2048², all threads): float32 {ceiling['float32']:.0f} "
            f"GFLOP/s, bfloat16 {ceiling['bfloat16']:.0f} GFLOP/s"
        )
    by_name = {r["name"]: r for r in rows}
    ref = by_name.get("original ais segment (TF CPU)")
    for name, mine in by_name.items():
        if ref and name.startswith("ais_torch vggnet_m-original"):
            label = name.removeprefix("ais_torch vggnet_m-original ")
            print(
                f"VGGNet M, same .scnm and tomogram, {label}: ais_torch is "
                f"{ref['ms_slice'] / mine['ms_slice']:.2f}x the original's speed per slice, "
                f"{ref['full'] / mine['full']:.2f}x per {FULL_SLICES}-slice volume end to end"
            )


if __name__ == "__main__":
    main()
