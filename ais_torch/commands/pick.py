"""``python -m ais_torch.pick data=DIR feature=NAME out=DIR``: particle coordinates per tomogram.

Reads every ``<tomo>__<feature>.mrc`` segmentation, picks it with the chosen method (see
:mod:`ais_torch.picking.settings`) and writes ``<tomo>__<feature>_coords.txt`` (the paper's
integer x y z), ``.star`` (RELION 3 voxel + RELION 5 centred-Å columns) and optionally ``.json``
(copick, Å). Tomograms run in parallel processes (``workers=``); each output is written atomically,
and a tomogram without particles still gets valid, empty files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from ais_torch.commands.shell import run_cli
from ais_torch.config import config_dir
from ais_torch.errors import AisError, AisInputError, ConfigError
from ais_torch.picking.settings import PickSettings

log = logging.getLogger("ais_torch.pick")
FORMATS = ("txt", "star", "json")
SUFFIX = {"txt": "_coords.txt", "star": "_coords.star", "json": "_coords.json"}


@dataclass(frozen=True)
class OutputSpec:
    folder: Path
    formats: tuple[str, ...]
    min_particles: int = 0
    voxel_size_A: float | None = None
    object_name: str | None = None
    user_id: str = "ais_torch"
    session_id: str = "0"


@dataclass(frozen=True)
class TomoResult:
    segmentation: Path
    n_particles: int
    files: tuple[Path, ...]
    error: str | None = None


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


def find_segmentations(data: str | os.PathLike, feature: str) -> list[Path]:
    """``<tomo>__<feature>.mrc`` files under a folder, matching a glob, or one given file."""
    from ais_torch.formats.naming import find_results

    return find_results(data, [str(feature)])


def pick_one(segmentation: Path, settings: PickSettings, spec: OutputSpec) -> TomoResult:
    """Pick one segmentation and write its outputs (runs in a worker process)."""
    import numpy as np

    from ais_torch.formats.mrc import read_volume
    from ais_torch.picking.settings import pick_array

    try:
        volume = read_volume(segmentation, voxel_size_A=spec.voxel_size_A)
        picks = pick_array(np.asarray(volume.data), volume.voxel_size_A, settings)
        if len(picks) < spec.min_particles:
            return TomoResult(segmentation, len(picks), ())
        files = write_picks(segmentation, picks, volume.voxel_size_A, volume.shape, spec)
        return TomoResult(segmentation, len(picks), files)
    except AisError as err:
        return TomoResult(segmentation, 0, (), error=str(err))


def write_picks(
    segmentation: Path, picks: Any, voxel_size_A: float, shape: Sequence[int], spec: OutputSpec
) -> tuple[Path, ...]:
    """All requested formats for one tomogram, each atomically."""
    from ais_torch.formats.coordinates import write_coordinates_txt, write_copick_json, write_star
    from ais_torch.formats.naming import split_name
    from ais_torch.picking.settings import particle_ids

    stem = segmentation.name[: -len(".mrc")]
    tomo_name, feature = split_name(segmentation)
    files = []
    if "txt" in spec.formats:
        files.append(write_coordinates_txt(spec.folder / f"{stem}{SUFFIX['txt']}", picks.xyz))
    if "star" in spec.formats:
        extra = {picks.score_name: picks.score, **picks.columns}
        extra["aisParticleID"] = particle_ids(segmentation.name, picks.xyz, picks.angles)
        files.append(
            write_star(
                spec.folder / f"{stem}{SUFFIX['star']}",
                picks.xyz,
                tomo_name=tomo_name,
                voxel_size_A=voxel_size_A,
                shape_zyx=tuple(shape),
                angles=picks.angles,
                extra=extra,
            )
        )
    if "json" in spec.formats:
        from ais_torch.picking.orientation import euler_to_matrix

        files.append(
            write_copick_json(
                spec.folder / f"{stem}{SUFFIX['json']}",
                picks.xyz,
                voxel_size_A=voxel_size_A,
                object_name=spec.object_name or feature,
                run_name=tomo_name,
                user_id=spec.user_id,
                session_id=spec.session_id,
                scores=picks.score,
                rotations=None if picks.angles is None else euler_to_matrix(picks.angles),
            )
        )
    return tuple(files)


def pick_all(
    segmentations: Sequence[Path],
    settings: PickSettings,
    spec: OutputSpec,
    workers: int = 1,
    progress: bool = True,
) -> list[TomoResult]:
    """Pick every segmentation, ``workers`` processes at a time; results in input order."""
    from tqdm import tqdm

    spec.folder.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(segmentations), unit="tomo", desc="picking", disable=not progress)
    results: dict[Path, TomoResult] = {}
    try:
        if workers <= 1 or len(segmentations) == 1:
            for seg in segmentations:
                results[seg] = pick_one(seg, settings, spec)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(segmentations))) as pool:
                futures = {pool.submit(pick_one, s, settings, spec): s for s in segmentations}
                for future in as_completed(futures):
                    results[futures[future]] = future.result()
                    bar.update()
    finally:
        bar.close()
    return [results[s] for s in segmentations]


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
    segmentations = find_segmentations(cfg.data, cfg.feature)
    copick = cfg.get("copick") or {}
    spec = OutputSpec(
        folder=Path(str(cfg.out)),
        formats=formats,
        min_particles=int(cfg.get("min_particles") or 0),
        voxel_size_A=cfg.get("voxel_size_A"),
        object_name=copick.get("object_name"),
        user_id=str(copick.get("user_id", "ais_torch")),
        session_id=str(copick.get("session_id", "0")),
    )
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
        lines.append(f"{r.segmentation.name:<{width}}  {r.n_particles:>9}  {status}")
    total = sum(r.n_particles for r in results if not r.error)
    lines.append(f"{len(results)} tomogram(s), {total} particle(s) → {folder}")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=str(config_dir() / "pick"), config_name="pick")
def main(cfg: DictConfig) -> None:
    def _run() -> None:
        missing = [k for k in ("data", "feature") if OmegaConf.is_missing(cfg, k)]
        if missing:
            raise ConfigError(
                f"missing {' and '.join(f'{k}=' for k in missing)}; "
                "e.g. python -m ais_torch.pick data=segmented/ feature=Antibody out=picks/"
            )
        results = run(cfg)
        print(summary(results, Path(str(cfg.out))))
        if any(r.error for r in results):
            raise SystemExit(1)

    run_cli(_run)


if __name__ == "__main__":
    main()
