"""What to segment with what: model files and tomogram lists as the user types them.

Models: a ``.scnm`` (ours or the original's), a ``.scnmgroup`` (several models + their
interactions), an ``.onnx`` exported by ais_torch, or a bare Keras ``.h5``; several as a list
or comma-separated. Data: an MRC file, a folder (its ``*.mrc``/``*.rec``/``*.map``), a glob, or
a ``.txt`` list of paths (one per line, ``#`` comments, relative to the list's folder); an
OME-Zarr tomogram is a ``*.zarr`` folder (a copick project's config ``.json`` is resolved by
:mod:`ais_torch.segmentation.batch`).
"""

from __future__ import annotations

import glob as globlib
import hashlib
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Union

from ais_torch.errors import AisInputError, ConfigError, ModelFormatError
from ais_torch.formats.mrc import MRC_SUFFIXES
from ais_torch.formats.naming import file_safe, result_name

if TYPE_CHECKING:
    import torch

    from ais_torch.formats.onnx import OnnxModel
    from ais_torch.formats.scnm import ModelMetadata

log = logging.getLogger("ais_torch.segmentation.loading")

PathSpec = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]  # noqa: UP007
"""What a user types for files: one path, ``"a,b"``, or a list (a Hydra ListConfig too)."""

MODEL_SUFFIXES = (".scnm", ".scnmgroup", ".onnx", ".h5")
_GLOB_CHARS = set("*?[")


@dataclass
class LoadedModel:
    """One model ready for the engine: the network (torch or ONNX) and what it expects."""

    title: str
    metadata: ModelMetadata
    source: Path
    module: torch.nn.Module | None = None
    """``torch.nn.Module`` (None for an ``.onnx`` file)."""
    onnx: OnnxModel | None = None
    """:class:`~ais_torch.formats.onnx.OnnxModel` when running through onnxruntime."""
    depth: int = 1
    """Input z-slices: 1 = 2D, odd > 1 = 2.5D (slices as channels) or a 3D slab."""
    is_3d: bool = False
    """True: input ``(B, 1, D, H, W)``; False: ``(B, D, H, W)``."""
    slab: bool = False
    """A 3D model that predicts its whole slab (the original's ezm-3d), not its centre slice."""
    multiple: int = 1
    """Height and width must be multiples of this (pooling depth)."""
    extra: dict[str, float] = field(default_factory=dict)
    """Per-model measurements cached by the engine (activation bytes per pixel)."""

    @property
    def pad_multiple(self) -> int:
        """The original pads to a multiple of 32; deeper networks need their own multiple too."""
        return math.lcm(32, max(1, int(self.multiple)))


def as_list(spec: PathSpec | None) -> list[str]:
    """``"a,b"``, ``["a", "b"]``, a Path or a Hydra ListConfig → ``["a", "b"]``."""
    if spec is None:
        return []
    if isinstance(spec, str | os.PathLike):
        return [s.strip() for s in str(spec).split(",") if s.strip()]
    out: list[str] = []
    for item in spec:
        out.extend(as_list(item))
    return out


def _module_is_3d(module: torch.nn.Module) -> bool:
    graph = getattr(module, "graph", None)
    if graph is not None and int(getattr(graph, "n_spatial", 2)) == 3:
        return True
    return int(getattr(module, "n_spatial_dims", 2)) == 3


