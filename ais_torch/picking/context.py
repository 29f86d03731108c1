"""Picks that carry their context: per-pick values from other features' segmentations.

Why: the post-hoc counterpart of model interactions (docs/interactions.md). Instead of changing
a segmentation before picking, every pick gets columns measured on the other features of its
tomogram — the mean/max segmentation value within a radius, the signed distance to a thresholded
feature's surface, the distance to the nearest pick of a feature — and ``keep=`` rules filter on
them. Nothing is re-segmented, the columns stay in the STAR file for RELION/Warp users to filter
again, and a threshold can be tuned on the written table.

Everything here is array-in: volumes are ``(z, y, x)`` arrays (memory-mapped is fine: only crops
around the picks are read), picks ``(N, 3)`` x/y/z voxels of the same grid, voxel sizes in Å,
every distance and radius in **nm**. Segmentation values are read with the shared rules of
:mod:`ais_torch.formats.encoding` (0–255 grey or 0–1 probabilities); ``mean``/``max`` are reported
as probabilities 0–1.

The command syntax (``context=[Membrane:distance,Carbon:mean@5]`` and
``keep=["15<=Membrane:distance<=30"]``) is parsed by :func:`parse_item` and :func:`parse_keep`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ais_torch.errors import ConfigError
from ais_torch.formats.encoding import full_scale, threshold_on

if TYPE_CHECKING:
    import numpy.typing as npt

    from ais_torch.picking.settings import Picks

MEASURES = ("mean", "max", "distance", "nearest")
"""``mean``/``max`` need ``@radius`` (nm); ``distance`` and ``nearest`` take none."""
DEFAULT_MAX_NM = 100.0
DEFAULT_THRESHOLD = 0.5

_FEATURE = r"[A-Za-z0-9][A-Za-z0-9_\-]*"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_ITEM = rf"({_FEATURE}):([a-z]+)(?:@({_NUMBER}))?"
_ITEM_RE = re.compile(rf"^\s*{_ITEM}\s*$")
_OP = r"(<=|>=|<|>)"
_KEEP_RE = re.compile(rf"^\s*(?:({_NUMBER})\s*{_OP}\s*)?{_ITEM}\s*(?:{_OP}\s*({_NUMBER}))?\s*$")
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}
SYNTAX = (
    "FEATURE:distance | FEATURE:nearest | FEATURE:mean@R | FEATURE:max@R (R in nm), "
    "e.g. context=[Membrane:distance,Carbon:mean@5]"
)


@dataclass(frozen=True)
class ContextItem:
    """One measured column: ``feature``'s ``measure`` (with ``radius_nm`` for mean/max)."""

    feature: str
    measure: str
    radius_nm: float | None = None

    @property
    def label(self) -> str:
        """The spelling on the command line, e.g. ``Carbon:mean@5``."""
        radius = "" if self.radius_nm is None else f"@{self.radius_nm:g}"
        return f"{self.feature}:{self.measure}{radius}"

    @property
    def column(self) -> str:
        """The STAR column (without ``_``): ``aisDistanceMembraneNm``, ``aisMeanCarbonWithin5Nm``,
        ``aisMaxCarbonWithin2p5Nm``, ``aisNearestRibosomeNm``."""
        name = "".join(c for c in self.feature if c.isalnum())
        if self.radius_nm is None:
            return f"ais{self.measure.capitalize()}{name}Nm"
        radius = f"{self.radius_nm:g}".replace(".", "p").replace("+", "")
        return f"ais{self.measure.capitalize()}{name}Within{radius}Nm"


def parse_item(text: str) -> ContextItem:
    """``Membrane:distance`` / ``Carbon:mean@5`` → :class:`ContextItem`; one line when bad."""
    match = _ITEM_RE.match(str(text))
    if match is None:
        raise ConfigError(f"context item {text!r} not understood; write {SYNTAX}")
    return _item(match.group(1), match.group(2), match.group(3), str(text))


