"""The streaming segmentation engine: one tomogram, every model, bounded memory.

Three stages overlap, joined by bounded queues (so memory stays bounded whatever the
tomogram's size):

* reader thread — reads a slab of ``slab`` slices (plus the halo 2.5D/3D models need) from the
  memory-mapped file, checks it for NaN/Inf and applies each model's preprocessing
  (:class:`~ais_torch.segmentation.preprocess.AisRecipe`: normalisation, rescaling, padding, or
  tiles in tiled mode); pinned host memory when the model runs on a GPU;
* compute (calling thread) — batches of ``batch_size`` slices through each model's backend,
  test-time augmentation included;
* writer thread — crops, rescales back, encodes (uint8 0–255 as the original, or float32) and
  writes the slab into each model's output.

The tomogram is read once for all models. Outputs are written through ``sinks``; the engine
does not care whether they stream to disk or collect in memory for post-processing.
"""

from __future__ import annotations

import copy
import logging
import math
import queue
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.segmentation.preprocess import AisRecipe, encode_uint8, rescale_factor
from ais_torch.segmentation.slabs import SlabBlender, gather, halo, slab_bounds
from ais_torch.segmentation.tiling import TileGrid

if TYPE_CHECKING:
    from ais_torch.segmentation.loading import LoadedModel
    from ais_torch.segmentation.sinks import Sink

log = logging.getLogger("ais_torch.segmentation.engine")

MODES = ("ais", "tiled")
DTYPES = ("uint8", "float32")
MAX_RESCALE = 8.0
"""Rescale factors beyond this (either way) almost always mean a wrong voxel size."""
ACTIVATION_BUDGET = 2 * 2**30
"""Bytes of network activations an automatic batch size aims for (host RAM on CPU)."""
ACTIVATION_FACTOR = 1.25
"""Margin on the tracked peak of live tensors (oneDNN/cuDNN workspaces and reorders)."""
MAX_AUTO_BATCH = 16
MAX_AUTO_SLAB = 16
SLAB_BUDGET = 256 * 2**20
"""Bytes of float32 input one automatic slab may hold (16 slices of 2k × 2k, 4 of 4k × 4k)."""


