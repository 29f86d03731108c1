"""3D scene of a tomogram, its segmentations, picks and meshes, as a pyvista Plotter.

Why: after segmenting and picking, a user wants to *see* whether the membranes, particles and
picks make sense, on a workstation (interactive) or on a cluster node (a PNG or a turntable
movie, rendered off screen through EGL: no display, no Xvfb). Everything that decides what is
drawn lives in :func:`build_scene`, a pure function from a :class:`Scene` to a
``pyvista.Plotter``, so tests can render it and look at the pixels. :func:`assemble_scene` makes
a Scene from volumes already open (memory-mapped MRC, lazy zarr arrays); :func:`load_scene` opens
files for it and :mod:`ais_torch.viewer.copick_run` a copick run; the command line is
``ais-torch view`` (``python -m ais_torch.view``).

The scene frame is nm with voxel (0, 0, 0) of the tomogram at the origin (x, y, z order).
Volumes are block-mean binned for display (``bin``; default: largest side ≤ 256 voxels) with
:func:`ais_torch.formats.encoding.block_mean`, as picking and meshes bin; of the tomogram only
the slice shown is read (from a coarser OME-Zarr level when one matches the bin); picks are read by
:func:`ais_torch.formats.coordinates.read_coordinates`, the reader ``evaluate`` uses;
isosurfaces are made with :func:`ais_torch.meshes.surface.segmentation_mesh`, so the viewer and
``python -m ais_torch.mesh`` show the same surfaces for the same level and dust.
"""

from __future__ import annotations

import math
import os
import sys
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.coordinates import read_coordinates
from ais_torch.formats.encoding import block_mean
from ais_torch.formats.naming import split_name
from ais_torch.formats.obj import read_obj_header

if TYPE_CHECKING:
    import pyvista as pv

    from ais_torch.formats.mrc import Volume

Colour = tuple[float, float, float]


class LazyVolume(Protocol):
    """A ``(z, y, x)`` array read only where sliced: ``np.memmap`` or a zarr array."""

    @property
    def shape(self) -> tuple[int, ...]: ...

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray: ...


# Okabe–Ito colours (distinguishable with the common colour-vision deficiencies).
PALETTE: tuple[Colour, ...] = (
    (0.0, 0.62, 0.45),  # bluish green
    (0.0, 0.45, 0.70),  # blue
    (0.84, 0.37, 0.0),  # vermillion
    (0.90, 0.62, 0.0),  # orange
    (0.80, 0.47, 0.65),  # reddish purple
    (0.34, 0.71, 0.91),  # sky blue
    (0.94, 0.89, 0.26),  # yellow
)
KNOWN_FEATURES: dict[str, Colour] = {
    "membrane": PALETTE[0],
    "carbon": PALETTE[1],
    "antibody": PALETTE[2],
    "ribosome": PALETTE[3],
    "microtubule": PALETTE[4],
    "actin": PALETTE[5],
}
"""Fixed colours for common feature names, so every scene and every user sees the same."""
PICK_COLOURS: tuple[Colour, ...] = ((1.0, 0.0, 1.0), (0.1, 0.1, 0.1), (0.55, 0.27, 0.07))
"""Picks: magenta (the original's blob colour), then near-black, brown."""
BACKGROUND: Colour = (1.0, 1.0, 1.0)
DISPLAY_MAX_SIDE = 256
AXES = {"z": 0, "y": 1, "x": 2}


def feature_colour(name: str) -> Colour:
    """The colour of a feature by name: fixed for known names, else a stable hash into PALETTE."""
    key = name.strip().lower()
    if key in KNOWN_FEATURES:
        return KNOWN_FEATURES[key]
    return PALETTE[zlib.crc32(key.encode("utf-8")) % len(PALETTE)]


def assign_colours(names: list[str], fixed: dict[str, Colour] | None = None) -> dict[str, Colour]:
    """Colours for the features of one scene: ``fixed`` (model colours) first, then by name.

    A hashed colour already taken in this scene moves on to the next free palette colour, so
    two features never share a colour while the palette lasts (stable for the same set).
    """
    fixed = {k.lower(): v for k, v in (fixed or {}).items()}
    out: dict[str, Colour] = {}
    used: set[Colour] = set()
    for name in names:
        if name.lower() in fixed:
            out[name] = tuple(float(c) for c in fixed[name.lower()])  # type: ignore[assignment]
            used.add(out[name])
    for name in names:
        if name in out:
            continue
        colour = feature_colour(name)
        if colour in used and name.lower() not in KNOWN_FEATURES:
            start = PALETTE.index(colour)
            free = [PALETTE[(start + i) % len(PALETTE)] for i in range(len(PALETTE))]
            colour = next((c for c in free if c not in used), colour)
        out[name] = colour
        used.add(colour)
    return out