def _item(feature: str, measure: str, radius: str | None, text: str) -> ContextItem:
    if measure not in MEASURES:
        raise ConfigError(
            f"context item {text!r}: measure {measure!r} unknown; choose {', '.join(MEASURES)}"
        )
    if measure in ("mean", "max"):
        if radius is None:
            raise ConfigError(
                f"context item {text!r}: {measure} needs a radius, e.g. {text}@5 (nm)"
            )
        r = float(radius)
        if not math.isfinite(r) or r < 0:
            raise ConfigError(f"context item {text!r}: radius must be a number of nm ≥ 0")
        return ContextItem(feature, measure, r)
    if radius is not None:
        raise ConfigError(
            f"context item {text!r}: {measure} takes no @radius (set context_threshold= for "
            "the surface, context_max_nm= for the cap)"
        )
    return ContextItem(feature, measure)


@dataclass(frozen=True)
class KeepRule:
    """A filter on one item: every ``(operator, value)`` must hold (``item op value``)."""

    item: ContextItem
    tests: tuple[tuple[str, float], ...]
    text: str = ""

    def mask(self, values: npt.ArrayLike) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        keep = np.ones(v.shape, dtype=bool)
        for op, bound in self.tests:
            keep &= {"<": v < bound, "<=": v <= bound, ">": v > bound, ">=": v >= bound}[op]
        return keep


def parse_keep(text: str) -> KeepRule:
    """``Membrane:distance>=15``, ``Carbon:mean@5<0.2`` or ``15<=Membrane:distance<=30``."""
    match = _KEEP_RE.match(str(text))
    if match is None or (match.group(1) is None and match.group(6) is None):
        raise ConfigError(
            f"keep rule {text!r} not understood; write ITEM OP NUMBER or NUMBER OP ITEM OP NUMBER "
            f'with OP one of < <= > >=, e.g. keep=["15<=Membrane:distance<=30"] (ITEM: {SYNTAX})'
        )
    low, low_op, feature, measure, radius, high_op, high = match.groups()
    tests = []
    if low is not None:
        tests.append((_FLIP[low_op], float(low)))
    if high is not None:
        tests.append((high_op, float(high)))
    return KeepRule(_item(feature, measure, radius, str(text)), tuple(tests), str(text))


@dataclass(frozen=True)
class ContextSettings:
    """What to measure per pick and which picks to keep (the ``context``/``keep`` keys)."""

    items: tuple[ContextItem, ...] = ()
    """Every measured column, including those only ``keep`` names."""
    keep: tuple[KeepRule, ...] = ()
    threshold: float = DEFAULT_THRESHOLD
    """``distance``: the feature's surface is where its segmentation crosses this (probability
    0–1 or grey level 0–255, as picking's ``threshold``)."""
    max_nm: float = DEFAULT_MAX_NM
    """Distances are capped at this: a value equal to it means this far or farther (or none)."""

    @classmethod
    def parse(
        cls,
        context: Sequence[str] | str | None,
        keep: Sequence[str] | str | None = None,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        max_nm: float = DEFAULT_MAX_NM,
    ) -> ContextSettings:
        """From the command's lists (a single string is a one-item list)."""
        rules = tuple(parse_keep(t) for t in _as_list(keep))
        items = [parse_item(t) for t in _as_list(context)]
        items += [r.item for r in rules]
        threshold_on(np.zeros(1, dtype=np.uint8), threshold, "context_threshold")  # validates
        if not math.isfinite(float(max_nm)) or float(max_nm) <= 0:
            raise ConfigError(f"context_max_nm={max_nm} must be a number of nm > 0")
        return cls(tuple(dict.fromkeys(items)), rules, float(threshold), float(max_nm))

    def __bool__(self) -> bool:
        return bool(self.items)

    @property
    def features(self) -> list[str]:
        return list(dict.fromkeys(i.feature for i in self.items))