def slab_for(options: EngineOptions, shape: tuple[int, ...]) -> int:
    """Slices per step for a ``(z, y, x)`` tomogram."""
    if options.slab is not None:
        return max(1, min(int(options.slab), int(shape[0])))
    per_slice = int(shape[-2]) * int(shape[-1]) * 4
    return max(1, min(MAX_AUTO_SLAB, int(shape[0]), SLAB_BUDGET // per_slice))


_DEFAULT_BYTES_PER_PIXEL = 128 * 4 * 3.0
"""Guess when a network cannot be probed (ONNX): 128 float32 channels, three tensors alive."""


class _PeakTracker(TorchDispatchMode):
    """Bytes of tensors alive at once during a forward pass (on the meta device: no compute)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0

    def _free(self, n: int) -> None:
        self.live -= n

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        inputs = {id(a) for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and id(t) not in inputs and not t._is_view():
                n = t.numel() * t.element_size()
                self.live += n
                self.peak = max(self.peak, self.live)
                weakref.finalize(t, self._free, n)
        return out


def activation_bytes_per_pixel(model: LoadedModel) -> float:
    """Peak bytes of intermediate tensors per input pixel of one forward pass.

    Measured once per model by running a copy on the meta device (shapes only: no compute, no
    memory) while tracking which tensors are alive; a guess when that is not possible (ONNX).
    """
    cached = model.extra.get("activation_bytes_per_pixel")
    if cached is not None:
        return float(cached)
    value = _DEFAULT_BYTES_PER_PIXEL
    module = model.module
    if module is not None:
        size = max(128, math.lcm(64, max(1, model.multiple)))
        shape = (1, 1, model.depth, size, size) if model.is_3d else (1, model.depth, size, size)
        try:
            probe = copy.deepcopy(module).to("meta")
            tracker = _PeakTracker()
            with torch.no_grad(), tracker:
                probe(torch.zeros(shape, device="meta"))
            value = max(tracker.peak, 4 * size * size) / (size * size)
        except Exception:  # a graph that cannot run on meta: keep the guess
            pass
    model.extra["activation_bytes_per_pixel"] = value
    return value


@dataclass
class EngineOptions:
    """How to run the models; every field is a ``segment`` option of the same name."""

    mode: str = "ais"
    tta: int = 1
    batch_size: int | None = None
    """Slices per network call; None = as many as fit :data:`ACTIVATION_BUDGET` (1..16)."""
    slab: int | None = None
    """Slices read per step; None = up to 16, fewer for big slices (:data:`SLAB_BUDGET`)."""
    dtype: str = "uint8"
    box_size: int | None = None
    overlap: float | None = None
    model_apix: float | None = None
    rescale: bool = True
    z_range: tuple[int, int] | None = None
    prefetch: int = 2
    slab_tile: int | None = None
    """Slab (3D) models: XY tile, px (None = 512 as the original; -1 = the whole plane)."""
    slab_overlap: int | None = None
    """Slab models: px dropped on each side of an XY tile (None = 64, at most tile/3)."""
    z_stride: int | None = None
    """Slab models: slices between slab starts (None = half the model's depth)."""

    def check(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode={self.mode}: expected one of {', '.join(MODES)}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype={self.dtype}: expected one of {', '.join(DTYPES)}")
        for key in ("batch_size", "slab", "prefetch", "z_stride"):
            if getattr(self, key) is not None and int(getattr(self, key)) < 1:
                raise ConfigError(f"{key}={getattr(self, key)}: must be >= 1")


@dataclass
class ModelRun:
    """A model, its backend and its per-tomogram plan."""

    model: LoadedModel
    backend: Callable[[torch.Tensor], np.ndarray]
    recipe: AisRecipe
    grid: TileGrid | None
    batch: int = 1
    """Slices per network call (XY tiles per call for a slab model)."""
    slab: SlabBlender | None = None
    """Set for slab models (a Z-slab in, a Z-slab out), which run slab by slab."""

    @property
    def pixels_per_slice(self) -> int:
        """Pixels of one network input's plane (a slab model: one XY tile of its slab)."""
        if self.slab is not None:
            tiles = self.slab.grid(*self.recipe.padded_shape)
            return tiles.ty * tiles.tx
        if self.grid is not None:
            return self.grid.n_tiles * self.grid.box**2
        hp, wp = self.recipe.padded_shape
        return hp * wp

    @property
    def network_bytes(self) -> int:
        """Peak activation memory of one network call (one TTA orientation at a time)."""
        per_px = activation_bytes_per_pixel(self.model)
        return int(ACTIVATION_FACTOR * per_px * self.pixels_per_slice * self.batch)

    @property
    def halo(self) -> int:
        return self.slab.halo if self.slab is not None else halo(self.model.depth)

    def predict(self, x: torch.Tensor, z_out: list[int], lo: int, n_z: int) -> np.ndarray:
        """Network output for output slices ``z_out`` from prepared slices ``x`` (from ``lo``)."""
        if self.slab is not None:
            zs = slice(z_out[0], z_out[-1] + 1)
            return self.slab.chunk(zs, x.numpy(), lo)
        parts = []
        for b in range(0, len(z_out), self.batch):
            idx = z_out[b : b + self.batch]
            parts.append(self.backend(gather(x, idx, self.model.depth, n_z, lo, self.model.is_3d)))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def prepare(self, raw: np.ndarray) -> torch.Tensor:
        """Raw slices → preprocessed ``(m, H, W)`` or tiles ``(m, T, box, box)`` as a tensor."""
        if self.grid is not None:
            x = self.grid.tiles(self.recipe.normalise(raw))
        else:
            x = self.recipe.prepare(raw)
        t = torch.from_numpy(np.ascontiguousarray(x))
        return t.pin_memory() if getattr(self.backend, "pin_memory", False) else t

    def finish(self, prob: np.ndarray, n: int) -> np.ndarray:
        """Backend output for ``n`` slices → probabilities ``(n, y, x)`` on the tomogram grid."""
        if self.grid is not None:
            return self.recipe.finish(self.grid.stitch(prob, n), padded=False)
        return self.recipe.finish(prob)


def plan(
    model: LoadedModel,
    backend: Callable[[torch.Tensor], np.ndarray],
    shape: tuple[int, int, int],
    voxel_size_A: float,
    options: EngineOptions,
    *,
    stats: tuple[float, float] | None = None,
) -> ModelRun:
    """Preprocessing plan of ``model`` for a ``(z, y, x)`` tomogram; one clear error for bad
    combinations. ``stats``: the volume's global_mad statistic for models that use it."""
    meta = model.metadata
    model_apix = float(getattr(meta, "apix", -1.0) or -1.0)
    if options.model_apix is not None:
        model_apix = float(options.model_apix)
    factor = rescale_factor(voxel_size_A, model_apix) if options.rescale and model_apix else None
    if factor is not None and not 1 / MAX_RESCALE <= factor <= MAX_RESCALE:
        raise AisInputError(
            f"tomogram voxel size {voxel_size_A:g} Å vs model '{model.title}' {model_apix:g} Å: "
            f"rescaling ×{factor:.3g} is implausible; fix the header or set data_apix=/model_apix="
            " (0 = no rescaling)"
        )
    recipe = AisRecipe.for_shape(
        (shape[1], shape[2]),
        meta,
        voxel_size_A,
        multiple=model.pad_multiple,
        factor=factor,
        stats=stats,
    )
    if getattr(model, "slab", False):
        return _plan_slab(model, backend, recipe, shape, options)
    grid = None
    if options.mode == "tiled":
        box = int(options.box_size or getattr(meta, "box_size", 0) or 0)
        if box <= 0:
            raise ConfigError(f"model '{model.title}' records no box size; set box_size=")
        if box % max(1, model.multiple):
            raise AisInputError(
                f"box_size={box} does not fit model '{model.title}': its network needs a "
                f"multiple of {model.multiple} px; use e.g. box_size={box - box % model.multiple}"
            )
        overlap = options.overlap
        if overlap is None:
            overlap = float(getattr(meta, "overlap", 0.2))
        grid = TileGrid(*recipe.work_shape, box=box, overlap=float(overlap))
    run = ModelRun(model=model, backend=backend, recipe=recipe, grid=grid)
    if options.batch_size is not None:
        run.batch = int(options.batch_size)
    else:
        one = ACTIVATION_FACTOR * activation_bytes_per_pixel(model) * run.pixels_per_slice
        cap = min(MAX_AUTO_BATCH, slab_for(options, shape))
        run.batch = int(max(1, min(cap, ACTIVATION_BUDGET // one)))
    return run


def _plan_slab(
    model: LoadedModel,
    backend: Callable[[torch.Tensor], np.ndarray],
    recipe: AisRecipe,
    shape: tuple[int, int, int],
    options: EngineOptions,
) -> ModelRun:
    """A slab model runs as the original's ``ais segment`` does (see :class:`SlabBlender`)."""
    if options.mode == "tiled":
        raise ConfigError(
            f"model '{model.title}' is a 3D slab model; mode=tiled is for 2D models (slab "
            "models tile XY themselves: set slab_tile= / slab_overlap=); use mode=ais"
        )
    network = getattr(backend, "slabs", None)
    if network is None:
        raise ConfigError(f"model '{model.title}': this backend cannot run slab models")
    n_z = int(shape[0])
    if n_z < model.depth:
        log.warning(
            "%s: %d slices, thinner than the model's %d-slice slab; the slab is filled by "
            "reflecting the volume in Z, as the original does",
            model.source,
            n_z,
            model.depth,
        )
    z0, z1 = options.z_range if options.z_range is not None else (0, n_z)
    blender = SlabBlender(
        network,
        n_z=n_z,
        depth=model.depth,
        z_range=(max(0, int(z0)), min(n_z, int(z1))),
        z_jitter=int(getattr(model.metadata, "z_jitter", 0) or 0),
        z_stride=options.z_stride,
        tile=options.slab_tile,
        overlap=options.slab_overlap,
        tta=options.tta,
        batch=int(options.batch_size or 1),
    )
    return ModelRun(
        model=model, backend=backend, recipe=recipe, grid=None, batch=blender.batch, slab=blender
    )


def memory_estimate(
    runs: Sequence[ModelRun], shape: tuple[int, int, int], options: EngineOptions, in_memory: bool
) -> int:
    """Bytes of data the engine holds at most for one tomogram: slabs in the queues, batches
    and outputs (network activations and weights are reported apart)."""
    n_z, n_y, n_x = shape
    out_bytes = 1 if options.dtype == "uint8" else 4
    h = max((r.halo for r in runs), default=0)
    slab = slab_for(options, shape)
    raw = (slab + 2 * h) * n_y * n_x * 4
    prepared = 0
    peak_batch = 0
    for r in runs:
        per_slice = r.pixels_per_slice
        prepared += (slab + 2 * r.halo) * per_slice * 4
        batch = r.batch * per_slice * 4 * (r.model.depth + 3)
        peak_batch = max(peak_batch, batch)
    in_flight = options.prefetch + 2  # queued + being built + being computed
    outputs = (options.prefetch + 2) * slab * n_y * n_x * 4 * max(1, len(runs))
    total = in_flight * (raw + prepared) + peak_batch + outputs
    if any(r.recipe.stats is not None or _global_mad(r) for r in runs):
        # global_mad reads ≤ 32 slices (borders cut) before streaming starts
        from ais_torch.segmentation.normalise import N_STAT_SLICES, _border

        region = (n_y - 2 * _border(n_y)) * (n_x - 2 * _border(n_x)) * 4
        total = max(total, min(N_STAT_SLICES, n_z) * region)
    if in_memory:
        total += len(runs) * n_z * n_y * n_x * out_bytes
    return int(total)


def _global_mad(run: ModelRun) -> bool:
    return str(getattr(run.model.metadata, "normalization", "")) == "global_mad"


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_DONE = object()


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put unless the run was stopped (so a failed run never blocks on a full queue)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def run_volume(
    data: np.ndarray,
    runs: Sequence[ModelRun],
    sinks: Sequence[Sink],
    options: EngineOptions,
    *,
    source: str = "volume",
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Segment ``data`` (z, y, x) with every run, writing slab by slab into ``sinks``.

    ``on_progress(n)`` is called with the number of slices × models just written.
    """
    n_z = int(data.shape[0])
    z0, z1 = options.z_range if options.z_range is not None else (0, n_z)
    z0, z1 = max(0, int(z0)), min(n_z, int(z1))
    if z0 >= z1:
        raise ConfigError(f"z_range=[{z0}, {z1}] selects no slice of {source} ({n_z} slices)")
    step = slab_for(options, data.shape)
    zero_dtype = np.uint8 if options.dtype == "uint8" else np.float32
    for a, b in ((0, z0), (z1, n_z)):  # slices outside z_range are written as 0
        for s in range(a, b, step):
            zs = slice(s, min(b, s + step))
            zeros = np.zeros((zs.stop - zs.start, *data.shape[1:]), zero_dtype)
            for sink in sinks:
                sink.write(zs, zeros)
    slabs = [slice(s, min(z1, s + step)) for s in range(z0, z1, step)]
    h_max = max(r.halo for r in runs)

    stop = threading.Event()
    read_q: queue.Queue = queue.Queue(maxsize=options.prefetch)
    write_q: queue.Queue = queue.Queue(maxsize=options.prefetch * max(1, len(runs)))
    writer_error: list[BaseException] = []

    def reader() -> None:
        try:
            for zs in slabs:
                lo, hi = slab_bounds(zs, 2 * h_max + 1, n_z)
                raw = np.asarray(data[lo:hi], dtype=np.float32)
                if not np.isfinite(raw).all():
                    bad = np.argwhere(~np.isfinite(raw))[0]
                    raise AisInputError(
                        f"{source}: contains NaN/Inf (first at z={int(bad[0]) + lo}, "
                        f"y={int(bad[1])}, x={int(bad[2])}); fix the reconstruction or replace "
                        "them (e.g. numpy.nan_to_num)"
                    )
                prepared = []
                for r in runs:
                    rlo, rhi = slab_bounds(zs, 2 * r.halo + 1, n_z)
                    prepared.append((rlo, r.prepare(raw[rlo - lo : rhi - lo])))
                if not _put(read_q, (zs, prepared), stop):
                    return
            _put(read_q, _DONE, stop)
        except BaseException as err:
            _put(read_q, _Failure(err), stop)

    def writer() -> None:
        try:
            while True:
                try:
                    item = write_q.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():
                        return
                    continue
                if item is _DONE:
                    return
                i, zs, prob = item
                p = runs[i].finish(prob, zs.stop - zs.start)
                sinks[i].write(zs, encode_uint8(p) if options.dtype == "uint8" else p)
                if on_progress is not None:
                    on_progress(zs.stop - zs.start)
        except BaseException as err:
            writer_error.append(err)
            stop.set()

    threads = [
        threading.Thread(target=reader, name="ais-reader", daemon=True),
        threading.Thread(target=writer, name="ais-writer", daemon=True),
    ]
    for t in threads:
        t.start()
    try:
        while True:
            item = read_q.get()
            if item is _DONE:
                break
            if isinstance(item, _Failure):
                raise item.error
            zs, prepared = item
            z_out = list(range(zs.start, zs.stop))
            for i, r in enumerate(runs):
                lo, x = prepared[i]
                prob = r.predict(x, z_out, lo, n_z)
                if not _put(write_q, (i, zs, prob), stop):
                    break
            if writer_error:
                break
        _put(write_q, _DONE, stop)
    except BaseException:
        stop.set()
        raise
    finally:
        threads[1].join()
        stop.set()
        threads[0].join()
    if writer_error:
        raise writer_error[0]
