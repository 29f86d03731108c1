"""Writing ``.scnm`` files that the ORIGINAL Ais opens: Keras 2.15 ``.h5`` + its metadata JSON.

Why: a model trained (or fine-tuned) with ais_torch should go back to users of the original
Ais — its GUI, ``ais segment``, aiscryoet.org — unchanged. The original loads a ``.scnm`` with
``tensorflow.keras.models.load_model(h5, compile=False)``, so the ``.h5`` must be exactly what
Keras 2.15 ``model.save()`` writes, and it is written here with h5py alone (no TensorFlow):

* root attributes ``backend``, ``keras_version`` (UTF-8 strings) and ``model_config`` (the
  graph as JSON, from :mod:`ais_torch.formats.keras.emit`); no ``training_config``, as in the
  original's files (it rebuilds models for inference before saving);
* ``model_weights``: attributes ``layer_names`` (``Functional.layers`` order), ``backend``,
  ``keras_version``; one group per layer (in name order) with ``weight_names``
  (``conv2d/kernel:0``, ...) and the float32 datasets at those paths; an empty
  ``top_level_model_weights``. String attributes have the string types Keras' h5py calls give.

The metadata JSON has the original's keys, in its order, with ``arch`` = the original's
architecture title and ``model_enum`` its index in the 1.2.40 list where it has one.
Before anything is written, the ``.h5`` is read back with our own Keras importer and run on a
small input next to our model: a file that would predict differently is never written.
"""

from __future__ import annotations

import io
import json
import math
import os
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import torch
from torch import nn

from ais_torch.errors import ModelFormatError
from ais_torch.formats.atomic import atomic_output
from ais_torch.formats.keras.emit import (
    BACKEND,
    KERAS_VERSION,
    KerasFunctional,
    keras_functional,
)
from ais_torch.formats.scnm import ORIGINAL_MODEL_ENUM, ModelMetadata, _add_bytes, is_plain_name

if TYPE_CHECKING:
    from ais_torch.formats.keras.graph import KerasGraphModule

HDF5_OBJECT_HEADER_LIMIT = 64512
"""Keras splits a string-list attribute bigger than this into ``name0``, ``name1``, ..."""

VERIFY_TOLERANCE = 1e-4
"""Largest difference between our model and the written file (read back) that is accepted."""

ORIGINAL_METADATA_KEYS = (
    "title",
    "colour",
    "apix",
    "compiled",
    "box_size",
    "model_depth",
    "filament_diameter",
    "model_enum",
    "arch",
    "epochs",
    "batch_size",
    "active",
    "blend",
    "show",
    "alpha",
    "threshold",
    "overlap",
    "active_tab",
    "n_parameters",
    "n_copies",
    "info",
    "info_short",
    "excess_negative",
    "emit",
    "absorb",
    "loss",
    "normalization",
    "z_jitter",
    "tta",
)
"""What the original's ``SEModel.save`` writes, in its order (1.2.40)."""