def _as_list(value: Sequence[str] | str | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    return [str(v) for v in value]


class ContextSource(Protocol):
    """Where a tomogram's other features come from (files next to the segmentation, a copick
    run, …); both in the grid of the picks."""

    def segmentation(self, feature: str) -> np.ndarray:
        """``(z, y, x)`` values of ``feature``'s segmentation (memory-mapped is fine)."""
        ...

    def picks(self, feature: str) -> np.ndarray:
        """``(N, 3)`` x/y/z voxels of ``feature``'s picks."""
        ...


# -- the measures --------------------------------------------------------------------------------
def _voxel_nm(voxel_size_A: float) -> float:
    if not math.isfinite(voxel_size_A) or voxel_size_A <= 0:
        raise ConfigError(f"voxel size {voxel_size_A} Å must be > 0; set voxel_size_A=<Å>")
    return float(voxel_size_A) / 10.0


def _as_picks(xyz: npt.ArrayLike) -> np.ndarray:
    arr = np.asarray(xyz, dtype=np.float64)
    return np.zeros((0, 3)) if arr.size == 0 else arr.reshape(-1, 3)


def _nearest_voxel(p: np.ndarray, shape: Sequence[int]) -> tuple[int, int, int]:
    """(z, y, x) of the voxel holding x/y/z position ``p``, clipped into the volume."""
    sizes = tuple(shape)[::-1]
    x, y, z = (int(np.clip(math.floor(c + 0.5), 0, n - 1)) for c, n in zip(p, sizes, strict=True))
    return z, y, x


def mean_max_within(
    data: np.ndarray, xyz: npt.ArrayLike, voxel_size_A: float, radius_nm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and max of ``data`` (as probabilities 0–1) over voxels whose centres lie within
    ``radius_nm`` of each pick; a radius smaller than that reaches the pick's own voxel.

    Reads one ``(2r+1)³`` crop per pick (r in voxels), nothing else.
    """
    v = _voxel_nm(voxel_size_A)
    picks = _as_picks(xyz)
    scale = full_scale(data)  # one streamed max over the volume: 0-255 grey or 0-1
    r = float(radius_nm) / v
    shape = data.shape
    means, maxes = np.zeros(len(picks)), np.zeros(len(picks))
    for i, p in enumerate(picks):
        centre = p[::-1]  # z, y, x
        lo = np.maximum(np.floor(centre - r).astype(int), 0)
        hi = np.minimum(np.ceil(centre + r).astype(int) + 1, shape)
        crop = np.asarray(data[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]], dtype=np.float64)
        grids = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        d2 = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True))
        values = crop[d2 <= r * r + 1e-9] if crop.size else crop.ravel()
        if values.size == 0:
            values = np.asarray([float(data[_nearest_voxel(p, shape)])])
        means[i], maxes[i] = values.mean() / scale, values.max() / scale
    return means, maxes


def signed_distance(
    data: np.ndarray,
    xyz: npt.ArrayLike,
    voxel_size_A: float,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    max_nm: float = DEFAULT_MAX_NM,
) -> np.ndarray:
    """Signed distance (nm) from each pick to the surface of ``data > threshold``: from the
    pick's voxel to the nearest voxel of the other class, negative when the pick is inside.

    Exact for distances up to ``max_nm`` (larger ones, or a feature absent from the tomogram,
    read as ±``max_nm``); the volume's edge is not a surface. Memory: one z slice of a crop
    around the pick at a time, at most ``(2·max_nm/voxel + 1)²`` voxels (~1 MB for 100 nm at
    10 Å), never the volume: slices are visited outwards from the pick's and each gets a 2D
    :func:`scipy.ndimage.distance_transform_edt` (sampling = the voxel size); the 3D distance is
    ``√(dz² + d²)``, and the walk stops once ``dz`` alone exceeds the best found (the crop
    shrinks to it too), so picks near a surface cost a few small slices.
    """
    from scipy.ndimage import distance_transform_edt

    v = _voxel_nm(voxel_size_A)
    picks = _as_picks(xyz)
    level = threshold_on(data, threshold, "context_threshold")
    cap = float(max_nm)
    half = math.ceil(cap / v)
    nz, ny, nx = data.shape
    out = np.zeros(len(picks))
    for i, p in enumerate(picks):
        z, y, x = _nearest_voxel(p, data.shape)
        inside = bool(data[z, y, x] > level)
        best2 = math.inf  # nm²
        for dz in _outwards(half):
            if (dz * v) ** 2 >= best2:
                break
            zz = z + dz
            if not 0 <= zz < nz:
                continue
            reach = half if best2 == math.inf else int(math.sqrt(best2 - (dz * v) ** 2) / v)
            y0, y1 = max(y - reach, 0), min(y + reach + 1, ny)
            x0, x1 = max(x - reach, 0), min(x + reach + 1, nx)
            other = (np.asarray(data[zz, y0:y1, x0:x1]) > level) != inside
            if not other.any():
                continue
            d = distance_transform_edt(~other, sampling=v)[y - y0, x - x0]
            best2 = min(best2, (dz * v) ** 2 + float(d) ** 2)
        out[i] = min(math.sqrt(best2), cap) * (-1.0 if inside else 1.0)
    return out


def _outwards(half: int) -> list[int]:
    """0, 1, -1, 2, -2, … ±half: slices in order of their distance from the pick's."""
    return [0] + [s * k for k in range(1, half + 1) for s in (1, -1)]


def nearest_distance(
    xyz: npt.ArrayLike,
    others: npt.ArrayLike,
    voxel_size_A: float,
    *,
    max_nm: float = DEFAULT_MAX_NM,
    same: bool = False,
) -> np.ndarray:
    """Distance (nm) from each pick to the nearest of ``others`` (x/y/z voxels, same grid),
    capped at ``max_nm``; ``same=True`` when ``others`` are the picks themselves (each skips
    itself). A k-d tree (:class:`scipy.spatial.cKDTree`): memory ∝ the number of picks."""
    from scipy.spatial import cKDTree

    v = _voxel_nm(voxel_size_A)
    picks, pool = _as_picks(xyz), _as_picks(others)
    k = 2 if same else 1
    if len(picks) == 0 or len(pool) < k:
        return np.full(len(picks), float(max_nm))
    dist, _ = cKDTree(pool).query(picks, k=k)
    dist = dist[:, 1] if same else dist
    return np.minimum(dist * v, float(max_nm))


# -- one tomogram --------------------------------------------------------------------------------
def context_columns(
    xyz: npt.ArrayLike,
    voxel_size_A: float,
    settings: ContextSettings,
    source: ContextSource,
    *,
    own_feature: str | None = None,
) -> dict[str, np.ndarray]:
    """Every column of ``settings`` for these picks: ``{column name: (N,) values}``.

    Each feature's segmentation is fetched once; ``nearest`` of ``own_feature`` measures the
    picks against each other.
    """
    picks = _as_picks(xyz)
    columns: dict[str, np.ndarray] = {}
    volumes: dict[str, np.ndarray] = {}
    for item in settings.items:
        if item.measure == "nearest":
            same = item.feature == own_feature
            others = picks if same else source.picks(item.feature)
            columns[item.column] = nearest_distance(
                picks, others, voxel_size_A, max_nm=settings.max_nm, same=same
            )
            continue
        if item.feature not in volumes:
            volumes[item.feature] = source.segmentation(item.feature)
        data = volumes[item.feature]
        if item.measure == "distance":
            columns[item.column] = signed_distance(
                data, picks, voxel_size_A, threshold=settings.threshold, max_nm=settings.max_nm
            )
        else:
            assert item.radius_nm is not None
            mean, peak = mean_max_within(data, picks, voxel_size_A, item.radius_nm)
            columns[item.column] = mean if item.measure == "mean" else peak
    return columns


def keep_mask(
    columns: Mapping[str, npt.ArrayLike], rules: Sequence[KeepRule], n: int
) -> np.ndarray:
    """Picks that pass every rule (all of them when there are no rules)."""
    keep = np.ones(n, dtype=bool)
    for rule in rules:
        keep &= rule.mask(columns[rule.item.column])
    return keep


@dataclass
class ContextResult:
    """Picks with their context columns, after ``keep``; ``dropped`` counts the removed."""

    picks: Picks
    dropped: int = 0
    columns: tuple[str, ...] = field(default_factory=tuple)


def add_context(
    picks: Picks,
    voxel_size_A: float,
    settings: ContextSettings,
    source: ContextSource,
    *,
    own_feature: str | None = None,
) -> ContextResult:
    """``picks`` with the context columns added to ``picks.columns`` and ``keep`` applied."""
    if not settings:
        return ContextResult(picks)
    columns = context_columns(picks.xyz, voxel_size_A, settings, source, own_feature=own_feature)
    picks.columns.update(columns)
    keep = keep_mask(columns, settings.keep, len(picks))
    kept = picks if keep.all() else picks.take(keep)
    return ContextResult(kept, int((~keep).sum()), tuple(columns))
