"""Reading a Keras ``.h5`` model file with h5py: its ``model_config`` and its weights.

Keras 2 ``model.save()`` writes root attributes ``model_config`` (JSON) and ``keras_version``,
and one group per layer under ``model_weights/<layer>``, whose attribute ``weight_names`` lists
the datasets in the layer's own order (``conv2d/kernel:0``, ``conv2d/bias:0``, ...). Files from
``save_weights()`` have the layer groups at the root and no ``model_config``; they cannot be
rebuilt and are refused.

Why so careful: model files come from the internet. The file is opened from memory (never
extracted to disk), only hard-linked, contiguous or chunked datasets inside the file are read
(no external links, external raw storage or virtual datasets, which would read other files),
and the total size of the weights is bounded before anything is decompressed.

The layout of every weight (Keras name, torch name, axis order) is one table here,
:data:`KERAS_SLOTS` with :func:`kernel_to_torch` / :func:`kernel_to_keras`, used by both the
reader and the writer (:mod:`ais_torch.formats.keras.write`), so import and export cannot drift.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

from ais_torch.formats.keras.graph import (
    KerasFormatError,
    KerasGraphSpec,
    KerasOp,
    parse_model_config,
)
from ais_torch.formats.limits import ENV, human, limits

FLOAT_KINDS = "f"
MAX_COMPRESSION_RATIO = 64
"""A filtered (compressed) dataset may decode to at most this many times its stored bytes:
float weights hardly compress, so a larger ratio means a forged shape or a decompression bomb."""

# -- the one weight-layout table ------------------------------------------------------------------
KERAS_SLOTS: dict[str, tuple[tuple[str, str], ...]] = {
    "conv": (("kernel", "weight"), ("bias", "bias")),
    "batch_norm": (
        ("gamma", "weight"),
        ("beta", "bias"),
        ("moving_mean", "running_mean"),
        ("moving_variance", "running_var"),
    ),
}
"""Per layer kind: (Keras weight name, torch attribute) in the order Keras stores them.

``"conv"`` covers Conv1D-3D and Conv2DTranspose/Conv3DTranspose: their kernels differ only in
which axis holds the filters, and the same axis move converts both (:func:`kernel_to_torch`).
"""


def kernel_to_torch(kernel: np.ndarray) -> np.ndarray:
    """Keras ``(*k, a, b)`` → torch ``(b, a, *k)``.

    Conv: Keras ``(*k, cin, cout)`` → torch ``(cout, cin, *k)``; transposed conv: Keras
    ``(*k, cout, cin)`` → torch ``(cin, cout, *k)``: the same move of the last two axes to
    the front, swapped.
    """
    rank = kernel.ndim - 2
    return np.ascontiguousarray(kernel.transpose(rank + 1, rank, *range(rank)))


def kernel_to_keras(weight: np.ndarray) -> np.ndarray:
    """Torch ``(b, a, *k)`` → Keras ``(*k, a, b)``: the inverse of :func:`kernel_to_torch`."""
    rank = weight.ndim - 2
    return np.ascontiguousarray(weight.transpose(*range(2, rank + 2), 1, 0))


@contextmanager
def open_h5(source: bytes | str | os.PathLike) -> Iterator[h5py.File]:
    """Open an HDF5 file from bytes (in memory) or a path, read-only."""
    handle = io.BytesIO(source) if isinstance(source, bytes | bytearray) else Path(source)
    if isinstance(handle, Path) and not handle.is_file():
        raise KerasFormatError("file not found")
    try:
        f = h5py.File(handle, "r")
    except (OSError, ValueError) as err:
        raise KerasFormatError(f"not a readable HDF5 file ({_first_line(err)})") from None
    try:
        yield f
    finally:
        f.close()


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value.item())
    return str(value)


def read_spec(f: h5py.File) -> KerasGraphSpec:
    """The model's graph from the root attribute ``model_config``."""
    if "model_config" not in f.attrs:
        raise KerasFormatError(
            "has no 'model_config' (a weights-only file?); the architecture cannot be rebuilt"
        )
    version = _text(f.attrs["keras_version"]) if "keras_version" in f.attrs else ""
    return parse_model_config(_text(f.attrs["model_config"]), version)


def weights_root(f: h5py.File) -> h5py.Group:
    """``model_weights`` for a full-model file; the root for a bare weights file."""
    group = f.get("model_weights", getlink=True)
    if group is None:
        return f
    if not isinstance(group, h5py.HardLink):
        raise KerasFormatError("'model_weights' is a link; refused")
    return f["model_weights"]


