"""Model interactions: keep (colocalize) or drop (avoid) a model's prediction near another's.

A rule says "``parent`` colocalizes with / avoids ``partner`` within ``radius_nm``": the
partner's prediction is thresholded, the mask grown by the radius, and the parent's prediction
is kept only inside (colocalize) or only outside (avoid) the grown mask.

Optionally the partner's mask is cleaned first: with ``min_size_nm3`` > 0, connected pieces
(faces touching, in 3D) smaller than that volume are dropped — a membrane is a sheet of
thousands of nm³, so a 300 nm³ speck where the membrane model fired on a dense particle is not a
membrane, and should neither remove that particle (avoid) nor keep a decoy beside it
(colocalize). Off by default (the original has no such step); it holds the partner's mask and
its labels for the whole tomogram (5 bytes per voxel) while the rule runs.

Two geometries:

* ``2d`` — the original Ais's: every z slice on its own, a disk of ``int(R_nm // pixel_nm)``
  pixels with the strict inequality ``d² < r²`` (so 1 px means no growth and < 1 px an empty
  disk: colocalize then removes everything, avoid keeps everything).
* ``3d`` — the physically meaningful one: every voxel whose centre lies within ``R`` nm
  (inclusive) of a partner voxel, measured with the real voxel size in each axis. ``R = 0``
  keeps exactly the partner mask.

Growing by a large radius uses Euclidean distance transforms of the inverted mask (scipy),
never a huge structuring element, and never the whole volume at once: 2d and the default 3d
method work one slice at a time (3d keeps a window of ``2·R/voxel_z + 1`` slices of in-plane
distances, float32), and for very large radii 3d switches to 3D transforms on tiles with a halo
of ``R`` (about 22 bytes per tile voxel, ~0.7 GB per tile). Both 3d methods are exact.

:func:`apply_interaction_like_ais` reproduces the original's function bit for bit, including
its output dtypes; the product path (:func:`apply_interaction`) zeroes the parent in place and
keeps its dtype.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ais_torch.errors import AisInputError, ConfigError

TYPES = ("colocalize", "avoid")
"""Interaction types; the index is the original's ``type`` code (0 colocalize, 1 avoid)."""
GEOMETRIES = ("2d", "3d")
TILE_VOXELS = 1 << 25
"""Voxels per tile (core plus halo) for the 3d distance transform: ~22 B each, ~0.7 GB peak."""
MAX_Z_WINDOW = 129
"""Above this many slices (2·R/z-voxel + 1) the 3d rule uses tiles instead of slice windows."""
_TOLERANCE = 1e-6
"""Relative slack on ``d² <= R²`` so ``3 * 0.1 nm`` counts as within ``0.3 nm`` (and float32
in-plane squared distances compare safely; they are exact integers for square pixels)."""
METHODS = ("auto", "slices", "tiles")
_SPELLINGS = {"colocalize": 0, "colocalise": 0, "avoid": 1}

VoxelSize = float | Sequence[float]


def interaction_type(value: object, where: str = "interaction") -> str:
    """``'colocalize'`` or ``'avoid'`` from a name (any case, British spelling too) or 0/1."""
    if isinstance(value, str) and value.strip().lower() in _SPELLINGS:
        return TYPES[_SPELLINGS[value.strip().lower()]]
    if not isinstance(value, bool) and isinstance(value, int | np.integer) and value in (0, 1):
        return TYPES[int(value)]
    raise ConfigError(f"{where}: type {value!r} unknown; use colocalize (0) or avoid (1)")