def finish_loading(model: LoadedModel, depth_override: int | None) -> LoadedModel:
    meta = model.metadata
    if str((meta.extra or {}).get("dimensionality", "")) == "3":
        model.is_3d = True
    depth = int(depth_override or getattr(meta, "model_depth", 1) or 1)
    # a slab model says so (ezm-3d); other 3D networks predict their slab's centre slice
    model.slab = model.is_3d and bool(getattr(model.module, "emits_slab", False))
    if model.slab:
        z_multiple = int(getattr(model.module, "z_multiple", 1) or 1)
        if depth < 1 or depth % z_multiple:
            raise ModelFormatError(
                f"{model.source}: slab depth {depth} does not fit this 3D model (it needs a "
                f"multiple of {z_multiple} slices); leave model_depth unset to use the model's "
                f"own ({getattr(meta, 'model_depth', '?')})"
            )
        model.depth = depth
        return model
    if depth < 1 or depth % 2 == 0:
        raise ModelFormatError(
            f"{model.source}: model_depth {depth} must be an odd number >= 1 (slices around z)"
        )
    model.depth = depth
    return model


def wrap_module(module: torch.nn.Module, meta: ModelMetadata, source: Path) -> LoadedModel:
    """A network already in memory (its metadata beside it) as the engine's model."""
    return LoadedModel(
        title=str(meta.title),
        metadata=meta,
        source=source,
        module=module,
        is_3d=_module_is_3d(module),
        multiple=int(getattr(module, "min_size_multiple", 1) or 1),
    )


def _load_onnx(path: Path) -> LoadedModel:
    from ais_torch.formats.onnx import OnnxModel

    om = OnnxModel(path, providers=None)
    shape = om.session.get_inputs()[0].shape
    return LoadedModel(
        title=str(om.metadata.title),
        metadata=om.metadata,
        source=path,
        onnx=om,
        is_3d=len(shape) == 5,
        multiple=om.min_size_multiple,
    )


def _load_h5(path: Path) -> LoadedModel:
    from ais_torch.formats.keras.read import load_keras_model
    from ais_torch.formats.scnm import ModelMetadata

    module = load_keras_model(str(path))
    meta = ModelMetadata(title=path.stem, model_depth=1)
    return wrap_module(module, meta, path)


def load_models(
    spec: PathSpec, *, model_depth: int | None = None
) -> tuple[list[LoadedModel], list[dict[str, object]]]:
    """Open every model named in ``spec``; returns ``(models, interactions from groups)``.

    Titles must be unique: they name the output files and the interaction rules.
    """
    from ais_torch.formats.scnm import load_scnm
    from ais_torch.formats.scnmgroup import read_scnmgroup

    paths = as_list(spec)
    if not paths:
        raise ConfigError("no model given; set model=PATH (.scnm, .scnmgroup, .onnx or .h5)")
    models: list[LoadedModel] = []
    interactions: list[dict[str, object]] = []
    for text in paths:
        path = Path(text).expanduser()
        suffix = path.suffix.lower()
        if suffix not in MODEL_SUFFIXES:
            raise AisInputError(
                f"{path}: not a model file; expected one of {', '.join(MODEL_SUFFIXES)}"
            )
        if not path.is_file():
            raise AisInputError(f"{path}: model file not found; check the path")
        if suffix == ".scnmgroup":
            group, links = read_scnmgroup(path)
            models.extend(wrap_module(m, meta, path) for m, meta in group)
            interactions.extend(links)
        elif suffix == ".onnx":
            models.append(_load_onnx(path))
        elif suffix == ".h5":
            models.append(_load_h5(path))
        else:
            module, meta = load_scnm(path)
            module.metadata = meta
            models.append(wrap_module(module.eval(), meta, path))
    models = [finish_loading(m, model_depth) for m in models]
    titles = [m.title for m in models]
    dupes = sorted({t for t in titles if titles.count(t) > 1})
    if dupes:
        raise ConfigError(
            f"models share the title(s) {', '.join(dupes)}; outputs <tomogram>__<title>.mrc "
            "would collide — give each model its own title"
        )
    return models, interactions


def onnx_cache_dir() -> Path:
    root = os.environ.get("AIS_TORCH_CACHE") or Path.home() / ".cache" / "ais_torch"
    return Path(root) / "onnx"


