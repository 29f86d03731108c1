"""Particle picking from a segmentation volume: settings, thresholds, binning and the dispatcher.

Three methods share this front end (see docs/picking.md):

* ``watershed`` — the paper's six steps (:mod:`ais_torch.picking.watershed`);
* ``blob`` — the original 1.2.40 ``ais pick`` blob modes, reproduced for parity: peaks of the
  distance transform or component centroids (:mod:`ais_torch.picking.blobs`);
* ``filament`` — points sampled along skeletonised filaments
  (:mod:`ais_torch.picking.filament`).

Everything here works on in-memory arrays and returns :class:`Picks`; files are read and written
by :mod:`ais_torch.picking.batch` so the algorithms stay testable on tiny constructed volumes.
Binning is :func:`ais_torch.formats.encoding.block_mean`, the one the meshes and viewer use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from hashlib import blake2b
from typing import TYPE_CHECKING

import numpy as np

from ais_torch.errors import ConfigError
from ais_torch.formats.encoding import user_probability

if TYPE_CHECKING:
    import numpy.typing as npt

METHODS = ("watershed", "blob", "filament")
ORIENT_MODES = ("normal", "long-axis")
ORIENT_SIGNS = ("z", "center", "out")
# Margin (px) each method uses when margin=None: the original CLI's 16 for its own modes, none
# for the paper's watershed (its six steps have no margin; particles near edges are real).
DEFAULT_MARGIN = {"watershed": 0, "blob": 16, "filament": 16}


@dataclass(frozen=True)
class PickSettings:
    """What to pick and how; sizes in Å (``*_A``) or voxels (``*_px``, which win when set)."""

    method: str = "watershed"
    threshold: float = 128.0
    """Grey level 0–255 (``ais segment`` output) or probability 0–1; see
    :mod:`ais_torch.formats.encoding`."""
    spacing_A: float = 10.0
    spacing_px: float | None = None
    size_A3: float = 1.0
    size_px: float | None = None
    margin: int | None = None
    binning: int = 1
    centroid: bool = False
    orient: str | None = None
    orient_sign: str = "z"
    filament_length_A: float = 500.0
    filament_length_px: float | None = None
    twist: float = 0.0

    def checked(self) -> PickSettings:
        """Self, validated; raises a one-line :class:`ConfigError` naming the bad key."""
        if self.method not in METHODS:
            raise ConfigError(f"method={self.method!r} unknown; choose one of {', '.join(METHODS)}")
        user_probability(self.threshold)
        for key in ("spacing_A", "size_A3", "filament_length_A"):
            _non_negative(key.rsplit("_", 1)[0], getattr(self, key))
        for key in ("spacing_px", "size_px", "filament_length_px", "margin"):
            if getattr(self, key) is not None:
                _non_negative(key, getattr(self, key))
        if int(self.binning) != self.binning or self.binning < 1:
            raise ConfigError(f"binning={self.binning} must be a whole number ≥ 1")
        if self.orient is not None and self.orient not in ORIENT_MODES:
            raise ConfigError(f"orient={self.orient!r} unknown; choose normal, long-axis or null")
        if self.orient_sign not in ORIENT_SIGNS:
            raise ConfigError(f"orient_sign={self.orient_sign!r} unknown; choose z, center or out")
        return replace(self, binning=int(self.binning))

    def margin_px(self) -> int:
        return DEFAULT_MARGIN[self.method] if self.margin is None else int(self.margin)


def _non_negative(key: str, value: float) -> None:
    if not math.isfinite(float(value)) or float(value) < 0:
        raise ConfigError(f"{key}={value} must be a finite number ≥ 0")


@dataclass
class Picks:
    """Picked particles of one tomogram, in the segmentation's full-resolution voxel grid.

    ``xyz`` is ``(N, 3)`` x/y/z (0-based voxels); ``score`` the method's ranking value;
    ``angles`` optional ``(N, 3)`` RELION rot/tilt/psi (degrees); ``columns`` extra per-particle
    STAR columns (e.g. ``aisParticleWeight``, ``aisFilamentID``).
    """

    xyz: np.ndarray
    score: np.ndarray
    score_name: str = "aisParticleSize"
    angles: np.ndarray | None = None
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.xyz)

    @classmethod
    def empty(cls, score_name: str = "aisParticleSize", with_angles: bool = False) -> Picks:
        return cls(
            xyz=np.zeros((0, 3)),
            score=np.zeros(0),
            score_name=score_name,
            angles=np.zeros((0, 3)) if with_angles else None,
        )

    def take(self, index: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Picks:
        """The particles selected by ``index`` (boolean mask or integer order)."""
        return Picks(
            xyz=self.xyz[index],
            score=self.score[index],
            score_name=self.score_name,
            angles=None if self.angles is None else self.angles[index],
            columns={k: v[index] for k, v in self.columns.items()},
        )


def spacing_px(settings: PickSettings, voxel_size_A: float) -> float:
    """Minimum spacing in (unbinned) voxels."""
    if settings.spacing_px is not None:
        return float(settings.spacing_px)
    return float(settings.spacing_A) / voxel_size_A


def size_px(settings: PickSettings, voxel_size_A: float) -> float:
    """Minimum particle volume in (unbinned) voxels."""
    if settings.size_px is not None:
        return float(settings.size_px)
    return float(settings.size_A3) / voxel_size_A**3


def filament_length_px(settings: PickSettings, voxel_size_A: float) -> float:
    if settings.filament_length_px is not None:
        return float(settings.filament_length_px)
    return float(settings.filament_length_A) / voxel_size_A


def pick_array(data: np.ndarray, voxel_size_A: float, settings: PickSettings) -> Picks:
    """Pick particles in one ``(z, y, x)`` segmentation; coordinates in its full-size voxel grid."""
    settings = settings.checked()
    if data.ndim != 3:
        raise ConfigError(f"a segmentation must be a 3D (z, y, x) volume, got shape {data.shape}")
    if not math.isfinite(voxel_size_A) or voxel_size_A <= 0:
        raise ConfigError(f"voxel size {voxel_size_A} Å must be > 0; set voxel_size_A=<Å>")
    if settings.method == "blob":
        from ais_torch.picking.blobs import pick_blobs

        return pick_blobs(data, voxel_size_A, settings)
    if settings.method == "filament":
        from ais_torch.picking.filament import pick_filaments

        return pick_filaments(data, voxel_size_A, settings)
    from ais_torch.picking.watershed import pick_watershed

    return pick_watershed(data, voxel_size_A, settings)


def keep_inside_margin(coords_zyx: np.ndarray, shape: tuple[int, ...], margin: float) -> np.ndarray:
    """Boolean mask of coordinates with ``margin ≤ c < size − margin`` on every axis (z too)."""
    if margin <= 0 or len(coords_zyx) == 0:
        return np.ones(len(coords_zyx), dtype=bool)
    lo = np.full(3, margin)
    hi = np.asarray(shape, dtype=np.float64) - margin
    return np.all((coords_zyx >= lo) & (coords_zyx < hi), axis=1)


_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_ID_LENGTH = 10


def particle_ids(tag: str, xyz: np.ndarray, angles: np.ndarray | None = None) -> list[str]:
    """Content-derived particle ids, the same the original Ais writes as ``aisParticleID``.

    Why content-derived: re-picking reproduces the same ids, and two features picked at one voxel
    differ through ``tag`` (the segmentation's file name). Each id hashes
    ``tag|x|y|z|rot|tilt|psi`` (4 decimals, empty when absent) with BLAKE2b-128 and writes it in
    base 62: first a letter from the top byte, then nine digits of the whole digest.
    """
    ids = []
    for i in range(len(xyz)):
        values = [f"{v:.4f}" for v in xyz[i]]
        values += [f"{v:.4f}" for v in angles[i]] if angles is not None else ["", "", ""]
        digest = blake2b(("|".join([tag, *values])).encode("utf-8"), digest_size=16).digest()
        number = int.from_bytes(digest, "big")
        chars = [_ID_ALPHABET[digest[0] % 52]]
        for _ in range(_ID_LENGTH - 1):
            number, rest = divmod(number, len(_ID_ALPHABET))
            chars.append(_ID_ALPHABET[rest])
        ids.append("".join(chars))
    return ids
