"""Segment whole tomogram files: the batch behind ``ais-torch segment``.

Writes ``<out>/<tomogram stem>__<model title>.mrc`` for every tomogram × model, with the
input's shape, voxel size and origin, encoded like the original Ais (uint8 0–255 stored as MRC
mode 6) or as float32 probabilities (``dtype=float32``). :func:`segment` reads top to bottom:

models → work list (this rank's share, existing outputs skipped) → per tomogram: lock the
outputs, read once, run every model through the streaming engine, post-process, write
atomically → report (failures listed at the end, the batch never stops for one bad file).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ais_torch.errors import AisError, AisInputError, ConfigError

PostProcessFn = Callable[[dict[str, Any], float], dict[str, Any]]


@dataclass
class SegmentReport:
    """What a run did; ``failed`` holds one line per tomogram that could not be segmented."""

    written: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    busy: list[Path] = field(default_factory=list)
    """Outputs another live run holds a lock on (it is writing them)."""
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    memory_bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed


def segment(
    models: Any,
    data: Any,
    out: str | os.PathLike,
    *,
    mode: str = "ais",
    tta: int = 1,
    batch_size: int | str | None = "auto",
    slab: int | str | None = "auto",
    dtype: str = "uint8",
    box_size: int | None = None,
    overlap: float | None = None,
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
    interactions: dict[str, Any] | None = None,
    postprocess: PostProcessFn | str | None = "auto",
    locks: bool = True,
    prefetch: int = 2,
    progress: bool = True,
    verbose: bool = True,
) -> SegmentReport:
    """Segment every tomogram in ``data`` with every model in ``models`` into the folder ``out``.

    ``models``: path(s) to ``.scnm``/``.scnmgroup``/``.onnx``/``.h5`` (list or comma-separated),
    or loaded models (``ais_torch.load_model``). ``data``: file, folder, glob, ``.txt`` list, or a
    list of those. Every option is described in ``docs/segmentation.md``; the defaults
    reproduce the original ``ais segment``.
    ``postprocess``: ``"auto"`` builds the competition/interaction step from ``interactions``
    (and a ``.scnmgroup``'s rules) when ``ais_torch.interactions.plan`` is installed; a
    function ``f({title: volume}, voxel_size_A) -> {title: volume}`` is used as given;
    ``None`` switches post-processing off.
    """
    from ais_torch.segmentation.engine import EngineOptions
    from ais_torch.segmentation.loading import check_titles_plain, resolve_data
    from ais_torch.segmentation.scheduling import detect_rank, split_work

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
        model_apix=None if model_apix in (None, 0) else float(model_apix),
        rescale=data_apix != 0 and model_apix != 0,
        z_range=_z_range(z_range),
        prefetch=int(prefetch),
    )
    options.check()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AisInputError(f"out={out}: is a file; give a folder for the segmentations")
    out.mkdir(parents=True, exist_ok=True)

    loaded, group_rules = _load(models, model_depth)
    check_titles_plain(loaded)
    rank = detect_rank()
    runners = _backends(loaded, backend, device, tta, precision, channels_last, compile, rank)
    hook = _postprocess(postprocess, interactions, loaded, group_rules, progress)
    tomograms = split_work(_not_outputs(resolve_data(data), loaded), rank)
    say(
        f"segment: {len(tomograms)} tomogram(s) × {len(loaded)} model(s) "
        f"[{', '.join(m.title for m in loaded)}] → {out}"
        + (f"  ({rank})" if rank.world_size > 1 else "")
    )
    say(f"device: {_describe_runners(runners)}; mode={options.mode}, tta={options.tta}")

    report = SegmentReport()
    headers = _headers(tomograms)
    report.memory_bytes = _announce_memory(headers, loaded, runners, options, hook, say)
    _run_batch(
        tomograms,
        headers,
        loaded,
        runners,
        out,
        options,
        hook,
        data_apix=data_apix,
        overwrite=overwrite,
        use_locks=locks,
        progress=progress,
        report=report,
    )
    report.seconds = time.perf_counter() - started
    say(
        f"done in {report.seconds:.1f} s: {len(report.written)} written, "
        f"{len(report.skipped)} already there, {len(report.busy)} busy in another run, "
        f"{len(report.failed)} failed"
    )
    return report


# -- steps ---------------------------------------------------------------------------------------
def _printer(verbose: bool) -> Callable[[str], None]:
    def say(line: str) -> None:
        if verbose:
            print(line, file=sys.stderr, flush=True)

    return say


def _not_outputs(tomograms: list[Path], loaded: list[Any]) -> list[Path]:
    """Leave out our own outputs (``*__<title>.mrc``) when ``data`` is the output folder."""
    suffixes = tuple(f"__{m.title}.mrc" for m in loaded)
    return [t for t in tomograms if not t.name.endswith(suffixes)]


def _z_range(z_range: Sequence[int] | None) -> tuple[int, int] | None:
    if z_range is None:
        return None
    values = list(z_range)
    if len(values) != 2:
        raise ConfigError(f"z_range={values}: give [first, stop) as two numbers, e.g. [10, 50]")
    return int(values[0]), int(values[1])


def _load(models: Any, model_depth: int | None) -> tuple[list[Any], list[dict[str, Any]]]:
    """Paths → loaded models; already loaded modules (with ``.metadata``) are wrapped as is."""
    import torch

    from ais_torch.segmentation.loading import LoadedModel, _finish, _from_module, load_models

    items = models if isinstance(models, list | tuple) else [models]
    if items and all(isinstance(m, torch.nn.Module | LoadedModel) for m in items):
        loaded = []
        for m in items:
            if isinstance(m, LoadedModel):
                loaded.append(m)
            else:
                if getattr(m, "metadata", None) is None:
                    raise ConfigError("a model passed as a module needs .metadata (ModelMetadata)")
                loaded.append(_from_module(m, m.metadata, Path(f"<{m.metadata.title}>")))
        loaded = [_finish(m, model_depth) for m in loaded]
        titles = [m.title for m in loaded]
        if len(set(titles)) != len(titles):
            raise ConfigError(f"models share a title ({titles}); outputs would collide")
        return loaded, []
    return load_models(models, model_depth=model_depth)


def _backends(
    loaded: list[Any],
    backend: str,
    device: str,
    tta: int,
    precision: str,
    channels_last: bool | None,
    compile: bool,
    rank: Any,
) -> list[Any]:
    from ais_torch.segmentation.backends import (
        BACKENDS,
        OnnxBackend,
        TorchBackend,
        resolve_device,
    )
    from ais_torch.segmentation.loading import as_onnx

    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend}: expected one of {', '.join(BACKENDS)}")
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        local = int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))
        import torch

        dev = torch.device(f"cuda:{local % torch.cuda.device_count()}")
    runners = []
    for i, m in enumerate(loaded):
        if backend == "onnx" or (backend == "auto" and m.onnx is not None):
            loaded[i] = m = as_onnx(m)
            runners.append(OnnxBackend(m.onnx, tta=tta))
        else:
            if m.module is None:
                raise ConfigError(
                    f"{m.source}: an .onnx model runs only with backend=onnx (or auto)"
                )
            runners.append(
                TorchBackend(
                    m.module,
                    device=dev,
                    tta=tta,
                    precision=precision,
                    channels_last=channels_last,
                    compile=compile,
                )
            )
    return runners


def _describe_runners(runners: list[Any]) -> str:
    kinds = sorted(
        {
            f"torch {r.device} {r.precision}" if hasattr(r, "precision") else "onnxruntime"
            for r in runners
        }
    )
    return ", ".join(kinds)


def _postprocess(
    postprocess: PostProcessFn | str | None,
    interactions: dict[str, Any] | None,
    loaded: list[Any],
    group_rules: list[dict[str, Any]],
    progress: bool = True,
) -> PostProcessFn | None:
    """The hook between prediction and writing (see ``ais_torch.interactions.plan``)."""
    if postprocess is None or postprocess is False:
        return None
    if callable(postprocess):
        return postprocess
    if postprocess != "auto":
        raise ConfigError(f"postprocess={postprocess!r}: use 'auto', None or a function")
    try:
        from ais_torch.interactions.plan import build_postprocess
    except ImportError:
        return None
    metadata = {m.title: m.metadata for m in loaded}
    return build_postprocess(interactions, metadata, group_rules, progress=progress)


def _headers(tomograms: list[Path]) -> dict[Path, tuple[tuple[int, int, int], float]]:
    """Shape and voxel size of every readable tomogram (headers only; bad files are left out)."""
    from ais_torch.formats.mrc import read_header_info

    found = {}
    for t in tomograms:
        with contextlib.suppress(AisError, OSError, ValueError):
            shape, _, size = read_header_info(t)
            if len(shape) == 3:
                found[t] = (tuple(int(n) for n in shape), float(size))
    return found  # type: ignore[return-value]


def _announce_memory(
    headers: dict[Path, tuple[tuple[int, int, int], float]],
    loaded: list[Any],
    runners: list[Any],
    options: Any,
    hook: Any,
    say: Callable[[str], None],
) -> int:
    """Print the bound on data memory for the largest tomogram of the batch (headers only)."""
    from types import SimpleNamespace

    from ais_torch.segmentation.engine import memory_estimate, plan, slab_for

    if not headers:
        return 0
    biggest, voxel = max(headers.values(), key=lambda h: _n(h[0]))
    voxel = voxel or 10.0
    dummy = SimpleNamespace(shape=biggest)
    try:
        runs = [
            plan(m, r, dummy, voxel, options, stats=None)
            for m, r in zip(loaded, runners, strict=True)
        ]
    except AisError:
        return 0
    import resource

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
    tomograms: list[Path],
    headers: dict[Path, tuple[tuple[int, int, int], float]],
    loaded: list[Any],
    runners: list[Any],
    out: Path,
    options: Any,
    hook: PostProcessFn | None,
    *,
    data_apix: float | None,
    overwrite: bool,
    use_locks: bool,
    progress: bool,
    report: SegmentReport,
) -> None:
    from tqdm.auto import tqdm

    from ais_torch.segmentation.loading import output_name

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
            targets = {m.title: out / output_name(tomo, m.title) for m in loaded}
            todo = [m for m in loaded if overwrite or not targets[m.title].exists()]
            if hook is not None and todo:
                todo = list(loaded)  # post-processing needs every model's prediction
            done = [targets[m.title] for m in loaded if m not in todo]
            report.skipped.extend(done)
            if not todo:
                overall.update(size)
                continue
            held, todo = _lock(todo, targets, use_locks, all_or_none=hook is not None)
            overall.update(size // len(loaded) * (len(loaded) - len(todo)))
            report.busy.extend(
                targets[m.title] for m in loaded if m not in todo and targets[m.title] not in done
            )
            try:
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
                            tomo,
                            todo,
                            loaded,
                            runners,
                            targets,
                            options,
                            hook,
                            data_apix,
                            bar,
                            overall,
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
    todo: list[Any], targets: dict[str, Path], use_locks: bool, *, all_or_none: bool
) -> tuple[list[Any], list[Any]]:
    """Lock each output; returns (locks held, models whose outputs this run may write)."""
    from ais_torch.segmentation.scheduling import OutputLock
    from ais_torch.segmentation.sinks import remove_partials_of

    if not use_locks:
        return [], todo
    held, mine = [], []
    for m in todo:
        lock = OutputLock(targets[m.title])
        if lock.acquire():
            held.append(lock)
            mine.append(m)
            remove_partials_of(targets[m.title])  # left by a killed run; we hold the lock now
    if all_or_none and len(mine) != len(todo):
        for lock in held:
            lock.release()
        return [], []
    return held, mine


def _one_tomogram(
    tomo: Path,
    todo: list[Any],
    loaded: list[Any],
    runners: list[Any],
    targets: dict[str, Path],
    options: Any,
    hook: PostProcessFn | None,
    data_apix: float | None,
    bar: Any,
    overall: Any,
) -> list[Path]:
    """Read the tomogram once, run the models in ``todo``, write their outputs atomically."""
    import numpy as np

    from ais_torch.formats.mrc import VolumeWriter, read_volume, write_volume
    from ais_torch.segmentation.engine import plan, run_volume
    from ais_torch.segmentation.normalise import global_mad_stats
    from ais_torch.segmentation.sinks import MemorySink, StreamSink

    volume = read_volume(tomo, voxel_size_A=data_apix or None, check_finite=False)
    if volume.data.ndim != 3 or volume.data.shape[0] < 1:
        raise AisInputError(f"{tomo}: not a 3D volume")
    index = [loaded.index(m) for m in todo]
    need_stats = any(str(getattr(m.metadata, "normalization", "")) == "global_mad" for m in todo)
    stats = global_mad_stats(volume) if need_stats else None
    runs = [
        plan(
            m,
            runners[i],
            volume.data,
            volume.voxel_size_A,
            options,
            stats=stats if str(getattr(m.metadata, "normalization", "")) == "global_mad" else None,
        )
        for m, i in zip(todo, index, strict=True)
    ]
    out_dtype = np.uint8 if options.dtype == "uint8" else np.float32
    shape = tuple(int(n) for n in volume.data.shape)

    def tick(n: int) -> None:
        bar.update(n)
        overall.update(n)

    if hook is None:
        with contextlib.ExitStack() as stack:
            sinks = [
                StreamSink(
                    stack.enter_context(
                        VolumeWriter(
                            targets[m.title],
                            shape,  # type: ignore[arg-type]
                            out_dtype,
                            voxel_size_A=volume.voxel_size_A,
                            origin_A=volume.origin_A,
                        )
                    )
                )
                for m in todo
            ]
            run_volume(volume.data, runs, sinks, options, source=str(tomo), on_progress=tick)
        return [targets[m.title] for m in todo]

    memory = [MemorySink(shape, out_dtype) for _ in todo]  # type: ignore[arg-type]
    run_volume(volume.data, runs, memory, options, source=str(tomo), on_progress=tick)
    predictions = {m.title: s.array for m, s in zip(todo, memory, strict=True)}
    result = hook(predictions, volume.voxel_size_A)
    written = []
    for m in todo:
        arr = np.asarray(result[m.title])
        if arr.dtype != out_dtype:
            arr = arr.astype(out_dtype)
        write_volume(
            targets[m.title], arr, voxel_size_A=volume.voxel_size_A, origin_A=volume.origin_A
        )
        written.append(targets[m.title])
    return written


def _one_line(tomo: Path, err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, AisError):
        return text if str(tomo) in text else f"{tomo}: {text}"
    if isinstance(err, MemoryError):
        return f"{tomo}: out of memory; lower slab= or batch_size="
    return f"{tomo}: {type(err).__name__}: {text}"