@dataclass
class FeatureLayer:
    """One segmentation drawn as an isosurface."""

    name: str
    data: np.ndarray
    """``(z, y, x)`` segmentation on the tomogram's grid (0–255, 0–1 or a 0/1 mask)."""
    colour: Colour
    level: float = 0.5
    """Probability (≤ 1) or grey level (1–255); see :mod:`ais_torch.formats.encoding`."""
    min_size: int = 0
    """Hide components with fewer voxels (full resolution): the original's "dust"."""
    opacity: float = 1.0
    smooth: int = 0
    """Taubin smoothing iterations (display only): hides the voxel staircase of binary masks."""


@dataclass
class PickLayer:
    """Picked particles drawn as spheres."""

    name: str
    xyz: np.ndarray
    """``(n, 3)`` x, y, z in voxels of the tomogram grid."""
    colour: Colour = PICK_COLOURS[0]
    radius_nm: float | None = None
    """Sphere radius; None = the scene's ``pick_radius_nm`` (copick: the object's radius)."""


@dataclass
class MeshLayer:
    """A ready-made surface (e.g. an .obj from ``python -m ais_torch.mesh``) in the scene frame."""

    name: str
    mesh: pv.PolyData
    colour: Colour


@dataclass
class Scene:
    """What to draw; all geometry refers to the tomogram grid ``shape_zyx`` at ``voxel_size_A``."""

    shape_zyx: tuple[int, int, int]
    voxel_size_A: float
    tomogram: LazyVolume | None = None
    """Read one displayed slice at a time (memory-mapped MRC, zarr array or plain array)."""
    tomogram_levels: dict[int, LazyVolume] = field(default_factory=dict)
    """Coarser copies of the tomogram by whole factor (OME-Zarr pyramid levels): the slice is
    cut from the coarsest whose factor divides the display bin instead of binning level 0."""
    features: list[FeatureLayer] = field(default_factory=list)
    picks: list[PickLayer] = field(default_factory=list)
    meshes: list[MeshLayer] = field(default_factory=list)
    bin: int | None = None
    """Display binning; None = smallest bin with the largest side ≤ 256."""
    slice_axis: str = "z"
    slice_index: int | None = None
    """Tomogram slice shown (full-resolution index); None = the middle."""
    pick_radius_nm: float = 4.0
    pick_opacity: float = 0.5
    """Picks are see-through by default, so the particle surface they sit on stays visible."""
    window_size: tuple[int, int] = (1024, 768)
    title: str = ""

    @property
    def pixel_nm(self) -> float:
        return self.voxel_size_A / 10.0

    def display_bin(self) -> int:
        if self.bin is not None:
            if int(self.bin) < 1:
                raise ConfigError(f"bin={self.bin} must be ≥ 1")
            return int(self.bin)
        return max(1, math.ceil(max(self.shape_zyx) / DISPLAY_MAX_SIDE))


