"""Picking over files: find the segmentations, pick each, write its coordinate files.

Why here and not in the command: a notebook, a benchmark or a future plugin picks a folder the
same way ``ais-torch pick`` does, without a Hydra config. Each tomogram runs in its own process
when ``workers > 1``; each output is written atomically (:mod:`ais_torch.formats.atomic`), and a
tomogram without particles still gets valid, empty files. Outputs per segmentation
``<tomo>__<feature>.mrc``: ``<tomo>__<feature>_coords.txt`` (the paper's integer x y z),
``.star`` (RELION 3 voxel + RELION 5 centred-Å columns) and ``.json`` (copick, Å).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ais_torch.errors import AisError

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence
    from pathlib import Path

    from ais_torch.picking.settings import Picks, PickSettings

FORMATS = ("txt", "star", "json")
SUFFIX = {"txt": "_coords.txt", "star": "_coords.star", "json": "_coords.json"}


@dataclass(frozen=True)
class OutputSpec:
    """Where and in which formats one picking run writes, and what goes into the files."""

    folder: Path
    formats: tuple[str, ...]
    min_particles: int = 0
    """Tomograms with fewer picks get no files (their result still lists the count)."""
    voxel_size_A: float | None = None
    """Overrides the segmentation header's voxel size."""
    object_name: str | None = None
    """copick object name; default the feature name."""
    user_id: str = "ais_torch"
    session_id: str = "0"


@dataclass(frozen=True)
class TomoResult:
    """What picking one segmentation gave: a count and the files, or the one-line error."""

    segmentation: Path
    n_particles: int
    files: tuple[Path, ...]
    error: str | None = None


def find_segmentations(data: str | os.PathLike, feature: str) -> list[Path]:
    """``<tomo>__<feature>.mrc`` files under a folder, matching a glob, or one given file."""
    from ais_torch.formats.naming import find_results

    return find_results(data, [str(feature)])


def pick_one(segmentation: Path, settings: PickSettings, spec: OutputSpec) -> TomoResult:
    """Pick one segmentation and write its outputs (runs in a worker process).

    An input error becomes the result's ``error`` so one bad file does not stop the batch.
    """
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
    segmentation: Path,
    picks: Picks,
    voxel_size_A: float,
    shape: Sequence[int],
    spec: OutputSpec,
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
