"""One run of a copick project as a :class:`~ais_torch.viewer.scene.Scene`: its tomogram, its
segmentations as isosurfaces and its picks as spheres (``ais-torch view data=project.json``).

Why: after ``ais-torch segment``/``pick`` wrote into a project (or to look at a data-portal run
before training on it) the user wants to see the run as it is stored, without exporting MRC
files first. Everything is read through copick's stores: the tomogram lazily (only the slice
shown, from the pyramid level nearest the display bin), segmentations whole at the chosen
voxel spacing, picks converted from Å to voxels of that spacing.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ais_torch.errors import AisInputError
from ais_torch.formats import copick as cp
from ais_torch.formats.mrc import Volume
from ais_torch.viewer.scene import (
    PICK_COLOURS,
    Colour,
    LazyVolume,
    PickLayer,
    Scene,
    assemble_scene,
    model_colours,
)

if TYPE_CHECKING:
    from copick.models import (
        CopickObject,
        CopickPicks,
        CopickRun,
        CopickSegmentation,
        CopickTomogram,
    )

log = logging.getLogger("ais_torch.viewer.copick_run")

_TOLERANCE_A = 1e-3
"""copick rounds voxel spacings to three decimals."""


@dataclass(frozen=True)
class RunChoice:
    """What of a project to show (the ``copick.*`` keys of ``view``)."""

    runs: tuple[str, ...] | None = None
    """The first is shown; None = the project's first run by name."""
    voxel_spacing: float | None = None
    """Å; None = the spacing with the most segmentations, then the coarsest."""
    tomo_type: str | None = None
    """None = the only type, else the first by name (the others are listed)."""
    user_id: str | None = None
    """Show only segmentations/picks by this user (None = everyone's)."""
    session_id: str | None = None


def load_copick_scene(
    config: str | os.PathLike,
    choice: RunChoice,
    *,
    models: Sequence[str | os.PathLike] = (),
    level: str | float | None = None,
    min_size: str | float | None = None,
    smooth: int = 0,
    pick_radius_nm: float | None = None,
    say: Callable[[str], None] | None = None,
    **scene_options: object,
) -> Scene:
    """The Scene of one run. ``pick_radius_nm`` overrides the objects' radii (else each pick
    set's sphere has its object's radius; objects without one use the scene default)."""
    say = say or log.info
    config = Path(config).expanduser()
    where = str(config)
    root = cp.open_project(config)
    run = _choose_run(root.runs, choice.runs, where, say)
    user = _match_id(choice.user_id)
    session = _match_id(choice.session_id)
    run.refresh_segmentations()
    run.refresh_picks()
    segs = [s for s in run.segmentations if user(s.user_id) and session(s.session_id)]
    spacing = _choose_spacing(run, segs, choice.voxel_spacing, where)
    tomo = _choose_tomogram(run, spacing, choice.tomo_type, where, say)
    objects = {o.name: o for o in root.pickable_objects}
    colours = _object_colours(config)

    tomogram, pyramid = _open_tomogram(tomo, spacing, where) if tomo else (None, {})
    grid = tomogram.shape if tomogram is not None else None
    layers: list[tuple[str, Volume]] = []
    at_spacing = [s for s in segs if abs(float(s.voxel_size) - spacing) <= _TOLERANCE_A]
    for seg, name, data in _segmentation_layers(at_spacing, objects):
        if grid is not None and tuple(data.shape) != grid:
            say(
                f"{where}: run {run.name}: segmentation {name} has shape {data.shape}, not the "
                f"tomogram's {grid}; not shown"
            )
            continue
        grid = grid or tuple(data.shape)  # type: ignore[assignment]
        layers.append((name, Volume(data=data, voxel_size_A=spacing)))
        if seg.name in colours:
            colours.setdefault(name, colours[seg.name])
    if tomogram is None and not layers:
        raise AisInputError(
            f"{where}: run {run.name} has no tomogram and no segmentation at {spacing:g} Å; "
            "choose another copick.voxel_spacing="
        )
    picks = [p for p in run.picks if user(p.user_id) and session(p.session_id)]
    pick_layers = _pick_layers(picks, objects, spacing, pick_radius_nm)
    colours.update(model_colours(list(models)))
    others = sorted({float(s.voxel_size) for s in segs} - {spacing})
    say(
        f"{where}: run {run.name} at {spacing:g} Å: "
        + (f"tomogram {tomo.tomo_type}" if tomo else "no tomogram")
        + f", {len(layers)} segmentation(s), {len(pick_layers)} pick set(s)"
        + (
            f"; segmentations also at {', '.join(f'{s:g}' for s in others)} Å "
            "(copick.voxel_spacing=)"
            if others
            else ""
        )
    )
    return assemble_scene(
        tomogram=tomogram,
        segmentations=layers,
        picks=pick_layers,
        colours=colours,
        level=level,
        min_size=min_size,
        smooth=smooth,
        tomogram_levels=pyramid,
        title=f"{run.name} · {spacing:g} Å" + (f" · {tomo.tomo_type}" if tomo else ""),
        **scene_options,
    )


