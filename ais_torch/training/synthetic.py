"""Built-in demo data: deterministic synthetic cryo-ET tomograms with dense ground truth.

Why: training, segmentation, picking and the tests must run with no downloads, and scoring a
picker needs true particle positions, which real data never has. The content follows the
paper's antibody-platform use case (IgG3 Fc platforms ~22 nm from the membrane) and the
reference kit's generator (``../shared/reference/MANIFEST.md`` item 1):

* vesicles: lipid bilayers drawn as two dark Gaussian leaflets 3.6 nm apart, radii 12–40 nm,
  some cut by the volume edges;
* a carbon film edge: a dense slab on one side of the XY plane with a curved edge, spanning a
  z-range;
* membrane-bound particles ("antibody platforms"): dense blobs of radius 3 nm, centred 22 nm out
  from the outer leaflet along the vesicle normal, joined to it by a thin faint stalk;
* decoys: the same blobs > 30 nm from any membrane (a picker must not take them);
* a missing-wedge-like blur (stronger along z) and low-passed Gaussian noise.

Dense matter is darker (negative) than the background, as in real cryo-ET. Sizes are defined
in nm and converted with the voxel size, so the defaults give the 10 Å/voxel data of the paper.
Objects are drawn into their bounding boxes only, so a (64, 256, 256) volume takes ~1 s.
The same seed gives byte-identical volumes (one ``numpy.random.default_rng`` stream, drawn in a
fixed order).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from ais_torch.errors import AisInputError, ConfigError

FEATURES: tuple[str, ...] = ("membrane", "carbon", "antibody")
"""Label names, in the order files and tables list them."""

# Geometry in nm (converted to voxels with the voxel size).
LEAFLET_HALF_SEPARATION_NM = 1.8  # leaflets at r ± 1.8 nm: ~3.6 nm bilayer
LEAFLET_SIGMA_NM = 1.0
MEMBRANE_LABEL_HALF_WIDTH_NM = 2.5  # label = |d − r| ≤ 2.5 nm
VESICLE_RADIUS_NM = (12.0, 40.0)
PARTICLE_RADIUS_NM = 3.0
PARTICLE_DISTANCE_NM = 22.0  # particle centre to outer leaflet, along the normal
DECOY_MIN_DISTANCE_NM = 30.0  # decoy centre to the nearest membrane label voxel
STALK_SIGMA_NM = 0.6
MIN_PARTICLE_SPACING_NM = 10.0  # centre to centre: blobs never touch

# Contrast (background 0, noise std ``noise_std``).
DENSITY = {"membrane_leaflet": -1.0, "carbon": -0.9, "particle": -1.6, "stalk": -0.7}
WEDGE_BLUR_ZYX = (2.0, 0.6, 0.6)  # px: missing-wedge-like elongation along z
NOISE_SIGMA_PX = 1.0

MIN_SHAPE = (24, 80, 80)
"""Smallest (z, y, x) that still fits a vesicle, two particles 22 nm out and a decoy at 10 Å."""


@dataclass
class SyntheticTomogram:
    """A synthetic tomogram with dense labels and the true particle centres."""

    volume: np.ndarray
    """float32 ``(z, y, x)``; dense = negative."""
    labels: dict[str, np.ndarray]
    """``FEATURES`` → uint8 0/1 ``(z, y, x)`` ground truth."""
    particles_xyz: np.ndarray
    """``(N, 3)`` x/y/z voxel centres of the membrane-bound particles (labelled ``antibody``)."""
    decoys_xyz: np.ndarray
    """``(M, 3)`` x/y/z voxel centres of the unlabelled look-alike particles."""
    voxel_size_A: float
    params: dict[str, Any] = field(default_factory=dict)
    """Everything drawn (JSON-serialisable), for provenance and for checking a picker."""


# --------------------------------------------------------------------------- geometry helpers


def _box(center: np.ndarray, radius: float, shape: tuple[int, ...]) -> tuple[slice, ...] | None:
    """Slices of the voxels within ``radius`` of ``center`` (z, y, x), clipped to the volume."""
    lo = np.maximum(np.floor(center - radius).astype(int), 0)
    hi = np.minimum(np.ceil(center + radius).astype(int) + 1, shape)
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def _offsets(sl: tuple[slice, ...], origin: np.ndarray) -> list[np.ndarray]:
    """Broadcastable z, y, x voxel coordinates of a box relative to ``origin``."""
    axes = []
    for i, s in enumerate(sl):
        a = np.arange(s.start, s.stop, dtype=np.float32) - np.float32(origin[i])
        shape = [1, 1, 1]
        shape[i] = a.size
        axes.append(a.reshape(shape))
    return axes


def _distance(sl: tuple[slice, ...], center: np.ndarray) -> np.ndarray:
    dz, dy, dx = _offsets(sl, center)
    return np.sqrt(dz * dz + dy * dy + dx * dx)


def _darken(volume: np.ndarray, sl: tuple[slice, ...], values: np.ndarray) -> None:
    """Overlay by taking the denser value, so touching objects do not double their density."""
    view = volume[sl]
    np.minimum(view, values, out=view)


@dataclass
class _Carbon:
    """A slab ``z0 ≤ z < z1`` on one side of the XY plane with a wavy, bowed edge."""

    axis: int  # 1 = y, 2 = x (volume axis the film is bounded along)
    high: bool  # film on the high-coordinate side
    depth: float  # mean extent from that side, px
    amp: float
    period: float
    phase: float
    bow: float
    z0: int
    z1: int
    pad: int
    xy_distance: np.ndarray  # EDT to the film in XY on a padded grid
    mask2d: np.ndarray  # (y, x) film footprint inside the volume

    def distance(self, zyx: np.ndarray) -> float:
        """Euclidean distance (px) from a point to the film (0 inside); points may lie outside."""
        ny, nx = self.xy_distance.shape
        iy = int(np.clip(round(zyx[1]) + self.pad, 0, ny - 1))
        ix = int(np.clip(round(zyx[2]) + self.pad, 0, nx - 1))
        dz = max(self.z0 - 0.5 - zyx[0], 0.0, zyx[0] - (self.z1 - 0.5))
        return float(np.hypot(self.xy_distance[iy, ix], dz))


def _make_carbon(rng: np.random.Generator, shape: tuple[int, int, int]) -> _Carbon:
    nz, ny, nx = shape
    axis = int(rng.integers(1, 3))
    high = bool(rng.integers(0, 2))
    length = shape[axis]
    other = shape[3 - axis]
    depth = float(rng.uniform(0.15, 0.22) * length)
    amp = float(rng.uniform(0.02, 0.05) * length)
    period = float(rng.uniform(0.6, 1.4) * other)
    phase = float(rng.uniform(0, 2 * np.pi))
    bow = float(rng.uniform(-0.08, 0.08) * length)
    thickness = round(rng.uniform(0.4, 0.6) * nz)
    z0 = int(rng.integers(0, nz - thickness + 1))
    pad = int(max(ny, nx) // 2)
    # Footprint on a padded grid so distances from points outside the volume (vesicle centres
    # of cut vesicles) are right; the film continues beyond the volume on its side.
    yy = np.arange(-pad, ny + pad, dtype=np.float64)[:, None]
    xx = np.arange(-pad, nx + pad, dtype=np.float64)[None, :]
    along, across = (yy, xx) if axis == 1 else (xx, yy)
    t = (across - other / 2.0) / other
    edge = depth + amp * np.sin(2 * np.pi * across / period + phase) + bow * 4.0 * t * t
    from_side = (length - 1 - along) if high else along
    footprint = np.broadcast_to(from_side < edge, (ny + 2 * pad, nx + 2 * pad))
    xy_distance = ndimage.distance_transform_edt(~footprint)
    mask2d = np.ascontiguousarray(footprint[pad : pad + ny, pad : pad + nx])
    return _Carbon(
        axis, high, depth, amp, period, phase, bow, z0, z0 + thickness, pad, xy_distance, mask2d
    )


@dataclass
class _Vesicle:
    center: np.ndarray  # z, y, x (px, may lie outside the volume)
    radius: float  # bilayer mid-surface, px

    def surface_distance(self, p: np.ndarray) -> float:
        return abs(float(np.linalg.norm(p - self.center)) - self.radius)


@dataclass
class _Layout:
    carbon: _Carbon
    vesicles: list[_Vesicle]
    particles: list[np.ndarray]  # z, y, x
    feet: list[np.ndarray]  # stalk start on the outer leaflet, z, y, x
    decoys: list[np.ndarray]


def _scaled_counts(shape: tuple[int, int, int], px: float) -> tuple[float, float, int]:
    """Vesicle radius range and count for this volume (fewer/smaller in small test volumes)."""
    short = min(shape[1], shape[2])
    r_max = min(VESICLE_RADIUS_NM[1] * px, 0.22 * short)
    r_min = min(VESICLE_RADIUS_NM[0] * px, 0.6 * r_max)
    n_ves = max(1, round(7 * shape[1] * shape[2] / (256 * px) ** 2))  # ~7 per 256² nm²
    return r_min, r_max, n_ves


def _inside(p: np.ndarray, shape: tuple[int, int, int], margin: float) -> bool:
    return bool(np.all(p >= margin) and np.all(p <= np.asarray(shape) - 1 - margin))


def _place(rng: np.random.Generator, shape: tuple[int, int, int], px: float) -> _Layout:
    """Draw one layout: carbon, then vesicles, particles, decoys (rejection sampling)."""
    nz, ny, nx = shape
    dims = np.asarray(shape, dtype=np.float64)
    carbon = _make_carbon(rng, shape)
    half_sep = LEAFLET_HALF_SEPARATION_NM * px
    r_p = PARTICLE_RADIUS_NM * px
    dist = PARTICLE_DISTANCE_NM * px
    spacing = MIN_PARTICLE_SPACING_NM * px
    label_hw = MEMBRANE_LABEL_HALF_WIDTH_NM * px

    r_min, r_max, n_ves = _scaled_counts(shape, px)
    vesicles: list[_Vesicle] = []
    for _ in range(60 * n_ves):
        if len(vesicles) == n_ves:
            break
        r = float(rng.uniform(r_min, r_max))
        c = np.array(
            [
                rng.uniform(0.1 * nz, 0.9 * nz),
                rng.uniform(-0.3 * r, ny + 0.3 * r),
                rng.uniform(-0.3 * r, nx + 0.3 * r),
            ]
        )
        if carbon.distance(c) < r + half_sep + 4 * px:
            continue
        if any(
            np.linalg.norm(c - v.center) < r + v.radius + 2 * half_sep + 6 * px for v in vesicles
        ):
            continue
        vesicles.append(_Vesicle(c, r))

    particles: list[np.ndarray] = []
    feet: list[np.ndarray] = []
    for v in vesicles:
        want = int(rng.integers(3, 7))
        placed = 0
        for _ in range(40 * want):
            if placed == want:
                break
            n = rng.normal(size=3)
            n /= np.linalg.norm(n)
            foot = v.center + (v.radius + half_sep) * n
            p = v.center + (v.radius + half_sep + dist) * n
            if not _inside(p, shape, r_p + 1) or not _inside(foot, shape, 1):
                continue
            if carbon.distance(p) < r_p + 3 * px:
                continue
            if any(np.linalg.norm(p - q) < spacing for q in particles):
                continue
            others = [w for w in vesicles if w is not v]
            if any(
                w.surface_distance(p) < dist or np.linalg.norm(p - w.center) < w.radius
                for w in others
            ):
                continue
            stalk = [foot + f * (p - foot) for f in (0.25, 0.5, 0.75)]
            if any(carbon.distance(s) < 2 * px for s in stalk) or any(
                w.surface_distance(s) < label_hw + 2 * px for s in stalk for w in others
            ):
                continue
            particles.append(p)
            feet.append(foot)
            placed += 1

    decoys: list[np.ndarray] = []
    want = max(1, round(0.6 * len(particles)))
    far = DECOY_MIN_DISTANCE_NM * px + label_hw
    for _ in range(200 * want):
        if len(decoys) == want:
            break
        p = rng.uniform(r_p + 1, dims - 2 - r_p)
        if carbon.distance(p) < r_p + 3 * px:
            continue
        if any(v.surface_distance(p) < far for v in vesicles):
            continue
        if any(np.linalg.norm(p - q) < spacing for q in particles + decoys):
            continue
        decoys.append(p)
    return _Layout(carbon, vesicles, particles, feet, decoys)


# --------------------------------------------------------------------------- rendering


def _render(
    layout: _Layout, shape: tuple[int, int, int], px: float, stalks: bool
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Noise-free density (before blur) and the dense labels."""
    signal = np.zeros(shape, dtype=np.float32)
    labels = {name: np.zeros(shape, dtype=np.uint8) for name in FEATURES}
    half_sep = LEAFLET_HALF_SEPARATION_NM * px
    sigma = LEAFLET_SIGMA_NM * px
    label_hw = MEMBRANE_LABEL_HALF_WIDTH_NM * px
    r_p = PARTICLE_RADIUS_NM * px

    for v in layout.vesicles:
        sl = _box(v.center, v.radius + half_sep + 4 * sigma + 1, shape)
        if sl is None:
            continue
        d = _distance(sl, v.center) - np.float32(v.radius)
        g = np.float32(-0.5 / sigma**2)
        leaflets = np.exp(g * (d - np.float32(half_sep)) ** 2)
        leaflets += np.exp(g * (d + np.float32(half_sep)) ** 2)
        _darken(signal, sl, np.float32(DENSITY["membrane_leaflet"]) * leaflets)
        labels["membrane"][sl] |= (np.abs(d) <= label_hw).astype(np.uint8)

    c = layout.carbon
    slab = (slice(c.z0, c.z1), slice(None), slice(None))
    film = np.where(c.mask2d, np.float32(DENSITY["carbon"]), np.float32(0.0))
    _darken(signal, slab, np.broadcast_to(film, signal[slab].shape))
    labels["carbon"][slab] = c.mask2d

    if stalks:
        s_sigma = STALK_SIGMA_NM * px
        for p, foot in zip(layout.particles, layout.feet, strict=True):
            axis = p - foot
            length = float(np.linalg.norm(axis))
            u = axis / length
            sl = _box((p + foot) / 2, length / 2 + 3 * s_sigma + 1, shape)
            if sl is None:
                continue
            dz, dy, dx = _offsets(sl, foot)
            t = np.clip(dz * u[0] + dy * u[1] + dx * u[2], 0.0, length - r_p)
            ez, ey, ex = dz - t * u[0], dy - t * u[1], dx - t * u[2]
            tube = np.exp(np.float32(-0.5 / s_sigma**2) * (ez * ez + ey * ey + ex * ex))
            _darken(signal, sl, np.float32(DENSITY["stalk"]) * tube)

    for i, p in enumerate(layout.particles + layout.decoys):
        sl = _box(p, r_p + 1.5, shape)
        if sl is None:
            continue
        d = _distance(sl, p)
        blob = np.clip(np.float32(r_p + 0.5) - d, 0.0, 1.0) * np.float32(DENSITY["particle"])
        _darken(signal, sl, blob)
        if i < len(layout.particles):
            labels["antibody"][sl] |= (d <= r_p).astype(np.uint8)
    return signal, labels


