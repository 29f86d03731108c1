"""``ais-torch export model=X.scnm format=onnx|keras out=Y``: convert a model file.

Why: a model trained here (or by the original Ais) should run where ais_torch is not installed:
onnxruntime (``format=onnx``) or the original Ais itself (``format=keras``: a ``.scnm`` with a
Keras 2.15 ``.h5``, see :mod:`ais_torch.formats.keras.write`). Arguments are plain ``key=value``
pairs like the other shells; mistakes end in one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ais_torch.commands.shell import (
    Key,
    command_main,
    key_names,
    parse_key_values,
    render_help,
)
from ais_torch.errors import ConfigError

KEYS = (
    Key("model", "the .scnm to convert (ours or the original Ais's)", "file",
        "model=Membrane.scnm"),
    Key("format", "onnx (dynamic batch/height/width, metadata in metadata_props) | keras (a "
        ".scnm the original Ais opens: Keras 2.15 .h5 + its metadata)", "", "format=keras",
        "onnx"),
    Key("out", "output file; default the model's name with the format's suffix (keras: "
        "<name>_original.scnm)", "file", "out=Membrane.onnx"),
    Key("opset", "ONNX opset version (default: the exporter's)", "version", "opset=18"),
)  # fmt: skip
"""Every key of the command, once: the parser and ``--help`` both read it."""

_KEYS = key_names(KEYS)
USAGE = render_help(
    "usage: ais-torch export model=X.scnm format=onnx|keras [out=Y] [opset=N]",
    "Convert an Ais model to another format. Also runs as python -m ais_torch.export.",
    KEYS,
)
SUFFIX = {"onnx": ".onnx", "keras": ".scnm"}
DEFAULT_NAME = {"onnx": "{stem}.onnx", "keras": "{stem}_original.scnm"}


def parse_args(argv: Sequence[str]) -> dict[str, str]:
    """``key=value`` pairs → a dict; unknown or repeated keys are a one-line ConfigError."""
    given = parse_key_values(argv, _KEYS, example="model=Membrane.scnm")
    if not given.get("model"):
        raise ConfigError("missing model=FILE.scnm (the model to convert; see --help)")
    fmt = given.setdefault("format", "onnx").lower()
    if fmt not in SUFFIX:
        raise ConfigError(f"format={fmt!r} unknown; choose one of {', '.join(SUFFIX)}")
    given["format"] = fmt
    return given


def _to_onnx(model_path: Path, out: Path, opset: int | None) -> Path:
    import ais_torch
    from ais_torch.formats.onnx import export_onnx

    model = ais_torch.load_model(str(model_path))
    return export_onnx(model, model.metadata, out, opset=opset)


def _to_keras(model_path: Path, out: Path, opset: int | None) -> Path:
    import ais_torch
    from ais_torch.formats.keras.write import write_original_scnm

    if opset is not None:
        raise ConfigError("opset= only applies to format=onnx; leave it out for format=keras")
    model = ais_torch.load_model(str(model_path))
    return write_original_scnm(out, model, model.metadata)


# None: a format we know of but cannot write yet.
WRITERS: dict[str, Callable[[Path, Path, int | None], Path] | None] = {
    "onnx": _to_onnx,
    "keras": _to_keras,
}


def export(
    model: str | Path, format: str = "onnx", out: str | Path | None = None, opset: int | None = None
) -> Path:
    """Convert ``model`` to ``format``; returns the written file."""
    model_path = Path(model).expanduser()
    if format not in WRITERS:
        raise ConfigError(f"format={format!r} unknown; choose one of {', '.join(WRITERS)}")
    writer = WRITERS[format]
    if writer is None:
        raise ConfigError(
            f"format={format} is not available yet (writing .scnm files the original Ais can "
            "open is future work); use format=onnx"
        )
    default = model_path.with_name(DEFAULT_NAME[format].format(stem=model_path.stem))
    target = Path(out).expanduser() if out else default
    if target.resolve() == model_path.resolve():
        raise ConfigError(f"out={target} would overwrite the input model; choose another name")
    return writer(model_path, target, opset)


def _run(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    opset = None
    if args.get("opset"):
        try:
            opset = int(args["opset"])
        except ValueError:
            raise ConfigError(f"opset={args['opset']!r} is not a whole number") from None
    written = export(args["model"], args["format"], args.get("out"), opset)
    print(f"wrote {written}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns 0, or exits 2 with one line on a usable error."""
    return command_main(argv, USAGE, _run)


if __name__ == "__main__":
    sys.exit(main())
