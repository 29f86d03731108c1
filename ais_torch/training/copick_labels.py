"""Training data from a copick project: each run's tomogram read lazily from the project, its
labels built from the object's segmentation or from its picks (spheres of the object's radius).

Why labels are files but tomograms are not: a label volume is uint8 and cheap to write once into
the run folder (``<run dir>/copick_labels/<run>__<object>.mrc``, where the user can inspect it
beside the model), while a tomogram is large and stays in the project, read chunk by chunk
through a :class:`~ais_torch.training.sources.LazyTomogram`.

Which slices count as annotated (the only ones boxes are cut from, as for label files):

* ``segmentation`` — every slice that holds a non-zero label (with ``label_threshold``: the
  feature); values are 0 negative, 1 feature, 2 ignore, so a copick 0/1 segmentation means "the
  feature, and everything else on those slices is not";
* ``picks`` — every slice a sphere crosses: inside a sphere 1, elsewhere on that slice 0, so the
  picks must be complete on those slices (every particle picked);

and ``slices`` keeps at most that many of them per run, evenly spaced in z, to keep a densely
labelled project's training bounded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from omegaconf import OmegaConf

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.mrc import iter_slabs, write_volume
from ais_torch.training.sources import LazyTomogram, ResolvedData

if TYPE_CHECKING:
    from copick.models import CopickRoot
    from omegaconf import DictConfig

    from ais_torch.formats.copick import CopickTomogramRef

log = logging.getLogger("ais_torch.train")

LABEL_SOURCES = ("segmentation", "picks")
LABEL_FOLDER = "copick_labels"
KEYS_PREFIX = "data.copick."
_SLAB = 16
_COPICK_KEY = re.compile(
    r"(?<![\w.])copick\.(runs|voxel_spacing|tomo_type|object|user_id|session_id)"
)


# -- labels from arrays ----------------------------------------------------------------------------
def segmentation_classes(values: np.ndarray, threshold: float | None, where: str) -> np.ndarray:
    """uint8 classes (0 negative, 1 feature, 2 ignore) of a segmentation, read slab by slab.

    ``threshold`` None: the values are labels already and must be 0, 1 or 2; else a value
    ``>= threshold`` is the feature and anything below is not (no ignore).
    """
    shape = tuple(int(n) for n in values.shape)
    out = np.zeros(shape, np.uint8)
    for zs in iter_slabs(shape[0], _SLAB):
        slab = np.asarray(values[zs])
        if threshold is not None:
            out[zs] = slab >= threshold
            continue
        bad = ~np.isin(slab, (0, 1, 2))
        if bad.any():
            example = slab[bad].flat[0]
            raise AisInputError(
                f"{where}: holds the value {example:g}, not a label (0 negative, 1 feature, "
                "2 ignore); set data.label_threshold=<value> to take values at or above it as "
                "the feature (128 for ais-torch's 0-255 segmentations)"
            )
        out[zs] = slab
    return out


def sphere_classes(
    shape: tuple[int, int, int], centres_zyx: np.ndarray, radius: float
) -> np.ndarray:
    """uint8 volume: 1 in every voxel whose centre lies within ``radius`` (voxels) of a centre
    (``(N, 3)`` z/y/x voxels), else 0; spheres reaching over the edge are cut off."""
    out = np.zeros(shape, np.uint8)
    size = np.asarray(shape)
    for centre in np.asarray(centres_zyx, np.float64).reshape(-1, 3):
        lo = np.maximum(np.ceil(centre - radius), 0).astype(int)
        hi = np.minimum(np.floor(centre + radius), size - 1).astype(int)
        if (hi < lo).any():
            continue
        zz, yy, xx = np.ogrid[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1]
        inside = (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius**2
        out[lo[0] : hi[0] + 1, lo[1] : hi[1] + 1, lo[2] : hi[2] + 1][inside] = 1
    return out


def annotated_slices(classes: np.ndarray, limit: int | None) -> np.ndarray:
    """z of the slices holding any non-zero label; at most ``limit`` of them, evenly spaced."""
    n_z = classes.shape[0]
    annotated = np.flatnonzero(classes.reshape(n_z, -1).max(axis=1))
    if limit is None or limit <= 0 or len(annotated) <= limit:
        return annotated
    return annotated[
        np.unique(np.round(np.linspace(0, len(annotated) - 1, int(limit))).astype(int))
    ]


def keep_slices(classes: np.ndarray, slices: np.ndarray) -> np.ndarray:
    """Training labels: ``classes`` on ``slices``, 0 (not annotated) everywhere else."""
    labels = np.zeros_like(classes, dtype=np.uint8)
    labels[slices] = classes[slices]
    return labels


# -- the project -------------------------------------------------------------------------------
@dataclass(frozen=True)
class CopickLabels:
    """How one run's segmentation or picks of ``object`` become classes (0/1/2)."""

    project: Path
    object: str
    labels_from: str = "segmentation"
    user_id: str | None = None
    session_id: str | None = None
    threshold: float | None = None
    """segmentation: values at or above it are the feature (None: values are labels)."""
    radius_A: float | None = None
    """picks: sphere radius."""

    def classes(self, ref: CopickTomogramRef) -> np.ndarray:
        """Classes of the run of ``ref`` at its tomogram's shape; :class:`~ais_torch.formats.
        copick.NotInRun` when the run has no such segmentation or picks."""
        from ais_torch.formats import copick as cp

        uid, sid = self.user_id, self.session_id
        if self.labels_from == "picks":
            assert self.radius_A is not None
            locations = cp.find_picks(
                self.project, ref.run, self.object, user_id=uid, session_id=sid, keys=KEYS_PREFIX
            )
            return _spheres(ref, locations, self.radius_A)
        volume = cp.find_segmentation(
            self.project,
            ref.run,
            self.object,
            voxel_size_A=ref.voxel_size_A,
            user_id=uid,
            session_id=sid,
            keys=KEYS_PREFIX,
        )
        place = f"{self.project}: run {ref.run} segmentation {self.object!r}"
        if tuple(volume.shape) != ref.shape:
            raise AisInputError(
                f"{place} has shape {tuple(volume.shape)} but the tomogram {ref.tomo_type} has "
                f"{ref.shape} (z, y, x) at {ref.voxel_size_A:g} Å; choose another "
                f"{KEYS_PREFIX}tomo_type or {KEYS_PREFIX}voxel_spacing"
            )
        return segmentation_classes(volume.data, self.threshold, place)