def make_tomogram(
    seed: int = 0,
    shape: tuple[int, int, int] = (64, 256, 256),
    voxel_size_A: float = 10.0,
    *,
    noise_std: float = 0.45,
    stalks: bool = True,
) -> SyntheticTomogram:
    """Make one synthetic tomogram (see module docstring); same arguments → same bytes.

    ``noise_std`` is the standard deviation of the (low-passed) noise relative to a leaflet's
    density of −1; ``noise_std=0`` gives the clean blurred signal (useful in tests).
    """
    shape = tuple(int(n) for n in shape)  # type: ignore[assignment]
    if len(shape) != 3 or any(n < m for n, m in zip(shape, MIN_SHAPE, strict=True)):
        raise ConfigError(
            f"synthetic tomogram shape {shape} is too small; use (z, y, x) of at least {MIN_SHAPE}"
        )
    if not np.isfinite(voxel_size_A) or not 2.0 <= voxel_size_A <= 40.0:
        raise ConfigError(f"voxel_size_A={voxel_size_A}: use 2–40 Å (10 Å is the paper's)")
    if noise_std < 0:
        raise ConfigError(f"noise_std={noise_std} must be ≥ 0")
    px = 10.0 / float(voxel_size_A)  # voxels per nm
    rng = np.random.default_rng(seed)
    attempts = 0
    while True:  # redraw until the volume holds every kind of object (1 draw at MIN_SHAPE+)
        attempts += 1
        layout = _place(rng, shape, px)
        if layout.vesicles and len(layout.particles) >= 2 and layout.decoys:
            break
        if attempts == 100:
            raise ConfigError(
                f"could not fit a vesicle, 2 particles and a decoy into shape {shape} at "
                f"{voxel_size_A} Å/voxel; use a larger shape"
            )

    signal, labels = _render(layout, shape, px, stalks)
    volume = ndimage.gaussian_filter(signal, sigma=WEDGE_BLUR_ZYX, mode="nearest")
    if noise_std > 0:
        noise = rng.standard_normal(shape, dtype=np.float32)
        noise = ndimage.gaussian_filter(noise, sigma=NOISE_SIGMA_PX, mode="reflect")
        noise *= np.float32(noise_std / float(noise.std()))
        volume += noise
        del noise

    def xyz(points: list[np.ndarray]) -> np.ndarray:
        return np.array([p[::-1] for p in points], dtype=np.float64).reshape(-1, 3)

    c = layout.carbon
    params: dict[str, Any] = {
        "generator": "ais_torch.training.synthetic",
        "seed": int(seed),
        "shape": list(shape),
        "voxel_size_A": float(voxel_size_A),
        "layout_attempts": attempts,
        "carbon": {
            "side": f"{'high' if c.high else 'low'} {'y' if c.axis == 1 else 'x'}",
            "z": [c.z0, c.z1],
            "mean_depth_px": round(c.depth, 3),
        },
        "vesicles": [
            {"center_zyx": [round(float(a), 3) for a in v.center], "radius_px": round(v.radius, 3)}
            for v in layout.vesicles
        ],
        "n_particles": len(layout.particles),
        "n_decoys": len(layout.decoys),
        "particle_radius_px": PARTICLE_RADIUS_NM * px,
        "particle_distance_from_outer_leaflet_px": PARTICLE_DISTANCE_NM * px,
        "leaflet_separation_px": 2 * LEAFLET_HALF_SEPARATION_NM * px,
        "membrane_label_half_width_px": MEMBRANE_LABEL_HALF_WIDTH_NM * px,
        "stalks": bool(stalks),
        "densities": dict(DENSITY),
        "wedge_blur_zyx_px": list(WEDGE_BLUR_ZYX),
        "noise_std": float(noise_std),
        "noise_sigma_px": NOISE_SIGMA_PX,
    }
    return SyntheticTomogram(
        volume=volume.astype(np.float32, copy=False),
        labels=labels,
        particles_xyz=xyz(layout.particles),
        decoys_xyz=xyz(layout.decoys),
        voxel_size_A=float(voxel_size_A),
        params=params,
    )


