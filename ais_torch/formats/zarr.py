"""OME-Zarr volumes (NGFF 0.4, zarr 2): lazy multiscale reading and streamed, atomic writing.

Why here: the CZ cryoET Data Portal and copick store tomograms and segmentations as OME-Zarr, a
folder of compressed chunks with a ``multiscales`` description of every resolution level. Reading
returns the same :class:`~ais_torch.formats.mrc.Volume` the MRC reader gives, with a lazy zarr
array as ``data`` (slicing ``data[z0:z1]`` decompresses only those chunks), so ``segment`` streams
slabs from it exactly as from a memory-mapped MRC. Writing streams slabs into a hidden folder beside
the target and renames it at the end, so a crash never leaves a half-written store under its name.

Needs the optional ``zarr`` 2 stack (``pip install "ais_torch[copick]"``).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ais_torch.errors import AisInputError
from ais_torch.formats.atomic import OUTPUT_ERRNOS, output_error, temp_path_for
from ais_torch.formats.mrc import SUPPORTED_DTYPES, Volume, iter_slabs

if TYPE_CHECKING:
    from collections.abc import Callable, MutableMapping, Sequence

    import zarr

log = logging.getLogger("ais_torch.formats.zarr")

INSTALL_HINT = 'pip install "ais_torch[copick]" (zarr 2)'
NEAR_RATIO = 2.0
"""A level (or copick voxel spacing) is near a model's pixel size when within this factor: the
engine then rescales XY by less than 2×. Anything coarser or finer is refused with a list."""
UNIT_TO_A = {
    "angstrom": 1.0,
    "nanometer": 10.0,
    "micrometer": 1e4,
    "millimeter": 1e7,
    "meter": 1e10,
}
CHUNKS = (64, 256, 256)
"""Chunk shape of the stores we write (z, y, x): one slab of 64 slices per chunk row."""


def require_zarr() -> None:
    """One line instead of an ImportError when the optional stack is missing."""
    try:
        import zarr  # noqa: F401
    except ImportError:
        raise AisInputError(f"OME-Zarr support needs the zarr package; {INSTALL_HINT}") from None


@dataclass(frozen=True)
class ZarrLevel:
    """One resolution level of a multiscale store."""

    path: str
    """The array's key inside the group (``"0"``, ``"1"`` …)."""
    voxel_size_A: float
    shape: tuple[int, ...]


def is_ome_zarr(path: str | os.PathLike) -> bool:
    """A folder ending in ``.zarr`` or holding zarr 2 group metadata (``.zgroup``)."""
    p = Path(path)
    return p.is_dir() and (p.suffix.lower() == ".zarr" or (p / ".zgroup").is_file())


def multiscale_levels(group: zarr.Group, where: str) -> list[ZarrLevel]:
    """The levels a store describes, with their voxel sizes in Å (units converted)."""
    multiscales = group.attrs.get("multiscales")
    if not multiscales:
        raise AisInputError(
            f"{where}: a zarr group without OME 'multiscales' metadata; write it as OME-Zarr "
            "(e.g. ome-zarr-py or copick) so the voxel size is known"
        )
    meta = multiscales[0]
    axes = meta.get("axes") or [{"name": n, "type": "space"} for n in "zyx"]
    space = [i for i, a in enumerate(axes) if not isinstance(a, dict) or a.get("type") == "space"]
    unit = next((a.get("unit") for a in axes if isinstance(a, dict) and a.get("unit")), None)
    factor = UNIT_TO_A.get(str(unit or "angstrom").lower())
    if factor is None:
        raise AisInputError(f"{where}: unknown axis unit {unit!r}; expected angstrom or nanometer")
    levels = []
    for dataset in meta.get("datasets", []):
        key = str(dataset.get("path"))
        if key not in group:
            continue
        scale = next(
            (
                t["scale"]
                for t in dataset.get("coordinateTransformations", [])
                if t.get("type") == "scale"
            ),
            None,
        )
        if scale is None:
            raise AisInputError(f"{where}: level {key} has no scale transform (voxel size)")
        size = float(scale[space[-1]]) * factor  # x, the axis MRC voxel sizes describe too
        levels.append(ZarrLevel(key, size, tuple(int(n) for n in group[key].shape)))
    if not levels:
        raise AisInputError(f"{where}: OME metadata lists no readable level")
    return levels


