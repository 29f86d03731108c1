"""ONNX export of a model, and running an ``.onnx`` with onnxruntime alone.

Why: ONNX lets a model run where PyTorch is not installed (onnxruntime on a cluster, other
tools). The file keeps the Ais metadata (title, apix, threshold, ...) in ``metadata_props`` so
it is self-describing, and batch, height and width are dynamic so whole slices can be fed.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ais_torch.errors import AisInputError, ModelFormatError
from ais_torch.formats.atomic import atomic_output
from ais_torch.formats.scnm import ModelMetadata, is_plain_name

if TYPE_CHECKING:
    import onnx
    from torch import nn

log = logging.getLogger("ais_torch.formats.onnx")

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
# Extra metadata_props keys beside the ModelMetadata fields.
EXTRA_PROPS = ("min_size_multiple", "in_channels", "ais_torch_onnx_format")
FORMAT_VERSION = 1


def metadata_props(metadata: ModelMetadata, model: nn.Module | None = None) -> dict[str, str]:
    """Every ModelMetadata field as a JSON string (ONNX props are str -> str)."""
    props = {k: json.dumps(v) for k, v in asdict(metadata).items()}
    if model is not None:
        props["min_size_multiple"] = json.dumps(int(getattr(model, "min_size_multiple", 1)))
        props["in_channels"] = json.dumps(_in_channels(model))
    props["ais_torch_onnx_format"] = json.dumps(FORMAT_VERSION)
    return props


def metadata_from_props(props: dict[str, str], source: str | Path = "") -> ModelMetadata:
    """Rebuild ModelMetadata from ``metadata_props``; refuses files without an Ais title."""
    raw: dict[str, Any] = {}
    for key, text in props.items():
        if key in EXTRA_PROPS:
            continue
        try:
            raw[key] = json.loads(text)
        except json.JSONDecodeError:
            raw[key] = text  # written by another tool: keep the plain string
    extra = raw.pop("extra", {})
    known = {f.name for f in fields(ModelMetadata)}
    if isinstance(extra, dict):
        raw = {**{k: v for k, v in extra.items() if k not in known}, **raw}
    if "title" not in raw:
        raise ModelFormatError(f"{source}: ONNX file has no Ais metadata ('title' missing)")
    return ModelMetadata.from_dict(raw, source)


def _in_channels(model: nn.Module) -> int:
    hparams = getattr(model, "hparams", None)
    channels = getattr(hparams, "in_channels", None) if hparams is not None else None
    if channels is None and isinstance(hparams, dict):
        channels = hparams.get("in_channels")
    return int(channels or 1)


def export_onnx(
    model: nn.Module,
    metadata: ModelMetadata,
    path: str | os.PathLike,
    opset: int | None = None,
) -> Path:
    """Write ``model`` as ONNX (dynamic B/H/W) with ``metadata`` in ``metadata_props``, atomically.

    Uses the torch.export-based exporter; weights are stored inside the file (no ``.data``
    side file), which is fine below ONNX's 2 GB limit (the largest Ais model is ~160 MB).
    """
    import onnx
    import torch

    path = Path(path)
    model = model.eval()
    multiple = int(getattr(model, "min_size_multiple", 1)) or 1
    # a 1x1 bottleneck (Pix2pix at 64 px) makes the exporter hang: give it at least 2x2
    size = multiple * max(2, -(-64 // multiple))
    example = torch.zeros(2, _in_channels(model), size, size)
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height")}
    dims[3] = torch.export.Dim("width")
    kwargs: dict[str, Any] = {"opset_version": opset} if opset else {}
    try:
        with warnings.catch_warnings(), _quiet():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model,
                (example,),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=(dims,),
                dynamo=True,
                external_data=False,
                verbose=False,
                **kwargs,
            )
    except Exception as err:  # the exporter raises many types; say which model failed
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelFormatError(
            f"{metadata.title}: cannot export to ONNX ({type(err).__name__}: {first})"
        ) from err
    proto = program.model_proto
    if not metadata.n_parameters:  # the Keras-style count the original shows, when known
        count = getattr(model, "n_parameters", None)
        metadata.n_parameters = int(count or sum(p.numel() for p in model.parameters()))
    del proto.metadata_props[:]
    for key, value in metadata_props(metadata, model).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"Ais model '{metadata.title}' exported by ais_torch"
    with atomic_output(path) as tmp:
        onnx.save_model(proto, str(tmp))
    return path


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's progress prints and torchvision warnings (they are not ours)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.onnx._internal")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def read_onnx_header(path: str | os.PathLike) -> onnx.ModelProto:
    """The ONNX graph and props without external weight files (cheap; never follows paths)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: ONNX file not found; check the path")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf DecodeError and friends
        raise ModelFormatError(f"{path}: not a readable ONNX file ({type(err).__name__})") from None


def external_data_files(proto: onnx.ModelProto) -> list[str]:
    """Names of side files the ONNX initializers point at (empty for our exports)."""
    import onnx

    out = []
    for init in proto.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            loc = {e.key: e.value for e in init.external_data}.get("location", "")
            out.append(loc)
    return out


def check_external_data(path: Path, proto: onnx.ModelProto) -> None:
    """Refuse side-file references that leave the model's folder (``..``, absolute paths)."""
    for loc in external_data_files(proto):
        if not is_plain_name(loc):
            raise ModelFormatError(
                f"{path}: ONNX weights point at {loc!r} outside the model's folder; refusing it"
            )


class OnnxModel:
    """An exported Ais model run with onnxruntime only (no torch needed).

    ``model(x)`` maps float32 boxes ``(B, C, H, W)`` to probabilities ``(B, 1, H, W)``; H and W
    must be multiples of :attr:`min_size_multiple`.
    """

    def __init__(self, path: str | os.PathLike, providers: list[str] | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        proto = read_onnx_header(self.path)
        check_external_data(self.path, proto)
        props = {p.key: p.value for p in proto.metadata_props}
        self.metadata = metadata_from_props(props, self.path)
        self.min_size_multiple = int(json.loads(props.get("min_size_multiple", "1")))
        self.in_channels = int(json.loads(props.get("in_channels", "0")) or 0) or None
        if providers is None:
            wanted = ("CUDAExecutionProvider", "CPUExecutionProvider")
            providers = [p for p in wanted if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(self.path), providers=providers)
        except Exception as err:  # onnxruntime raises its own exception classes
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise ModelFormatError(f"{self.path}: onnxruntime cannot open it ({first})") from None
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise AisInputError(f"{self.path}: expected (B, C, H, W) input, got shape {x.shape}")
        m = self.min_size_multiple
        if x.shape[2] % m or x.shape[3] % m:
            raise AisInputError(
                f"{self.path}: height and width must be multiples of {m}, got {x.shape[2:]}"
            )
        if self.in_channels and x.shape[1] != self.in_channels:
            raise AisInputError(
                f"{self.path}: model takes {self.in_channels} channel(s), got {x.shape[1]}"
            )
        return self.session.run(None, {self.input_name: x})[0]

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, title={self.metadata.title!r})"
