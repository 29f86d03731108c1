"""``ais-torch inspect info FILE``: what a model file holds, and whether it is safe.

Why: models are downloaded from the internet; a user should be able to look inside one before
opening it. The verdict runs the loader's own checks (:func:`check_scnm`): archive limits and
member names (:func:`ais_torch.formats.scnm.read_members`), typed metadata, the weight headers
(safetensors header against the architecture / every HDF5 dataset bounded, Keras graphs checked
for code layers); our networks are built on the ``meta`` device (shapes only), no weight is
read. Groups are read in place (no temporary copy), ``.onnx`` files without their external
data.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ais_torch.commands.shell import Key, command_main, render_help
from ais_torch.errors import ConfigError, ModelFormatError
from ais_torch.formats.scnm import safetensors_parameters

if TYPE_CHECKING:
    from ais_torch.formats.scnm import InnerSource, ModelMetadata

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


def keras_summary(payload: bytes, source: str) -> tuple[int, list[str], str]:
    """(parameter count from dataset shapes, layer classes, Keras version) of a ``.h5``.

    The graph goes through the importer's layer check, so a ``Lambda`` (code) or unknown layer
    is reported here as it would be refused on opening.
    """
    from ais_torch.formats.keras.graph import KerasFormatError, check_layers
    from ais_torch.formats.keras.weights import (
        check_weight_datasets,
        open_h5,
        read_spec,
        weights_root,
    )

    try:
        with open_h5(payload) as f:
            total = check_weight_datasets(weights_root(f))  # the loader's own checks, in order
            spec = read_spec(f)
            check_layers(spec)
            classes = sorted({layer.class_name for layer in spec.layers})
            return total, classes, getattr(spec, "keras_version", "")
    except KerasFormatError as err:
        raise ModelFormatError(f"{source}: {err}") from None
    except RecursionError:
        raise ModelFormatError(
            f"{source}: the Keras model_config is nested too deeply; the file is damaged or forged"
        ) from None
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


@dataclass
class ScnmReport:
    """What the loader's checks found in one ``.scnm`` (lone or inside a group)."""

    meta: ModelMetadata
    members: dict[str, int]
    n_params: int
    checks: list[str]
    extra: list[str]


def check_scnm(path: Path, *, inner: InnerSource | None = None, label: str = "") -> ScnmReport:
    """Run on one model every check loading runs before it builds the network: archive limits
    and member names (:func:`read_members`), metadata types, the weights' header (safetensors:
    dtypes, shapes and byte ranges; Keras: only known layers, every dataset inside the file and
    bounded) and, for ours, whether the metadata builds its architecture and the weights fit it
    (built on PyTorch's ``meta`` device: shapes only, no memory, no weight read)."""
    from ais_torch.formats.scnm import metadata_from_members, read_members

    label = label or str(path)
    members = read_members(path, inner=inner, label=label)
    meta = metadata_from_members(label, members)
    checks = [SAFE_SCNM, "metadata fields typed"]
    n_params: int | None = None
    extra: list[str] = []
    for name, payload in members.items():
        if name.endswith("_weights.safetensors"):
            n_params = safetensors_parameters(payload, f"{label} [{name}]")
            checks.append("weights are safetensors (no pickle) with a consistent header")
            fits_architecture(label, meta, (name, payload))
            checks.append(f"weights fit architecture '{meta.arch_name}'")
        elif name.endswith("_weights.h5"):
            n_params, classes, version = keras_summary(payload, f"{label} [{name}]")
            checks.append("Keras graph has only known layers (no Lambda/code)")
            checks.append("every weight inside the file and bounded")
            extra.append(f"{'keras layers:':<15}{', '.join(classes)}")
            if version:
                extra.append(f"{'keras version:':<15}{version}")
    if n_params is None:
        raise ModelFormatError(f"{label}: no '*_weights.safetensors' or '*_weights.h5' inside")
    sizes = {name: len(data) for name, data in members.items()}
    return ScnmReport(meta, sizes, n_params, checks, extra)


def fits_architecture(label: str, meta: ModelMetadata, member: tuple[str, bytes]) -> None:
    """Raise what loading would raise if the metadata's network and the weights disagree."""
    import torch

    from ais_torch.formats.scnm import build_ours

    with torch.device("meta"):
        build_ours(label, meta, member)


def info_scnm(path: Path) -> list[str]:
    """Lines describing a ``.scnm``, checked as loading checks it (:func:`check_scnm`)."""
    report = check_scnm(path)
    lines = [f"{'file:':<15}{path} ({_size(path.stat().st_size)}, .scnm)"]
    keras = any(name.endswith("_weights.h5") for name in report.members)
    framework = "original Ais (Keras .h5)" if keras else None
    lines += _metadata_lines(report.meta, report.n_params, framework) + report.extra
    lines.append("members:")
    lines += [f"  {name:<40} {_size(n):>12}" for name, n in report.members.items()]
    lines.append(f"{'safety:':<15}passed ({'; '.join(report.checks)})")
    return lines


def info_group(path: Path) -> list[str]:
    """Lines for a ``.scnmgroup``: members, each model's metadata, the interactions."""
    from ais_torch.formats.scnmgroup import INTERACTION_TYPES, inner_models, read_scnmgroup

    models, interactions = read_scnmgroup(path, load_weights=False)
    with inner_models(path) as (members, inner):
        reports = [check_scnm(Path(m.name), inner=src, label=label) for m, src, label in inner]
    lines = [f"{'file:':<15}{path} ({_size(path.stat().st_size)}, .scnmgroup)", "members:"]
    lines += [f"  {m.name:<40} {_size(m.size):>12}" for m in members]
    for i, ((_, meta), report) in enumerate(zip(models, reports, strict=True)):
        lines.append(f"model {i}:")
        lines += ["  " + line for line in _metadata_lines(meta, report.n_params)]
    lines.append(f"interactions:  {len(interactions) or 'none'}")
    for item in interactions:
        kind = INTERACTION_TYPES[item["type"]]
        dust = item.get("min_size_nm3")
        lines.append(
            f"  {item['parent_title']} {kind} {item['partner_title']}: "
            f"radius {item['radius']} nm, threshold {item['threshold']}"
            + (f", partner pieces < {dust} nm³ ignored" if dust else "")
        )
    checks = dict.fromkeys(c for r in reports for c in r.checks)
    checks["only *.scnm and interactions inside"] = None
    lines.append(f"{'safety:':<15}passed ({'; '.join(checks)})")
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