def nearest_size(
    sizes: Sequence[float],
    target_A: float | None,
    where: str,
    what: str,
    fix: str = "use a model trained near one of these",
) -> float:
    """The size closest to ``target_A`` (by ratio); the finest without a target.

    Refuses when even the closest is :data:`NEAR_RATIO` or more away, listing what there is.
    """
    if target_A is None or target_A <= 0:
        return min(sizes)
    best = min(sizes, key=lambda s: abs(math.log(s / target_A)))
    if max(best / target_A, target_A / best) >= NEAR_RATIO:
        there = ", ".join(f"{s:g} Å" for s in sorted(sizes))
        raise AisInputError(
            f"{where}: no {what} near the model's {target_A:g} Å (there: {there}); {fix}"
        )
    return best


def choose_level(levels: list[ZarrLevel], target_A: float | None, where: str) -> ZarrLevel:
    """The level nearest ``target_A`` (see :func:`nearest_size`)."""
    size = nearest_size([lv.voxel_size_A for lv in levels], target_A, where, "level")
    return next(lv for lv in levels if lv.voxel_size_A == size)


def open_ome_zarr(
    path: str | os.PathLike,
    *,
    target_A: float | None = None,
    voxel_size_A: float | None = None,
) -> Volume:
    """A lazy :class:`Volume` from the level of an OME-Zarr store nearest ``target_A`` (Å).

    ``voxel_size_A`` overrides the chosen level's size (a store with a wrong scale).
    """
    require_zarr()
    import zarr

    path = Path(path)
    if not path.exists():
        raise AisInputError(f"{path}: not found; check the path")
    try:
        group = zarr.open_group(str(path), mode="r")
    except (ValueError, OSError, KeyError) as err:
        raise AisInputError(f"{path}: not a readable zarr group ({err})") from None
    level = choose_level(multiscale_levels(group, str(path)), target_A, str(path))
    log.debug("%s: using level %s (%g Å, %s)", path, level.path, level.voxel_size_A, level.shape)
    return volume_from_array(group[level.path], voxel_size_A or level.voxel_size_A, path)


def volume_from_array(array: zarr.Array, voxel_size_A: float, path: Path | None) -> Volume:
    """Wrap a 3D zarr array as a Volume without reading it (the engine slices it slab by slab)."""
    where = str(path) if path is not None else "zarr array"
    if len(array.shape) != 3 or min(array.shape) < 1:
        raise AisInputError(f"{where}: shape {tuple(array.shape)} is not a 3D (z, y, x) volume")
    if np.dtype(array.dtype).newbyteorder("=") not in [np.dtype(d) for d in SUPPORTED_DTYPES]:
        raise AisInputError(
            f"{where}: dtype {np.dtype(array.dtype).name} is not supported; store float32"
        )
    if not np.isfinite(voxel_size_A) or voxel_size_A <= 0:
        raise AisInputError(f"{where}: voxel size {voxel_size_A} Å must be > 0")
    # A zarr array answers .shape, .dtype and data[z0:z1] like the memmap a Volume usually holds.
    return Volume(data=array, voxel_size_A=float(voxel_size_A), path=path)  # type: ignore[arg-type]