def as_onnx(model: LoadedModel) -> LoadedModel:
    """Run ``model`` through onnxruntime: export once to a cache keyed by the file's hash."""
    if model.onnx is not None:
        return model
    from ais_torch.formats.onnx import OnnxModel, export_onnx

    digest = hashlib.sha256(model.source.read_bytes()).hexdigest()[:20]
    target = onnx_cache_dir() / f"{digest}_{model.title}.onnx"
    if not target.is_file():
        log.info("exporting %s to ONNX (%s), once", model.title, target)
        export_onnx(model.module, model.metadata, target)
    om = OnnxModel(target)
    return LoadedModel(
        title=model.title,
        metadata=model.metadata,
        source=model.source,
        onnx=om,
        depth=model.depth,
        is_3d=model.is_3d,
        multiple=model.multiple,
    )


def _is_mrc(path: Path) -> bool:
    return path.suffix.lower() in MRC_SUFFIXES and not path.name.startswith(".")


def _is_zarr(path: Path) -> bool:
    """An OME-Zarr tomogram: a folder named ``*.zarr``."""
    return path.suffix.lower() == ".zarr" and path.is_dir() and not path.name.startswith(".")


def resolve_data(spec: PathSpec) -> list[Path]:
    """Tomogram paths from files, folders, globs and ``.txt`` lists, in order, without repeats.

    A named file that does not exist is kept (it fails alone when its turn comes, so a batch
    goes on); a folder or glob that matches nothing is an error.
    """
    items = as_list(spec)
    if not items:
        raise ConfigError("no data given; set data=FILE, FOLDER, 'GLOB' or LIST.txt")
    out: list[Path] = []
    for text in items:
        path = Path(text).expanduser()
        if _GLOB_CHARS & set(text):
            hits = sorted(Path(p) for p in globlib.glob(str(path)))
            hits = [p for p in hits if (p.is_file() and _is_mrc(p)) or _is_zarr(p)]
            if not hits:
                raise AisInputError(f"{text}: no MRC files match this pattern")
            out.extend(hits)
        elif _is_zarr(path):
            out.append(path)
        elif path.is_dir():
            hits = sorted(p for p in path.iterdir() if (p.is_file() and _is_mrc(p)) or _is_zarr(p))
            if not hits:
                raise AisInputError(f"{path}: folder holds no {'/'.join(MRC_SUFFIXES[:3])} files")
            out.extend(hits)
        elif path.suffix.lower() == ".txt":
            if not path.is_file():
                raise AisInputError(f"{path}: list file not found; check the path")
            for line in path.read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    p = Path(line).expanduser()
                    out.append(p if p.is_absolute() else path.parent / p)
        else:
            out.append(path)
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def output_name(tomogram: Path, title: str) -> str:
    """``<tomogram stem>__<model title>.mrc``, as the original names segmentations."""
    return result_name(tomogram, title)


def check_titles_plain(models: Sequence[LoadedModel]) -> None:
    """Titles become file names (sanitised by :func:`file_safe`): refuse an empty title and
    two titles that would name the same file."""
    seen: dict[str, LoadedModel] = {}
    for m in models:
        if not m.title.strip():
            raise ModelFormatError(f"{m.source}: model has an empty title; not an Ais model")
        safe = file_safe(m.title)[0]
        if safe in seen and seen[safe].title != m.title:
            raise ModelFormatError(
                f"{m.source}: model title {m.title!r} and {seen[safe].title!r} "
                f"({seen[safe].source}) both give output files named *__{safe}.mrc; "
                "run them in two commands with different out="
            )
        seen[safe] = m


def title_notes(models: Sequence[LoadedModel]) -> list[str]:
    """One line per title changed to be a file name (say which, and why)."""
    notes = []
    for m in models:
        safe, why = file_safe(m.title)
        if why:
            notes.append(
                f"{m.source}: model title {m.title!r} cannot be a file name as it is ({why}); "
                f"its outputs are named <tomogram>__{safe}.mrc"
            )
    return notes
