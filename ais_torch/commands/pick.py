"""``ais-torch pick data=DIR feature=NAME out=DIR``: particle coordinates per tomogram.

Reads every ``<tomo>__<feature>.mrc`` segmentation, picks it with the chosen method (see
:mod:`ais_torch.picking.settings`) and writes ``<tomo>__<feature>_coords.txt`` (the paper's
integer x y z), ``.star`` (RELION 3 voxel + RELION 5 centred-Å columns) and optionally ``.json``
(copick, Å). Tomograms run in parallel processes (``workers=``); each output is written atomically,
and a tomogram without particles still gets valid, empty files.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from ais_torch.commands.shell import Key, hydra_defaults, hydra_main, render_help, run_cli
from ais_torch.config import config_dir
from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.copick import CopickOptions
from ais_torch.picking.batch import (
    FORMATS,
    OutputSpec,
    TomoResult,
    find_segmentations,
    pick_all,
    pick_copick,
)
from ais_torch.picking.context import ContextSettings
from ais_torch.picking.settings import PickSettings

log = logging.getLogger("ais_torch.pick")

KEYS = (
    Key("data", "segmentations: a folder, a glob ('seg/*.mrc'), one .mrc file, or a copick "
        "project config .json (its segmentations; picks are written into it too)", "file/folder",
        "data=segmented/"),
    Key("feature", "pick files named <tomo>__<feature>.mrc", "name", "feature=Antibody"),
    Key("out", "output folder: <tomo>__<feature>_coords.{txt,star,json}", "folder",
        "out=picks/"),
    Key("method", "watershed (the paper's six steps) | blob (the original ais pick) | filament",
        "", "method=blob"),
    Key("threshold", "voxels above it count; a probability 0-1 is read as 255 x p",
        "grey level 0-255", "threshold=0.5"),
    Key("spacing", "minimum particle spacing (blob: peak distance, filament: step)", "Å",
        "spacing=100"),
    Key("spacing_px", "... the same in voxels (wins over spacing)", "voxels", "spacing_px=10"),
    Key("size", "minimum particle volume: smaller groups are dust", "Å³", "size=50000"),
    Key("size_px", "... the same in voxels (wins over size)", "voxels", "size_px=30"),
    Key("margin", "drop picks closer than this to any edge, z too (null = watershed 0, blob and "
        "filament 16)", "voxels", "margin=8"),
    Key("binning", "block-mean binning before picking (faster); coordinates stay unbinned",
        "factor", "binning=2"),
    Key("centroid", "blob: one pick per connected component, at its centroid", "bool",
        "centroid=true"),
    Key("orient", "null | normal | long-axis: Euler angles from each blob's shape", "",
        "orient=normal"),
    Key("orient_sign", "z | center | out: which way the shape axis points", "",
        "orient_sign=out"),
    Key("filament_length", "filament: minimum length", "Å", "filament_length=300"),
    Key("filament_length_px", "... the same in voxels", "voxels", "filament_length_px=30"),
    Key("twist", "filament: rlnAngleRot increment per point", "degrees", "twist=-30"),
    Key("min_particles", "write no files for tomograms with fewer picks (0 = always write)",
        "particles", "min_particles=1"),
    Key("voxel_size_A", "override the segmentation header's voxel size", "Å",
        "voxel_size_A=10"),
    Key("formats", "any of txt (integer x y z), star (RELION 3 + 5), json (copick)", "list",
        "formats=[txt,star,json]"),
    Key("workers", "tomograms picked in parallel", "processes", "workers=4"),
    Key("context", "columns from the tomogram's other features: F:distance (signed, to F's "
        "surface; negative inside), F:mean@R / F:max@R (F's value 0-1 within R nm), F:nearest "
        "(to F's nearest pick); docs/picking.md", "list",
        "context=[Membrane:distance,Carbon:mean@5]"),
    Key("keep", "keep only picks passing every rule (ITEM OP NUMBER; OP < <= > >=; quote it)",
        "list", "'keep=[\"15<=Membrane:distance<=30\"]'"),
    Key("context_threshold", "F:distance: F's surface is where its segmentation crosses this "
        "(as threshold)", "0-1 or 0-255", "context_threshold=0.5"),
    Key("context_max_nm", "distances are capped at this (the cap = this far or farther, or none)",
        "nm", "context_max_nm=200"),
    Key("copick.object", "json / copick data: pickable object the picks belong to (null = the "
        "feature)", "name", "copick.object=ribosome"),
    Key("copick.object_name", "older spelling of copick.object", "name",
        "copick.object_name=ribosome"),
    Key("copick.user_id", "json / copick data: user id (copick data: also preferred when "
        "reading)", "", "copick.user_id=me"),
    Key("copick.session_id", "json / copick data: session id", "", "copick.session_id=1"),
    Key("copick.runs", "copick data: runs to pick (null = all)", "list", "copick.runs=[TS_001]"),
    Key("copick.voxel_spacing", "copick data: spacing of the segmentation (null = any)", "Å",
        "copick.voxel_spacing=10"),
)  # fmt: skip
"""Every key of conf/pick/pick.yaml, once: ``--help`` is rendered from it."""

USAGE = "usage: ais-torch pick data=SEGMENTATIONS feature=NAME out=FOLDER [key=value ...]"
ABOUT = """\
Pick particles from <tomo>__<feature>.mrc segmentations (grey 0-255 as segment writes, or
float 0-1) and write <tomo>__<feature>_coords.{txt,star[,json]} per tomogram. Also runs as
python -m ais_torch.pick. Full reference: docs/picking.md."""
HYDRA_FILES = (".pick_config", "pick.log")
"""What Hydra puts into ``out`` before the command runs (the resolved config and the log)."""


def settings_from_cfg(cfg: DictConfig | dict) -> PickSettings:
    """The picking settings of a config (``spacing`` → ``spacing_A`` etc.), validated."""
    c = cfg
    return PickSettings(
        method=str(c["method"]),
        threshold=c["threshold"],
        spacing_A=float(c["spacing"]),
        spacing_px=c.get("spacing_px"),
        size_A3=float(c["size"]),
        size_px=c.get("size_px"),
        margin=c.get("margin"),
        binning=c.get("binning", 1),
        centroid=bool(c.get("centroid", False)),
        orient=c.get("orient"),
        orient_sign=str(c.get("orient_sign", "z")),
        filament_length_A=float(c.get("filament_length", 500.0)),
        filament_length_px=c.get("filament_length_px"),
        twist=float(c.get("twist", 0.0)),
    ).checked()


def context_from_cfg(cfg: DictConfig) -> ContextSettings:
    """The ``context``/``keep`` lists and their two settings, parsed and checked."""

    def listed(key: str) -> list[str] | str | None:
        value = cfg.get(key)
        return list(value) if OmegaConf.is_list(value) else value

    return ContextSettings.parse(
        listed("context"),
        listed("keep"),
        threshold=cfg.get("context_threshold", 0.5),
        max_nm=cfg.get("context_max_nm", 100.0),
    )


def run(cfg: DictConfig) -> list[TomoResult]:
    """The whole command on a resolved config; raises a one-line error when nothing could run."""
    settings = settings_from_cfg(cfg)
    formats = tuple(str(f).lower() for f in (cfg.formats or ()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(f"formats={list(formats)} must list some of {', '.join(FORMATS)}")
    workers = int(cfg.workers)
    if workers < 1:
        raise ConfigError(f"workers={workers} must be ≥ 1")
    copick = cfg.get("copick") or {}
    options = CopickOptions.from_mapping(
        OmegaConf.to_container(copick) if isinstance(copick, DictConfig) else copick
    )
    spec = OutputSpec(
        folder=Path(str(cfg.out)),
        formats=formats,
        min_particles=int(cfg.get("min_particles") or 0),
        voxel_size_A=cfg.get("voxel_size_A"),
        object_name=options.object,
        user_id=options.user_id,
        session_id=options.session_id,
        context=context_from_cfg(cfg),
    )
    if str(cfg.data).lower().endswith(".json"):
        results = pick_copick(str(cfg.data), str(cfg.feature), settings, spec, options)
    else:
        segmentations = find_segmentations(cfg.data, cfg.feature)
        results = pick_all(segmentations, settings, spec, workers=workers)
    failed = [r for r in results if r.error]
    for r in failed:
        log.error("%s: %s", r.segmentation.name, r.error)
    if failed and len(failed) == len(results):
        raise AisInputError(f"all {len(results)} segmentation(s) failed; first: {failed[0].error}")
    return results


def summary(results: Sequence[TomoResult], folder: Path) -> str:
    width = max([len(r.segmentation.name) for r in results] + [12])
    lines = [f"{'segmentation':<{width}}  particles  output"]
    for r in results:
        status = r.error or (", ".join(p.name for p in r.files) or "not written (min_particles)")
        if r.n_dropped and not r.error:
            status += f" ({r.n_dropped} removed by keep=)"
        lines.append(f"{r.segmentation.name:<{width}}  {r.n_particles:>9}  {status}")
    total = sum(r.n_particles for r in results if not r.error)
    dropped = sum(r.n_dropped for r in results if not r.error)
    removed = f", {dropped} removed by keep=" if dropped else ""
    lines.append(f"{len(results)} tomogram(s), {total} particle(s){removed} → {folder}")
    return "\n".join(lines)


def help_text(overrides: Sequence[str] = ()) -> str:
    """``ais-torch pick --help``: every key with meaning, unit, default and an example."""
    defaults = hydra_defaults(str(config_dir() / "pick"), "pick", KEYS, overrides)
    return render_help(USAGE, ABOUT, KEYS, defaults=defaults)


def remove_if_unused(folder: Path) -> None:
    """After a failed run: drop ``folder`` when it holds only what Hydra put there for it.

    Hydra creates ``out`` (for the config copy and the log) before the command can check its
    inputs; a run that wrote no picks should not leave that behind.
    """
    if not folder.is_dir() or any(p.name not in HYDRA_FILES for p in folder.iterdir()):
        return
    for handler in logging.getLogger().handlers:  # the log file lives in folder: close it first
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == (
            folder.resolve()
        ):
            handler.close()
            logging.getLogger().removeHandler(handler)
    shutil.rmtree(folder, ignore_errors=True)


@hydra.main(version_base="1.3", config_path=str(config_dir() / "pick"), config_name="pick")
def _hydra_main(cfg: DictConfig) -> None:
    out = Path(str(cfg.out))

    def _run() -> None:
        missing = [k for k in ("data", "feature") if OmegaConf.is_missing(cfg, k)]
        if missing:
            raise ConfigError(
                f"missing {' and '.join(f'{k}=' for k in missing)}; "
                "e.g. ais-torch pick data=segmented/ feature=Antibody out=picks/"
            )
        results = run(cfg)
        print(summary(results, out))
        if any(r.error for r in results):
            raise SystemExit(1)

    try:
        run_cli(_run)
    except BaseException:
        remove_if_unused(out)
        raise


def main(argv: Sequence[str] | None = None) -> None:
    """``ais-torch pick key=value ...`` (Hydra overrides; ``--help`` lists them)."""
    hydra_main(argv, _hydra_main, help_text, run_dir="out")


if __name__ == "__main__":
    main()