def ome_attrs(
    voxel_size_A: float,
    name: str = "/",
    *,
    levels: int = 1,
    origin_A: tuple[float, float, float] | None = None,
) -> dict[str, object]:
    """NGFF 0.4 ``multiscales`` in Å, as copick writes them: level ``"k"`` at ``2**k`` × the
    voxel size; ``origin_A`` (x, y, z, as an MRC header gives it) adds a translation when not 0."""
    v = float(voxel_size_A)
    datasets = []
    for k in range(int(levels)):
        f = float(2**k)
        transforms: list[dict[str, object]] = [{"scale": [v * f] * 3, "type": "scale"}]
        if origin_A is not None and any(origin_A):
            # a level-k voxel centre sits (f - 1) / 2 level-0 voxels past the block's first one
            shift = (f - 1) / 2 * v
            zyx = [float(o) + shift for o in origin_A[::-1]]
            transforms.append({"translation": zyx, "type": "translation"})
        datasets.append({"coordinateTransformations": transforms, "path": str(k)})
    return {
        "multiscales": [
            {
                "axes": [{"name": n, "type": "space", "unit": "angstrom"} for n in "zyx"],
                "datasets": datasets,
                "metadata": {},
                "name": name,
                "version": "0.4",
            }
        ]
    }


def write_into_store(
    store: MutableMapping,
    source: np.ndarray,
    *,
    voxel_size_A: float,
    dtype: np.dtype | type | None = None,
    slab: int = CHUNKS[0],
    on_slab: Callable[[slice], None] | None = None,
) -> None:
    """Copy ``source`` (anything sliceable by z) into ``store`` as one-level OME-Zarr, slab by slab.

    Memory: one slab of ``slab`` slices at a time.
    """
    import zarr

    shape = tuple(int(n) for n in source.shape)
    out_dtype = np.dtype(dtype or source.dtype)
    root = zarr.group(store=store, overwrite=True)
    chunks = tuple(min(c, n) for c, n in zip(CHUNKS, shape, strict=True))
    array = root.create_dataset("0", shape=shape, chunks=chunks, dtype=out_dtype, overwrite=True)
    for zs in iter_slabs(shape[0], slab):
        array[zs] = np.asarray(source[zs]).astype(out_dtype, copy=False)
        if on_slab is not None:
            on_slab(zs)
    root.attrs.update(ome_attrs(voxel_size_A))


def write_ome_zarr(
    path: str | os.PathLike,
    source: np.ndarray,
    *,
    voxel_size_A: float,
    dtype: np.dtype | type | None = None,
    overwrite: bool = True,
    levels: int = 1,
) -> Path:
    """Write ``source`` as an OME-Zarr folder that appears under ``path`` only when complete.

    One slab at a time through :class:`OmeZarrWriter` (see there for what a crash leaves).
    """
    shape = tuple(int(n) for n in source.shape)
    writer = OmeZarrWriter(
        path,
        shape,  # type: ignore[arg-type]
        np.dtype(dtype or source.dtype),
        voxel_size_A=voxel_size_A,
        overwrite=overwrite,
        levels=levels,
    )
    with writer:
        for zs in iter_slabs(shape[0], CHUNKS[0]):
            writer.write(zs, np.asarray(source[zs]))
    return Path(path)