def _number(value: object, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ConfigError(f"{where}: {what} should be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ConfigError(f"{where}: {what} should be finite, got {value}")
    return value


@dataclass(frozen=True)
class Interaction:
    """One rule: ``parent`` colocalizes with / avoids ``partner`` within ``radius_nm``.

    ``threshold`` is a probability (0..1) applied to the partner: ×255 for integer (0..255)
    predictions. Construction checks every field, so a bad rule fails before any model runs.
    """

    parent: str
    partner: str
    type: str
    radius_nm: float
    threshold: float = 0.5
    geometry: str = "3d"
    min_size_nm3: float = 0.0
    where: str = "interaction"

    def __post_init__(self) -> None:
        w = self.where
        for key in ("parent", "partner"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ConfigError(f"{w}: '{key}' should be a model title")
        if self.parent == self.partner:
            raise ConfigError(f"{w}: model '{self.parent}' cannot interact with itself")
        object.__setattr__(self, "type", interaction_type(self.type, w))
        radius = _number(self.radius_nm, "radius_nm", w)
        if radius < 0:
            raise ConfigError(f"{w}: radius_nm should be >= 0 (nm), got {radius}")
        threshold = _number(self.threshold, "threshold", w)
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(
                f"{w}: threshold {threshold} is outside [0, 1]; thresholds are probabilities "
                "(0.5 = 128 on the 0-255 scale)"
            )
        geometry = str(self.geometry).strip().lower()
        if geometry not in GEOMETRIES:
            raise ConfigError(f"{w}: geometry {self.geometry!r} unknown; use 2d or 3d")
        min_size = _number(self.min_size_nm3, "min_size_nm3", w)
        if min_size < 0:
            raise ConfigError(
                f"{w}: min_size_nm3 should be >= 0 (nm³; 0 keeps every piece of the partner), "
                f"got {min_size}"
            )
        object.__setattr__(self, "min_size_nm3", min_size)
        object.__setattr__(self, "radius_nm", radius)
        object.__setattr__(self, "threshold", threshold)
        object.__setattr__(self, "geometry", geometry)

    @classmethod
    def from_group(cls, item: Mapping[str, Any], where: str = ".scnmgroup") -> Interaction:
        """A rule from the original's dict (``parent_title``, ``partner_title``, ``type`` 0/1,
        ``radius`` nm, ``threshold``); its geometry is the original's, ``2d``. Our own
        ``min_size_nm3`` key is read when present (the original ignores unknown keys).

        ``item`` is unchecked JSON (hence ``Any``): the constructor validates every field."""
        return cls(
            parent=item.get("parent_title", ""),
            partner=item.get("partner_title", ""),
            type=item.get("type"),
            radius_nm=item.get("radius", 10.0),
            threshold=item.get("threshold", 0.5),
            geometry="2d",
            min_size_nm3=item.get("min_size_nm3", 0.0),
            where=where,
        )

    def as_group_dict(self) -> dict[str, str | int | float]:
        """The original's ``.scnmgroup`` dict (which cannot say ``3d``: it is always 2d);
        ``min_size_nm3`` is added only when set, so plain rules stay the original's exactly."""
        group: dict[str, str | int | float] = {
            "parent_title": self.parent,
            "partner_title": self.partner,
            "type": TYPES.index(self.type),
            "radius": self.radius_nm,
            "threshold": self.threshold,
        }
        if self.min_size_nm3:
            group["min_size_nm3"] = self.min_size_nm3
        return group

    def describe(self) -> str:
        verb = "colocalizes with" if self.type == "colocalize" else "avoids"
        dust = f", partner pieces < {self.min_size_nm3:g} nm³ ignored" if self.min_size_nm3 else ""
        return (
            f"{self.parent} {verb} {self.partner} within {self.radius_nm:g} nm "
            f"({self.geometry}, threshold {self.threshold:g}{dust})"
        )


# --------------------------------------------------------------------------- the original


def ais_radius_px(radius_nm: float, pixel_size_nm: float) -> int:
    """The original's disk radius in pixels: ``int(radius // pixel_size)`` (floor division)."""
    return int(radius_nm // pixel_size_nm)


def ais_disk_kernel(radius_nm: float, pixel_size_nm: float) -> np.ndarray:
    """The original's structuring element: (2r+1)² float32, 1 where ``dx² + dy² < r²``."""
    r = ais_radius_px(radius_nm, pixel_size_nm)
    offsets = np.arange(-r, r + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 < r * r).astype(np.float32)


def apply_interaction_like_ais(
    parent: np.ndarray,
    partner: np.ndarray,
    *,
    type: str | int,
    radius_nm: float,
    threshold: float = 0.5,
    pixel_size_nm: float,
) -> np.ndarray:
    """What the original Ais 1.2.40 returns for one interaction (a new array).

    Per 2D slice (a (z, y, x) stack is done slice by slice): partner mask = ``partner >
    threshold·255`` if the partner is uint8, else ``partner > threshold`` — so uint16 arrays
    holding 0..255 (MRC mode 6 as read back from segment files) are thresholded at 0.5: nearly
    every voxel becomes partner. The mask is dilated once with :func:`ais_disk_kernel`, cast to
    uint8 (uint8 partner) or float32, and the parent is multiplied by it (colocalize) or by
    ``1.0 - mask`` (avoid). NumPy's promotion then gives: float32 → float32, uint8 colocalize →
    uint8, uint8 avoid → float64, uint16 → float32. Kept for parity checks; use
    :func:`apply_interaction` in the product.
    """
    kind = interaction_type(type)
    if partner.dtype == np.uint8:
        binary = partner > threshold * 255
        mask_dtype: type[np.generic] = np.uint8
    else:
        binary = partner > threshold
        mask_dtype = np.float32
    kernel = ais_disk_kernel(radius_nm, pixel_size_nm)
    if binary.ndim == 3:
        kernel = kernel[None]  # no growth along z: slice by slice
    mask = ndi.binary_dilation(binary, structure=kernel).astype(mask_dtype)
    if kind == "avoid":
        return parent * (1.0 - mask)
    return parent * mask


# --------------------------------------------------------------------------- the product


def partner_mask(partner: np.ndarray, threshold: float) -> np.ndarray:
    """``partner > threshold`` on the prediction's own scale (×255 for integer dtypes)."""
    if np.issubdtype(partner.dtype, np.integer):
        return partner > threshold * 255
    return partner > threshold


def without_small_pieces(
    partner: np.ndarray, threshold: float, min_size_nm3: float, voxel_nm: Sequence[float]
) -> np.ndarray:
    """The partner's mask (bool, whole volume) minus connected pieces smaller than
    ``min_size_nm3``; pieces are face-connected in 3D, like mesh and picking dust removal."""
    mask = partner_mask(np.asarray(partner), threshold)
    labels, n = ndi.label(mask)
    if n == 0:
        return mask
    voxel_volume = math.prod(voxel_nm)
    sizes_nm3 = np.bincount(labels.ravel(), minlength=n + 1) * voxel_volume
    small = sizes_nm3 < min_size_nm3 * (1 - _TOLERANCE)
    small[0] = False
    for z in range(mask.shape[0]):  # slice by slice: no third whole-volume array
        mask[z][small[labels[z]]] = False
    return mask


def voxel_size_nm(voxel_size_A: VoxelSize) -> tuple[float, float, float]:
    """(z, y, x) voxel size in nm from one size or three (z, y, x) sizes in Å."""
    sizes = [voxel_size_A] * 3 if np.ndim(voxel_size_A) == 0 else list(voxel_size_A)  # type: ignore[arg-type]
    if len(sizes) != 3 or not all(
        isinstance(s, int | float | np.number) and math.isfinite(s) and s > 0 for s in sizes
    ):
        raise AisInputError(
            f"voxel size {voxel_size_A!r} Å is not usable for interactions; give a positive "
            "number (or three, z y x); set voxel_size_A= when the MRC header has none"
        )
    return tuple(float(s) / 10.0 for s in sizes)  # type: ignore[return-value]


def _within_2d(mask: np.ndarray, r_px: int) -> np.ndarray:
    """One slice grown by the original's disk: exact integer ``dy² + dx² < r²``."""
    if r_px <= 0 or not mask.any():
        return np.zeros_like(mask)
    ft = ndi.distance_transform_edt(~mask, return_distances=False, return_indices=True)
    yy, xx = np.indices(mask.shape, dtype=np.int64, sparse=True)
    d2 = (ft[0] - yy) ** 2 + (ft[1] - xx) ** 2
    return d2 < r_px * r_px


def _halo(radius_nm: float, sampling: Sequence[float]) -> tuple[int, ...]:
    return tuple(math.floor(radius_nm * (1 + _TOLERANCE) / s) for s in sampling)


def plan_tiles(
    shape: Sequence[int], halo: Sequence[int], budget: int = TILE_VOXELS
) -> tuple[int, ...]:
    """Core tile size per axis so one core plus its halo holds at most ``budget`` voxels.

    Halves the longest core axis until it fits (a core never shrinks below 16 voxels, or the
    axis length, so a radius larger than the budget allows still runs, just with bigger tiles).
    """
    core = [int(n) for n in shape]

    def size(c: Sequence[int]) -> int:
        return math.prod(min(n, ci + 2 * h) for n, ci, h in zip(shape, c, halo, strict=True))

    while size(core) > budget:
        axis = max(range(len(core)), key=lambda i: core[i])
        if core[axis] <= 16:
            break
        core[axis] = (core[axis] + 1) // 2
    return tuple(core)


def iter_tiles(
    shape: Sequence[int], core: Sequence[int], halo: Sequence[int]
) -> Iterator[tuple[tuple[slice, ...], tuple[slice, ...], tuple[slice, ...]]]:
    """``(core in volume, tile in volume, core in tile)`` slices covering the volume once."""
    starts = [range(0, n, c) for n, c in zip(shape, core, strict=True)]
    for origin in product(*starts):
        core_s, tile_s, inner = [], [], []
        for o, n, c, h in zip(origin, shape, core, halo, strict=True):
            stop = min(o + c, n)
            lo, hi = max(0, o - h), min(n, stop + h)
            core_s.append(slice(o, stop))
            tile_s.append(slice(lo, hi))
            inner.append(slice(o - lo, stop - lo))
        yield tuple(core_s), tuple(tile_s), tuple(inner)


def _within_3d(
    mask: np.ndarray, inner: tuple[slice, ...], radius_nm: float, sampling: Sequence[float]
) -> np.ndarray:
    """Voxels of ``mask[inner]`` whose centre is within ``radius_nm`` of a True voxel of ``mask``.

    The feature transform (index of the nearest mask voxel, int32) is the only full-tile array;
    squared distances are formed one z slice at a time.
    """
    core_shape = tuple(s.stop - s.start for s in inner)
    if not mask.any():
        return np.zeros(core_shape, dtype=bool)
    if radius_nm == 0:
        return mask[inner].copy()
    ft = np.empty((3, *mask.shape), dtype=np.int32)
    ndi.distance_transform_edt(
        ~mask, sampling=sampling, return_distances=False, return_indices=True, indices=ft
    )
    limit = radius_nm * radius_nm * (1 + _TOLERANCE)
    vz, vy, vx = sampling
    zs, ys, xs = inner
    yy = np.arange(ys.start, ys.stop)[:, None]
    xx = np.arange(xs.start, xs.stop)[None, :]
    out = np.empty(core_shape, dtype=bool)
    for i, z in enumerate(range(zs.start, zs.stop)):
        d2 = ((ft[0, z, ys, xs] - z) * vz) ** 2
        d2 += ((ft[1, z, ys, xs] - yy) * vy) ** 2
        d2 += ((ft[2, z, ys, xs] - xx) * vx) ** 2
        out[i] = d2 <= limit
    return out


def _plane_d2(mask: np.ndarray, ratio_y: float) -> np.ndarray | None:
    """In-plane squared distance to the nearest mask pixel, in x-pixel² units (float32, exact
    integers for square pixels, clipped at 2²⁴); ``None`` for an empty slice."""
    if not mask.any():
        return None
    sampling = (ratio_y, 1.0)
    ft = ndi.distance_transform_edt(
        ~mask, sampling=sampling, return_distances=False, return_indices=True
    )
    yy, xx = np.indices(mask.shape, sparse=True)
    d2 = ((ft[0] - yy) * ratio_y) ** 2 + (ft[1] - xx) ** 2.0
    return np.minimum(d2, float(1 << 24)).astype(np.float32)


def _near_3d_by_slices(
    partner: np.ndarray, threshold: float, radius_nm: float, sampling: Sequence[float]
) -> Iterator[tuple[tuple[slice, ...], np.ndarray]]:
    """3d zones one z slice at a time, exactly: the squared 3D distance is separable,
    ``min over z' of (z - z')²·vz² + d²_plane(z')``, so a 2D distance transform per slice plus a
    window of ``2h + 1`` slices (h = R / vz) gives it. Holds ``2h + 1`` float32 slices; ~3-6×
    faster than a 3D transform for the usual radii."""
    vz, vy, vx = sampling
    nz = partner.shape[0]
    (h,) = _halo(radius_nm, (vz,))
    limit = (radius_nm / vx) ** 2
    cache: dict[int, np.ndarray | None] = {}
    for z in range(nz):
        lo, hi = max(0, z - h), min(nz, z + h + 1)
        cache.pop(lo - 1, None)
        for k in range(lo, hi):
            if k not in cache:
                cache[k] = _plane_d2(partner_mask(np.asarray(partner[k]), threshold), vy / vx)
        zone = np.zeros(partner.shape[1:], dtype=bool)
        for k in range(lo, hi):
            d2 = cache[k]
            budget = limit - ((k - z) * vz / vx) ** 2
            if d2 is not None and budget >= 0:
                zone |= d2 <= budget * (1 + _TOLERANCE)
        yield (slice(z, z + 1), slice(None), slice(None)), zone[None]


def near_partner(
    partner: np.ndarray,
    *,
    threshold: float,
    radius_nm: float,
    voxel_size_A: VoxelSize,
    geometry: str = "3d",
    method: str = "auto",
    tile_voxels: int = TILE_VOXELS,
) -> Iterator[tuple[tuple[slice, ...], np.ndarray]]:
    """``(region, zone)`` pairs covering the (z, y, x) volume: ``zone`` is True where a voxel of
    ``region`` lies within the radius of the thresholded partner (see the module docstring for
    the two geometries). The partner may be a read-only memmap; it is read piece by piece.

    3d ``method``: ``slices`` (2D transforms + a z window, fast for R up to ~64 z voxels),
    ``tiles`` (3D transform per tile with a halo of R, memory bounded by ``tile_voxels``
    whatever R) or ``auto`` (slices when the window has at most :data:`MAX_Z_WINDOW` slices).
    Both are exact and give identical zones.
    """
    vz, vy, vx = voxel_size_nm(voxel_size_A)
    if method not in METHODS:
        raise ConfigError(f"interaction method {method!r} unknown; use {', '.join(METHODS)}")
    if geometry == "2d":
        if not math.isclose(vy, vx, rel_tol=1e-6):
            raise AisInputError(
                f"geometry 2d needs square pixels, got y {vy * 10:g} Å and x {vx * 10:g} Å; "
                "use geometry 3d"
            )
        r_px = ais_radius_px(radius_nm, vx)
        for z in range(partner.shape[0]):
            region = (slice(z, z + 1), slice(None), slice(None))
            yield region, _within_2d(partner_mask(np.asarray(partner[z]), threshold), r_px)[None]
        return
    sampling = (vz, vy, vx)
    halo = _halo(radius_nm, sampling)
    if method == "slices" or (method == "auto" and 2 * halo[0] + 1 <= MAX_Z_WINDOW):
        yield from _near_3d_by_slices(partner, threshold, radius_nm, sampling)
        return
    core = plan_tiles(partner.shape, halo, tile_voxels)
    for core_s, tile_s, inner in iter_tiles(partner.shape, core, halo):
        mask = partner_mask(np.asarray(partner[tile_s]), threshold)
        yield core_s, _within_3d(mask, inner, radius_nm, sampling)


def apply_interaction(
    parent: np.ndarray,
    partner: np.ndarray,
    rule: Interaction,
    voxel_size_A: VoxelSize,
    *,
    method: str = "auto",
    tile_voxels: int = TILE_VOXELS,
    progress: bool = False,
) -> np.ndarray:
    """Apply ``rule`` to ``parent`` IN PLACE (zeroing; dtype and shape kept) and return it.

    Unlike the original, integer predictions are always thresholded on the 0..255 scale (the
    original thresholds uint16 0..255 data at 0.5) and nothing is promoted to float64.
    """
    if parent.shape != partner.shape:
        raise AisInputError(
            f"{rule.describe()}: prediction shapes differ ({rule.parent} {parent.shape}, "
            f"{rule.partner} {partner.shape}); both models must segment the same tomogram"
        )
    if not parent.flags.writeable:
        raise AisInputError(f"{rule.parent}: prediction is read-only; pass a writable copy")
    squeeze = parent.ndim == 2
    p3 = parent[None] if squeeze else parent
    q3 = partner[None] if squeeze else partner
    if p3.ndim != 3:
        raise AisInputError(f"{rule.parent}: expected a (z, y, x) prediction, got {parent.shape}")
    if rule.min_size_nm3 > 0:
        # a bool mask counts as partner where True whatever the threshold (True > t for t < 1)
        voxel_nm = voxel_size_nm(voxel_size_A)
        q3 = without_small_pieces(q3, rule.threshold, rule.min_size_nm3, voxel_nm)
        threshold = 0.5
    else:
        threshold = rule.threshold
    zones = near_partner(
        q3,
        threshold=threshold,
        radius_nm=rule.radius_nm,
        voxel_size_A=voxel_size_A,
        geometry=rule.geometry,
        method=method,
        tile_voxels=tile_voxels,
    )
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=p3.size, desc=rule.describe(), unit="vox", unit_scale=True, leave=False)
    for region, zone in zones:
        view = p3[region]
        view[zone if rule.type == "avoid" else ~zone] = 0
        if bar is not None:
            bar.update(zone.size)
    if bar is not None:
        bar.close()
    return parent