def resolve_copick(cfg: DictConfig, output_dir: Path) -> ResolvedData:
    """Tomograms (lazy) and label files for ``data=copick``; runs without the object's labels
    are reported and skipped, and none having them is an error."""
    from ais_torch.formats import copick as cp

    reader, train_refs, eval_refs = _selection(cfg)
    folder = output_dir / LABEL_FOLDER
    obj, what = reader.object, f"{reader.labels_from} of {reader.object!r}"
    limit = None if cfg.get("slices") in (None, "", 0) else int(cfg.slices)
    data = ResolvedData()
    missing: list[str] = []
    for ref in train_refs:
        try:
            classes = reader.classes(ref)
        except cp.NotInRun as err:
            log.warning("%s; skipping this run", err)
            missing.append(ref.run)
            continue
        chosen = annotated_slices(classes, limit)
        if chosen.size == 0:
            log.warning(
                "%s: run %s: no %s on any slice; skipping it", reader.project, ref.run, what
            )
            missing.append(ref.run)
            continue
        path = write_volume(
            folder / f"{ref.run}__{obj}.mrc",
            keep_slices(classes, chosen),
            voxel_size_A=ref.voxel_size_A,
        )
        log.info(
            "copick %s: %g Å %s, labels from %s on %d of %d slices → %s",
            ref.run, ref.voxel_size_A, ref.tomo_type, what, chosen.size, ref.shape[0], path,
        )  # fmt: skip
        data.tomograms.append(_lazy(ref))
        data.labels.append(str(path))
    if not data.tomograms:
        raise AisInputError(
            f"{reader.project}: no run has {what} to train on (tried {', '.join(missing)}); "
            f"write them first or check data.labels_from and {KEYS_PREFIX}user_id / "
            f"{KEYS_PREFIX}session_id"
        )
    for ref in eval_refs:
        try:
            truth = reader.classes(ref) == 1
        except cp.NotInRun as err:
            log.warning("%s; no held-out Dice for it", err)
            continue
        path = folder / f"{ref.run}__{obj}_truth.mrc"
        write_volume(path, truth.astype(np.uint8), voxel_size_A=ref.voxel_size_A)
        data.eval_pairs.append((_lazy(ref), path))
    return data


