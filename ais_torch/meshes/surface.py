"""Segmentation volume → triangle mesh (.obj), one surface per connected component.

Why: a segmentation is only looked at (Blender, ChimeraX, our viewer) as surfaces, and small
specks of false positives ("dust") hide everything else. This follows the original Ais's mesh
export (docs/ais_original.md §5.4): components of ``value ≥ level`` (6-connected), marching
cubes per component on its bounding box, dust removed by voxel count, vertices in nm centred on
the volume centre, ``# colour r g b`` as the first line of the .obj. On top of that: Å output,
the map's own frame (overlays the tomogram in ChimeraX), optional Taubin smoothing and
decimation, and a 1-voxel zero pad instead of the original's zeroed border (no data lost at
the volume edge, surfaces still close). The file layout is :mod:`ais_torch.formats.obj`; binning
is :func:`ais_torch.formats.encoding.block_mean`, the one picking and the viewer use.

Levels: a value ≤ 1 is a probability (0–1); a value in (1, 255] is a grey level on the 0–255
scale the original and ``ais_torch.segment`` write; each volume is read on its own scale — the
rule picking, evaluation and the viewer share (:mod:`ais_torch.formats.encoding`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.encoding import block_mean, full_scale, user_probability
from ais_torch.formats.obj import write_obj

if TYPE_CHECKING:
    import os

    import pyvista as pv

    from ais_torch.formats.obj import HeaderValue

UNITS_PER_A = {"nm": 0.1, "A": 1.0}
"""Output length units: factor from Å."""
FRAMES = ("center", "map")
"""``center``: origin at the volume centre (the original Ais); ``map``: the MRC header's frame
(voxel index × voxel size + origin), which overlays the tomogram in ChimeraX/IMOD/napari."""


@dataclass
class SurfaceMesh:
    """Triangles of all kept components of one segmentation, in one coordinate frame."""

    vertices: np.ndarray
    """``(n, 3)`` float64 x, y, z in ``units``."""
    faces: np.ndarray
    """``(m, 3)`` int64 0-based vertex indices."""
    normals: np.ndarray
    """``(n, 3)`` float64 unit outward normals."""
    units: str = "nm"
    frame: str = "center"
    n_components: int = 0
    """Components meshed (kept after dust removal)."""
    n_dust: int = 0
    """Components removed as dust (< ``min_size`` voxels)."""
    info: dict[str, HeaderValue] = field(default_factory=dict)
    """Settings and geometry (level, voxel size, shape …), written into the .obj header."""

    @property
    def is_empty(self) -> bool:
        return len(self.faces) == 0

    def to_polydata(self) -> pv.PolyData:
        """The mesh as a pyvista PolyData (normals as point data ``Normals``)."""
        import pyvista as pv

        if self.is_empty:
            return pv.PolyData()
        cells = np.hstack([np.full((len(self.faces), 1), 3), self.faces]).astype(np.int64)
        poly = pv.PolyData(self.vertices.astype(np.float64), cells.ravel())
        poly.point_data["Normals"] = self.normals
        return poly

    def to_obj(
        self,
        path: str | os.PathLike,
        *,
        colour: tuple[float, float, float] | None = None,
        source: str = "",
    ) -> Path:
        """Write the mesh as an .obj whose header says units, frame and settings.

        Our viewer reads that header to place the mesh; an empty mesh gives a valid .obj with
        only the comments, so "nothing above the level" is a result, not a missing file.
        """
        fields: dict[str, HeaderValue] = {
            "units": self.units,
            "frame": self.frame,
            "components": self.n_components,
            "dust_removed": self.n_dust,
            **{k: v for k, v in self.info.items() if k != "shape_zyx"},
        }
        if "shape_zyx" in self.info:
            fields["shape_zyx"] = self.info["shape_zyx"]
        if source:
            fields["source"] = source
        comments = ["empty: no component at or above the level (after dust removal)"]
        return write_obj(
            path,
            self.vertices,
            self.normals,
            self.faces,
            colour=colour,
            fields=fields,
            comments=comments if self.is_empty else (),
        )


def probability_level(level: float) -> float:
    """A mesh level as given by the user → probability; 0 would mesh the whole box, so > 0."""
    p = user_probability(level, "level")
    if p <= 0:
        raise ConfigError(f"level={level}: must be > 0 (e.g. 0.5 or 128)")
    return p


def segmentation_mesh(
    data: np.ndarray,
    *,
    voxel_size_A: float,
    level: float = 0.5,
    min_size: int = 0,
    bin: int = 1,
    smooth: int = 0,
    decimate: float = 0.0,
    units: str = "nm",
    frame: str = "center",
    origin_A: tuple[float, float, float] = (0.0, 0.0, 0.0),
    scale: float | None = None,
    progress: bool = False,
) -> SurfaceMesh:
    """Mesh every component of ``data ≥ level`` that has at least ``min_size`` voxels.

    Parameters
    ----------
    data
        ``(z, y, x)`` segmentation (uint8/uint16 0–255, float 0–1, or a 0/1 mask).
    voxel_size_A
        Voxel size of ``data`` in Å.
    level
        Probability (≤ 1) or grey level (1–255); see the module docstring.
    min_size
        Components with fewer voxels (counted at full resolution) are dust and dropped.
    bin
        Block-mean binning before meshing (faster, coarser); vertices stay in full-size units.
    smooth
        Taubin smoothing iterations (0 = none); removes the voxel staircase, keeps volume.
    decimate
        Fraction of triangles to remove (0–<1), after smoothing.
    units, frame
        ``nm`` or ``A``; ``center`` (original Ais) or ``map`` (MRC header frame; uses
        ``origin_A``, the header origin in Å as x, y, z).
    scale
        What probability 1 reads as in ``data``; default ``scale.full_scale(data)``.
    """
    from skimage.measure import marching_cubes

    if data.ndim != 3:
        raise AisInputError(f"segmentation must be a 3D (z, y, x) volume, got shape {data.shape}")
    units = normalise_units(units)
    if frame not in FRAMES:
        raise ConfigError(f"frame={frame!r}: choose one of {', '.join(FRAMES)}")
    bin, smooth, min_size = int(bin), int(smooth), int(min_size)
    if bin < 1 or smooth < 0 or min_size < 0:
        raise ConfigError("bin must be ≥ 1, smooth and min_size ≥ 0")
    if not 0.0 <= float(decimate) < 1.0:
        raise ConfigError(f"decimate={decimate}: a fraction of triangles to remove, 0 ≤ d < 1")
    if not np.isfinite(voxel_size_A) or voxel_size_A <= 0:
        raise AisInputError(f"voxel size {voxel_size_A} Å must be > 0")
    p = probability_level(level)
    scale = full_scale(data) if scale is None else float(scale)
    threshold = p * scale

    work = block_mean(data, bin)
    mask = work >= threshold
    labels, n = ndimage.label(mask)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:] * bin**3
    keep = np.flatnonzero(sizes >= max(min_size, 1)) + 1
    info: dict[str, HeaderValue] = {
        "level": p,
        "threshold": threshold,
        "min_size": min_size,
        "bin": bin,
        "smooth": smooth,
        "decimate": float(decimate),
        "voxel_size_A": float(voxel_size_A),
        "shape_zyx": [int(s) for s in data.shape],
        "max_value": float(np.max(work)) / scale if work.size else 0.0,
    }
    verts, faces, normals = [], [], []
    offset = 0
    boxes = ndimage.find_objects(labels)
    ids = keep
    if progress and len(ids) > 50:
        from tqdm import tqdm

        ids = tqdm(keep, desc="meshing components", unit="comp")
    for lab in ids:
        sl = tuple(
            slice(max(s.start - 2, 0), min(s.stop + 2, dim))
            for s, dim in zip(boxes[lab - 1], work.shape, strict=True)
        )
        box = np.asarray(work[sl], dtype=np.float32)
        # Other components (kept or dust) inside this box read as background; the region below
        # the level stays, so the surface is interpolated exactly as on the whole volume.
        box = np.where((labels[sl] == lab) | ~mask[sl], box, np.float32(0))
        box = np.pad(box, 1, constant_values=0)  # closes surfaces cut by the volume edge
        v, f, nrm, _ = marching_cubes(box, level=threshold, allow_degenerate=False)
        v += np.array([s.start - 1 for s in sl], dtype=v.dtype)
        verts.append(v)
        normals.append(nrm)
        faces.append(f + offset)
        offset += len(v)

    if not verts:
        empty = np.zeros((0, 3))
        return SurfaceMesh(
            empty, np.zeros((0, 3), np.int64), empty, units, frame, 0, n - len(keep), info
        )
    zyx = np.concatenate(verts).astype(np.float64) * bin + (bin - 1) / 2.0
    xyz = zyx[:, ::-1]
    tri = np.concatenate(faces).astype(np.int64)
    nrm = np.concatenate(normals).astype(np.float64)[:, ::-1]
    if frame == "center":
        shape_xyz = np.asarray(data.shape[::-1], dtype=np.float64)
        pos_A = (xyz - 0.5 * shape_xyz) * voxel_size_A
    else:
        pos_A = np.asarray(origin_A, dtype=np.float64) + xyz * voxel_size_A
    mesh = SurfaceMesh(
        pos_A * UNITS_PER_A[units], tri, nrm, units, frame, len(keep), n - len(keep), info
    )
    if smooth or decimate:
        mesh = _refine(mesh, smooth, float(decimate))
    return mesh


def _refine(mesh: SurfaceMesh, smooth: int, decimate: float) -> SurfaceMesh:
    """Taubin smoothing (volume-preserving) then decimation, via VTK; normals recomputed."""
    poly = mesh.to_polydata()
    if smooth:
        poly = poly.smooth_taubin(n_iter=smooth, pass_band=0.1)
    if decimate:
        poly = poly.triangulate().decimate(decimate, volume_preservation=True)
    poly = poly.compute_normals(
        point_normals=True,
        cell_normals=False,
        split_vertices=False,
        consistent_normals=True,
        auto_orient_normals=True,  # every surface is closed (padded volume): outward
    )
    tri = poly.faces.reshape(-1, 4)[:, 1:].astype(np.int64) if poly.n_cells else np.zeros((0, 3))
    return SurfaceMesh(
        np.asarray(poly.points, dtype=np.float64),
        tri.astype(np.int64),
        np.asarray(poly.point_data["Normals"], dtype=np.float64),
        mesh.units,
        mesh.frame,
        mesh.n_components,
        mesh.n_dust,
        mesh.info,
    )


def normalise_units(units: str) -> str:
    """``nm`` or ``A`` (also accepts Å, angstrom)."""
    key = str(units).strip()
    if key.lower() == "nm":
        return "nm"
    if key in ("A", "a", "Å", "Angstrom", "angstrom", "Angstroms", "angstroms"):
        return "A"
    raise ConfigError(f"units={units!r}: choose nm or A")


def mesh_file(
    source: str | os.PathLike,
    target: str | os.PathLike,
    *,
    colour: tuple[float, float, float] | None = None,
    progress: bool = False,
    **options: float | str,
) -> SurfaceMesh:
    """Mesh one segmentation ``.mrc`` into ``target`` (.obj); the mesh is returned for reporting.

    ``options`` are :func:`segmentation_mesh`'s settings (level, min_size, bin, smooth,
    decimate, units, frame); voxel size and origin come from the file's header.
    """
    from ais_torch.formats.mrc import read_volume

    source = Path(source)
    vol = read_volume(source, check_finite=False)
    mesh = segmentation_mesh(
        vol.data,
        voxel_size_A=vol.voxel_size_A,
        origin_A=vol.origin_A,
        progress=progress,
        **options,  # type: ignore[arg-type]
    )
    mesh.to_obj(target, colour=colour, source=source.name)
    return mesh
