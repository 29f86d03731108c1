"""Picking over files: find the segmentations, pick each, write its coordinate files.

Why here and not in the command: a notebook, a benchmark or a future plugin picks a folder the
same way ``ais-torch pick`` does, without a Hydra config. Each tomogram runs in its own process
when ``workers > 1``; each output is written atomically (:mod:`ais_torch.formats.atomic`), and a
tomogram without particles still gets valid, empty files. Outputs per segmentation
``<tomo>__<feature>.mrc``: ``<tomo>__<feature>_coords.txt`` (the paper's integer x y z),
``.star`` (RELION 3 voxel + RELION 5 centred-Å columns) and ``.json`` (copick, Å). With
``context`` set, each pick also gets columns measured on the tomogram's other features
(:mod:`ais_torch.picking.context`), found as files beside the segmentation (:class:`FileContext`)
or in the copick run (:class:`CopickContext`), and ``keep`` rules drop picks before writing.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ais_torch.errors import AisError, AisInputError
from ais_torch.picking.context import ContextSettings

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    import numpy as np

    from ais_torch.formats.copick import CopickOptions
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
    user_id: str = "ais-torch"
    session_id: str = "0"
    context: ContextSettings = field(default_factory=ContextSettings)
    """Columns from the tomogram's other features, and the ``keep`` rules on them."""


@dataclass(frozen=True)
class TomoResult:
    """What picking one segmentation gave: a count and the files, or the one-line error."""

    segmentation: Path
    n_particles: int
    files: tuple[Path, ...]
    error: str | None = None
    n_dropped: int = 0
    """Picks removed by ``keep`` (not counted in ``n_particles``)."""


@dataclass(frozen=True)
class FileContext:
    """A tomogram's other features as files: segmentations ``<tomo>__<F>.mrc`` beside the picked
    one, picks ``<tomo>__<F>_coords.{star,txt,json}`` in the output folder (or beside)."""

    tomo: str
    folder: Path
    picks_folder: Path
    shape: tuple[int, ...]
    voxel_size_A: float | None = None

    def segmentation(self, feature: str) -> np.ndarray:
        from ais_torch.formats.mrc import read_volume
        from ais_torch.formats.naming import SEGMENTATION_SUFFIXES

        names = [f"{self.tomo}__{feature}{ext}" for ext in SEGMENTATION_SUFFIXES]
        for name in names:
            if (self.folder / name).is_file():
                volume = read_volume(self.folder / name, voxel_size_A=self.voxel_size_A)
                _same_grid(volume.shape, self.shape, self.folder / name)
                return volume.data
        raise AisInputError(
            f"context: no segmentation {names[0]} in {self.folder}; segment {feature} for this "
            f"tomogram first or drop {feature} from context=/keep="
        )

    def picks(self, feature: str) -> np.ndarray:
        from ais_torch.formats.coordinates import read_coordinates

        stem = f"{self.tomo}__{feature}_coords"
        for folder in dict.fromkeys((self.picks_folder, self.folder)):
            for suffix in (".star", ".txt", ".json"):
                if (folder / f"{stem}{suffix}").is_file():
                    return read_coordinates(folder / f"{stem}{suffix}")
        raise AisInputError(
            f"context: no picks {stem}.star in {self.picks_folder}; run ais-torch pick "
            f"feature={feature} out={self.picks_folder} first"
        )


def _same_grid(shape: Sequence[int], expected: Sequence[int], what: object) -> None:
    if tuple(shape) != tuple(expected):
        raise AisInputError(
            f"context: {what} has shape {tuple(shape)}, the picked segmentation "
            f"{tuple(expected)}; context features must share the tomogram's grid"
        )


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
    from ais_torch.formats.naming import split_name
    from ais_torch.picking.context import add_context
    from ais_torch.picking.settings import pick_array

    try:
        volume = read_volume(segmentation, voxel_size_A=spec.voxel_size_A)
        picks = pick_array(np.asarray(volume.data), volume.voxel_size_A, settings)
        tomo, feature = split_name(segmentation)
        source = FileContext(
            tomo, segmentation.parent, spec.folder, volume.shape, spec.voxel_size_A
        )
        found = add_context(picks, volume.voxel_size_A, spec.context, source, own_feature=feature)
        picks = found.picks
        if len(picks) < spec.min_particles:
            return TomoResult(segmentation, len(picks), (), n_dropped=found.dropped)
        files = write_picks(segmentation, picks, volume.voxel_size_A, volume.shape, spec)
        return TomoResult(segmentation, len(picks), files, n_dropped=found.dropped)
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
                point_values=context_values(picks, spec.context),
            )
        )
    return tuple(files)


