"""``ais-torch inspect info FILE``: what a model file holds, and whether it is safe.

Why: models are downloaded from the internet; a user should be able to look inside one before
opening it. Nothing here builds a network or loads weights: ``.scnm`` tars are checked member by
member (:func:`ais_torch.formats.scnm.read_members`), parameters are counted from the weight
headers (safetensors header / HDF5 dataset shapes), Keras graphs are checked for code layers,
and ``.onnx`` files are read without their external data.
"""

from __future__ import annotations

import json
import math
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ais_torch.commands.shell import Key, command_main, render_help
from ais_torch.errors import ConfigError, ModelFormatError

if TYPE_CHECKING:
    from ais_torch.formats.scnm import ModelMetadata

INFO = Key(
    "info FILE",
    "the model file: .scnm (ours or the original Ais's), .scnmgroup or .onnx",
    "file",
    "info Membrane.scnm",
)
USAGE = render_help(
    "usage: ais-torch inspect info FILE",
    """\
Print a model's metadata (title, architecture, parameters, box, apix, threshold, ...), the
archive members with their sizes and whether the file passed the safety checks, without
building the network or loading its weights. An unsafe or unreadable file ends in one line on
stderr, exit code 2. Also runs as python -m ais_torch.models (its older name).""",
    (INFO,),
    heading="arguments:",
)

SAFE_SCNM = "plain member names, no links or devices, sizes bounded"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} B" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def safetensors_parameters(payload: bytes, source: str) -> int:
    """Element count from a safetensors header alone (8-byte length + JSON), no tensor read."""
    if len(payload) < 8:
        raise ModelFormatError(f"{source}: weights file is truncated")
    (length,) = struct.unpack("<Q", payload[:8])
    if length > len(payload) - 8:
        raise ModelFormatError(f"{source}: weights header is longer than the file (truncated?)")
    try:
        header = json.loads(payload[8 : 8 + length].decode("utf-8"))
        return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ModelFormatError(f"{source}: weights header is not valid ({err})") from None


