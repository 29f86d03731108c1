"""``ais-torch segment model=M.scnm data=TOMOS/ out=SEG/``: segment whole tomograms.

The shell: Hydra config (its own root, ``conf/segment/``, so ``data`` is a plain key) →
:func:`ais_torch.segmentation.batch.segment` → one line per failure.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ais_torch.commands.shell import Key, hydra_defaults, hydra_main, render_help, run_cli
from ais_torch.errors import ConfigError

if TYPE_CHECKING:
    from ais_torch.segmentation.batch import SegmentReport

# -- command line --------------------------------------------------------------------------------
KEYS = (
    Key("model", "model file(s): .scnm, .scnmgroup, .onnx or .h5; several as a list",
        "file", "model=[Membrane.scnm,Carbon.scnm]"),
    Key("data", "tomograms: one .mrc or .zarr (OME-Zarr), a folder, a glob, a .txt list of "
        "files, or a copick project config .json", "file/folder", "data=tomograms/"),
    Key("out", "output folder; writes <out>/<tomogram>__<model title>.mrc (.zarr with "
        "format=zarr); a name ending in .zarr is one OME-Zarr store (one tomogram, one model)",
        "folder", "out=segmented/"),
    Key("format", "mrc | zarr: OME-Zarr stores with the same values and the voxel size "
        "(needs pip install \"ais_torch[copick]\")", "", "format=zarr"),
    Key("pyramid", "format=zarr: levels written, each a 2x block mean of the one before "
        "(1 = full resolution only)", "levels", "pyramid=3"),
    Key("interactions", "named rule set from conf/segment/interactions/ applied when several "
        "models run (competition, avoid/colocalize rules); keys inside: interactions.<key>",
        "name", "interactions=antibody_platforms"),
    Key("mode", "ais = whole slices, the original CLI's recipe; tiled = the GUI's tiles", "",
        "mode=tiled"),
    Key("tta", "test-time augmentation: orientations averaged (rot90 ×4, then x-flipped)",
        "1-8 orientations", "tta=4"),
    Key("dtype", "uint8 = grey 0-255 like the original (MRC mode 6); float32 = probabilities",
        "", "dtype=float32"),
    Key("data_apix", "tomogram voxel size (null = the MRC header; 0 = never rescale)", "Å",
        "data_apix=13.48"),
    Key("model_apix", "pixel size to rescale to (null = the model's; 0 = never rescale)", "Å",
        "model_apix=10"),
    Key("box_size", "tiled mode: tile size (null = the model's training box)", "pixels",
        "box_size=128"),
    Key("overlap", "tiled mode: fraction of a tile dropped as margin (null = the model's, 0.2)",
        "fraction 0-0.9", "overlap=0.25"),
    Key("model_depth", "input slices of 2.5D/3D models (null = the model's metadata)", "slices",
        "model_depth=3"),
    Key("slab_tile", "3D slab models (ezm-3d): XY tile (null = 512 as the original; -1 = whole "
        "slices)", "pixels", "slab_tile=256"),
    Key("slab_overlap", "3D slab models: px dropped on each side of an XY tile (null = 64)",
        "pixels", "slab_overlap=32"),
    Key("z_stride", "3D slab models: slices between slab starts (null = half the model's depth)",
        "slices", "z_stride=4"),
    Key("z_range", "segment only slices [first, stop); the others are written as 0", "slices",
        "z_range=[20,60]"),
    Key("overwrite", "false = skip outputs that exist (a rerun resumes); true = redo them",
        "bool", "overwrite=true"),
    Key("device", "auto (cuda:<LOCAL_RANK> when a GPU is visible, else cpu) | cpu | cuda:1 …",
        "", "device=cpu"),
    Key("precision", "auto (bf16 on GPUs that support it, fp32 on CPU) | fp32 | bf16", "",
        "precision=fp32"),
    Key("backend", "auto (torch; onnxruntime for .onnx files) | torch | onnx", "",
        "backend=onnx"),
    Key("compile", "torch.compile the networks: ~10-30 s once, then faster", "bool",
        "compile=true"),
    Key("channels_last", "null = on for 2D/2.5D networks; false = NCHW memory layout", "bool",
        "channels_last=false"),
    Key("batch_size", "slices per network call; auto = what fits ~2 GB of activations",
        "slices", "batch_size=8"),
    Key("slab", "slices read per step; auto = up to 16 (256 MB); bounds memory", "slices",
        "slab=4"),
    Key("prefetch", "slabs queued between the reader, compute and writer threads", "slabs",
        "prefetch=1"),
    Key("postprocess", "apply the interactions/competition step when several models run",
        "bool", "postprocess=false"),
    Key("locks", ".<output>.lock files so independent runs on one folder never collide",
        "bool", "locks=false"),
    Key("progress", "progress bars (overall and per tomogram) with ETA", "bool",
        "progress=false"),
    Key("copick.runs", "copick data: runs to segment (null = all)", "list",
        "copick.runs=[TS_001,TS_002]"),
    Key("copick.voxel_spacing", "copick data: spacing to read (null = nearest the model's pixel "
        "size, within 2x)", "Å", "copick.voxel_spacing=10.012"),
    Key("copick.tomo_type", "copick data: tomogram type (null = the only one)", "",
        "copick.tomo_type=wbp"),
    Key("copick.user_id", "copick data: user id the segmentations are written under", "",
        "copick.user_id=me"),
    Key("copick.session_id", "copick data: session id the segmentations are written under", "",
        "copick.session_id=1"),
)  # fmt: skip
"""Every key of conf/segment/segment.yaml, once: ``--help`` is rendered from it."""

USAGE = "usage: ais-torch segment model=M.scnm data=TOMOGRAMS out=FOLDER [key=value ...]"
ABOUT = """\
Segment whole tomograms: one <tomogram>__<title>.mrc (or OME-Zarr .zarr) per model, the
original Ais's recipe by default. Reruns skip finished outputs. Also runs as
python -m ais_torch.segment.
Full reference: docs/segmentation.md; --cfg job prints the composed config."""


def help_text(overrides: Sequence[str] = ()) -> str:
    """``ais-torch segment --help``: every key with meaning, unit, default and an example."""
    from ais_torch.config import config_dir

    root = str(config_dir() / "segment")
    defaults = hydra_defaults(root, "segment", KEYS, overrides)
    return render_help(USAGE, ABOUT, KEYS, defaults=defaults)


def run_config(cfg: Any) -> SegmentReport:
    """Run :func:`segment` from the ``segment`` Hydra config (a DictConfig or a dict)."""
    from omegaconf import OmegaConf

    from ais_torch.segmentation.batch import segment

    if not isinstance(cfg, dict):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    missing = [k for k in ("model", "data", "out") if cfg.get(k) in (None, "", "???")]
    if missing:
        raise ConfigError(
            f"missing {', '.join(missing)}; e.g. ais-torch segment model=Membrane.scnm "
            "data=tomograms/ out=segmentations/"
        )
    z_range = cfg.get("z_range")
    return segment(
        cfg["model"],
        cfg["data"],
        cfg["out"],
        mode=cfg["mode"],
        tta=cfg["tta"],
        batch_size=cfg.get("batch_size", "auto"),
        slab=cfg.get("slab", "auto"),
        dtype=cfg["dtype"],
        box_size=cfg.get("box_size"),
        overlap=cfg.get("overlap"),
        slab_tile=cfg.get("slab_tile"),
        slab_overlap=cfg.get("slab_overlap"),
        z_stride=cfg.get("z_stride"),
        data_apix=cfg.get("data_apix"),
        model_apix=cfg.get("model_apix"),
        model_depth=cfg.get("model_depth"),
        z_range=z_range,
        overwrite=bool(cfg["overwrite"]),
        device=str(cfg["device"]),
        precision=str(cfg["precision"]),
        backend=str(cfg["backend"]),
        compile=bool(cfg["compile"]),
        channels_last=cfg.get("channels_last"),
        interactions=cfg.get("interactions"),
        postprocess="auto" if cfg.get("postprocess", True) else None,
        locks=bool(cfg["locks"]),
        prefetch=int(cfg["prefetch"]),
        progress=bool(cfg["progress"]),
        copick=cfg.get("copick"),
        format=str(cfg.get("format") or "mrc"),
        pyramid=cfg.get("pyramid"),
    )


EXIT_BUSY = 75
"""EX_TEMPFAIL: every failure-free output not written is locked by another live run; run again
later (a lock without heartbeat for AIS_TORCH_LOCK_TIMEOUT_S is then taken over)."""


def _finish_cli(report: SegmentReport) -> None:
    """Failures: one ``error:`` line each, exit code 1 (the batch itself went on); outputs
    still locked by another run: one ``busy:`` line each, exit code 75 (nothing failed)."""
    from ais_torch.segmentation.scheduling import lock_path, read_owner

    for path in report.busy:
        owner = read_owner(lock_path(path))
        held = f"locked by {owner.describe()}" if owner else "its lock was released meanwhile"
        print(f"busy: {path} ({held})", file=sys.stderr)
    if report.failed:
        for _, line in report.failed:
            print(f"error: {line}", file=sys.stderr)
        print(f"{len(report.failed)} tomogram(s) failed (listed above)", file=sys.stderr)
        raise SystemExit(1)
    if report.busy:
        print(
            f"{len(report.busy)} output(s) busy in another run (listed above); run again when "
            "it ends — a lock without heartbeat is taken over after AIS_TORCH_LOCK_TIMEOUT_S",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_BUSY)


def _hydra_main(cfg: Any) -> None:
    run_cli(lambda: _finish_cli(run_config(cfg)))


def main(argv: Sequence[str] | None = None) -> None:
    """``ais-torch segment key=value ...`` (Hydra overrides; ``--help`` lists them)."""
    import hydra

    from ais_torch.config import config_dir

    root = str(config_dir() / "segment")
    app = hydra.main(version_base="1.3", config_path=root, config_name="segment")(_hydra_main)
    hydra_main(argv, app, help_text)


if __name__ == "__main__":
    main()