class WeightReader:
    """Hands each layer its arrays (by short name) and bounds the total bytes read."""

    def __init__(self, root: h5py.Group) -> None:
        self.root = root
        self.bytes_read = 0

    def __call__(self, op: KerasOp) -> dict[str, np.ndarray]:
        names, arrays = self._read_layer(op.keras_name)
        if not op.weight_slots:
            return dict(zip(names, arrays, strict=True))
        short = [n.rsplit("/", 1)[-1].split(":", 1)[0] for n in names]
        if sorted(short) == sorted(op.weight_slots):
            return dict(zip(short, arrays, strict=True))
        if len(arrays) == len(op.weight_slots):  # unusual names: Keras' own order
            return dict(zip(op.weight_slots, arrays, strict=True))
        raise KerasFormatError(
            f"layer '{op.keras_name}' ({op.keras_class}) should store "
            f"{list(op.weight_slots)} but the file has {names or 'no weights'}"
        )

    def _read_layer(self, name: str) -> tuple[list[str], list[np.ndarray]]:
        link = self.root.get(name, getlink=True)
        if link is None:
            return [], []
        if not isinstance(link, h5py.HardLink):
            raise KerasFormatError(f"weights of layer '{name}' are a link; refused")
        group = self.root[name]
        if not isinstance(group, h5py.Group):
            raise KerasFormatError(f"weights of layer '{name}' are not an HDF5 group")
        names = [_text(n) for n in group.attrs.get("weight_names", [])]
        return names, [self._dataset(group, name, n) for n in names]

    def _dataset(self, group: h5py.Group, layer: str, path: str) -> np.ndarray:
        node: h5py.Group = group
        parts = path.split("/")
        for i, part in enumerate(parts):
            link = node.get(part, getlink=True)
            if link is None:
                raise KerasFormatError(f"layer '{layer}' lists weight '{path}' but it is missing")
            if not isinstance(link, h5py.HardLink):
                raise KerasFormatError(f"weight '{path}' of layer '{layer}' is a link; refused")
            node = node[part]
            if i < len(parts) - 1 and not isinstance(node, h5py.Group):
                raise KerasFormatError(f"weight path '{path}' of layer '{layer}' is malformed")
        if not isinstance(node, h5py.Dataset):
            raise KerasFormatError(f"weight '{path}' of layer '{layer}' is not a dataset")
        return self._read(node, layer, path)

    def _read(self, ds: h5py.Dataset, layer: str, path: str) -> np.ndarray:
        check_dataset(ds, f"weight '{path}' of layer '{layer}'")
        self.bytes_read += int(ds.size) * 4
        if self.bytes_read > limits().weight_bytes:
            raise KerasFormatError(_too_large(self.bytes_read))
        return np.asarray(ds[()], dtype=np.float32)


def check_dataset(ds: h5py.Dataset, what: str) -> None:
    """Refuse a weight dataset before reading it: outside the file, not float, or claiming more
    bytes than its storage holds (a huge shape on a few bytes of fill value or compressed zeros)."""
    if ds.is_virtual or ds.external:
        raise KerasFormatError(f"{what} points outside the file; refused")
    if ds.dtype.kind not in FLOAT_KINDS:
        raise KerasFormatError(f"{what} is not floating point")
    claimed, stored = int(ds.size) * ds.dtype.itemsize, int(ds.id.get_storage_size())
    filtered = bool(ds.chunks) and bool(ds.id.get_create_plist().get_nfilters())
    if claimed > stored * (MAX_COMPRESSION_RATIO if filtered else 1):
        raise KerasFormatError(
            f"{what} claims shape {ds.shape} ({human(claimed)}) but the file stores only "
            f"{human(stored)} of it; the file is damaged or forged — refused"
        )


def check_weight_datasets(root: h5py.Group) -> int:
    """Check every dataset under ``root`` as the loader will (:func:`check_dataset`) and bound
    their total as float32 by the weight limit, before any weight is read; their element count.

    The loader and ``ais-torch inspect info`` both run this, so the verdict and the loading
    cannot disagree about a dataset.
    """
    datasets: list[tuple[str, h5py.Dataset]] = []

    def collect(name: str, obj: object) -> None:
        if isinstance(obj, h5py.Dataset):
            datasets.append((name, obj))

    root.visititems(collect)
    total = 0
    for name, ds in datasets:
        check_dataset(ds, f"weight '{name}'")
        total += int(ds.size)
        if total * 4 > limits().weight_bytes:
            raise KerasFormatError(_too_large(total * 4))
    return total


def _too_large(n_bytes: int) -> str:
    return (
        f"weights add up to more than {human(n_bytes)} as float32, above the "
        f"{human(limits().weight_bytes)} limit (if you trust this file, raise "
        f"{ENV['weight_bytes']})"
    )
