"""napari reader and writer: tomograms, label volumes, models and picks (no Qt here).

Layers carry their geometry: ``scale`` is the voxel size in Å on every axis (so a tomogram, its
labels, predictions and picks overlay), and ``metadata`` keeps the source path, voxel size and
origin that a writer needs to save a result that overlays the tomogram in other tools.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ais_torch.errors import AisInputError
from ais_torch.formats.mrc import MRC_SUFFIXES, read_volume, write_volume

LayerData = tuple[Any, ...]
"""napari's ``(data, kwargs, layer_type)`` tuple (``(None,)`` for "nothing to add")."""
MODEL_SUFFIXES = (".scnm", ".scnmgroup")
PICK_SUFFIXES = (".star", ".txt")
_model_inbox: list[Path] = []
_model_listeners: list[Callable[[Path], None]] = []


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerData]] | None:
    """The reader for ``path``, or None when it is not ours (napari then asks other plugins)."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths:
        return None
    if all(_kind(Path(p)) is not None for p in paths):
        return read_paths
    return None


def read_paths(path: str | list[str]) -> list[LayerData]:
    """Every file as layer data: MRC → image, picks → points, models → the Ais widget."""
    paths = [path] if isinstance(path, str) else list(path)
    layers: list[LayerData] = []
    for p in map(Path, paths):
        kind = _kind(p)
        if kind == "mrc":
            layers.append(tomogram_layer(p))
        elif kind == "picks":
            layers.append(picks_layer(p))
        elif kind == "model":
            offer_model(p)
    return layers or [(None,)]


def _kind(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in MRC_SUFFIXES:
        return "mrc"
    if suffix in MODEL_SUFFIXES:
        return "model"
    if suffix in PICK_SUFFIXES:
        return "picks"
    return None


def tomogram_layer(path: str | Path, *, voxel_size_A: float | None = None) -> LayerData:
    """An image layer over the memory-mapped tomogram (nothing read but one slice for contrast)."""
    volume = read_volume(path, voxel_size_A=voxel_size_A, check_finite=False)
    middle = np.asarray(volume.data[volume.shape[0] // 2], dtype=np.float32)
    finite = middle[np.isfinite(middle)]
    lo, hi = np.percentile(finite, (0.5, 99.5)) if finite.size else (0.0, 1.0)
    if not hi > lo:
        hi = lo + 1.0
    v = float(volume.voxel_size_A)
    kwargs = {
        "name": Path(path).name.rsplit(".", 1)[0],
        "scale": (v, v, v),
        "contrast_limits": (float(lo), float(hi)),
        "metadata": geometry(volume.path, v, volume.origin_A),
    }
    return (volume.data, kwargs, "image")


def geometry(
    path: Path | None, voxel_size_A: float, origin_A: tuple[float, float, float]
) -> dict[str, Any]:
    """The metadata every Ais layer carries (the writer reads it back)."""
    return {
        "ais_path": str(path) if path is not None else "",
        "voxel_size_A": float(voxel_size_A),
        "origin_A": tuple(float(o) for o in origin_A),
    }


def picks_layer(path: str | Path, *, voxel_size_A: float | None = None) -> LayerData:
    """Picks (``.star``, ``.txt``; x y z voxels) as a points layer in the tomogram's scale.

    The voxel size comes from ``voxel_size_A``, else from the tomogram next to the file that its
    name points to (``<tomo>__<feature>.star`` → ``<tomo>.mrc``), else 1 (voxels).
    """
    from ais_torch.formats.coordinates import read_coordinates

    path = Path(path)
    xyz = read_coordinates(path)
    v = voxel_size_A or _sibling_voxel_size(path) or 1.0
    kwargs = {
        "name": path.stem,
        "scale": (v, v, v),
        "size": 8,
        "metadata": geometry(path, v, (0.0, 0.0, 0.0)),
    }
    return (np.asarray(xyz, dtype=np.float64)[:, ::-1].copy(), kwargs, "points")


def _sibling_voxel_size(path: Path) -> float | None:
    from ais_torch.formats.naming import split_name

    tomo = split_name(path)[0] if "__" in path.stem else path.stem
    for suffix in MRC_SUFFIXES:
        candidate = path.parent / f"{tomo}{suffix}"
        if candidate.is_file():
            try:
                return float(read_volume(candidate, check_finite=False).voxel_size_A)
            except AisInputError:
                return None
    return None


def offer_model(path: Path) -> None:
    """Hand a model file to the Ais widget (kept until one opens if none is open yet)."""
    if not path.is_file():
        raise AisInputError(f"{path}: model file not found; check the path")
    if _model_listeners:
        for listener in list(_model_listeners):
            listener(path)
    else:
        _model_inbox.append(path)


def listen_for_models(listener: Callable[[Path], None]) -> list[Path]:
    """Register the widget's model loader; returns models opened before it existed."""
    _model_listeners.append(listener)
    waiting = list(_model_inbox)
    _model_inbox.clear()
    return waiting


def stop_listening(listener: Callable[[Path], None]) -> None:
    if listener in _model_listeners:
        _model_listeners.remove(listener)


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """napari writer: a labels layer → ``.mrc`` (int8, atomic) with its voxel size and origin.

    The voxel size is the layer's scale (Å, as the reader sets it); the origin comes from the
    layer's metadata (copied from the tomogram when the widget makes the layer).
    """
    out = Path(path)
    if out.suffix.lower() not in MRC_SUFFIXES:
        out = out.with_suffix(".mrc")
    scale = meta.get("scale") or (1.0, 1.0, 1.0)
    metadata = meta.get("metadata") or {}
    voxel = float(metadata.get("voxel_size_A") or scale[-1])
    origin = tuple(metadata.get("origin_A") or (0.0, 0.0, 0.0))
    save_labels(out, np.asarray(data), voxel_size_A=voxel, origin_A=origin)  # type: ignore[arg-type]
    return [str(out)]


def save_labels(
    path: str | Path,
    labels: np.ndarray,
    *,
    voxel_size_A: float,
    origin_A: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> Path:
    """A label volume as the smallest MRC integer type that holds it (int8 for 0/1/2)."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise AisInputError(
            f"{path}: labels have shape {labels.shape}; only 3D (z, y, x) volumes can be saved"
        )
    top = int(labels.max()) if labels.size else 0
    low = int(labels.min()) if labels.size else 0
    if low < -128 or top > 32767:
        raise AisInputError(
            f"{path}: label values {low}..{top} do not fit an MRC integer volume; "
            "use labels 0 (negative), 1 (feature), 2 (ignore)"
        )
    dtype = np.int8 if top <= 127 else np.int16
    return write_volume(path, labels.astype(dtype), voxel_size_A=voxel_size_A, origin_A=origin_A)