# --------------------------------------------------------------------------- annotations


def choose_annotated_slices(label: np.ndarray, n: int, min_spacing: int = 4) -> list[int]:
    """The ``n`` z-slices with the most label, ≥ ``min_spacing`` apart, as an annotator would.

    Only slices that contain the feature are eligible (a slice counts as annotated only if it
    holds a non-zero value, so an empty one would be lost). When too few slices are far enough
    apart, the spacing is relaxed step by step; fewer than ``n`` come back only when fewer than
    ``n`` slices contain the feature. Returned sorted.
    """
    counts = label.reshape(label.shape[0], -1).sum(axis=1, dtype=np.int64)
    order = [int(z) for z in np.argsort(-counts, kind="stable") if counts[z] > 0]
    chosen: list[int] = []
    for spacing in range(max(min_spacing, 1), 0, -1):
        for z in order:
            if len(chosen) == n:
                break
            if z not in chosen and all(abs(z - c) >= spacing for c in chosen):
                chosen.append(z)
    return sorted(chosen)


def annotation_volume(label: np.ndarray, slices: list[int]) -> np.ndarray:
    """User-style label volume: 1 on the feature and 0 elsewhere in ``slices``, 0 in all others.

    Convention (napari labels layer, IMOD/Amira masks): 0 = negative, 1 = positive,
    2 = ignore; a slice is "annotated" when it holds any non-zero value.
    """
    ann = np.zeros(label.shape, dtype=np.uint8)
    ann[slices] = label[slices] > 0
    return ann


