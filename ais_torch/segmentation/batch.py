"""Segment whole tomogram files: the batch behind ``ais-torch segment``.

Writes ``<out>/<tomogram stem>__<model title>.mrc`` for every tomogram × model, with the
input's shape, voxel size and origin, encoded like the original Ais (uint8 0–255 stored as MRC
mode 6) or as float32 probabilities (``dtype=float32``); with ``format="zarr"`` the same values
go into OME-Zarr stores ``<tomogram stem>__<model title>.zarr`` instead (or into the one store
``out=X.zarr``). :func:`segment` reads top to bottom:

models → work list (this rank's share, existing outputs skipped) → per tomogram: lock the
outputs, read once, run every model through the streaming engine, post-process, write
atomically → report (failures listed at the end, the batch never stops for one bad file).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ais_torch.errors import AisError, AisInputError, ConfigError
from ais_torch.formats.atomic import check_output_folder, output_error
from ais_torch.formats.copick import CopickOptions, CopickTomogramRef
from ais_torch.formats.mrc import VolumeWriter, read_header_info, read_volume
from ais_torch.formats.naming import result_name
from ais_torch.segmentation.api import (
    ModelSpec,
    PostProcessFn,
    Segmenter,
    describe_backends,
    run_segmenter,
)
from ais_torch.segmentation.engine import EngineOptions, memory_estimate, plan, slab_for
from ais_torch.segmentation.loading import (
    LoadedModel,
    as_list,
    output_name,
    resolve_data,
    title_notes,
)
from ais_torch.segmentation.scheduling import OutputLock, detect_rank, split_work
from ais_torch.segmentation.sinks import StreamSink, remove_partials_of

if TYPE_CHECKING:
    from tqdm import tqdm

    from ais_torch.formats.mrc import Volume
    from ais_torch.formats.zarr import OmeZarrWriter

Tomogram = Path | CopickTomogramRef
"""A tomogram file (MRC or OME-Zarr) or one run's tomogram in a copick project."""
FORMATS = ("mrc", "zarr")


@dataclass(frozen=True)
class Outputs:
    """Where each tomogram × model result goes: ``<folder>/<tomo>__<title>.mrc`` (or ``.zarr``),
    or the one OME-Zarr ``store`` that ``out=X.zarr`` names."""

    folder: Path
    format: str = "mrc"
    store: Path | None = None
    levels: int = 1
    """OME-Zarr levels written (``pyramid=``); 1 = full resolution only."""

    @classmethod
    def parse(cls, out: str | os.PathLike, format: str | None, pyramid: int | None) -> Outputs:
        """``out`` ending in ``.zarr`` is one store (and implies zarr); else a folder."""
        fmt = str(format or "mrc").lower().lstrip(".")
        if fmt not in FORMATS:
            raise ConfigError(f"format={format!r}: choose mrc or zarr (OME-Zarr)")
        levels = 1 if pyramid in (None, "", 0) else int(pyramid)
        if levels < 1:
            raise ConfigError(f"pyramid={pyramid}: the number of OME-Zarr levels, ≥ 1")
        text = str(out).rstrip("/\\")
        if text.lower().endswith(".zarr"):
            store = Path(text)
            return cls(check_output_folder(store.parent), "zarr", store, levels)
        return cls(check_output_folder(out), fmt, None, levels)

    def path(self, tomo: Tomogram, title: str) -> Path:
        if self.store is not None:
            return self.store
        if self.format == "zarr":
            name = (
                f"{tomo.result_name(title)[: -len('.mrc')]}.zarr"
                if isinstance(tomo, CopickTomogramRef)
                else result_name(tomo, title, suffix=".zarr")
            )
            return self.folder / name
        return self.folder / _result_name(tomo, title)

    def check_single(self, n_tomograms: int, n_models: int) -> None:
        """``out=X.zarr`` holds one segmentation: one tomogram and one model."""
        if self.store is not None and (n_tomograms, n_models) != (1, 1):
            raise ConfigError(
                f"out={self.store} names one OME-Zarr store, but there are {n_tomograms} "
                f"tomogram(s) × {n_models} model(s); give one of each, or out=FOLDER format=zarr"
            )