def _choose_run(
    runs: Sequence[CopickRun],
    names: Sequence[str] | None,
    where: str,
    say: Callable[[str], None],
) -> CopickRun:
    """The first named run (listing the runs when it does not exist), else the first by name."""
    by_name = {r.name: r for r in runs}
    listing = ", ".join(sorted(by_name)[:12]) + (
        f", … ({len(by_name)})" if len(by_name) > 12 else ""
    )
    if not by_name:
        raise AisInputError(f"{where}: the project has no runs")
    if not names:
        first = sorted(by_name)[0]
        if len(by_name) > 1:
            say(f"{where}: showing run {first} of {len(by_name)}; copick.runs=[NAME] for another")
        return by_name[first]
    if names[0] not in by_name:
        raise AisInputError(f"{where}: no run {names[0]!r} (runs: {listing}); check copick.runs")
    if len(names) > 1:
        say(f"{where}: view shows one run at a time: {names[0]} (not {', '.join(names[1:])})")
    return by_name[names[0]]


def _match_id(wanted: str | None) -> Callable[[str], bool]:
    """A user/session filter accepting copick's spelling too (``_`` stored as ``-``)."""
    if wanted is None or wanted == "":
        return lambda _value: True
    spellings = {str(wanted), str(wanted).replace("_", "-").replace(" ", "-")}
    return lambda value: str(value) in spellings


def _choose_spacing(
    run: CopickRun, segs: Sequence[CopickSegmentation], requested: float | None, where: str
) -> float:
    """The requested spacing (listing those there are), else the spacing holding the most
    segmentations, then the coarsest (the fastest to display; the view bins to ≤ 256 anyway)."""
    with_tomograms = {float(vs.voxel_size) for vs in run.voxel_spacings if vs.tomograms}
    counts = Counter(round(float(s.voxel_size), 3) for s in segs)
    spacings = with_tomograms | set(counts)
    if not spacings:
        raise AisInputError(f"{where}: run {run.name} has no tomograms and no segmentations")
    if requested is not None:
        for size in spacings:
            if abs(size - requested) <= _TOLERANCE_A:
                return size
        there = ", ".join(f"{s:g}" for s in sorted(spacings))
        raise AisInputError(
            f"{where}: run {run.name} has no voxel spacing {requested:g} Å (there: {there} Å); "
            "check copick.voxel_spacing"
        )
    return max(spacings, key=lambda s: (counts.get(round(s, 3), 0), s))


def _choose_tomogram(
    run: CopickRun, spacing: float, tomo_type: str | None, where: str, say: Callable[[str], None]
) -> CopickTomogram | None:
    vs = next(
        (v for v in run.voxel_spacings if abs(float(v.voxel_size) - spacing) <= _TOLERANCE_A),
        None,
    )
    tomos = sorted(vs.tomograms, key=lambda t: t.tomo_type) if vs is not None else []
    if tomo_type is not None:
        if vs is None:
            raise AisInputError(f"{where}: run {run.name} has no tomograms at {spacing:g} Å")
        return cp.choose_tomogram(vs, tomo_type, where)
    if len(tomos) > 1:
        rest = ", ".join(t.tomo_type for t in tomos[1:])
        first = tomos[0].tomo_type
        say(f"{where}: run {run.name}: tomogram {first} (also {rest}: copick.tomo_type=)")
    return tomos[0] if tomos else None