# --------------------------------------------------------------------------- demo folder


@dataclass
class DemoFiles:
    """Where one demo tomogram and its ground truth went (paths absolute)."""

    name: str
    seed: int
    tomogram: Path
    truth: dict[str, Path]
    annotations: dict[str, Path]
    particles_tsv: Path
    particles_star: Path
    decoys_tsv: Path
    annotated_z: dict[str, list[int]]
    n_particles: int
    n_decoys: int
    skipped: bool = False

    def all_paths(self) -> list[Path]:
        return [
            self.tomogram,
            *self.truth.values(),
            *self.annotations.values(),
            self.particles_tsv,
            self.particles_star,
            self.decoys_tsv,
        ]

    def to_json(self, root: Path) -> dict[str, Any]:
        def rel(p: Path) -> str:
            return p.relative_to(root).as_posix()

        return {
            "name": self.name,
            "seed": self.seed,
            "tomogram": rel(self.tomogram),
            "truth": {k: rel(v) for k, v in self.truth.items()},
            "annotations": {k: rel(v) for k, v in self.annotations.items()},
            "particles_tsv": rel(self.particles_tsv),
            "particles_star": rel(self.particles_star),
            "decoys_tsv": rel(self.decoys_tsv),
            "annotated_z": self.annotated_z,
            "n_particles": self.n_particles,
            "n_decoys": self.n_decoys,
        }