@dataclass
class SegmentReport:
    """What a run did; ``failed`` holds one line per tomogram that could not be segmented."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    busy: list[Path] = field(default_factory=list)
    """Outputs another live run holds a lock on (it is writing them)."""
    failed: list[tuple[Tomogram, str]] = field(default_factory=list)
    copick: list[str] = field(default_factory=list)
    """copick segmentations written into the project (one per model and run)."""
    seconds: float = 0.0
    memory_bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


def segment(
    models: ModelSpec | Sequence[ModelSpec],
    data: str | os.PathLike | Sequence[str | os.PathLike],
    out: str | os.PathLike,
    *,
    mode: str = "ais",
    tta: int = 1,
    batch_size: int | str | None = "auto",
    slab: int | str | None = "auto",
    dtype: str = "uint8",
    box_size: int | None = None,
    overlap: float | None = None,
    slab_tile: int | None = None,
    slab_overlap: int | None = None,
    z_stride: int | None = None,
    data_apix: float | None = None,
    model_apix: float | None = None,
    model_depth: int | None = None,
    z_range: Sequence[int] | None = None,
    overwrite: bool = False,
    device: str = "auto",
    precision: str = "auto",
    backend: str = "auto",
    compile: bool = False,
    channels_last: bool | None = None,
    interactions: Mapping[str, object] | str | None = None,
    postprocess: PostProcessFn | str | None = "auto",
    locks: bool = True,
    prefetch: int = 2,
    progress: bool = True,
    verbose: bool = True,
    copick: CopickOptions | Mapping[str, object] | None = None,
    format: str = "mrc",
    pyramid: int | None = None,
) -> SegmentReport:
    """Segment every tomogram in ``data`` with every model in ``models`` into the folder ``out``.

    ``models``: path(s) to ``.scnm``/``.scnmgroup``/``.onnx``/``.h5`` (list or comma-separated),
    or loaded models (``ais_torch.load_model``). ``data``: file, folder, glob, ``.txt`` list, or a
    list of those. Every option is described in ``docs/segmentation.md``; the defaults
    reproduce the original ``ais segment``.
    ``postprocess``: ``"auto"`` builds the competition/interaction step from ``interactions``
    (and a ``.scnmgroup``'s rules) when ``ais_torch.interactions.plan`` is installed; a
    function ``f({title: volume}, voxel_size_A) -> {title: volume}`` is used as given;
    ``None`` switches post-processing off. ``copick``: which runs, spacing and tomogram type to
    read when ``data`` names a copick config, and the user/session the segmentations are written
    under (``docs/copick.md``). ``format``: ``"mrc"`` or ``"zarr"`` (OME-Zarr stores, the same
    values; ``out`` ending in ``.zarr`` is one store for one tomogram × one model);
    ``pyramid``: OME-Zarr levels to write (1 = full resolution only). ``slab_tile``,
    ``slab_overlap``, ``z_stride``: how 3D slab models (the original's ezm-3d) are tiled
    (:class:`~ais_torch.segmentation.engine.EngineOptions`; the defaults are the original's).
    """
    started = time.perf_counter()
    say = _printer(verbose)
    options = EngineOptions(
        mode=str(mode),
        tta=int(tta),
        batch_size=None if batch_size in (None, "auto") else int(batch_size),
        slab=None if slab in (None, "auto") else int(slab),
        dtype=str(dtype),
        box_size=int(box_size) if box_size else None,
        overlap=None if overlap is None else float(overlap),
        slab_tile=None if slab_tile is None else int(slab_tile),
        slab_overlap=None if slab_overlap is None else int(slab_overlap),
        z_stride=None if z_stride is None else int(z_stride),
        model_apix=None if model_apix in (None, 0) else float(model_apix),
        rescale=data_apix != 0 and model_apix != 0,
        z_range=_z_range(z_range),
        prefetch=int(prefetch),
    )
    options.check()
    # a file, a read-only or non-creatable folder: one line now
    outputs = Outputs.parse(out, format, pyramid)
    out = outputs.folder
    if outputs.format == "zarr":
        from ais_torch.formats.zarr import require_zarr

        require_zarr()

    segmenter = Segmenter.build(
        models,
        options=options,
        tta=tta,
        precision=precision,
        device=device,
        backend=backend,
        compile=compile,
        channels_last=channels_last,
        interactions=interactions,
        postprocess=postprocess,
        model_depth=model_depth,
        progress=progress,
    )
    rank = detect_rank()
    opts = copick if isinstance(copick, CopickOptions) else CopickOptions.from_mapping(copick)
    sources = _not_outputs(_sources(data, segmenter, opts, options.model_apix, say), segmenter)
    outputs.check_single(len(sources), len(segmenter.models))
    tomograms = split_work(sources, rank)
    say(
        f"segment: {len(tomograms)} tomogram(s) × {len(segmenter.models)} model(s) "
        f"[{', '.join(segmenter.titles)}] → {outputs.store or out}"
        + (" (OME-Zarr)" if outputs.format == "zarr" else "")
        + (f"  ({rank})" if rank.world_size > 1 else "")
    )
    say(f"device: {describe_backends(segmenter.backends)}; mode={options.mode}, tta={options.tta}")
    for note in title_notes(segmenter.models):
        say(note)

    report = SegmentReport()
    missing = [t for t in tomograms if isinstance(t, Path) and not t.exists()]
    for t in missing:  # said before any progress bar, and never tried
        report.failed.append((t, f"{t}: file not found; check the path"))
        say(f"error: {t}: file not found; check the path (the others go on)")
    tomograms = [t for t in tomograms if t not in missing]
    headers = _headers(tomograms, _target_apix(segmenter, options.model_apix))
    for t in tomograms:
        if _is_zarr(t) and t in headers:
            say(f"{t}: OME-Zarr level at {headers[t][1]:g} Å (nearest the model's pixel size)")
    report.memory_bytes = _announce_memory(headers, segmenter, say)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error(out / "x", err) from None
    try:
        _run_batch(
            tomograms,
            headers,
            segmenter,
            outputs,
            data_apix=data_apix,
            overwrite=overwrite,
            use_locks=locks,
            progress=progress,
            report=report,
            say=say,
        )
        _publish_copick(tomograms, segmenter, outputs, opts, overwrite, report, say)
    finally:
        if created and not any(out.iterdir()):
            out.rmdir()  # a run that wrote nothing leaves no empty folder behind
    report.seconds = time.perf_counter() - started
    say(
        f"done in {report.seconds:.1f} s: {len(report.written)} written, "
        f"{len(report.skipped)} already there, {len(report.busy)} busy in another run, "
        f"{len(report.failed)} failed"
    )
    _list_written(report.written, out, say)
    return report


# -- steps ---------------------------------------------------------------------------------------
def _printer(verbose: bool) -> Callable[[str], None]:
    def say(line: str) -> None:
        if verbose:
            print(line, file=sys.stderr, flush=True)

    return say


def _sources(
    data: str | os.PathLike | Sequence[str | os.PathLike],
    segmenter: Segmenter,
    copick: CopickOptions,
    model_apix: float | None,
    say: Callable[[str], None],
) -> list[Tomogram]:
    """Files as :func:`resolve_data` finds them, plus one tomogram per run of each copick config
    (at the spacing nearest the first model's pixel size); copick names are checked up front."""
    from ais_torch.formats import copick as cp

    items = as_list(data)  # type: ignore[arg-type]
    configs = [i for i in items if i.lower().endswith(".json")]
    files = [i for i in items if i not in configs]
    found: list[Tomogram] = list(resolve_data(files)) if files or not configs else []
    target = _target_apix(segmenter, model_apix)
    for config in configs:
        root = cp.open_project(config)
        for m in segmenter.models:
            cp.object_for_title(root, m.title, config)
        refs = cp.find_tomograms(config, copick, target)
        spacings = sorted({f"{r.voxel_size_A:g} Å {r.tomo_type}" for r in refs})
        say(f"copick: {len(refs)} run(s) of {config} ({', '.join(spacings)})")
        found.extend(refs)
    return found


def _target_apix(segmenter: Segmenter, model_apix: float | None) -> float | None:
    """The pixel size a tomogram should best have: model_apix=, else the first model's."""
    if model_apix:
        return float(model_apix)
    apix = float(getattr(segmenter.models[0].metadata, "apix", -1.0) or -1.0)
    return apix if apix > 0 else None


def _is_zarr(t: Tomogram) -> bool:
    return isinstance(t, Path) and t.is_dir() and t.suffix.lower() == ".zarr"


def _open(t: Tomogram, data_apix: float | None, target_A: float | None) -> Volume:
    """Any tomogram as a Volume: a memory-mapped MRC, or a lazy zarr array (copick, OME-Zarr)."""
    if isinstance(t, CopickTomogramRef):
        return t.open()
    if _is_zarr(t):
        from ais_torch.formats.zarr import open_ome_zarr

        return open_ome_zarr(t, target_A=target_A, voxel_size_A=data_apix or None)
    return read_volume(t, voxel_size_A=data_apix or None, check_finite=False)


def _result_name(t: Tomogram, title: str) -> str:
    return t.result_name(title) if isinstance(t, CopickTomogramRef) else output_name(t, title)


def _publish_copick(
    tomograms: Sequence[Tomogram],
    segmenter: Segmenter,
    outputs: Outputs,
    opts: CopickOptions,
    overwrite: bool,
    report: SegmentReport,
    say: Callable[[str], None],
) -> None:
    """Copy each copick run's finished outputs (``.mrc`` or ``.zarr``) into the project as
    segmentations.

    Runs after the batch, so a rerun publishes what an interrupted one left out; the copy is
    slab by slab and appears in the project only when complete (local overlays).
    """
    from ais_torch.formats import copick as cp

    dtype = np.uint8 if segmenter.options.dtype == "uint8" else np.float32
    written = set(report.written)
    for t in tomograms:
        if not isinstance(t, CopickTomogramRef):
            continue
        root = cp.open_project(t.config)
        for m in segmenter.models:
            result = outputs.path(t, m.title)
            if not result.exists():
                continue
            name = cp.object_for_title(root, m.title, str(t.config))
            keys = {"user_id": opts.user_id, "session_id": opts.session_id}
            fresh = overwrite and result in written
            try:
                if not fresh and cp.segmentation_exists(
                    t.config, t.run, name, t.voxel_size_A, **keys
                ):
                    continue
                volume = _read_result(result)
                where = cp.write_segmentation(
                    t.config, t.run, name, volume.data, voxel_size_A=t.voxel_size_A,
                    dtype=dtype, **keys,
                )  # fmt: skip
            except AisError as err:
                report.failed.append((t, _one_line(t, err)))
                continue
            report.copick.append(where)
    if report.copick:
        ids = f"{opts.user_id}/{opts.session_id}"
        say(f"copick: wrote {len(report.copick)} segmentation(s) as {ids}")


def _read_result(path: Path) -> Volume:
    """A finished output, lazily: memory-mapped MRC or the zarr store's level 0."""
    if path.suffix.lower() == ".zarr":
        from ais_torch.formats.zarr import open_ome_zarr

        return open_ome_zarr(path)
    return read_volume(path, check_finite=False)


def _not_outputs(tomograms: list[Tomogram], segmenter: Segmenter) -> list[Tomogram]:
    """Leave out our own outputs (``*__<title>.mrc|.zarr``) when ``data`` is the output folder."""
    suffixes = tuple(f"__{m.title}{ext}" for m in segmenter.models for ext in (".mrc", ".zarr"))
    return [t for t in tomograms if not t.name.endswith(suffixes)]


def _z_range(z_range: Sequence[int] | None) -> tuple[int, int] | None:
    if z_range is None:
        return None
    values = list(z_range)
    if len(values) != 2:
        raise ConfigError(f"z_range={values}: give [first, stop) as two numbers, e.g. [10, 50]")
    return int(values[0]), int(values[1])


def _headers(
    tomograms: list[Tomogram], target_A: float | None = None
) -> dict[Tomogram, tuple[tuple[int, int, int], float]]:
    """Shape and voxel size of every readable tomogram (headers only; bad files are left out)."""
    found: dict[Tomogram, tuple[tuple[int, ...], float]] = {}
    for t in tomograms:
        with contextlib.suppress(AisError, OSError, ValueError):
            if isinstance(t, CopickTomogramRef):
                found[t] = (t.shape, t.voxel_size_A)
                continue
            if _is_zarr(t):
                volume = _open(t, None, target_A)
                found[t] = (volume.shape, volume.voxel_size_A)
                continue
            shape, _, size = read_header_info(t)
            if len(shape) == 3:
                found[t] = (tuple(int(n) for n in shape), float(size))
    return found  # type: ignore[return-value]


def _announce_memory(
    headers: dict[Tomogram, tuple[tuple[int, int, int], float]],
    segmenter: Segmenter,
    say: Callable[[str], None],
) -> int:
    """Print the bound on data memory for the largest tomogram of the batch (headers only)."""
    import resource

    if not headers:
        return 0
    loaded, runners, options = segmenter.models, segmenter.backends, segmenter.options
    hook = segmenter.postprocess
    biggest, voxel = max(headers.values(), key=lambda h: _n(h[0]))
    voxel = voxel or 10.0
    try:
        runs = [plan(m, r, biggest, voxel, options) for m, r in zip(loaded, runners, strict=True)]
    except AisError:
        return 0
    data_bytes = memory_estimate(runs, biggest, options, in_memory=hook is not None)
    extra_per_voxel = getattr(hook, "working_bytes_per_voxel", lambda: 0)()
    data_bytes += extra_per_voxel * _n(biggest)
    network = max(runs, key=lambda r: r.network_bytes)
    on_gpu = any(getattr(r, "is_cuda", False) for r in runners)
    # what this process already holds: Python, PyTorch, the models' weights (Linux: KiB)
    runtime = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    slab = slab_for(options, biggest)
    whole = ", whole predictions for post-processing" if hook is not None else ""
    if extra_per_voxel:
        whole += f" + {extra_per_voxel} B/voxel to find partner pieces"
    hp, wp = network.recipe.padded_shape if network.grid is None else (network.grid.box,) * 2
    total = data_bytes + runtime + (0 if on_gpu else network.network_bytes)
    mb = 2**20
    say(
        f"memory: ~{total / mb:.0f} MB peak RAM = ~{data_bytes / mb:.0f} MB data (slab {slab} "
        f"slices × {len(loaded)} models{whole}) + ~{runtime / mb:.0f} MB runtime and weights"
        + ("" if on_gpu else f" + ~{network.network_bytes / mb:.0f} MB network activations")
        + f" (batch {network.batch} × {wp}×{hp} px, {network.model.title})"
        + (f"; ~{network.network_bytes / mb:.0f} MB activations on the GPU" if on_gpu else "")
        + f"; largest tomogram {'×'.join(str(n) for n in biggest[::-1])} (x×y×z) = "
        f"{_n(biggest) * 4 / mb:.0f} MB as float32"
    )
    return total


def _n(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _run_batch(
    tomograms: list[Tomogram],
    headers: dict[Tomogram, tuple[tuple[int, int, int], float]],
    segmenter: Segmenter,
    outputs: Outputs,
    *,
    data_apix: float | None,
    overwrite: bool,
    use_locks: bool,
    progress: bool,
    report: SegmentReport,
    say: Callable[[str], None],
) -> None:
    from tqdm.auto import tqdm

    loaded, options, hook = segmenter.models, segmenter.options, segmenter.postprocess
    sizes = []
    for t in tomograms:
        n_z = headers[t][0][0] if t in headers else 1
        if options.z_range is not None:
            n_z = max(1, min(n_z, options.z_range[1]) - max(0, options.z_range[0]))
        sizes.append(n_z * len(loaded))
    overall = tqdm(
        total=sum(sizes), desc="all", unit="slice", disable=not progress, position=0, leave=True
    )
    try:
        for tomo, size in zip(tomograms, sizes, strict=True):
            targets = {m.title: outputs.path(tomo, m.title) for m in loaded}
            todo = [m for m in loaded if overwrite or not targets[m.title].exists()]
            if hook is not None and todo:
                todo = list(loaded)  # post-processing needs every model's prediction
            done = [targets[m.title] for m in loaded if m not in todo]
            report.skipped.extend(done)
            if not todo:
                overall.update(size)
                continue
            held: list[OutputLock] = []
            try:
                held, todo = _lock(todo, targets, use_locks, all_or_none=hook is not None, say=say)
                overall.update(size // len(loaded) * (len(loaded) - len(todo)))
                report.busy.extend(
                    targets[m.title]
                    for m in loaded
                    if m not in todo and targets[m.title] not in done
                )
                if todo:
                    bar = tqdm(
                        total=size // len(loaded) * len(todo),
                        desc=tomo.name[:30],
                        unit="slice",
                        disable=not progress,
                        position=1,
                        leave=False,
                    )
                    with bar:
                        written = _one_tomogram(
                            tomo, todo, segmenter, targets, outputs, data_apix, bar, overall
                        )
                    report.written.extend(written)
            except KeyboardInterrupt:
                raise
            except Exception as err:  # one bad tomogram never stops the batch
                report.failed.append((tomo, _one_line(tomo, err)))
            finally:
                for lock in held:
                    lock.release()
    finally:
        overall.close()


def _lock(
    todo: list[LoadedModel],
    targets: dict[str, Path],
    use_locks: bool,
    *,
    all_or_none: bool,
    say: Callable[[str], None],
) -> tuple[list[OutputLock], list[LoadedModel]]:
    """Lock each output; returns (locks held, models whose outputs this run may write)."""
    if not use_locks:
        return [], todo
    held: list[OutputLock] = []
    mine: list[LoadedModel] = []
    try:
        for m in todo:
            lock = OutputLock(targets[m.title], say=say)
            if lock.acquire():
                held.append(lock)
                mine.append(m)
                remove_partials_of(targets[m.title])  # left by a killed run; the lock is ours
    except BaseException:
        for lock in held:
            lock.release()
        raise
    if all_or_none and len(mine) != len(todo):
        for lock in held:
            lock.release()
        return [], []
    return held, mine


def _one_tomogram(
    tomo: Tomogram,
    todo: list[LoadedModel],
    segmenter: Segmenter,
    targets: dict[str, Path],
    outputs: Outputs,
    data_apix: float | None,
    bar: tqdm,
    overall: tqdm,
) -> list[Path]:
    """Read the tomogram once, run the models in ``todo``, write their outputs atomically."""
    target = _target_apix(segmenter, segmenter.options.model_apix)
    volume = _open(tomo, data_apix, target)
    if volume.data.ndim != 3 or volume.data.shape[0] < 1:
        raise AisInputError(f"{tomo}: not a 3D volume")
    out_dtype = np.uint8 if segmenter.options.dtype == "uint8" else np.float32
    shape = (int(volume.data.shape[0]), int(volume.data.shape[1]), int(volume.data.shape[2]))

    def tick(n: int) -> None:
        bar.update(n)
        overall.update(n)

    with contextlib.ExitStack() as stack:
        sinks = {
            m.title: StreamSink(
                stack.enter_context(_writer(targets[m.title], shape, out_dtype, volume, outputs))
            )
            for m in todo
        }
        run_segmenter(
            segmenter,
            volume.data,
            volume.voxel_size_A,
            models=todo,
            out=sinks,
            source=str(tomo),
            on_progress=tick,
        )
    return [targets[m.title] for m in todo]


def _writer(
    path: Path,
    shape: tuple[int, int, int],
    dtype: type,
    volume: Volume,
    outputs: Outputs,
) -> VolumeWriter | OmeZarrWriter:
    """An atomic streaming writer of the output format, with the input's geometry."""
    if outputs.format == "zarr":
        from ais_torch.formats.zarr import OmeZarrWriter

        return OmeZarrWriter(
            path,
            shape,
            dtype,
            voxel_size_A=volume.voxel_size_A,
            origin_A=volume.origin_A,
            levels=outputs.levels,
        )
    return VolumeWriter(
        path, shape, dtype, voxel_size_A=volume.voxel_size_A, origin_A=volume.origin_A
    )


def _list_written(written: Sequence[Path], out: Path, say: Callable[[str], None]) -> None:
    """The files a run wrote: each one, or a count and the folder when there are many."""
    if len(written) > 10:
        say(f"wrote {len(written)} files in {out}")
    else:
        for path in written:
            say(f"wrote {path}")


def _one_line(tomo: Tomogram, err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, AisError):
        return text if str(tomo) in text else f"{tomo}: {text}"
    if isinstance(err, MemoryError):
        return f"{tomo}: out of memory; lower slab= or batch_size="
    return f"{tomo}: {type(err).__name__}: {text}"
