"""Inputs of 2.5D and 3D models: the ``model_depth`` slices around each output slice.

The original (HEAD) feeds a 2.5D model the slab ``z - d//2 .. z + d//2`` as input channels
(``(H, W, D)`` channels-last → our ``(B, D, H, W)``) and a 3D model the same slab as a volume
(``(H, W, D, 1)`` → our ``(B, 1, D, H, W)``); indices beyond the volume are clamped to the
first/last slice. Both predict the centre slice. The engine reads each slab with a halo of
``d//2`` slices so that streaming gives the same input as a whole-volume run.

Slab models (the original's ezm-3d-M/-L) predict every slice of their slab instead: they run
as the original's ``ais segment`` does (:class:`SlabBlender`): overlapping slabs of the model's
depth (50 % Z overlap), XY tiles whose centres are kept, the original's Z weights, TTA.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch


def halo(depth: int) -> int:
    """Slices needed on each side of an output slice."""
    return max(0, int(depth) // 2)


def slab_bounds(zs: slice, depth: int, n_z: int) -> tuple[int, int]:
    """``[lo, hi)`` of the slices to read for outputs ``zs`` (clamped to the volume)."""
    h = halo(depth)
    return max(0, zs.start - h), min(n_z, zs.stop + h)


def channel_index(z_out: Sequence[int], depth: int, n_z: int, lo: int) -> np.ndarray:
    """``(len(z_out), depth)`` positions in a slab starting at ``lo``, clamped to the volume."""
    h = halo(depth)
    offsets = np.arange(-h, h + 1)
    z = np.clip(np.asarray(z_out)[:, None] + offsets[None, :], 0, n_z - 1)
    return z - lo


def gather(
    prepared: torch.Tensor, z_out: Sequence[int], depth: int, n_z: int, lo: int, is_3d: bool
) -> torch.Tensor:
    """Model input for the outputs ``z_out`` from prepared slices ``(m, *rest)`` starting at ``lo``.

    ``rest`` is ``(H, W)`` for whole slices or ``(T, box, box)`` for tiles; tiles come out
    flattened into the batch (``B·T``), slice-major. 2D/2.5D → ``(B, D, h, w)``, 3D →
    ``(B, 1, D, h, w)``.
    """
    if depth == 1 and not is_3d:
        x = prepared[int(z_out[0]) - lo : int(z_out[-1]) - lo + 1].unsqueeze(1)  # (B, 1, ...)
    else:
        idx = torch.from_numpy(channel_index(z_out, depth, n_z, lo))
        x = prepared[idx.reshape(-1)].reshape(len(z_out), depth, *prepared.shape[1:])
    if x.ndim == 5:  # tiles: (B, D, T, b, b) → (B·T, D, b, b)
        x = x.transpose(1, 2).reshape(-1, depth, *x.shape[-2:])
    if is_3d:
        x = x.unsqueeze(1)
    return x.contiguous()


# -- slab models: a Z-slab in, a Z-slab out (the original's ezm-3d) ------------------------------
SLAB_TILE = 512
"""XY tile of a slab model, px (the original CLI's default ``--tile``)."""
SLAB_OVERLAP = 64
"""Border discarded on each side of an XY tile, px (the original CLI's default ``--overlap``)."""
SLAB_CONTEXT = 64
"""Reflected context around the plane, at least, so edge pixels fall in a tile's centre."""


def slab_starts(n_z: int, depth: int, z_start: int, z_end: int, stride: int | None) -> list[int]:
    """First slices of the slabs covering ``[z_start, z_end)``, as the original tiles Z.

    Stride ``depth // 2`` (50 % overlap) unless given; the last slab ends flush with
    ``z_end``; a volume no deeper than one slab is one slab from 0.
    """
    step = max(1, depth // 2) if stride is None else max(1, min(int(stride), depth))
    if n_z <= depth:
        return [0]
    last = max(0, min(z_end, n_z) - depth)
    starts = list(range(min(z_start, last), last + 1, step))
    if starts[-1] != last:
        starts.append(last)
    return starts


def slab_weights(depth: int, z_jitter: int) -> np.ndarray:
    """Weight of each output slice of a slab: 1 within ``±z_jitter // 2`` of the centre (the
    positions the original trained with its Z jitter), 0 beyond; all 1 without jitter."""
    half = int(z_jitter) // 2
    if half <= 0:
        return np.ones(depth, np.float32)
    return (np.abs(np.arange(depth) - depth // 2) <= half).astype(np.float32)


def _tile_starts(n: int, tile: int, stride: int) -> list[int]:
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile + 1, stride))
    if starts[-1] != n - tile:
        starts.append(n - tile)
    return starts


class PlaneTiles:
    """The XY tiles of a slab model on an ``(ny, nx)`` plane, and how their centres combine.

    As the original: square tiles of ``tile`` px (a multiple of 32), each keeping its centre
    (``overlap`` px dropped on every side, at most ``tile // 3``); the plane is reflect-padded by
    at least :data:`SLAB_CONTEXT` and to whole strides, so the real plane is covered by tile
    centres; where two centres overlap they are averaged. ``tile < 0``: the whole plane at once.
    """

    def __init__(self, ny: int, nx: int, tile: int | None, overlap: int | None) -> None:
        self.ny, self.nx = ny, nx
        if tile is not None and int(tile) < 0:
            self.ty, self.tx, self.margin, context = ny, nx, 0, 0
        else:
            self.ty = self.tx = max(32, int(tile or SLAB_TILE) // 32 * 32)
            margin = int(SLAB_OVERLAP if overlap is None else overlap)
            self.margin = min(margin, self.ty // 3)
            context = max(SLAB_CONTEXT, self.margin)
        self.pad_y = self._pad(ny, self.ty, context)
        self.pad_x = self._pad(nx, self.tx, context)
        py, px = ny + sum(self.pad_y), nx + sum(self.pad_x)
        self.starts = [
            (y0, x0)
            for y0 in _tile_starts(py, self.ty, self.ty - 2 * self.margin)
            for x0 in _tile_starts(px, self.tx, self.tx - 2 * self.margin)
        ]
        self.mask = np.ones((self.ty, self.tx), np.float32)
        if self.margin > 0:
            m = self.margin
            self.mask[:m] = self.mask[-m:] = 0
            self.mask[:, :m] = self.mask[:, -m:] = 0
        self.count = np.zeros((ny, nx), np.float32)
        for region, m in self._regions():
            self.count[region] += m

    def _pad(self, n: int, t: int, context: int) -> tuple[int, int]:
        stride = t - 2 * self.margin
        padded = max(t, n + 2 * context)
        padded += (stride - (padded - t) % stride) % stride
        return context, padded - n - context

    def _regions(self) -> list[tuple[tuple[slice, slice], np.ndarray]]:
        """Per tile: the part of the real plane it covers, and its mask over that part."""
        out = []
        for y0, x0 in self.starts:
            oy, ox = y0 - self.pad_y[0], x0 - self.pad_x[0]
            sy0, sy1 = max(0, oy), min(self.ny, oy + self.ty)
            sx0, sx1 = max(0, ox), min(self.nx, ox + self.tx)
            if sy0 >= sy1 or sx0 >= sx1:
                out.append(((slice(0, 0), slice(0, 0)), self.mask[:0, :0]))
                continue
            m = self.mask[sy0 - oy : sy1 - oy, sx0 - ox : sx1 - ox]
            out.append(((slice(sy0, sy1), slice(sx0, sx1)), m))
        return out

    def tiles(self, slab: np.ndarray) -> np.ndarray:
        """``(D, ny, nx)`` → ``(T, D, ty, tx)`` tiles of the reflect-padded slab."""
        padded = np.pad(slab, ((0, 0), self.pad_y, self.pad_x), mode="reflect")
        return np.stack([padded[:, y : y + self.ty, x : x + self.tx] for y, x in self.starts])

    def stitch(self, outputs: np.ndarray) -> np.ndarray:
        """Tile outputs ``(T, D, ty, tx)`` → ``(D, ny, nx)``: masked centres, averaged."""
        acc = np.zeros((outputs.shape[1], self.ny, self.nx), np.float32)
        for (region, m), (y0, x0), out in zip(self._regions(), self.starts, outputs, strict=True):
            if m.size == 0:
                continue
            oy, ox = y0 - self.pad_y[0], x0 - self.pad_x[0]
            ys, xs = region
            part = out[:, ys.start - oy : ys.stop - oy, xs.start - ox : xs.stop - ox]
            acc[(slice(None), ys, xs)] += m[None] * part
        np.divide(acc, self.count[None], out=acc, where=self.count[None] > 0)
        acc[:, self.count <= 0] = 0.0
        return acc


SlabNetwork = Callable[[torch.Tensor], np.ndarray]
"""``(N, 1, D, ty, tx)`` float32 → ``(N, D, ty, tx)`` probabilities on the host."""


class SlabBlender:
    """Streams a slab model over a volume: Z slabs, XY tiles, TTA, and the original's blending.

    Slabs start at :func:`slab_starts`; each output slice is the weighted mean
    (:func:`slab_weights`) of the slabs covering it, each slab's plane the average of its tiles'
    centres (:class:`PlaneTiles`), each tile the mean of ``tta`` orientations of the whole plane
    (the original rotates the volume, then tiles it). Chunks of output slices are asked for in
    order (:meth:`chunk`); partial sums for the slices below a chunk are carried to the next, so
    memory holds one chunk plus one slab.
    """

    def __init__(
        self,
        network: SlabNetwork,
        *,
        n_z: int,
        depth: int,
        z_range: tuple[int, int],
        z_jitter: int = 0,
        z_stride: int | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        tta: int = 1,
        batch: int = 1,
    ) -> None:
        self.network = network
        self.n_z, self.depth = int(n_z), int(depth)
        self.starts = slab_starts(self.n_z, self.depth, z_range[0], z_range[1], z_stride)
        self.weights = slab_weights(self.depth, z_jitter)
        self.tile, self.overlap = tile, overlap
        self.tta, self.batch = int(tta), max(1, int(batch))
        self._next = 0
        self._acc: dict[int, np.ndarray] = {}
        self._weight: dict[int, float] = {}
        self._grids: dict[tuple[int, int], PlaneTiles] = {}

    @property
    def halo(self) -> int:
        """Slices to read beyond a chunk on each side, so every slab it starts is complete."""
        return self.depth - 1

    def grid(self, ny: int, nx: int) -> PlaneTiles:
        """The XY tiles of an ``(ny, nx)`` plane (cached: every slab has the same)."""
        key = (ny, nx)
        if key not in self._grids:
            self._grids[key] = PlaneTiles(ny, nx, self.tile, self.overlap)
        return self._grids[key]

    def predict(self, slab: np.ndarray) -> np.ndarray:
        """One ``(depth, ny, nx)`` slab → its ``(depth, ny, nx)`` prediction (tiles, TTA)."""
        from ais_torch.segmentation.tta import dihedral, dihedral_inverse

        total = np.zeros(slab.shape, np.float32)
        for k in range(self.tta):
            plane = dihedral(slab, k)
            grid = self.grid(*plane.shape[-2:])
            tiles = grid.tiles(plane)
            outs = []
            for b in range(0, len(tiles), self.batch):
                x = torch.from_numpy(np.ascontiguousarray(tiles[b : b + self.batch]))
                outs.append(self.network(x.unsqueeze(1)))
            total += dihedral_inverse(grid.stitch(np.concatenate(outs)), k)
        return total / np.float32(self.tta)

    def chunk(self, zs: slice, prepared: np.ndarray, lo: int) -> np.ndarray:
        """Predictions ``(n, ny, nx)`` for output slices ``zs``, from prepared slices
        ``(m, ny, nx)`` of the volume that start at slice ``lo``."""
        while self._next < len(self.starts) and self.starts[self._next] < zs.stop:
            z0 = self.starts[self._next]
            self._next += 1
            slab = prepared[z0 - lo : min(z0 + self.depth, self.n_z) - lo]
            used = slab.shape[0]
            if used < self.depth:  # a volume thinner than one slab, reflected as the original
                slab = np.pad(slab, ((0, self.depth - used), (0, 0), (0, 0)), mode="reflect")
            out = self.predict(np.asarray(slab, np.float32))
            for i in range(used):
                w = float(self.weights[i])
                z = z0 + i
                if z not in self._acc:
                    self._acc[z] = np.zeros(out.shape[1:], np.float32)
                    self._weight[z] = 0.0
                self._acc[z] += np.float32(w) * out[i]
                self._weight[z] += w
        result = np.zeros((zs.stop - zs.start, *prepared.shape[1:]), np.float32)
        for z in range(zs.start, zs.stop):
            acc, w = self._acc.pop(z, None), self._weight.pop(z, 0.0)
            if acc is not None and w > 0:
                result[z - zs.start] = acc / np.float32(w)
        for z in [z for z in self._acc if z < zs.stop]:  # slices of an earlier z_range
            self._acc.pop(z)
            self._weight.pop(z)
        return result