def build_scene(scene: Scene, off_screen: bool = True, widgets: bool | None = None) -> pv.Plotter:
    """Draw ``scene`` into a new Plotter (no ``show()``).

    ``widgets`` (default: on screen only) adds a slider that moves the tomogram slice and a
    checkbox per layer that hides or shows it; without them the slice is the one chosen
    (default the middle).
    """
    import pyvista as pv

    from ais_torch.meshes.surface import segmentation_mesh

    widgets = (not off_screen) if widgets is None else widgets
    axis = scene.slice_axis.lower()
    if axis not in AXES:
        raise ConfigError(f"slice_axis={scene.slice_axis!r}: choose z, y or x")
    b = scene.display_bin()
    px = scene.pixel_nm
    plotter = pv.Plotter(off_screen=off_screen, window_size=list(scene.window_size))
    plotter.set_background(BACKGROUND)
    plotter.enable_3_lights()  # white lights, so surfaces show their true colour
    legend: list[tuple[str, Colour]] = []
    toggles: list[tuple[str, pv.Actor]] = []

    size_nm = np.asarray(scene.shape_zyx[::-1], dtype=float) * px
    outline = pv.Box(bounds=(0, size_nm[0], 0, size_nm[1], 0, size_nm[2])).outline()
    plotter.add_mesh(outline, color=(0.5, 0.5, 0.5), line_width=1, name="outline")

    if scene.tomogram is not None:
        _add_tomogram_slice(plotter, scene, b, axis, widgets)

    for layer in scene.features:
        surf = segmentation_mesh(
            layer.data,
            voxel_size_A=scene.voxel_size_A,
            level=layer.level,
            min_size=layer.min_size,
            bin=b,
            smooth=layer.smooth,
            units="nm",
            frame="map",
        )
        label = f"{layer.name} ({surf.n_components})"
        legend.append((label, layer.colour))
        if surf.is_empty:
            continue
        actor = plotter.add_mesh(
            surf.to_polydata(),
            color=layer.colour,
            opacity=layer.opacity,
            smooth_shading=True,
            name=f"feature:{layer.name}",
        )
        toggles.append((layer.name, actor))

    for layer in scene.meshes:
        legend.append((layer.name, layer.colour))
        if layer.mesh.n_points:
            actor = plotter.add_mesh(
                layer.mesh, color=layer.colour, smooth_shading=True, name=f"mesh:{layer.name}"
            )
            toggles.append((layer.name, actor))

    for layer in scene.picks:
        legend.append((f"{layer.name} ({len(layer.xyz)} picks)", layer.colour))
        if len(layer.xyz) == 0:
            continue
        points = pv.PolyData(np.asarray(layer.xyz, dtype=float) * px)
        radius = scene.pick_radius_nm if layer.radius_nm is None else layer.radius_nm
        sphere = pv.Sphere(radius=radius, theta_resolution=12, phi_resolution=12)
        actor = plotter.add_mesh(
            points.glyph(geom=sphere, scale=False, orient=False),
            color=layer.colour,
            opacity=scene.pick_opacity,
            name=f"picks:{layer.name}",
        )
        toggles.append((layer.name, actor))

    _add_legend(plotter, scene, legend)
    if widgets:
        _add_toggles(plotter, toggles)
    plotter.add_axes(color="black")
    plotter.view_isometric()
    plotter.reset_camera()
    return plotter


def _add_legend(plotter: pv.Plotter, scene: Scene, legend: list[tuple[str, Colour]]) -> None:
    """Title, then one line per layer in the layer's colour (upper left, fixed pixel size).

    Our own text lines rather than VTK's legend box, whose text overflows the box edge.
    """
    height = scene.window_size[1]
    lines = [(scene.title, (0.0, 0.0, 0.0))] if scene.title else []
    lines += legend
    for i, (text, colour) in enumerate(lines):
        plotter.add_text(
            text,
            position=(12, height - 30 - 24 * i),
            font_size=11 if i or not scene.title else 12,
            color=colour,
            name=f"legend{i}",
        )


def _slice_source(scene: Scene, b: int) -> tuple[LazyVolume, int]:
    """The array to cut display slices from and the bin still to apply to it: the coarsest
    stored level whose factor divides ``b``, else the full-resolution tomogram."""
    assert scene.tomogram is not None
    factor = max((f for f in scene.tomogram_levels if f > 1 and b % f == 0), default=1)
    source = scene.tomogram if factor == 1 else scene.tomogram_levels[factor]
    return source, b // factor