class OmeZarrWriter:
    """Stream slabs into a new OME-Zarr store that appears under its final name only when complete
    — the zarr counterpart of :class:`~ais_torch.formats.mrc.VolumeWriter`.

    The store is written into a hidden sibling folder (``.<name>.<pid>-<token>.partial``) and
    renamed at the end; an existing store is moved aside first and removed after the rename. An
    error or Ctrl-C removes the hidden folder; a killed process leaves it hidden, and the next
    run holding the output's lock removes it. Slices never written read as 0 (the fill value).
    ``levels`` > 1 adds a block-mean pyramid (level ``k`` binned by ``2**k``) at the end, computed
    from the level before it one slab at a time.

    >>> with OmeZarrWriter(out, shape, np.uint8, voxel_size_A=10.0) as w:
    ...     for zs in iter_slabs(shape[0], 16):
    ...         w.write(zs, predict(volume[zs]))
    """

    def __init__(
        self,
        path: str | os.PathLike,
        shape: tuple[int, int, int],
        dtype: np.dtype | type,
        *,
        voxel_size_A: float,
        origin_A: tuple[float, float, float] | None = None,
        overwrite: bool = True,
        levels: int = 1,
    ) -> None:
        self.path = Path(path)
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.voxel_size_A = float(voxel_size_A)
        self.origin_A = origin_A
        self.overwrite = overwrite
        self.levels = int(levels)
        if self.levels < 1:
            raise AisInputError(f"{self.path}: pyramid levels={levels} must be ≥ 1")
        self._tmp: Path | None = None
        self._group: zarr.Group | None = None
        self._array: zarr.Array | None = None

    def __enter__(self) -> OmeZarrWriter:
        require_zarr()
        import zarr

        if self.path.exists() and not self.overwrite:
            raise AisInputError(f"{self.path}: already exists; delete it or pass overwrite=True")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise output_error(self.path, err) from None
        self._tmp = temp_path_for(self.path)
        try:
            store = zarr.storage.DirectoryStore(str(self._tmp), dimension_separator="/")
            self._group = zarr.group(store=store, overwrite=True)
            chunks = tuple(min(c, n) for c, n in zip(CHUNKS, self.shape, strict=True))
            self._array = self._group.create_dataset(
                "0", shape=self.shape, chunks=chunks, dtype=self.dtype, fill_value=0
            )
        except BaseException as err:
            self._discard()
            if isinstance(err, OSError) and err.errno in OUTPUT_ERRNOS:
                raise output_error(self.path, err) from None
            raise
        return self

    def write(self, z: slice, values: np.ndarray) -> None:
        """Store ``values`` for the slices ``z`` (values shaped ``(len(z), y, x)``)."""
        assert self._array is not None, "use OmeZarrWriter as a context manager"
        self._array[z] = np.asarray(values).astype(self.dtype, copy=False)

    @property
    def array(self) -> zarr.Array:
        """Level 0 being written (a zarr array: slicing reads it back)."""
        assert self._array is not None, "use OmeZarrWriter as a context manager"
        return self._array

    def __exit__(self, exc_type, exc, tb) -> bool:  # type: ignore[no-untyped-def]
        if exc_type is not None:
            self._discard()
            return False
        try:
            assert self._group is not None and self._tmp is not None
            levels = _add_pyramid(self._group, self.levels, self.dtype)
            attrs = ome_attrs(self.voxel_size_A, levels=levels, origin_A=self.origin_A)
            self._group.attrs.update(attrs)
            replace_folder(self._tmp, self.path)
        except BaseException as err:
            self._discard()
            if isinstance(err, OSError) and err.errno in OUTPUT_ERRNOS:
                raise output_error(self.path, err) from None
            raise
        self._tmp = self._group = self._array = None
        return False

    def _discard(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
        self._tmp = self._group = self._array = None


def _add_pyramid(group: zarr.Group, levels: int, dtype: np.dtype) -> int:
    """Levels ``1 … levels-1`` as 2× block means of the one before (a partial block at the far
    edge is dropped, as :func:`~ais_torch.formats.encoding.block_mean` does); stops early when a
    side would drop below 1. Returns how many levels the store has."""
    from ais_torch.formats.encoding import block_mean

    made = 1
    for k in range(1, levels):
        prev = group[str(k - 1)]
        shape = tuple(int(n) // 2 for n in prev.shape)
        if min(shape) < 1:
            break
        chunks = tuple(min(c, n) for c, n in zip(CHUNKS, shape, strict=True))
        level = group.create_dataset(str(k), shape=shape, chunks=chunks, dtype=dtype, fill_value=0)
        for zs in iter_slabs(shape[0], CHUNKS[0] // 2):
            binned = block_mean(prev[2 * zs.start : 2 * zs.stop], 2)
            if np.issubdtype(dtype, np.integer):
                binned = np.rint(binned)
            level[zs] = binned.astype(dtype, copy=False)
        made += 1
    return made


def replace_folder(new: Path, final: Path) -> None:
    """Put the folder ``new`` at ``final``, replacing what is there with two renames."""
    old = None
    if final.exists():
        old = temp_path_for(final).with_suffix(".old")
        os.replace(final, old)
    try:
        os.replace(new, final)
    except BaseException:
        if old is not None:
            os.replace(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
