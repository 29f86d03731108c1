"""``segment_volume``: the one data path from a volume to one prediction per model.

Array in (a numpy array, a memory-mapped one, or a :class:`~ais_torch.formats.mrc.Volume`),
``{model title: array}`` out. Everything that runs a network over a volume goes through here:
``ais-torch segment`` (the file batch in :mod:`.batch`), the training preview and the Dice after
training, and library users (a napari preview, a notebook)::

    from ais_torch import segment_volume
    from ais_torch.formats.mrc import read_volume

    volume = read_volume("tomo.mrc")                 # memory-mapped, voxel size from the header
    out = segment_volume(volume, "Membrane.scnm")    # {"Membrane": uint8 (z, y, x), 0-255}

Memory stays bounded as in the batch: slabs stream through the engine; only the outputs (one
byte per voxel per model with ``dtype="uint8"``) are held, unless ``out=`` streams them into
sinks (the batch's atomically written MRC files). Models are prepared once by
:class:`Segmenter` (loading, backends, ``torch.compile``); pass a ``Segmenter`` instead of
model files to segment many volumes without paying that again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Union

import numpy as np
import torch

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.mrc import Volume
from ais_torch.segmentation.backends import (
    BACKENDS,
    Backend,
    OnnxBackend,
    TorchBackend,
    resolve_device,
)
from ais_torch.segmentation.engine import EngineOptions, ModelRun, plan, run_volume
from ais_torch.segmentation.loading import (
    LoadedModel,
    as_onnx,
    check_titles_plain,
    finish_loading,
    load_models,
    wrap_module,
)
from ais_torch.segmentation.normalise import global_mad_stats
from ais_torch.segmentation.sinks import MemorySink, Sink

if TYPE_CHECKING:
    from ais_torch.formats.scnm import ModelMetadata

ModelSpec = Union[str, os.PathLike, torch.nn.Module, LoadedModel]  # noqa: UP007 (runtime alias)
"""A model file (``.scnm``, ``.scnmgroup``, ``.onnx``, ``.h5``), a loaded network with
``.metadata`` (:func:`ais_torch.load_model`), or a :class:`LoadedModel`."""
Predictions = dict[str, np.ndarray]


class PostProcessFn(Protocol):
    """Competition and interactions: ``{title: volume}`` and the voxel size (Å) in and out."""

    def __call__(self, predictions: Predictions, voxel_size_A: float) -> Predictions: ...


@dataclass
class Segmenter:
    """Models ready to run: loaded, each on its backend, with their post-processing step.

    Build it once (:meth:`build`), call :func:`segment_volume` with it for every volume.
    """

    models: list[LoadedModel]
    backends: list[Backend]
    options: EngineOptions
    postprocess: PostProcessFn | None = None

    @property
    def titles(self) -> list[str]:
        return [m.title for m in self.models]

    @classmethod
    def build(
        cls,
        models: ModelSpec | Sequence[ModelSpec],
        *,
        options: EngineOptions | None = None,
        tta: int = 1,
        precision: str = "auto",
        device: str | torch.device = "auto",
        backend: str = "auto",
        compile: bool = False,
        channels_last: bool | None = None,
        interactions: Mapping[str, object] | str | None = None,
        postprocess: PostProcessFn | str | None = "auto",
        model_depth: int | None = None,
        progress: bool = False,
    ) -> Segmenter:
        """Load ``models`` and put each on a backend; one clear error for a bad combination.

        ``interactions``: a rule set (the mapping of ``conf/segment/interactions/*.yaml``) or
        the name of one of those files. ``postprocess="auto"`` builds competition and
        interactions from it and from the models' metadata; a function is used as given;
        ``None`` switches it off.
        """
        options = options or EngineOptions()
        options.tta = int(tta)
        options.check()
        loaded, group_rules = load_any(models, model_depth)
        check_titles_plain(loaded)
        backends = make_backends(
            loaded,
            backend=backend,
            device=device,
            tta=options.tta,
            precision=precision,
            channels_last=channels_last,
            compile=compile,
        )
        hook = make_postprocess(postprocess, interactions, loaded, group_rules, progress)
        return cls(models=loaded, backends=backends, options=options, postprocess=hook)


def segment_volume(
    volume: np.ndarray | Volume,
    models: ModelSpec | Sequence[ModelSpec] | Segmenter,
    *,
    voxel_size_A: float | None = None,
    tta: int = 1,
    mode: str = "ais",
    precision: str = "auto",
    device: str | torch.device = "auto",
    interactions: Mapping[str, object] | str | None = None,
    dtype: str = "uint8",
    z_range: tuple[int, int] | None = None,
    out: Mapping[str, Sink] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Predictions:
    """Segment a ``(z, y, x)`` volume with every model → ``{model title: (z, y, x) array}``.

    ``voxel_size_A``: the volume's voxel size in Å (taken from a ``Volume`` when not given);
    the volume is rescaled in XY to each model's pixel size as the original does (5 % rule).
    ``dtype``: ``"uint8"`` (0-255, the original's encoding and what ``segment`` writes) or
    ``"float32"`` probabilities. ``z_range=(first, stop)`` segments only those slices (the
    others stay 0; ``global_mad`` statistics still come from the whole volume). ``out``: a sink
    per title (``write(z_slice, values)``) to stream into instead of arrays held in memory;
    the result then maps each title to its sink's ``array`` where it has one.

    With a :class:`Segmenter` for ``models``, its own settings (tta, mode, precision, device,
    interactions, dtype) apply and the keyword arguments here other than ``voxel_size_A``,
    ``z_range``, ``out`` and ``on_progress`` must stay at their defaults.
    """
    if isinstance(models, Segmenter):
        segmenter = models
        given = {"tta": tta, "mode": mode, "precision": precision, "device": str(device)}
        defaults = {"tta": 1, "mode": "ais", "precision": "auto", "device": "auto"}
        if given != defaults or interactions is not None or dtype != "uint8":
            raise ConfigError(
                "segment_volume: a Segmenter carries its own settings; set tta, mode, "
                "precision, device, interactions and dtype when building it"
            )
        return _run_on(segmenter, volume, voxel_size_A, z_range, out, on_progress)
    items = list(models) if isinstance(models, list | tuple) else [models]
    modules = [m for m in items if isinstance(m, torch.nn.Module)]
    states = [(m, m.training, all(p.is_contiguous() for p in m.parameters())) for m in modules]
    try:
        segmenter = Segmenter.build(
            items,
            options=EngineOptions(mode=str(mode), dtype=str(dtype)),
            tta=tta,
            precision=precision,
            device=device,
            interactions=interactions,
        )
        return _run_on(segmenter, volume, voxel_size_A, z_range, out, on_progress)
    finally:  # the caller's network comes back as it was given (e.g. being trained)
        for module, training, contiguous in states:
            module.train(training)
            if contiguous:  # the backend may have made it channels_last
                module.to(memory_format=torch.contiguous_format)


def _run_on(
    segmenter: Segmenter,
    volume: np.ndarray | Volume,
    voxel_size_A: float | None,
    z_range: tuple[int, int] | None,
    out: Mapping[str, Sink] | None,
    on_progress: Callable[[int], None] | None,
) -> Predictions:
    data, voxel = _volume_and_voxel_size(volume, voxel_size_A)
    if z_range is not None:
        segmenter = _with_z_range(segmenter, z_range)
    return run_segmenter(segmenter, data, voxel, out=out, on_progress=on_progress)


def run_segmenter(
    segmenter: Segmenter,
    data: np.ndarray,
    voxel_size_A: float,
    *,
    models: Sequence[LoadedModel] | None = None,
    out: Mapping[str, Sink] | None = None,
    source: str = "volume",
    on_progress: Callable[[int], None] | None = None,
) -> Predictions:
    """:func:`segment_volume` for a prepared segmenter and a plain ``(z, y, x)`` array.

    ``models``: the subset of ``segmenter.models`` to run (the batch skips finished outputs;
    with post-processing every model runs). The volume is read once for all of them.
    """
    if data.ndim != 3 or data.shape[0] < 1:
        raise AisInputError(f"{source}: not a 3D volume (shape {tuple(data.shape)})")
    todo = list(segmenter.models if models is None else models)
    options = segmenter.options
    index = [segmenter.models.index(m) for m in todo]
    shape = (int(data.shape[0]), int(data.shape[1]), int(data.shape[2]))
    stats = global_mad_stats(data) if any(uses_global_mad(m.metadata) for m in todo) else None
    runs: list[ModelRun] = [
        plan(
            m,
            segmenter.backends[i],
            shape,
            voxel_size_A,
            options,
            stats=stats if uses_global_mad(m.metadata) else None,
        )
        for m, i in zip(todo, index, strict=True)
    ]
    out_dtype = np.uint8 if options.dtype == "uint8" else np.float32
    hook = segmenter.postprocess
    if hook is None and out is not None:
        sinks = [out[m.title] for m in todo]
        run_volume(data, runs, sinks, options, source=source, on_progress=on_progress)
        return _arrays_of({m.title: out[m.title] for m in todo})
    memory = [MemorySink(shape, out_dtype) for _ in todo]
    run_volume(data, runs, memory, options, source=source, on_progress=on_progress)
    predictions = {m.title: s.array for m, s in zip(todo, memory, strict=True)}
    if hook is not None:
        result = hook(predictions, voxel_size_A)
        predictions = {t: np.asarray(result[t]).astype(out_dtype, copy=False) for t in predictions}
    if out is None:
        return predictions
    for title, array in predictions.items():
        out[title].write(slice(0, shape[0]), array)
    return _arrays_of({t: out[t] for t in predictions})


def uses_global_mad(metadata: ModelMetadata | None) -> bool:
    """Whether a model normalises by one robust statistic of the whole volume (its metadata
    says ``"normalization": "global_mad"``) rather than slice by slice — decided only here."""
    return str(getattr(metadata, "normalization", "") or "") == "global_mad"


def load_any(
    models: ModelSpec | Sequence[ModelSpec], model_depth: int | None = None
) -> tuple[list[LoadedModel], list[dict[str, object]]]:
    """Files → loaded models (plus a ``.scnmgroup``'s rules); loaded networks are wrapped."""
    items = list(models) if isinstance(models, list | tuple) else [models]
    if not items:
        raise ConfigError("no model given; e.g. model=Membrane.scnm")
    if all(isinstance(m, torch.nn.Module | LoadedModel) for m in items):
        loaded = []
        for m in items:
            if isinstance(m, LoadedModel):
                loaded.append(m)
                continue
            metadata = getattr(m, "metadata", None)
            if metadata is None:
                raise ConfigError("a model passed as a module needs .metadata (ModelMetadata)")
            loaded.append(wrap_module(m, metadata, Path(f"<{metadata.title}>")))
        loaded = [finish_loading(m, model_depth) for m in loaded]
        titles = [m.title for m in loaded]
        if len(set(titles)) != len(titles):
            raise ConfigError(f"models share a title ({titles}); outputs would collide")
        return loaded, []
    if any(isinstance(m, torch.nn.Module | LoadedModel) for m in items):
        raise ConfigError("give either model files or loaded models, not a mix")
    return load_models([str(m) for m in items], model_depth=model_depth)  # type: ignore[arg-type]


def make_backends(
    loaded: list[LoadedModel],
    *,
    backend: str = "auto",
    device: str | torch.device = "auto",
    tta: int = 1,
    precision: str = "auto",
    channels_last: bool | None = None,
    compile: bool = False,
) -> list[Backend]:
    """One backend per model: ONNX Runtime for ``.onnx`` files (or ``backend=onnx``), else
    PyTorch on ``device`` (``auto``: this process's GPU under torchrun/SLURM, else the CPU)."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend={backend}: expected one of {', '.join(BACKENDS)}")
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = resolve_device("auto")
    backends: list[Backend] = []
    for i, m in enumerate(loaded):
        if backend == "onnx" or (backend == "auto" and m.onnx is not None):
            loaded[i] = m = as_onnx(m)
            backends.append(OnnxBackend(m.onnx, tta=tta))
            continue
        if m.module is None:
            raise ConfigError(f"{m.source}: an .onnx model runs only with backend=onnx (or auto)")
        backends.append(
            TorchBackend(
                m.module,
                device=dev,
                tta=tta,
                precision=precision,
                channels_last=channels_last,
                compile=compile,
            )
        )
    return backends


def describe_backends(backends: Sequence[Backend]) -> str:
    """``torch cpu fp32``, ``onnxruntime``, … — what the start-up line prints."""
    kinds = set()
    for b in backends:
        precision = getattr(b, "precision", None)
        kinds.add(f"torch {b.device} {precision}" if precision else "onnxruntime")
    return ", ".join(sorted(kinds))


def make_postprocess(
    postprocess: PostProcessFn | str | None,
    interactions: Mapping[str, object] | str | None,
    loaded: Sequence[LoadedModel],
    group_rules: Sequence[Mapping[str, object]],
    progress: bool = False,
) -> PostProcessFn | None:
    """The step between prediction and output (:mod:`ais_torch.interactions.plan`)."""
    if postprocess is None or postprocess is False:
        return None
    if callable(postprocess):
        return postprocess
    if postprocess != "auto":
        raise ConfigError(f"postprocess={postprocess!r}: use 'auto', None or a function")
    from ais_torch.interactions.plan import build_postprocess

    if isinstance(interactions, str):
        interactions = named_interactions(interactions)
    metadata = {m.title: m.metadata for m in loaded}
    return build_postprocess(interactions, metadata, group_rules, progress=progress)


def named_interactions(name: str) -> dict[str, object]:
    """The rule set ``conf/segment/interactions/<name>.yaml`` as a plain mapping."""
    from omegaconf import OmegaConf

    from ais_torch.config import config_dir

    folder = config_dir() / "segment" / "interactions"
    path = folder / f"{name}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(f"interactions={name}: no such rule set; use one of {', '.join(names)}")
    loaded = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    return dict(loaded) if isinstance(loaded, dict) else {}  # type: ignore[arg-type]


def _volume_and_voxel_size(
    volume: np.ndarray | Volume, voxel_size_A: float | None
) -> tuple[np.ndarray, float]:
    if isinstance(volume, Volume):
        return volume.data, float(voxel_size_A or volume.voxel_size_A)
    if voxel_size_A is None:
        raise ConfigError(
            "segment_volume: give voxel_size_A= (Å per voxel) for a plain array, or pass the "
            "Volume that ais_torch.formats.mrc.read_volume returns"
        )
    data = volume if hasattr(volume, "shape") else np.asarray(volume)
    return data, float(voxel_size_A)


def _with_z_range(segmenter: Segmenter, z_range: tuple[int, int]) -> Segmenter:
    values = tuple(int(z) for z in z_range)
    if len(values) != 2:
        raise ConfigError(f"z_range={z_range}: give (first, stop), e.g. (10, 50)")
    options = EngineOptions(**{**vars(segmenter.options), "z_range": values})
    return Segmenter(segmenter.models, segmenter.backends, options, segmenter.postprocess)


def _arrays_of(sinks: Mapping[str, Sink]) -> Predictions:
    return {t: s.array for t, s in sinks.items() if getattr(s, "array", None) is not None}