def _add_tomogram_slice(plotter: pv.Plotter, scene: Scene, b: int, axis: str, slider: bool) -> None:
    """A grey slice through the binned tomogram; on screen a slider moves it.

    Only the ``b`` slices of a displayed slice are read (one block-mean slab), so a large or
    remote tomogram opens at once; the grey range is that of the first slice shown.
    """
    import pyvista as pv

    px = scene.pixel_nm
    ax = AXES[axis]
    source, sub = _slice_source(scene, b)
    n = int(source.shape[ax]) // sub
    if n == 0 or min(int(m) // sub for m in source.shape) == 0:
        raise ConfigError(f"bin={b} is larger than the volume {scene.shape_zyx}; use a smaller bin")
    full = scene.shape_zyx[ax]
    start = full // 2 if scene.slice_index is None else int(scene.slice_index)
    if not 0 <= start < full:
        raise ConfigError(f"slice={start} is outside 0–{full - 1} along {axis}")

    def index_of(index_full: float) -> int:
        return int(np.clip(round((index_full - (b - 1) / 2) / b), 0, n - 1))

    def read_plane(k: int) -> np.ndarray:
        cut = [slice(None)] * 3
        cut[ax] = slice(k * sub, (k + 1) * sub)
        return block_mean(np.asarray(source[tuple(cut)]), sub)

    first = (index_of(start), read_plane(index_of(start)))
    lo, hi = np.percentile(first[1], [1, 99])

    def draw(index_full: float) -> None:
        k = index_of(index_full)
        plane = first[1] if k == first[0] else read_plane(k)
        origin = [(b - 1) / 2 * px] * 3
        origin[2 - ax] = (k * b + (b - 1) / 2) * px
        grid = pv.ImageData(dimensions=plane.shape[::-1], spacing=(b * px,) * 3, origin=origin)
        grid.point_data["density"] = plane.ravel().astype(np.float32)
        plotter.add_mesh(
            grid,
            scalars="density",
            cmap="gray",
            clim=(float(lo), float(hi)),
            show_scalar_bar=False,
            lighting=False,
            name="tomogram",
        )

    draw(start)
    if slider:
        plotter.add_slider_widget(
            draw,
            rng=(0, full - 1),
            value=start,
            title=f"{axis} slice",
            fmt="%.0f",
            pointa=(0.05, 0.08),
            pointb=(0.45, 0.08),
            interaction_event="always",
        )


def _add_toggles(plotter: pv.Plotter, toggles: list[tuple[str, pv.Actor]]) -> None:
    """One checkbox per layer (bottom right, top to bottom in legend order)."""
    for i, (name, actor) in enumerate(toggles):
        y = 10 + 40 * i

        def toggle(state: bool, actor: pv.Actor = actor) -> None:
            actor.SetVisibility(state)

        plotter.add_checkbox_button_widget(
            toggle, value=True, position=(10.0, 60.0 + y), size=30, color_on="black"
        )
        plotter.add_text(name, position=(48, 62 + y), font_size=8, color="black")


# --------------------------------------------------------------------------- files → Scene


def read_mesh(
    path: str | os.PathLike,
    shape_zyx: tuple[int, int, int],
    voxel_size_A: float,
    origin_A: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> pv.PolyData:
    """An .obj in the scene frame (nm, voxel 0 at the origin).

    Files written by ``python -m ais_torch.mesh`` say their units and frame in the header;
    others are taken as the original Ais writes them (nm, centred on the volume centre).
    """
    import pyvista as pv

    path = Path(path)
    if not path.is_file():
        raise AisInputError(f"{path}: mesh file not found; check the path")
    head = read_obj_header(path)
    try:
        poly = pv.read(path)
    except Exception as err:  # VTK's reader errors are not typed
        raise AisInputError(f"{path}: not a readable .obj mesh ({err})") from None
    if poly.n_points == 0:
        return pv.PolyData()
    poly = poly.extract_surface() if not isinstance(poly, pv.PolyData) else poly
    scale = 0.1 if head.get("units") == "A" else 1.0
    pts = np.asarray(poly.points, dtype=np.float64) * scale
    if head.get("frame") == "map":
        pts -= np.asarray(origin_A) / 10.0
    else:
        shape = head.get("shape_zyx")
        zyx = [int(s) for s in shape.split(",")] if shape else list(shape_zyx)
        pts += 0.5 * np.asarray(zyx[::-1], dtype=np.float64) * voxel_size_A / 10.0
    poly.points = pts
    return poly


def model_colours(models: list[str | os.PathLike]) -> dict[str, Colour]:
    """Title → colour from .scnm model files (their metadata only)."""
    from ais_torch.formats.scnm import read_metadata

    out: dict[str, Colour] = {}
    for m in models:
        meta = read_metadata(m)
        out[meta.title] = tuple(float(c) for c in meta.colour[:3])  # type: ignore[assignment]
    return out


@dataclass
class FolderContents:
    """What ``data=DIR`` found for one tomogram."""

    tomogram: Path | None
    segmentations: list[Path]
    picks: list[Path]
    meshes: list[Path]
    others: list[str]
    """Names of further tomograms in the folder (not shown)."""


def scan_folder(folder: str | os.PathLike, tomo: str | None = None) -> FolderContents:
    """A folder's tomogram, its ``<tomo>__<feature>.mrc`` files, picks and .obj meshes.

    Picks are ``<tomo>*.star``, ``<tomo>*coords*.txt|.tsv`` (or with ``__``) and
    ``<tomo>*_coords.json`` (copick), all read by
    :func:`ais_torch.formats.coordinates.read_coordinates`.

    The tomogram is ``tomo`` if given, else the first (by name) ``*.mrc`` without ``__``; if
    the folder holds only segmentations, the first tomogram name among them.
    """
    root = Path(folder)
    if not root.is_dir():
        raise AisInputError(f"data={root}: not a folder; give the folder with the .mrc files")
    mrcs = sorted(p for p in root.iterdir() if p.suffix.lower() in (".mrc", ".rec", ".map"))
    objs = sorted(root.glob("*__*.obj"))
    tomos = [p for p in mrcs if "__" not in p.name]
    names = sorted(
        {p.stem for p in tomos} | {split_name(p)[0] for p in [*mrcs, *objs] if "__" in p.name}
    )
    if not names:
        raise AisInputError(f"data={root}: no .mrc or <tomo>__<feature>.obj files in this folder")
    if tomo is None:
        tomo = names[0]
    elif tomo not in names:
        raise AisInputError(f"data={root}: nothing for tomogram {tomo!r}; found {', '.join(names)}")
    tomogram = next((p for p in tomos if p.stem == tomo), None)
    segs = [p for p in mrcs if "__" in p.name and split_name(p)[0] == tomo]
    picks = sorted(
        p
        for p in root.iterdir()
        if p.name.startswith(tomo)
        and (
            (p.suffix.lower() in (".txt", ".tsv") and ("coords" in p.name or "__" in p.name))
            or p.suffix.lower() == ".star"
            or p.name.endswith("_coords.json")  # copick, as `ais-torch pick formats=[json]` writes
        )
    )
    meshes = [p for p in objs if split_name(p)[0] == tomo]
    return FolderContents(tomogram, segs, picks, meshes, [n for n in names if n != tomo])


def _parse_per_feature(value: str | float | None, default: float, what: str) -> dict[str, float]:
    """``0.5`` (all features) or ``membrane:0.6,antibody:0.4`` → {name or '*': value}."""
    if value is None or value == "":
        return {"*": default}
    if isinstance(value, (int, float)):
        return {"*": float(value)}
    out: dict[str, float] = {"*": default}
    for item in str(value).split(","):
        name, sep, number = item.rpartition(":")
        try:
            out[name.strip() if sep else "*"] = float(number)
        except ValueError:
            raise ConfigError(
                f"{what}={value!r}: give a number or feature:number pairs, e.g. membrane:0.6"
            ) from None
    return out


def load_scene(
    *,
    tomogram: str | os.PathLike | None = None,
    segmentations: list[str | os.PathLike] | None = None,
    picks: list[str | os.PathLike] | None = None,
    meshes: list[str | os.PathLike] | None = None,
    models: list[str | os.PathLike] | None = None,
    level: str | float | None = None,
    min_size: str | float | None = None,
    voxel_size_A: float | None = None,
    smooth: int = 0,
    **scene_options: object,
) -> Scene:
    """Read the files into a :class:`Scene` (segmentations must match the tomogram's shape).

    ``level`` and ``min_size`` are one value for all features or ``feature:value`` pairs
    (``"membrane:0.6,antibody:0.4"``); feature names come from ``<tomo>__<feature>.mrc``.
    """
    from ais_torch.formats.mrc import read_volume

    segmentations = list(segmentations or [])
    if tomogram is None and not segmentations:
        raise AisInputError("nothing to show: give tomogram=T.mrc and/or segmentations=[A.mrc]")
    tomo = read_volume(tomogram, voxel_size_A=voxel_size_A) if tomogram else None
    segs = [read_volume(s, voxel_size_A=voxel_size_A, check_finite=False) for s in segmentations]
    ref = tomo or segs[0]
    pick_layers = [
        PickLayer(
            Path(p).stem,
            read_coordinates(p, voxel_size_A=ref.voxel_size_A),
            PICK_COLOURS[i % len(PICK_COLOURS)],
        )
        for i, p in enumerate(picks or [])
    ]
    return assemble_scene(
        tomogram=tomo,
        segmentations=[(split_name(s.path)[1], s) for s in segs],  # type: ignore[arg-type]
        picks=pick_layers,
        meshes=meshes or [],
        colours=model_colours(list(models or [])),
        level=level,
        min_size=min_size,
        smooth=smooth,
        title=Path(ref.path).name if ref.path is not None else "",
        **scene_options,
    )


def assemble_scene(
    *,
    tomogram: Volume | None,
    segmentations: Sequence[tuple[str, Volume]] = (),
    picks: Sequence[PickLayer] = (),
    meshes: Sequence[str | os.PathLike] = (),
    colours: Mapping[str, Colour] | None = None,
    level: str | float | None = None,
    min_size: str | float | None = None,
    smooth: int = 0,
    tomogram_levels: Mapping[int, LazyVolume] | None = None,
    title: str = "",
    **scene_options: object,
) -> Scene:
    """A :class:`Scene` from volumes already open: ``segmentations`` as (feature name, volume)
    on the tomogram's grid, picks in voxels of it, ``.obj`` mesh files named
    ``<tomo>__<feature>.obj``. ``colours``: fixed colours by feature name (model or copick
    object colours); the others by :func:`assign_colours`."""
    ref = tomogram or (segmentations[0][1] if segmentations else None)
    if ref is None:
        raise AisInputError("nothing to show: no tomogram and no segmentation")
    for name, s in segmentations:
        if s.shape != ref.shape:
            raise AisInputError(
                f"{s.path or name}: shape {s.shape} differs from {ref.path or 'the tomogram'} "
                f"{ref.shape}; segmentations must be on the tomogram's grid"
            )
    levels = _parse_per_feature(level, 0.5, "level")
    sizes = _parse_per_feature(min_size, 0, "min_size")
    names = [name for name, _ in segmentations]
    mesh_names = [split_name(m)[1] for m in meshes]
    palette = assign_colours(names + mesh_names, dict(colours or {}))
    features = [
        FeatureLayer(
            name=name,
            data=s.data,
            colour=palette[name],
            level=levels.get(name, levels["*"]),
            min_size=int(sizes.get(name, sizes["*"])),
            smooth=int(smooth),
        )
        for name, s in segmentations
    ]
    mesh_layers = [
        MeshLayer(
            f"{name} (mesh)", read_mesh(m, ref.shape, ref.voxel_size_A, ref.origin_A), palette[name]
        )
        for name, m in zip(mesh_names, meshes, strict=True)
    ]
    return Scene(
        shape_zyx=ref.shape,
        voxel_size_A=ref.voxel_size_A,
        tomogram=tomogram.data if tomogram is not None else None,
        tomogram_levels=dict(tomogram_levels or {}),
        features=features,
        picks=list(picks),
        meshes=mesh_layers,
        title=title,
        **scene_options,  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- outputs


def prefer_egl() -> None:
    """Without a display VTK first tries X and prints a warning; go straight to EGL if present.

    Only when libEGL is installed: forcing a window class whose library is missing crashes VTK.
    """
    import ctypes.util

    if not os.environ.get("DISPLAY") and ctypes.util.find_library("EGL"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


def has_display() -> bool:
    """Whether an interactive window can open (X11/Wayland on Linux; always on macOS/Windows)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def save_screenshot(plotter: pv.Plotter, path: str | os.PathLike) -> np.ndarray:
    """Render and write a PNG atomically; returns the ``(h, w, 3)`` uint8 image."""
    from PIL import Image

    from ais_torch.formats.atomic import atomic_output

    img = plotter.screenshot(return_img=True)
    with atomic_output(path) as tmp:
        Image.fromarray(np.asarray(img)).save(tmp, format="PNG")
    return np.asarray(img)


def save_turntable(
    plotter: pv.Plotter, path: str | os.PathLike, n_frames: int = 72, fps: int = 15
) -> Path:
    """One turn of the camera about the view-up axis: .gif (imageio) or .mp4 (imageio-ffmpeg)."""
    import importlib.util

    from ais_torch.formats.atomic import atomic_output

    path = Path(path)
    kind = path.suffix.lower()
    if kind not in (".gif", ".mp4"):
        raise ConfigError(f"turntable={path}: use a .gif or .mp4 file name")
    if importlib.util.find_spec("imageio") is None:
        raise ConfigError("turntable needs the imageio package: pip install imageio")
    if kind == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ConfigError(
            "turntable=.mp4 needs imageio-ffmpeg (pip install imageio-ffmpeg); or use a .gif"
        )
    if n_frames < 2:
        raise ConfigError(f"frames={n_frames}: need at least 2")
    with atomic_output(path) as tmp:
        movie = tmp.with_name(tmp.name + kind)  # imageio picks its writer by the suffix
        try:
            if kind == ".gif":
                plotter.open_gif(str(movie), fps=fps)
            else:
                plotter.open_movie(str(movie), framerate=fps)
            for _ in range(n_frames):
                plotter.camera.azimuth += 360.0 / n_frames
                plotter.write_frame()
            plotter.mwriter.close()
            os.replace(movie, tmp)
        finally:
            movie.unlink(missing_ok=True)
    return path
