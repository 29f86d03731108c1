"""copick projects as a data source and sink: runs → voxel spacings → tomograms in, segmentations
and picks out.

Why: public cryo-ET data (the CZ cryoET Data Portal) and the tools around it (MemBrain-seg,
DeepFindET, napari-copick) are organised by copick, a JSON config naming a read-only *static*
root and a writable *overlay* root. copick (``pip install "ais_torch[copick]"``) resolves runs,
tomograms and store names on any backend; this module turns its objects into what the rest of
ais_torch uses: a lazy :class:`~ais_torch.formats.mrc.Volume` to segment, and segmentations/picks
written from our arrays. Every bad input is one :class:`~ais_torch.errors.AisInputError` line that
lists what the project does have.

Writes on a local overlay are atomic (a hidden folder or file renamed into place, which copick's
listings skip); on a remote overlay they go through copick's own stores, and a crash can leave a
partial store that a rerun with ``overwrite=true`` replaces.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.atomic import atomic_output
from ais_torch.formats.zarr import INSTALL_HINT, nearest_size, volume_from_array, write_into_store

if TYPE_CHECKING:
    import numpy.typing as npt
    from copick.models import (
        CopickRoot,
        CopickRun,
        CopickSegmentation,
        CopickTomogram,
        CopickVoxelSpacing,
    )

    from ais_torch.formats.mrc import Volume

log = logging.getLogger("ais_torch.formats.copick")

DEFAULT_USER = "ais-torch"
DEFAULT_SESSION = "0"
_MAX_CONFIG_BYTES = 16 * 2**20
_SPACING_TOLERANCE_A = 1e-3
"""copick rounds voxel spacings to three decimals."""


@dataclass(frozen=True)
class CopickOptions:
    """What to read from a project and under which names to write (the ``copick.*`` keys)."""

    runs: tuple[str, ...] | None = None
    """Run names; None = every run."""
    voxel_spacing: float | None = None
    """Å; None = the spacing nearest the model's pixel size (or the only one)."""
    tomo_type: str | None = None
    """None = the only tomogram type at that spacing."""
    user_id: str = DEFAULT_USER
    session_id: str = DEFAULT_SESSION
    object: str | None = None
    """pick: the pickable object the picks belong to (None = the feature's object)."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, object] | None) -> CopickOptions:
        """From the ``copick`` block of a config (unknown keys are the config's business)."""
        values = dict(values or {})
        runs = values.get("runs")
        if isinstance(runs, str):
            runs = [r.strip() for r in runs.strip("[]").split(",") if r.strip()]
        spacing = values.get("voxel_spacing")
        try:
            spacing_A = None if spacing in (None, "") else float(spacing)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ConfigError(f"copick.voxel_spacing={spacing!r} must be a number (Å)") from None
        obj = values.get("object") or values.get("object_name")
        return cls(
            runs=tuple(str(r) for r in runs) if runs else None,  # type: ignore[union-attr]
            voxel_spacing=spacing_A,
            tomo_type=None if values.get("tomo_type") in (None, "") else str(values["tomo_type"]),
            user_id=str(values.get("user_id") or DEFAULT_USER),
            session_id=str(values.get("session_id") if values.get("session_id") is not None else 0),
            object=None if obj in (None, "") else str(obj),
        )


# -- the project ---------------------------------------------------------------------------------
def is_copick_config(path: str | os.PathLike) -> bool:
    """A ``.json`` file whose top level looks like a copick config (cheap: no copick import)."""
    p = Path(path)
    if p.suffix.lower() != ".json" or not p.is_file() or p.stat().st_size > _MAX_CONFIG_BYTES:
        return False
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and ("pickable_objects" in doc or "config_type" in doc)


def open_project(path: str | os.PathLike) -> CopickRoot:
    """The copick project of a config file; one line for a missing or non-copick file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise AisInputError(f"{p}: copick config not found; check the path")
    if not is_copick_config(p):
        raise AisInputError(
            f"{p}: not a copick project config (a JSON object with 'config_type' and "
            "'pickable_objects'); give the project's config .json"
        )
    return _open(str(p.resolve()))


@functools.lru_cache(maxsize=8)
def _open(path: str) -> CopickRoot:
    try:
        import copick
    except ImportError:
        raise AisInputError(
            f"{path}: reading copick projects needs copick; {INSTALL_HINT}"
        ) from None
    try:
        return copick.from_file(path)
    except Exception as err:  # pydantic ValidationError, ValueError, fsspec errors
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AisInputError(f"{path}: not a usable copick config ({first})") from None


def _listing(names: Sequence[str], limit: int = 12) -> str:
    names = sorted(names)
    more = f", … ({len(names)} in all)" if len(names) > limit else ""
    return (", ".join(names[:limit]) + more) if names else "none"


def select_runs(root: CopickRoot, names: Sequence[str] | None, where: str) -> list[CopickRun]:
    """The named runs (all when ``names`` is None), refusing unknown names with the list."""
    if names is None:
        runs = sorted(root.runs, key=lambda r: r.name)
        if not runs:
            raise AisInputError(f"{where}: the project has no runs")
        return runs
    found = []
    for name in names:
        run = root.get_run(name)
        if run is None:
            there = _listing([r.name for r in root.runs])
            raise AisInputError(f"{where}: no run {name!r} (runs: {there}); check copick.runs")
        found.append(run)
    return found


def choose_voxel_spacing(
    run: CopickRun, *, requested: float | None, target_A: float | None, where: str
) -> CopickVoxelSpacing:
    """The requested spacing, else the one nearest ``target_A`` (see :data:`NEAR_RATIO`)."""
    spacings = {float(vs.voxel_size): vs for vs in run.voxel_spacings}
    place = f"{where}: run {run.name}"
    if not spacings:
        raise AisInputError(f"{place} has no voxel spacings (no tomograms)")
    if requested is not None:
        for size, vs in spacings.items():
            if abs(size - requested) <= _SPACING_TOLERANCE_A:
                return vs
        there = ", ".join(f"{s:g}" for s in sorted(spacings))
        raise AisInputError(
            f"{place} has no voxel spacing {requested:g} Å (there: {there} Å); "
            "check copick.voxel_spacing"
        )
    if len(spacings) == 1 and target_A is None:
        return next(iter(spacings.values()))
    fix = "set copick.voxel_spacing=<Å> to use one anyway"
    size = nearest_size(list(spacings), target_A, place, "voxel spacing", fix)
    return spacings[size]


def choose_tomogram(vs: CopickVoxelSpacing, tomo_type: str | None, where: str) -> CopickTomogram:
    """The tomogram of ``tomo_type``, or the only one; else the list of types."""
    tomos = list(vs.tomograms)
    types = [t.tomo_type for t in tomos]
    place = f"{where}: run {vs.run.name} at {vs.voxel_size:g} Å"
    if tomo_type is not None:
        match = [t for t in tomos if t.tomo_type == tomo_type]
        if not match:
            raise AisInputError(
                f"{place} has no tomogram {tomo_type!r} (types: {_listing(types)}); "
                "check copick.tomo_type"
            )
        return match[0]
    if len(tomos) != 1:
        raise AisInputError(
            f"{place} has {len(tomos)} tomogram types ({_listing(types)}); "
            "choose one with copick.tomo_type=<type>"
        )
    return tomos[0]


def object_names(root: CopickRoot) -> list[str]:
    return [o.name for o in root.pickable_objects]


def check_object(root: CopickRoot, name: str, where: str, key: str = "copick.object") -> str:
    """``name`` if the project defines it, else one line with the objects it does define."""
    names = object_names(root)
    if name not in names:
        raise AisInputError(
            f"{where}: the project defines no object {name!r} (objects: {_listing(names)}); "
            f"set {key}= to one of them or add it to the config's pickable_objects"
        )
    return name


def object_for_title(root: CopickRoot, title: str, where: str) -> str:
    """The pickable object a model's output is stored under: its title, matched exactly, then
    ignoring case and copick's character rules (``Membrane`` → ``membrane``)."""
    names = object_names(root)
    if title in names:
        return title
    key = _plain(title)
    for name in names:
        if _plain(name) == key:
            return name
    raise AisInputError(
        f"{where}: no pickable object named after model {title!r} (objects: {_listing(names)}); "
        f"add an object {key!r} to the config's pickable_objects or retitle the model"
    )


def _plain(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def _safe_id(value: str, what: str) -> str:
    """copick's own spelling of a user/session id (underscores and spaces become dashes)."""
    from copick.util.escape import sanitize_name

    try:
        return str(sanitize_name(str(value), suppress_warnings=True))
    except ValueError:
        raise ConfigError(f"copick.{what}={value!r} has no usable characters") from None


# -- tomograms in --------------------------------------------------------------------------------
@dataclass(frozen=True)
class CopickTomogramRef:
    """One run's tomogram chosen for segmentation; opened lazily (zarr chunks) when its turn comes.

    Picklable and cheap: the batch keeps a list of these beside plain file paths.
    """

    config: Path
    run: str
    voxel_size_A: float
    tomo_type: str
    shape: tuple[int, int, int]

    @property
    def name(self) -> str:
        return self.run

    def __str__(self) -> str:
        return f"{self.config.name}:{self.run}"

    def result_name(self, title: str) -> str:
        """``<run>__<title>.mrc``, the name our file outputs for this run carry."""
        return f"{self.run}__{title}.mrc"

    def open(self) -> Volume:
        """The tomogram as a lazy Volume at this spacing (level ``0`` of its store)."""
        import zarr

        tomo = self._tomogram()
        try:
            array = zarr.open(tomo.zarr(), mode="r")["0"]
        except (KeyError, ValueError, OSError) as err:
            raise AisInputError(
                f"{self}: tomogram {self.tomo_type} is not readable ({err})"
            ) from None
        return volume_from_array(array, self.voxel_size_A, None)

    def _tomogram(self) -> CopickTomogram:
        root = open_project(self.config)
        run = select_runs(root, [self.run], str(self.config))[0]
        vs = choose_voxel_spacing(
            run, requested=self.voxel_size_A, target_A=None, where=str(self.config)
        )
        return choose_tomogram(vs, self.tomo_type, str(self.config))


def find_tomograms(
    config: str | os.PathLike, options: CopickOptions, target_A: float | None
) -> list[CopickTomogramRef]:
    """One tomogram per selected run, at the spacing nearest ``target_A`` (the model's, Å)."""
    import zarr

    config = Path(config).expanduser()
    root = open_project(config)
    where = str(config)
    refs = []
    for run in select_runs(root, options.runs, where):
        vs = choose_voxel_spacing(
            run, requested=options.voxel_spacing, target_A=target_A, where=where
        )
        tomo = choose_tomogram(vs, options.tomo_type, where)
        try:
            shape = tuple(int(n) for n in zarr.open(tomo.zarr(), mode="r")["0"].shape)
        except (KeyError, ValueError, OSError) as err:
            raise AisInputError(
                f"{where}: run {run.name} tomogram {tomo.tomo_type} is not readable ({err})"
            ) from None
        if len(shape) != 3:
            raise AisInputError(f"{where}: run {run.name} tomogram has shape {shape}, not 3D")
        log.debug("%s: run %s, %g Å, %s", where, run.name, vs.voxel_size, tomo.tomo_type)
        refs.append(
            CopickTomogramRef(config, run.name, float(vs.voxel_size), tomo.tomo_type, shape)  # type: ignore[arg-type]
        )
    return refs


# -- segmentations -------------------------------------------------------------------------------
def _local_overlay(run: CopickRun) -> Path | None:
    """The run's overlay folder when it is on a local filesystem (atomic renames work there)."""
    fs = getattr(run, "fs_overlay", None)
    path = getattr(run, "overlay_path", None)
    protocol = getattr(fs, "protocol", ())
    protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol or ())
    if path is None or not ({"file", "local"} & set(protocols)):
        return None
    return Path(str(path).removeprefix("local://").removeprefix("file://"))


def _writable(folder: Path, where: str) -> None:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise AisInputError(
            f"{where}: the overlay {folder} is not writable; point the config's overlay_root "
            "at a folder you can write"
        )


def segmentation_exists(
    config: str | os.PathLike,
    run_name: str,
    name: str,
    voxel_size_A: float,
    *,
    user_id: str = DEFAULT_USER,
    session_id: str = DEFAULT_SESSION,
) -> bool:
    root = open_project(config)
    run = select_runs(root, [run_name], str(config))[0]
    run.refresh_segmentations()
    return bool(
        run.get_segmentations(
            name=name,
            user_id=_safe_id(user_id, "user_id"),
            session_id=_safe_id(session_id, "session_id"),
            voxel_size=round(float(voxel_size_A), 3),
            is_multilabel=False,
        )
    )


def write_segmentation(
    config: str | os.PathLike,
    run_name: str,
    name: str,
    source: np.ndarray,
    *,
    voxel_size_A: float,
    user_id: str = DEFAULT_USER,
    session_id: str = DEFAULT_SESSION,
    dtype: np.dtype | type | None = None,
    overwrite: bool = True,
) -> str:
    """Store ``source`` ((z, y, x), anything sliceable by z) as the binary segmentation ``name``.

    Values are written as given (our 0–255 grey or probabilities, like the ``.mrc`` output), one
    slab at a time. Returns where it went.
    """
    from copick.util.segmentation import segmentation_store_name

    where = str(config)
    root = open_project(config)
    run = select_runs(root, [run_name], where)[0]
    check_object(root, name, where)
    uid, sid = _safe_id(user_id, "user_id"), _safe_id(session_id, "session_id")
    size = round(float(voxel_size_A), 3)
    existing = run.get_segmentations(
        name=name, user_id=uid, session_id=sid, voxel_size=size, is_multilabel=False
    )
    if existing and not overwrite:
        raise AisInputError(
            f"{where}: run {run_name} already has segmentation {name} by {uid}/{sid} at "
            f"{size:g} Å; set overwrite=true to replace it"
        )
    local = _local_overlay(run)
    if local is not None:
        from ais_torch.formats.zarr import write_ome_zarr

        target = local / "Segmentations" / segmentation_store_name(size, uid, sid, name)
        _writable(local, where)
        write_ome_zarr(target, source, voxel_size_A=size, dtype=dtype)
        run.refresh_segmentations()
        return str(target)
    seg: CopickSegmentation = run.new_segmentation(
        voxel_size=size, name=name, session_id=sid, user_id=uid, exist_ok=True
    )
    write_into_store(seg.zarr(), source, voxel_size_A=size, dtype=dtype)
    return str(getattr(seg, "path", seg))


def read_segmentation(
    config: str | os.PathLike,
    run_name: str,
    name: str,
    *,
    voxel_size_A: float | None = None,
    user_id: str | None = None,
    session_id: str | None = None,
) -> Volume:
    """A binary segmentation of a run as a lazy Volume; several matches prefer ``user_id`` and
    ``session_id``, and otherwise are listed so the user can choose."""
    import zarr

    where = str(config)
    root = open_project(config)
    run = select_runs(root, [run_name], where)[0]
    run.refresh_segmentations()
    segs = run.get_segmentations(name=name, is_multilabel=False)
    if voxel_size_A is not None:
        segs = [s for s in segs if abs(s.voxel_size - voxel_size_A) <= _SPACING_TOLERANCE_A]
    if not segs:
        there = sorted({s.name for s in run.segmentations})
        raise AisInputError(
            f"{where}: run {run_name} has no segmentation {name!r}"
            + (f" at {voxel_size_A:g} Å" if voxel_size_A is not None else "")
            + f" (segmentations: {_listing(there)}); run ais-torch segment on the project first"
        )
    if len(segs) > 1 and user_id is not None:
        mine = [s for s in segs if s.user_id == _safe_id(user_id, "user_id")]
        segs = mine or segs
    if len(segs) > 1 and session_id is not None:
        mine = [s for s in segs if s.session_id == _safe_id(session_id, "session_id")]
        segs = mine or segs
    if len(segs) > 1:
        options = _listing([f"{s.user_id}/{s.session_id} at {s.voxel_size:g} Å" for s in segs])
        raise AisInputError(
            f"{where}: run {run_name} has {len(segs)} segmentations {name!r} ({options}); "
            "choose with copick.user_id=, copick.session_id=, copick.voxel_spacing="
        )
    seg = segs[0]
    array = zarr.open(seg.zarr(), mode="r")["0"]
    return volume_from_array(array, float(seg.voxel_size), None)


# -- picks ---------------------------------------------------------------------------------------
def write_picks(
    config: str | os.PathLike,
    run_name: str,
    object_name: str,
    xyz: npt.ArrayLike,
    *,
    voxel_size_A: float,
    user_id: str = DEFAULT_USER,
    session_id: str = DEFAULT_SESSION,
    rotations: npt.ArrayLike | None = None,
    scores: npt.ArrayLike | None = None,
    point_values: Mapping[str, npt.ArrayLike] | None = None,
) -> str:
    """Store picks given as x/y/z voxels at ``voxel_size_A``: locations in Å, one 4×4 transform
    each (the identity, or ``rotations`` (N, 3, 3) with ``trust_orientation``).

    ``point_values`` (name → one number per pick: the context columns) go into each point as
    ``"ais_context"`` on a local overlay (copick's model has no per-point metadata; its reader
    ignores the key). Through copick's own stores (remote overlays) they are not kept.
    """
    from copick.models import CopickLocation, CopickPicksFile, CopickPoint

    from ais_torch.formats.coordinates import POINT_VALUES_KEY, per_point_values

    where = str(config)
    root = open_project(config)
    run = select_runs(root, [run_name], where)[0]
    check_object(root, object_name, where)
    uid, sid = _safe_id(user_id, "user_id"), _safe_id(session_id, "session_id")
    arr = np.asarray(xyz, dtype=np.float64).reshape(-1, 3) * float(voxel_size_A)
    n = len(arr)
    rot = None if rotations is None else np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    if rot is not None and len(rot) != n:
        raise AisInputError(f"{where}: {len(rot)} rotations for {n} picks")
    sc = np.ones(n) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    values = per_point_values(point_values, n, where)
    transforms = np.repeat(np.eye(4)[None], n, axis=0)
    if rot is not None:
        transforms[:, :3, :3] = rot
    points = [
        CopickPoint(
            location=CopickLocation(x=float(p[0]), y=float(p[1]), z=float(p[2])),
            transformation_=t.round(8).tolist(),
            score=float(s),
        )
        for p, t, s in zip(arr, transforms, sc, strict=True)
    ]
    doc = CopickPicksFile(
        pickable_object_name=object_name,
        user_id=uid,
        session_id=sid,
        run_name=run_name,
        voxel_spacing=float(voxel_size_A),
        points=points,
        trust_orientation=rot is not None,
    )
    local = _local_overlay(run)
    if local is not None:
        target = local / "Picks" / f"{uid}_{sid}_{object_name}.json"
        _writable(local, where)
        dumped = doc.model_dump()
        for i, point in enumerate(dumped["points"] if values else ()):
            point[POINT_VALUES_KEY] = {k: float(v[i]) for k, v in values.items()}
        with atomic_output(target) as tmp:
            tmp.write_text(json.dumps(dumped, indent=1) + "\n", encoding="utf-8")
        run.refresh_picks()
        return str(target)
    if values:
        log.warning(
            "%s: run %s: context columns are not stored on a remote overlay", where, run_name
        )
    picks = run.new_picks(object_name, session_id=sid, user_id=uid, exist_ok=True)
    picks.meta = doc
    picks.store()
    return str(getattr(picks, "path", picks))


def read_picks(
    config: str | os.PathLike,
    run_name: str,
    object_name: str,
    *,
    user_id: str = DEFAULT_USER,
    session_id: str = DEFAULT_SESSION,
) -> tuple[np.ndarray, np.ndarray]:
    """Locations (Å, x/y/z) and 4×4 transforms of one picks set."""
    where = str(config)
    root = open_project(config)
    run = select_runs(root, [run_name], where)[0]
    run.refresh_picks()
    found = run.get_picks(
        object_name=object_name,
        user_id=_safe_id(user_id, "user_id"),
        session_id=_safe_id(session_id, "session_id"),
    )
    if not found:
        raise AisInputError(f"{where}: run {run_name} has no picks of {object_name!r} by {user_id}")
    points, transforms = found[0].numpy()
    return points, transforms


# -- training labels -----------------------------------------------------------------------------
class NotInRun(AisInputError):
    """A run lacks the segmentation or picks asked for; a caller going over runs may go on."""


def object_radius_A(config: str | os.PathLike, name: str) -> float | None:
    """The radius (Å) the project's config gives pickable object ``name`` (None: not given)."""
    obj = open_project(config).get_object(name)
    radius = None if obj is None else obj.radius
    return None if radius is None or float(radius) <= 0 else float(radius)


def _who(user_id: str | None, session_id: str | None) -> tuple[str | None, str | None]:
    return (
        None if user_id in (None, "") else _safe_id(str(user_id), "user_id"),
        None if session_id in (None, "") else _safe_id(str(session_id), "session_id"),
    )


def find_segmentation(
    config: str | os.PathLike,
    run_name: str,
    name: str,
    *,
    voxel_size_A: float,
    user_id: str | None = None,
    session_id: str | None = None,
    keys: str = "copick.",
) -> Volume:
    """The one binary segmentation ``name`` of a run at ``voxel_size_A`` by ``user_id`` /
    ``session_id`` (None = anyone), lazily.

    Unlike :func:`read_segmentation`, the filters are strict (training on someone else's
    labels by accident is worse than stopping): none matching raises :class:`NotInRun` naming
    what the run has; several raise an error listing them (``keys`` prefixes the fix's keys).
    """
    import zarr

    where = str(config)
    run = select_runs(open_project(config), [run_name], where)[0]
    run.refresh_segmentations()
    uid, sid = _who(user_id, session_id)
    every = [s for s in run.segmentations if s.name == name and not s.is_multilabel]
    segs = [
        s
        for s in every
        if abs(float(s.voxel_size) - voxel_size_A) <= _SPACING_TOLERANCE_A
        and uid in (None, s.user_id)
        and sid in (None, s.session_id)
    ]
    if not segs:
        there = _listing([f"{s.user_id}/{s.session_id} at {s.voxel_size:g} Å" for s in every])
        who = "" if uid is None and sid is None else f" by {uid or '*'}/{sid or '*'}"
        raise NotInRun(
            f"{where}: run {run_name} has no segmentation {name!r}{who} at {voxel_size_A:g} Å "
            f"({name} segmentations there: {there})"
        )
    if len(segs) > 1:
        there = _listing([f"{s.user_id}/{s.session_id}" for s in segs])
        raise AisInputError(
            f"{where}: run {run_name} has {len(segs)} segmentations {name!r} at "
            f"{voxel_size_A:g} Å ({there}); choose one with {keys}user_id= and {keys}session_id="
        )
    array = zarr.open(segs[0].zarr(), mode="r")["0"]
    return volume_from_array(array, float(segs[0].voxel_size), Path(f"{run_name}__{name}"))


def find_picks(
    config: str | os.PathLike,
    run_name: str,
    object_name: str,
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    keys: str = "copick.",
) -> np.ndarray:
    """Locations (Å, ``(N, 3)`` x/y/z) of the one picks set of ``object_name`` in a run by
    ``user_id`` / ``session_id`` (None = anyone); the same strict rules as
    :func:`find_segmentation` (:class:`NotInRun` when there is none)."""
    where = str(config)
    run = select_runs(open_project(config), [run_name], where)[0]
    run.refresh_picks()
    uid, sid = _who(user_id, session_id)
    every = run.get_picks(object_name=object_name)
    found = [p for p in every if uid in (None, p.user_id) and sid in (None, p.session_id)]
    if not found:
        there = _listing([f"{p.user_id}/{p.session_id}" for p in every])
        who = "" if uid is None and sid is None else f" by {uid or '*'}/{sid or '*'}"
        raise NotInRun(
            f"{where}: run {run_name} has no picks of {object_name!r}{who} "
            f"({object_name} picks there: {there})"
        )
    if len(found) > 1:
        there = _listing([f"{p.user_id}/{p.session_id}" for p in found])
        raise AisInputError(
            f"{where}: run {run_name} has {len(found)} picks sets of {object_name!r} ({there}); "
            f"choose one with {keys}user_id= and {keys}session_id="
        )
    points = found[0].points or []
    if not points:
        return np.zeros((0, 3))
    return np.array([[p.location.x, p.location.y, p.location.z] for p in points], np.float64)