# -- the .h5 ------------------------------------------------------------------------------------
def keras_h5_bytes(graph: KerasFunctional) -> bytes:
    """The Keras 2.15 full-model HDF5 file of ``graph``, in memory."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.attrs["backend"] = BACKEND
        f.attrs["keras_version"] = KERAS_VERSION
        config = json.dumps(graph.model_config()).encode("utf-8")
        f.attrs.create("model_config", config, dtype=h5py.string_dtype("ascii"))
        group = f.create_group("model_weights")
        _string_list(group, "layer_names", [layer.name for layer in graph.layers])
        for key, value in (("backend", BACKEND), ("keras_version", KERAS_VERSION)):
            group.attrs.create(key, value.encode(), dtype=h5py.string_dtype("ascii"))
        for layer in sorted(graph.layers, key=lambda entry: entry.name):
            _weights_group(group.create_group(layer.name), layer.name, layer.weights)
        _weights_group(group.create_group("top_level_model_weights"), "", [])
    return buffer.getvalue()


def _string_list(group: h5py.Group, name: str, values: list[str]) -> None:
    """Keras ``save_attributes_to_hdf5_group``: ASCII strings, chunked past the header limit."""
    if not values:
        group.attrs[name] = np.asarray([])  # what numpy makes of an empty list: float64 (0,)
        return
    data = np.asarray([v.encode("utf-8") for v in values])
    chunks = 1
    while any(c.nbytes > HDF5_OBJECT_HEADER_LIMIT for c in np.array_split(data, chunks)):
        chunks += 1
    ascii_type = h5py.string_dtype("ascii")
    if chunks == 1:
        group.attrs.create(name, list(data), dtype=ascii_type)
        return
    for i, part in enumerate(np.array_split(data, chunks)):
        group.attrs.create(f"{name}{i}", list(part), dtype=ascii_type)


def _weights_group(group: h5py.Group, layer: str, weights: list[tuple[str, np.ndarray]]) -> None:
    names = [f"{layer}/{short}:0" for short, _ in weights]
    _string_list(group, "weight_names", names)
    for name, (_, array) in zip(names, weights, strict=True):
        group.create_dataset(name, data=np.ascontiguousarray(array, dtype=np.float32))


# -- checking the file against our model --------------------------------------------------------
def verify_keras_h5(payload: bytes, model: nn.Module) -> float:
    """Max abs difference between ``model`` and the ``.h5`` read back by our importer.

    Raises :class:`ModelFormatError` above :data:`VERIFY_TOLERANCE`: the writer must never
    hand out a file that predicts something else than the model it came from.
    """
    from ais_torch.formats.keras.read import depth_first, depth_last, read_keras_h5

    graph = read_keras_h5(payload, name="written Keras .h5")
    x = _probe(model, graph)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            ours = model(x.to(_device(model)))
            theirs = depth_first(graph(depth_last(x)))
    finally:
        model.train(was_training)
    theirs = theirs.clamp(0.0, 1.0) if _clamps(model) else theirs
    diff = float((ours.float().cpu() - theirs).abs().max())
    if tuple(ours.shape) != tuple(theirs.shape) or not diff <= VERIFY_TOLERANCE:
        raise ModelFormatError(
            f"the written Keras .h5 does not reproduce the model (max abs diff {diff:.3g}, "
            f"shapes {tuple(theirs.shape)} vs {tuple(ours.shape)}); nothing was written"
        )
    return diff


def _probe(model: nn.Module, graph: KerasGraphModule) -> torch.Tensor:
    multiple = math.lcm(int(getattr(model, "min_size_multiple", 1)), graph.min_size_multiple)
    h = multiple * max(1, -(-32 // multiple))
    gen = torch.Generator().manual_seed(0)
    # a slab network: a slab twice its Z down-sampling (e.g. 8 slices for ezm-3d)
    slab = (2 * int(getattr(model, "z_multiple", 1)),) if graph.n_spatial == 3 else ()
    return torch.randn(1, graph.in_channels[0] or 1, *slab, h, h + multiple, generator=gen)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _clamps(model: nn.Module) -> bool:
    """Our Pix2pix with a tanh output returns it clamped to [0, 1] (what the original keeps)."""
    hparams = getattr(model, "hparams", {})
    return hparams.get("output_activation") == "tanh"


# -- the metadata -------------------------------------------------------------------------------
def original_title(model: nn.Module, metadata: ModelMetadata | None = None) -> str:
    """The original's architecture title for ``model`` (``"VGGNet M"``), or our class title.

    Tried in order: the stored ``arch``, the preset the model was built from, and every preset
    of the model's class; a title is taken only if its preset has the model's parameter count
    (so a resized network is never labelled with a standard title).
    """
    from ais_torch.archs.presets import PRESETS, preset_for_title, title_for_preset
    from ais_torch.errors import ConfigError

    arch_name = getattr(model, "arch_name", "") or (metadata.arch_name if metadata else "")
    n = int(getattr(model, "n_parameters", 0))
    in_channels = int(getattr(getattr(model, "hparams", {}), "in_channels", 1) or 1)
    stored = ""
    if metadata and metadata.arch:
        try:
            stored = preset_for_title(metadata.arch, n)
        except ConfigError:
            stored = ""
    candidates = [stored] if stored else []
    preset = getattr(model, "preset", None)
    candidates += [preset] if preset else []
    candidates += [p for p, (arch, _) in PRESETS.items() if arch == arch_name]
    for candidate in candidates:
        title = title_for_preset(candidate)
        same_class = PRESETS[candidate][0] == arch_name
        if title and same_class and _preset_count(candidate, in_channels) == n:
            if metadata and candidate == stored:
                return metadata.arch  # keep e.g. "ezm-2d-dice" rather than "ezm-2d"
            return title
    return str(getattr(model, "title", "") or arch_name)


def _preset_count(preset: str, in_channels: int) -> int:
    from ais_torch import archs

    with torch.device("meta"):
        return int(archs.build(preset, in_channels=in_channels).n_parameters)


def original_metadata(model: nn.Module, metadata: ModelMetadata) -> dict[str, Any]:
    """The metadata dict the original's ``SEModel.save`` would write for this model."""
    arch = original_title(model, metadata)
    n = int(getattr(model, "n_parameters", 0) or metadata.n_parameters)
    slab = getattr(model, "n_spatial_dims", 2) == 3  # a slab network stores its Z depth
    depth = int(model.hparams.depth if slab else model.hparams.in_channels)
    apix, loss, box = float(metadata.apix), float(metadata.loss), int(metadata.box_size)
    values: dict[str, Any] = {
        "title": metadata.title,
        "colour": [float(c) for c in metadata.colour[:3]],
        "apix": apix,
        "compiled": True,
        "box_size": box,
        "model_depth": depth,
        "filament_diameter": metadata.extra.get("filament_diameter"),
        "model_enum": ORIGINAL_MODEL_ENUM.get(arch, -1),
        "arch": arch,
        "epochs": int(metadata.epochs),
        "batch_size": int(metadata.batch_size),
        "active": bool(metadata.active),
        "blend": bool(metadata.blend),
        "show": bool(metadata.show),
        "alpha": float(metadata.alpha),
        "threshold": float(metadata.threshold),
        "overlap": float(metadata.overlap),
        "active_tab": int(metadata.active_tab),
        "n_parameters": n,
        "n_copies": int(metadata.n_copies),
        "info": metadata.info
        or f"{arch} ({n / 1e6:.1f} Mp, {box}-{depth}, {apix:.1f}, {loss:.4f})",
        "info_short": metadata.info_short or f"({arch}, {box}-{depth}, {apix:.1f}, {loss:.4f})",
        "excess_negative": metadata.excess_negative,
        "emit": bool(metadata.emit),
        "absorb": bool(metadata.absorb),
        "loss": loss,
        # the original knows "global_mad"; anything else it reads as its legacy per-slice mode
        "normalization": "global_mad" if metadata.normalization == "global_mad" else None,
        "z_jitter": int(metadata.z_jitter),
        "tta": int(metadata.tta),
    }
    assert tuple(values) == ORIGINAL_METADATA_KEYS
    return values


# -- the .scnm ----------------------------------------------------------------------------------
def write_original_scnm(
    path: str | os.PathLike, model: nn.Module, metadata: ModelMetadata, *, verify: bool = True
) -> Path:
    """Write ``model`` as a ``.scnm`` of the original Ais (atomically); returns the path.

    Members: ``<title>_weights.h5`` and ``<title>_metadata.json`` (the file's stem when the
    title is not a plain file name). Raises :class:`~ais_torch.formats.keras.emit.NoKerasTwin`
    for a model without an original twin and :class:`ModelFormatError` if ``verify`` finds the
    written graph predicting differently.
    """
    path = Path(path)
    graph = keras_functional(model)
    payload = keras_h5_bytes(graph)
    if verify:
        verify_keras_h5(payload, model)
    meta = json.dumps(original_metadata(model, metadata)).encode("utf-8")
    stem = metadata.title if is_plain_name(metadata.title) else path.stem
    with atomic_output(path) as tmp, tarfile.open(tmp, mode="w") as tar:
        _add_bytes(tar, f"{stem}_weights.h5", payload)
        _add_bytes(tar, f"{stem}_metadata.json", meta)
    return path