def _open_tomogram(
    tomo: CopickTomogram, spacing: float, where: str
) -> tuple[Volume, dict[int, LazyVolume]]:
    """Level 0 as a lazy Volume, and the coarser pyramid levels by whole binning factor."""
    import zarr

    from ais_torch.formats.zarr import multiscale_levels, volume_from_array

    place = f"{where}: run {tomo.voxel_spacing.run.name} tomogram {tomo.tomo_type}"
    try:
        group = zarr.open_group(tomo.zarr(), mode="r")
        levels = multiscale_levels(group, place)
    except (KeyError, ValueError, OSError) as err:
        raise AisInputError(f"{place} is not readable ({err})") from None
    finest = min(levels, key=lambda lv: lv.voxel_size_A)
    volume = volume_from_array(group[finest.path], spacing, None)
    pyramid: dict[int, LazyVolume] = {}
    for lv in levels:
        ratio = lv.voxel_size_A / finest.voxel_size_A
        factor = round(ratio)
        if factor > 1 and math.isclose(ratio, factor, rel_tol=0.01) and len(lv.shape) == 3:
            pyramid[factor] = group[lv.path]
    return volume, pyramid


def _segmentation_layers(
    segs: Sequence[CopickSegmentation], objects: dict[str, CopickObject]
) -> list[tuple[CopickSegmentation, str, np.ndarray]]:
    """(segmentation, layer name, values) — one layer per binary segmentation, and one per
    object label present in a multilabel one; names get ``(user/session)`` when repeated."""
    import zarr

    found: list[tuple[CopickSegmentation, str, np.ndarray]] = []
    for seg in sorted(segs, key=lambda s: (s.name, s.user_id, s.session_id)):
        data = np.asarray(zarr.open_group(seg.zarr(), mode="r")["0"][:])
        if not seg.is_multilabel:
            found.append((seg, seg.name, data))
            continue
        for obj in sorted(objects.values(), key=lambda o: int(o.label or 0)):
            if obj.label and np.any(data == obj.label):
                found.append((seg, obj.name, (data == obj.label).astype(np.uint8)))
    repeated = {n for n, c in Counter(name for _, name, _ in found).items() if c > 1}
    return [
        (seg, f"{name} ({seg.user_id}/{seg.session_id})" if name in repeated else name, data)
        for seg, name, data in found
    ]


def _pick_layers(
    picks: Sequence[CopickPicks],
    objects: dict[str, CopickObject],
    spacing: float,
    radius_nm: float | None,
) -> list[PickLayer]:
    """Pick sets in voxels of ``spacing``, each sized by its object's radius (Å → nm)."""
    names = [p.pickable_object_name for p in picks]
    repeated = {n for n, c in Counter(names).items() if c > 1}
    layers = []
    ordered = sorted(picks, key=lambda p: (p.pickable_object_name, p.user_id, p.session_id))
    for i, p in enumerate(ordered):
        points, _ = p.numpy()
        xyz = np.asarray(points, dtype=np.float64).reshape(-1, 3) / spacing
        obj = objects.get(p.pickable_object_name)
        radius_A = obj.radius if obj is not None else None
        radius = radius_nm if radius_nm is not None else (radius_A / 10.0 if radius_A else None)
        name = p.pickable_object_name
        if name in repeated:
            name = f"{name} ({p.user_id}/{p.session_id})"
        layers.append(PickLayer(name, xyz, PICK_COLOURS[i % len(PICK_COLOURS)], radius))
    return layers


def _object_colours(config: Path) -> dict[str, Colour]:
    """Object name → RGB 0–1 for the objects whose config entry gives a ``color`` (copick
    fills in grey for the others, which would hide our distinct palette)."""
    try:
        doc = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[str, Colour] = {}
    for obj in doc.get("pickable_objects") or []:
        color = obj.get("color") if isinstance(obj, dict) else None
        if isinstance(color, (list, tuple)) and len(color) >= 3 and "name" in obj:
            r, g, b = (float(c) / 255.0 for c in color[:3])
            out[str(obj["name"])] = (r, g, b)
    return out