def _demo_paths(root: Path, name: str, seed: int) -> DemoFiles:
    return DemoFiles(
        name=name,
        seed=seed,
        tomogram=root / f"{name}.mrc",
        truth={f: root / "truth" / f"{name}__{f}.mrc" for f in FEATURES},
        annotations={f: root / "annotations" / f"{name}__{f}.mrc" for f in FEATURES},
        particles_tsv=root / f"{name}__antibody_truth.tsv",
        particles_star=root / f"{name}__antibody_truth.star",
        decoys_tsv=root / f"{name}__decoys_truth.tsv",
        annotated_z={},
        n_particles=0,
        n_decoys=0,
    )


def write_demo(
    out_dir: str | os.PathLike,
    *,
    n_tomograms: int = 2,
    seed: int = 0,
    shape: tuple[int, int, int] = (64, 256, 256),
    annotated_slices: int = 6,
    overwrite: bool = False,
) -> list[DemoFiles]:
    """Write a ready-to-train demo folder (tomograms, annotations, truth, coordinates, demo.json).

    Tomogram ``i`` uses seed ``seed + i``. Layout::

        tomo_00.mrc                              float32, 10 Å, origin 0
        annotations/tomo_00__<feature>.mrc       0/1 on ``annotated_slices`` z-slices (for training)
        truth/tomo_00__<feature>.mrc             dense 0/1 ground truth (for scoring)
        tomo_00__antibody_truth.tsv / .star      true particle centres (x y z voxels)
        tomo_00__decoys_truth.tsv                decoy centres (picks there are false positives)
        demo.json                                what was made and where

    Label volumes are written as int8 (MRC mode 0, 1 byte/voxel, like IMOD/napari masks).
    Every file is written atomically; a tomogram whose files all exist is skipped unless
    ``overwrite``, so rerunning is cheap and resumes an interrupted run.
    """
    from ais_torch.formats.atomic import atomic_output
    from ais_torch.formats.coordinates import write_coordinates_tsv, write_star
    from ais_torch.formats.mrc import read_header_info, write_volume

    shape = tuple(int(n) for n in shape)  # type: ignore[assignment]
    if int(n_tomograms) < 1:
        raise ConfigError(f"n_tomograms={n_tomograms} must be ≥ 1")
    if int(annotated_slices) < 1:
        raise ConfigError(f"annotated_slices={annotated_slices} must be ≥ 1")
    root = Path(out_dir).resolve()
    if root.exists() and not root.is_dir():
        raise AisInputError(f"{root}: exists and is not a folder; choose another output folder")
    settings = {
        "seed": int(seed),
        "shape": list(shape),
        "voxel_size_A": 10.0,
        "annotated_slices": int(annotated_slices),
    }
    manifest_path = root / "demo.json"
    old_entries: dict[str, dict[str, Any]] = {}
    if manifest_path.is_file() and not overwrite:
        try:
            old = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = {}
        mismatch = [
            f"{k}={old.get(k)} (not {settings[k]})" for k in settings if old.get(k) != settings[k]
        ]
        if old and mismatch:
            raise AisInputError(
                f"{manifest_path}: this folder holds demo data made with {', '.join(mismatch)}; "
                "pass overwrite=1 or choose another out= folder"
            )
        old_entries = {e["name"]: e for e in old.get("tomograms", []) if "name" in e}

    results: list[DemoFiles] = []
    for i in range(int(n_tomograms)):
        name = f"tomo_{i:02d}"
        files = _demo_paths(root, name, int(seed) + i)
        done = all(p.is_file() for p in files.all_paths())
        if done and not overwrite:
            found = read_header_info(files.tomogram)[0]
            if tuple(found) != shape:
                raise AisInputError(
                    f"{files.tomogram}: has shape {tuple(found)}, not {shape}; "
                    "pass overwrite=1 or choose another out= folder"
                )
            entry = old_entries.get(name)
            if entry is not None and entry.get("seed") == files.seed:
                files.annotated_z = {k: list(v) for k, v in entry["annotated_z"].items()}
                files.n_particles = int(entry["n_particles"])
                files.n_decoys = int(entry["n_decoys"])
                files.skipped = True
                results.append(files)
                continue
        tomo = make_tomogram(files.seed, shape, 10.0)
        files.n_particles = len(tomo.particles_xyz)
        files.n_decoys = len(tomo.decoys_xyz)
        for feature in FEATURES:
            files.annotated_z[feature] = choose_annotated_slices(
                tomo.labels[feature], int(annotated_slices)
            )
        if done and not overwrite:  # files complete, only the manifest entry was missing
            files.skipped = True
            results.append(files)
            continue

        # An incomplete set (interrupted run) is rewritten whole, so its files always match.
        write_volume(files.tomogram, tomo.volume, voxel_size_A=tomo.voxel_size_A)
        for feature in FEATURES:
            label = tomo.labels[feature]
            write_volume(files.truth[feature], label.view(np.int8), voxel_size_A=10.0)
            ann = annotation_volume(label, files.annotated_z[feature])
            write_volume(files.annotations[feature], ann.view(np.int8), voxel_size_A=10.0)
        write_coordinates_tsv(files.particles_tsv, tomo.particles_xyz)
        write_star(
            files.particles_star,
            tomo.particles_xyz,
            tomo_name=name,
            voxel_size_A=tomo.voxel_size_A,
            shape_zyx=shape,
        )
        write_coordinates_tsv(files.decoys_tsv, tomo.decoys_xyz)
        old_entries[name] = {**files.to_json(root), "params": tomo.params}
        results.append(files)

    manifest = {
        "generator": "ais_torch.training.synthetic.write_demo",
        **settings,
        "n_tomograms": int(n_tomograms),
        "features": list(FEATURES),
        "label_convention": "annotations: 0 = negative, 1 = positive, 2 = ignore; only slices "
        "with a non-zero value are annotated. truth: dense 0/1. Label files are MRC mode 0 (int8).",
        "coordinates": "x y z in voxels, 0-based, of the tomogram grid",
        "tomograms": [
            {**old_entries.get(f.name, {}), **f.to_json(root)}
            for f in results  # keep params from the run that made the files
        ],
    }
    text = json.dumps(manifest, indent=1) + "\n"
    if not manifest_path.is_file() or manifest_path.read_text(encoding="utf-8") != text:
        with atomic_output(manifest_path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return results