def context_values(picks: Picks, context: ContextSettings) -> dict[str, np.ndarray] | None:
    """The context columns of ``picks`` (what goes into copick points as ``ais_context``)."""
    names = [i.column for i in context.items if i.column in picks.columns]
    return {n: picks.columns[n] for n in names} or None


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


@dataclass(frozen=True)
class CopickContext:
    """A copick run's other features: segmentations at the picked one's voxel size, and picks
    by the same user/session (what ``ais-torch pick`` on the project writes)."""

    config: str
    run: str
    voxel_size_A: float
    shape: tuple[int, ...]
    options: CopickOptions

    def _object(self, feature: str) -> str:
        from ais_torch.formats import copick as cp

        return cp.object_for_title(cp.open_project(self.config), feature, self.config)

    def segmentation(self, feature: str) -> np.ndarray:
        from ais_torch.formats import copick as cp

        volume = cp.read_segmentation(
            self.config,
            self.run,
            self._object(feature),
            voxel_size_A=self.voxel_size_A,
            user_id=self.options.user_id,
            session_id=self.options.session_id,
        )
        _same_grid(volume.shape, self.shape, f"run {self.run} segmentation {feature}")
        return volume.data

    def picks(self, feature: str) -> np.ndarray:
        from ais_torch.formats import copick as cp

        points, _ = cp.read_picks(
            self.config,
            self.run,
            self._object(feature),
            user_id=self.options.user_id,
            session_id=self.options.session_id,
        )
        return points.reshape(-1, 3) / self.voxel_size_A


def pick_copick(
    config: str | os.PathLike,
    feature: str,
    settings: PickSettings,
    spec: OutputSpec,
    options: CopickOptions,
) -> list[TomoResult]:
    """Pick the copick segmentation of ``feature`` in every selected run of a project.

    Writes the usual files into ``spec.folder`` (named ``<run>__<feature>_coords.*``) and the
    picks into the project, as object ``options.object`` (default: the feature's object), in Å,
    with the context columns (``spec.context``) as each point's ``ais_context``.
    A run without that segmentation is reported, and the others go on.
    """
    import numpy as np

    from ais_torch.formats import copick as cp
    from ais_torch.picking.context import add_context
    from ais_torch.picking.orientation import euler_to_matrix
    from ais_torch.picking.settings import pick_array

    where = str(config)
    root = cp.open_project(config)
    seg_name = cp.object_for_title(root, str(feature), where)
    target = cp.check_object(root, options.object or seg_name, where)
    spec.folder.mkdir(parents=True, exist_ok=True)
    results = []
    for run in cp.select_runs(root, options.runs, where):
        label = Path(f"{run.name}__{feature}.mrc")
        try:
            volume = cp.read_segmentation(
                config,
                run.name,
                seg_name,
                voxel_size_A=options.voxel_spacing,
                user_id=options.user_id,
                session_id=options.session_id,
            )
            picks = pick_array(np.asarray(volume.data), volume.voxel_size_A, settings)
            source = CopickContext(where, run.name, volume.voxel_size_A, volume.shape, options)
            found = add_context(
                picks, volume.voxel_size_A, spec.context, source, own_feature=str(feature)
            )
            picks = found.picks
            if len(picks) < spec.min_particles:
                results.append(TomoResult(label, len(picks), (), n_dropped=found.dropped))
                continue
            files = write_picks(
                spec.folder / label.name, picks, volume.voxel_size_A, volume.shape, spec
            )
            cp.write_picks(
                config,
                run.name,
                target,
                picks.xyz,
                voxel_size_A=volume.voxel_size_A,
                user_id=options.user_id,
                session_id=options.session_id,
                rotations=None if picks.angles is None else euler_to_matrix(picks.angles),
                scores=picks.score,
                point_values=context_values(picks, spec.context),
            )
            results.append(TomoResult(label, len(picks), files, n_dropped=found.dropped))
        except AisError as err:
            results.append(TomoResult(label, 0, (), error=str(err)))
    return results