def _selection(
    cfg: DictConfig,
) -> tuple[CopickLabels, list[CopickTomogramRef], list[CopickTomogramRef]]:
    """The label reader and the training / held-out runs' tomograms the ``data`` keys name."""
    from ais_torch.formats import copick as cp

    if OmegaConf.is_missing(cfg, "project") or cfg.get("project") in (None, ""):
        raise ConfigError(
            "data.project is not set; give the copick project's config: "
            "data=copick data.project=path/to/project.json"
        )
    project = Path(str(cfg.project)).expanduser()
    where = str(project)
    labels_from = str(cfg.get("labels_from", "segmentation"))
    if labels_from not in LABEL_SOURCES:
        raise ConfigError(f"data.labels_from={labels_from!r}; use {' or '.join(LABEL_SOURCES)}")
    block = cfg.get("copick")
    values: dict = OmegaConf.to_container(block, resolve=True) if block is not None else {}  # type: ignore[assignment]
    with _data_keys():
        opts = cp.CopickOptions.from_mapping(values)
        root = cp.open_project(project)
        obj = _object(root, opts.object, str(cfg.feature), where)
        eval_names = [str(r) for r in (cfg.get("eval_runs") or [])]
        if eval_names:
            cp.select_runs(root, eval_names, where)  # each exists, or the list of runs
        train_names = [
            r.name for r in cp.select_runs(root, opts.runs, where) if r.name not in eval_names
        ]
        if not train_names:
            raise ConfigError(
                f"{where}: every selected run is in data.eval_runs ({', '.join(eval_names)}); "
                "keep at least one run to train on"
            )
        apix = cfg.get("apix")
        target = None if apix in (None, "") else float(apix)
        names = tuple(train_names + eval_names)
        refs = {r.run: r for r in cp.find_tomograms(project, replace(opts, runs=names), target)}
    threshold = cfg.get("label_threshold")
    reader = CopickLabels(
        project=project,
        object=obj,
        labels_from=labels_from,
        user_id=_text(values.get("user_id")),
        session_id=_text(values.get("session_id")),
        threshold=None if threshold in (None, "") else float(threshold),
        radius_A=_radius(cfg, project, obj) if labels_from == "picks" else None,
    )
    return reader, [refs[n] for n in train_names], [refs[n] for n in eval_names]


def _text(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def _lazy(ref: CopickTomogramRef) -> LazyTomogram:
    return LazyTomogram(ref.run, ref.open)


def _spheres(ref: CopickTomogramRef, locations_A: np.ndarray, radius_A: float) -> np.ndarray:
    """Sphere classes of picks (Å, x/y/z) at the tomogram's voxel size."""
    centres = np.asarray(locations_A, np.float64).reshape(-1, 3)[:, ::-1] / ref.voxel_size_A
    outside = ((centres < -0.5) | (centres > np.asarray(ref.shape) - 0.5)).any(axis=1)
    if outside.any():
        log.warning(
            "copick %s: %d of %d picks lie outside the tomogram (%s voxels at %g Å)",
            ref.run,
            int(outside.sum()),
            len(centres),
            "x".join(map(str, ref.shape)),
            ref.voxel_size_A,
        )
    return sphere_classes(ref.shape, centres, radius_A / ref.voxel_size_A)


def _object(root: CopickRoot, requested: str | None, feature: str, where: str) -> str:
    """The object to learn: ``data.copick.object``, else the one named like ``data.feature``
    (exactly, then ignoring case and punctuation)."""
    from ais_torch.formats import copick

    names = copick.object_names(root)
    if requested is None:
        plain = "".join(c for c in feature.lower() if c.isalnum())
        alike = [n for n in names if "".join(c for c in n.lower() if c.isalnum()) == plain]
        if feature in names or alike:
            return feature if feature in names else alike[0]
        requested = feature
    return copick.check_object(root, requested, where, key=f"{KEYS_PREFIX}object")


def _radius(cfg: DictConfig, project: Path, obj: str) -> float:
    from ais_torch.formats import copick

    given = cfg.get("radius")
    if given not in (None, ""):
        radius = float(given)
        if not radius > 0:
            raise ConfigError(f"data.radius={given}: the sphere radius must be > 0 Å")
        return radius
    radius_A = copick.object_radius_A(project, obj)
    if radius_A is None:
        raise AisInputError(
            f"{project}: object {obj!r} has no radius in the config; set data.radius=<Å> "
            "(the sphere painted around each pick)"
        )
    return radius_A


@contextmanager
def _data_keys() -> Iterator[None]:
    """copick's messages name the ``copick.*`` keys of segment and pick; here they live under
    ``data.copick.*``."""
    try:
        yield
    except (AisInputError, ConfigError) as err:
        message = _COPICK_KEY.sub(lambda m: f"data.copick.{m.group(1)}", str(err))
        raise type(err)(message) from None
