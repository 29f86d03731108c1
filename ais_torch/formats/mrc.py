"""Validated, memory-mapped MRC volumes and atomic MRC writers.

Volumes are ``(z, y, x)`` arrays (mrcfile's order). Voxel sizes are in Å, origins in Å as
``(x, y, z)`` like the MRC header. Reading maps the file instead of loading it, so a 4 GB
tomogram costs only the slabs you touch; validation streams over slabs for the same reason.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import mrcfile.dtypes
import mrcfile.utils
import numpy as np

from ais_torch.errors import AisError, AisInputError
from ais_torch.formats.atomic import atomic_output, preallocate
from ais_torch.formats.limits import ENV, human, limits

MRC_SUFFIXES = (".mrc", ".rec", ".map", ".mrcs", ".st", ".ali")
SUPPORTED_DTYPES = (np.int8, np.uint8, np.int16, np.uint16, np.float16, np.float32)
_HEADER_BYTES = 1024
IMOD_STAMP = 1146047817
# Slab depth used when streaming over a volume for validation (bounded memory).
_SCAN_SLICES = 16


@dataclass(frozen=True)
class Volume:
    """A tomogram (or label volume) and the geometry needed to write results that overlay it."""

    data: np.ndarray
    """``(z, y, x)`` voxels; a read-only ``np.memmap`` when read from disk."""
    voxel_size_A: float
    origin_A: tuple[float, float, float] = (0.0, 0.0, 0.0)
    path: Path | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def pixel_size_nm(self) -> float:
        return self.voxel_size_A / 10.0


def read_volume(
    path: str | os.PathLike,
    *,
    voxel_size_A: float | None = None,
    check_finite: bool = True,
    allow_2d: bool = False,
) -> Volume:
    """Open an MRC tomogram memory-mapped and validate it.

    Parameters
    ----------
    path
        ``.mrc``/``.rec``/``.map`` file.
    voxel_size_A
        Override for files whose header has no (or a wrong) voxel size.
    check_finite
        Scan for NaN/Inf in float data (streams slab by slab; costs one read of the file).
    allow_2d
        Accept a single image (returned as ``(1, y, x)``); tomogram inputs keep this off.
    """
    path = Path(path)
    header, dtype, shape, offset = _read_header(path)
    if len(shape) != 3 or (shape[0] == 1 and not allow_2d):
        raise AisInputError(
            f"{path}: is a 2D image of shape {shape[-2:]}, not a 3D tomogram; "
            "give the reconstructed volume (z, y, x)"
        )
    data = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
    size = _voxel_size(path, header, voxel_size_A)
    origin = tuple(float(header.origin[ax]) for ax in ("x", "y", "z"))
    if check_finite:
        assert_finite(data, path)
    return Volume(data=data, voxel_size_A=size, origin_A=origin, path=path)  # type: ignore[arg-type]


def read_header_info(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype, float]:
    """Shape, dtype and header voxel size (0 when missing) without touching the data."""
    header, dtype, shape, _ = _read_header(Path(path))
    return shape, dtype, float(header.voxel_size.x) if hasattr(header, "voxel_size") else 0.0


@dataclass(frozen=True)
class MrcHeader:
    """What an MRC header claims, in Python ints (no int32/int64 overflow), before any data."""

    header: np.recarray
    dtype: np.dtype
    shape: tuple[int, ...]
    extended_bytes: int

    @property
    def data_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    @property
    def total_bytes(self) -> int:
        """Header + extended header + data: what the file (or archive member) must hold."""
        return _HEADER_BYTES + self.extended_bytes + self.data_bytes


def parse_mrc_header(
    head: bytes, label: str | Path, error: type[AisError] = AisInputError
) -> MrcHeader:
    """Interpret the first 1024 bytes of an MRC file without trusting them.

    Why not mrcfile alone: it reads the extended header the header promises (gigabytes from a
    forged file), computes sizes in numpy ints and divides by ``mz`` unchecked. Here the byte
    order comes from the machine stamp (or, as mrcfile does, from which order gives a valid
    mode); dimensions must be positive; a 4-D volume stack is named as such; sizes are Python
    ints. The caller compares :attr:`MrcHeader.total_bytes` with the bytes really there.
    """
    if len(head) < _HEADER_BYTES:
        raise error(
            f"{label}: {len(head)} bytes is shorter than an MRC header (1024); not an MRC file"
        )
    if head[208:211] != b"MAP":
        raise error(
            f"{label}: not an MRC file (no 'MAP ' ID in the header); check the file or re-export it"
        )
    header = np.frombuffer(head[:_HEADER_BYTES], dtype=mrcfile.dtypes.HEADER_DTYPE).reshape(())
    header = header.view(np.recarray).copy()
    try:
        order = mrcfile.utils.byte_order_from_machine_stamp(header.machst)
    except ValueError:
        order = "<"
    header.dtype = header.dtype.newbyteorder(order)
    mode = int(header.mode)
    try:
        dtype = mrcfile.utils.dtype_from_mode(mode)
    except ValueError:
        header.dtype = header.dtype.newbyteorder()  # stamp wrong: the other order may fit
        try:
            dtype = mrcfile.utils.dtype_from_mode(header.mode)
        except ValueError:
            raise error(
                f"{label}: MRC mode {mode} is not a known mode; the header is damaged or the "
                "file is not MRC — convert to float32 (mode 2)"
            ) from None
    dtype = np.dtype(dtype).newbyteorder(header.mode.dtype.byteorder)
    nx, ny, nz, mz = (int(header[k]) for k in ("nx", "ny", "nz", "mz"))
    ext = int(header.nsymbt)
    if min(nx, ny, nz) <= 0:
        raise error(
            f"{label}: header gives dimensions nx={nx}, ny={ny}, nz={nz}; all must be > 0 — the "
            "header is damaged, export the file again"
        )
    if ext < 0:
        raise error(
            f"{label}: header gives a negative extended header size ({ext}); the header is damaged"
        )
    lim = limits()
    if ext > lim.mrc_extended_header_bytes:
        raise error(
            f"{label}: header promises a {human(ext)} extended header, above the "
            f"{human(lim.mrc_extended_header_bytes)} limit; the file is damaged or forged (if you "
            f"trust it, raise {ENV['mrc_extended_header_bytes']})"
        )
    shape: tuple[int, ...] = (nz, ny, nx)
    if mrcfile.utils.spacegroup_is_volume_stack(int(header.ispg)):
        if mz <= 0 or nz % mz:
            raise error(
                f"{label}: header marks a volume stack (space group {int(header.ispg)}) but "
                f"nz={nz} is not a multiple of mz={mz}; the header is damaged"
            )
        if nz // mz > 1:
            raise error(
                f"{label}: is a 4-D stack of {nz // mz} volumes of shape ({mz}, {ny}, {nx}) "
                "(space group 401), not one 3-D tomogram; give one volume (e.g. split it with "
                "IMOD newstack -split or mrcfile)"
            )
    return MrcHeader(header, np.dtype(dtype), shape, ext)


def _read_header(path: Path) -> tuple[np.recarray, np.dtype, tuple[int, ...], int]:
    if not path.exists():
        raise AisInputError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise AisInputError(f"{path}: is a folder, not an MRC file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEADER_BYTES)
            actual = os.fstat(fh.fileno()).st_size
    except OSError as err:
        raise AisInputError(
            f"{path}: cannot be read ({err.strerror}); check its permissions"
        ) from None
    info = parse_mrc_header(head, path)
    dtype = _unsigned_if_imod_says_so(info.header, info.dtype)
    if np.dtype(dtype).newbyteorder("=") not in [np.dtype(d) for d in SUPPORTED_DTYPES]:
        raise AisInputError(
            f"{path}: MRC mode {int(info.header.mode)} ({np.dtype(dtype).name}) is not supported; "
            "convert to float32 (mode 2)"
        )
    if actual < info.total_bytes:
        raise AisInputError(
            f"{path}: file is truncated ({actual} bytes, header promises {info.total_bytes}); "
            "copy or export it again"
        )
    return info.header, np.dtype(dtype), info.shape, _HEADER_BYTES + info.extended_bytes


def _unsigned_if_imod_says_so(header: np.recarray, dtype: np.dtype) -> np.dtype:
    """IMOD marks mode-0 files as unsigned bytes by leaving bit 0 of imodFlags clear.

    imodStamp and imodFlags are int32 at bytes 152 and 156 of the header (inside ``extra2``).
    """
    if int(header.mode) != 0:
        return dtype
    raw = header.tobytes()[152:160]
    stamp, flags = np.frombuffer(
        raw, dtype=np.dtype(np.int32).newbyteorder(header.dtype["nx"].byteorder)
    )
    if int(stamp) == IMOD_STAMP and not (int(flags) & 1):
        return np.dtype(np.uint8)
    return dtype


def _voxel_size(path: Path, header: np.recarray, override: float | None) -> float:
    if override is not None:
        if not np.isfinite(override) or override <= 0:
            raise AisInputError(f"{path}: voxel size override {override} Å must be > 0")
        return float(override)
    mx, my, mz = (int(header.mx), int(header.my), int(header.mz))
    cella = header.cella
    sizes = [
        float(cella.x) / mx if mx else 0.0,
        float(cella.y) / my if my else 0.0,
        float(cella.z) / mz if mz else 0.0,
    ]
    size = sizes[0]
    if not np.isfinite(size) or size <= 0:
        raise AisInputError(
            f"{path}: header has no voxel size (got {size:g} Å); set it with "
            "voxel_size_A=<Å> (or fix the header: alterheader -del)"
        )
    return size


def assert_finite(data: np.ndarray, path: Path | str | None = None) -> None:
    """Raise a one-line error if float data hold NaN or Inf (scanned in slabs)."""
    if not np.issubdtype(data.dtype, np.floating):
        return
    for z0 in range(0, data.shape[0], _SCAN_SLICES):
        slab = np.asarray(data[z0 : z0 + _SCAN_SLICES])
        if not np.isfinite(slab).all():
            bad = np.argwhere(~np.isfinite(slab))[0]
            z, y, x = int(bad[0]) + z0, int(bad[1]), int(bad[2])
            raise AisInputError(
                f"{path}: contains NaN/Inf (first at z={z}, y={y}, x={x}); "
                "fix the reconstruction or replace them (e.g. numpy.nan_to_num)"
            )


def iter_slabs(n_slices: int, depth: int) -> Iterator[slice]:
    """Consecutive z-ranges of at most ``depth`` slices covering ``range(n_slices)``."""
    for z0 in range(0, n_slices, depth):
        yield slice(z0, min(z0 + depth, n_slices))


def write_volume(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    voxel_size_A: float,
    origin_A: tuple[float, float, float] = (0.0, 0.0, 0.0),
    overwrite: bool = True,
) -> Path:
    """Write ``data`` (z, y, x) atomically with voxel size and origin.

    numpy uint8 is stored as MRC mode 6 (uint16) by mrcfile, as the original Ais does.
    """
    path = Path(path)
    data = np.asarray(data)
    if data.ndim != 3:
        raise AisInputError(f"{path}: can only write 3D volumes, got shape {data.shape}")
    with atomic_output(path, overwrite=overwrite) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(data)
            _set_geometry(mrc, voxel_size_A, origin_A)
    return path


class VolumeWriter:
    """Stream slabs into a new MRC file that appears under its final name only when complete.

    >>> with VolumeWriter(out, shape, np.float32, voxel_size_A=10.0) as w:
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
        origin_A: tuple[float, float, float] = (0.0, 0.0, 0.0),
        overwrite: bool = True,
    ) -> None:
        self.path = Path(path)
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.voxel_size_A = voxel_size_A
        self.origin_A = origin_A
        self._atomic = atomic_output(self.path, overwrite=overwrite)
        self._mrc: mrcfile.mrcmemmap.MrcMemmap | None = None

    def __enter__(self) -> VolumeWriter:
        tmp = self._atomic.__enter__()
        mode = mrcfile.utils.mode_from_dtype(self.dtype)
        try:
            self._mrc = mrcfile.new_mmap(tmp, shape=self.shape, mrc_mode=mode, overwrite=True)
            # the map is sparse: reserve its blocks so a full disk is ENOSPC here, not SIGBUS
            preallocate(tmp)
            _set_geometry(self._mrc, self.voxel_size_A, self.origin_A)
        except BaseException as err:  # the temp file goes too (the atomic writer's exit)
            if self._mrc is not None:
                with contextlib.suppress(Exception):
                    self._mrc.close()
                self._mrc = None
            if not self._atomic.__exit__(type(err), err, err.__traceback__):
                raise
        return self

    def write(self, z: slice, values: np.ndarray) -> None:
        """Store ``values`` for the slices ``z`` (values shaped ``(len(z), y, x)``)."""
        assert self._mrc is not None, "use VolumeWriter as a context manager"
        self._mrc.data[z] = values

    @property
    def array(self) -> np.ndarray:
        """The data being written, memory-mapped (``write`` is the same as assigning here)."""
        assert self._mrc is not None, "use VolumeWriter as a context manager"
        return self._mrc.data

    def __exit__(self, exc_type, exc, tb) -> bool:  # type: ignore[no-untyped-def]
        failed: Exception | None = None
        if self._mrc is not None:
            try:
                if exc_type is None:
                    self._mrc.update_header_stats()
                self._mrc.close()
            except Exception as err:  # e.g. a full disk on flush: the temp file still goes
                if exc_type is None:
                    failed, exc_type, exc, tb = err, type(err), err, err.__traceback__
            self._mrc = None
        suppressed = bool(self._atomic.__exit__(exc_type, exc, tb))
        if failed is not None and not suppressed:
            raise failed
        return suppressed


def _set_geometry(
    mrc: mrcfile.mrcobject.MrcObject, voxel_size_A: float, origin_A: tuple[float, float, float]
) -> None:
    mrc.voxel_size = float(voxel_size_A)
    mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = (float(o) for o in origin_A)