def keras_summary(payload: bytes, source: str) -> tuple[int, list[str], str]:
    """(parameter count from dataset shapes, layer classes, Keras version) of a ``.h5``.

    The graph goes through the importer's layer check, so a ``Lambda`` (code) or unknown layer
    is reported here as it would be refused on opening.
    """
    import h5py

    from ais_torch.formats.keras.graph import KerasFormatError, check_layers
    from ais_torch.formats.keras.weights import open_h5, read_spec, weights_root

    try:
        with open_h5(payload) as f:
            spec = read_spec(f)
            check_layers(spec)
            total = 0

            def count(_: str, obj: Any) -> None:
                nonlocal total
                if isinstance(obj, h5py.Dataset):
                    total += int(math.prod(obj.shape))

            weights_root(f).visititems(count)
            classes = sorted({layer.class_name for layer in spec.layers})
            return total, classes, getattr(spec, "keras_version", "")
    except KerasFormatError as err:
        raise ModelFormatError(f"{source}: {err}") from None
    except (OSError, KeyError, ValueError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ModelFormatError(f"{source}: corrupt or truncated Keras .h5 ({first})") from None


def _metadata_lines(
    meta: ModelMetadata, n_params: int | None, framework: str | None = None
) -> list[str]:
    params = n_params if n_params is not None else meta.n_parameters
    stored = ""
    if n_params is not None and meta.n_parameters and meta.n_parameters != n_params:
        stored = f" (metadata says {meta.n_parameters:,}; Keras counts differ for BatchNorm)"
    rows = [
        ("title", meta.title),
        ("arch", meta.arch or "-"),
        ("preset", meta.arch_name or "- (chosen when opened)"),
        ("parameters", f"{params:,}{stored}" if params else "unknown"),
        ("box", f"{meta.box_size} px, depth {meta.model_depth}"),
        ("apix", f"{meta.apix} Å/px" if meta.apix > 0 else "unknown"),
        ("threshold", f"{meta.threshold}"),
        ("overlap", f"{meta.overlap}"),
        ("normalization", meta.normalization),
        ("emit/absorb", f"{'yes' if meta.emit else 'no'} / {'yes' if meta.absorb else 'no'}"),
        ("colour", ", ".join(f"{c:.2f}" for c in meta.colour)),
        ("trained", f"{meta.epochs} epochs, loss {meta.loss:.4f}"),
        ("framework", framework or f"{meta.framework} {meta.framework_version}".strip()),
    ]
    return [f"{k + ':':<15}{v}" for k, v in rows]


def info_scnm(path: Path) -> list[str]:
    """Lines describing a ``.scnm`` (checked by the same reader that opens models)."""
    from ais_torch.formats.scnm import _metadata_from_members, read_members

    members = read_members(path)  # refuses unsafe member names/types before reading each
    meta = _metadata_from_members(path, members)
    checks = [SAFE_SCNM]
    n_params: int | None = None
    extra: list[str] = []
    for name, payload in members.items():
        if name.endswith("_weights.safetensors"):
            n_params = safetensors_parameters(payload, f"{path} [{name}]")
            checks.append("weights are safetensors (no pickle)")
        elif name.endswith("_weights.h5"):
            n_params, classes, version = keras_summary(payload, f"{path} [{name}]")
            checks.append("Keras graph has only known layers (no Lambda/code)")
            extra.append(f"{'keras layers:':<15}{', '.join(classes)}")
            if version:
                extra.append(f"{'keras version:':<15}{version}")
    if n_params is None:
        raise ModelFormatError(f"{path}: no '*_weights.safetensors' or '*_weights.h5' inside")
    lines = [f"{'file:':<15}{path} ({_size(path.stat().st_size)}, .scnm)"]
    keras = any(name.endswith("_weights.h5") for name in members)
    framework = "original Ais (Keras .h5)" if keras else None
    lines += _metadata_lines(meta, n_params, framework) + extra + ["members:"]
    lines += [f"  {name:<40} {_size(len(data)):>12}" for name, data in members.items()]
    lines.append(f"{'safety:':<15}passed ({'; '.join(checks)})")
    return lines


def info_group(path: Path) -> list[str]:
    """Lines for a ``.scnmgroup``: members, each model's metadata, the interactions."""
    from ais_torch.formats.scnmgroup import INTERACTION_TYPES, list_group, read_scnmgroup

    members = list_group(path)
    models, interactions = read_scnmgroup(path, load_weights=False)
    lines = [f"{'file:':<15}{path} ({_size(path.stat().st_size)}, .scnmgroup)", "members:"]
    lines += [f"  {m.name:<40} {_size(m.size):>12}" for m in members]
    for i, (_, meta) in enumerate(models):
        lines.append(f"model {i}:")
        lines += ["  " + line for line in _metadata_lines(meta, None)]
    lines.append(f"interactions:  {len(interactions) or 'none'}")
    for item in interactions:
        kind = INTERACTION_TYPES[item["type"]]
        dust = item.get("min_size_nm3")
        lines.append(
            f"  {item['parent_title']} {kind} {item['partner_title']}: "
            f"radius {item['radius']} nm, threshold {item['threshold']}"
            + (f", partner pieces < {dust} nm³ ignored" if dust else "")
        )
    lines.append(f"{'safety:':<15}passed ({SAFE_SCNM}; only *.scnm and interactions inside)")
    return lines


def _dims(value_info: Any) -> str:
    dims = value_info.type.tensor_type.shape.dim
    return "(" + ", ".join(d.dim_param or str(d.dim_value) for d in dims) + ")"


def info_onnx(path: Path) -> list[str]:
    """Lines for an ``.onnx``: metadata_props, inputs/outputs, opsets; no external data read."""
    from ais_torch.formats.onnx import (
        check_external_data,
        external_data_files,
        metadata_from_props,
        read_onnx_header,
    )

    proto = read_onnx_header(path)
    check_external_data(path, proto)
    props = {p.key: p.value for p in proto.metadata_props}
    meta = metadata_from_props(props, path)
    n_params = 0
    for init in proto.graph.initializer:
        n_params += math.prod(init.dims)
    lines = [f"{'file:':<15}{path} ({_size(path.stat().st_size)}, ONNX)"]
    lines += _metadata_lines(meta, n_params)
    ios = [f"{i.name} {_dims(i)}" for i in proto.graph.input]
    ios += [f"-> {o.name} {_dims(o)}" for o in proto.graph.output]
    lines.append(f"{'graph:':<15}{' '.join(ios)}")
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in proto.opset_import)
    lines.append(f"{'opsets:':<15}{opsets}")
    side = external_data_files(proto)
    where = "external: " + ", ".join(sorted(set(side))) if side else "inside the file"
    lines.append(f"{'weights:':<15}{where}")
    lines.append(f"{'safety:':<15}passed (ONNX holds no code; external data stays in its folder)")
    return lines


def info(path: str | Path) -> list[str]:
    """Describe a model file by its suffix (``.onnx``, ``.scnmgroup``, else ``.scnm``)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelFormatError(f"{path}: model file not found; check the path")
    if path.suffix.lower() == ".onnx":
        return info_onnx(path)
    if path.suffix.lower() == ".scnmgroup":
        return info_group(path)
    return info_scnm(path)


def _run(args: Sequence[str]) -> int:
    if len(args) != 2 or args[0] != "info":
        raise ConfigError("expected 'info FILE' (see --help)")
    print("\n".join(info(args[1])))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; 0 on success, exit 2 with one line for an unsafe/unreadable file."""
    return command_main(argv, USAGE, _run)


if __name__ == "__main__":
    sys.exit(main())
