"""``.scnm`` model files: an uncompressed tar of ``<title>_metadata.json`` plus weights.

Ours hold ``<title>_weights.safetensors`` (no pickle, so opening a downloaded model never runs
code); the original Ais's hold ``<title>_weights.h5`` (Keras). The reader looks at what the tar
contains and dispatches; it never extracts to disk and refuses members with path components.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import re
import struct
import tarfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ais_torch.errors import AisError, ModelFormatError
from ais_torch.formats.archive import TarRules, open_tar, parse_json, read_member
from ais_torch.formats.atomic import atomic_output
from ais_torch.formats.limits import limits

if TYPE_CHECKING:
    from ais_torch.archs.base import AisArch
    from ais_torch.formats.keras.read import KerasModel

log = logging.getLogger("ais_torch.formats.scnm")

FRAMEWORK = "ais_torch"
# model_enum as written by the original Ais 1.2.40: the title's index in its AVAILABLE_MODELS
# (model files sorted by name, include = True only; Eman2, InceptionNet and ResNet are hidden
# there and have none). Kept only so the original shows the right name.
ORIGINAL_MODEL_ENUM: dict[str, int] = {
    "ezm-2d": 0,
    "ezm-2d-bxe": 1,
    "ezm-2d-dice": 2,
    "ezm-3d-M": 3,
    "ezm-3d-L": 4,
    "Pix2pix": 5,
    "UNet L": 6,
    "UNet M": 7,
    "UNet S": 8,
    "VGGNet L": 9,
    "VGGNet M": 10,
    "VGGNet S": 11,
    "VGGNet X": 12,
}

# ``model_enum`` -> architecture title, per version family of the original (an index into the
# model files sorted by name, so it shifts between versions: docs/ais_original.md §1.1). Only
# needed for old files without ``arch``. "1.2.40" is what the reference kit's files show.
_LEGACY_ORDER = {
    "1.0.0-1.0.35": "Eman2, InceptionNet, Pix2pix, ResNet, UNet deep, UNet dropout, UNet lite, "
    "VGGNet, VGGNet double",
    "1.0.36-1.0.40": "Eman2, InceptionNet, Pix2pix, ResNet, UNet, VGGNet L, VGGNet M, VGGNet S",
    "1.0.44": "Eman2, InceptionNet, Pix2pix, cryoPom-bxe, cryoPom-dice, cryoPom-comb, ResNet, "
    "UNet L, UNet S, VGGNet L, VGGNet M, VGGNet S, VGGNet X",
    "1.2.0": "ezm-2d-dice, ezm-2d-bxe, ezm-3d-17d, Eman2, InceptionNet, Pix2pix, cryoPom-bxe, "
    "cryoPom-comb, cryoPom-dice, ResNet, UNet L, UNet S, VGGNet L, VGGNet M, VGGNet S, VGGNet X",
}
LEGACY_MODEL_ENUM: dict[str, dict[int, str]] = {
    **{family: dict(enumerate(order.split(", "))) for family, order in _LEGACY_ORDER.items()},
    "1.2.40": {enum: title for title, enum in ORIGINAL_MODEL_ENUM.items()},
}
# Which family to assume when several fit: files without ``arch`` predate 1.2, and PyPI 1.0.40
# is what most users had installed.
LEGACY_FAMILY_PREFERENCE = ("1.0.36-1.0.40", "1.0.44", "1.0.0-1.0.35", "1.2.0", "1.2.40")
# Keras parameter counts (one input channel) of the original's titles, to check a guess.
ORIGINAL_PARAM_COUNTS: dict[str, tuple[int, ...]] = {
    "Eman2": (378_081,),
    "InceptionNet": (550_529,),
    "ResNet": (1_215_457, 4_887_265),
    "UNet": (922_881,),
    "UNet S": (922_881,),
    "UNet deep": (922_881,),
    "UNet dropout": (185_217,),
    "UNet lite": (185_217,),
    "UNet M": (7_771_297,),
    "UNet L": (38_791_489,),
    "VGGNet": (1_493_059,),
    "VGGNet S": (1_493_059,),
    "VGGNet double": (5_053_955,),
    "VGGNet M": (5_053_955,),
    "VGGNet L": (17_521_921, 38_239_489),
    "VGGNet X": (38_420_097,),
    "Pix2pix": (16_661_121, 29_249_409),
    "cryoPom-bxe": (31_054_145,),
    "cryoPom-dice": (31_054_145,),
    "cryoPom-comb": (31_054_145,),
    "ezm-2d-dice": (43_634_689,),
    "ezm-2d-bxe": (43_634_689,),
    "ezm-3d-17d": (16_404_865,),
    "ezm-3d-M": (19_579_265,),
    "ezm-3d-L": (30_981_761,),
}


@dataclass
class ModelMetadata:
    """Everything the original Ais stores about a model (Appendix 1 of the paper) plus ours."""

    title: str
    colour: list[float] = field(default_factory=lambda: [0.26, 0.84, 0.64])
    apix: float = -1.0
    compiled: bool = True
    box_size: int = 64
    model_depth: int = 1
    model_enum: int = -1
    arch: str = ""
    epochs: int = 0
    batch_size: int = 32
    active: bool = True
    blend: bool = False
    show: bool = True
    alpha: float = 0.75
    threshold: float = 0.5
    overlap: float = 0.2
    active_tab: int = 0
    n_parameters: int = 0
    n_copies: int = 10
    info: str = ""
    info_short: str = ""
    excess_negative: float = 30.0
    emit: bool = False
    absorb: bool = False
    loss: float = 0.0
    normalization: str = "per_slice"
    z_jitter: int = 0
    tta: int = 1
    framework: str = FRAMEWORK
    framework_version: str = ""
    arch_name: str = ""
    arch_hparams: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys we do not know (newer or older originals) are kept and written back unchanged."""

    def to_json(self) -> str:
        data = asdict(self)
        extra = data.pop("extra")
        return json.dumps({**extra, **data}, indent=1)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str | Path = "") -> ModelMetadata:
        if not isinstance(raw, dict) or "title" not in raw:
            raise ModelFormatError(f"{source}: model metadata has no 'title'; not an Ais model")
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in raw.items() if k in known}
        values["extra"] = {k: v for k, v in raw.items() if k not in known}
        return cls(**values)

    def describe(self) -> str:
        """The original's info string: "Arch (params, box-depth, apix, loss)"."""
        mp = f"{self.n_parameters / 1e6:.1f} Mp"
        return (
            f"{self.arch} ({mp}, {self.box_size}-{self.model_depth}, {self.apix}, {self.loss:.4f})"
        )


MODEL_MEMBER_SUFFIXES = ("_metadata.json", "_weights.safetensors", "_weights.h5")
"""What a .scnm holds: ``<title>_metadata.json`` and one ``<title>_weights.*``; nothing else."""

InnerSource = tuple[IO[bytes], int]
"""An inner model read in place from a group: (seekable file object, its size in bytes)."""


def model_rules() -> TarRules:
    """The archive limits of a .scnm (see :mod:`ais_torch.formats.limits`)."""
    lim = limits()
    return TarRules(
        "model", ModelFormatError, lim.model_members, lim.member_bytes, lim.archive_bytes
    )


def read_members(
    path: str | os.PathLike, *, inner: InnerSource | None = None, label: str | None = None
) -> dict[str, bytes]:
    """The members of a .scnm, by name, read into memory once every header passed the checks.

    Refused before anything is read: compressed, sparse, linked, oversized or forged members
    (:func:`ais_torch.formats.archive.open_tar`), names with paths, and any member other than
    one ``*_metadata.json`` and one ``*_weights.safetensors``/``*_weights.h5``. ``inner`` reads
    a model inside a group in place; ``label`` names it in messages.
    """
    path = Path(path)
    label = label or str(path)
    if inner is None and not path.is_file():
        raise ModelFormatError(f"{label}: model file not found; check the path")
    with open_tar(inner or path, label, model_rules()) as (tar, members):
        files = [m for m in members if not m.isdir()]
        for member in members:
            _check_member(label, member)
        metadata = [m.name for m in files if m.name.endswith("_metadata.json")]
        if len(metadata) != 1:
            raise ModelFormatError(
                f"{label}: {len(metadata) or 'no'} '*_metadata.json' members inside (need one); "
                "not an Ais model (.scnm)"
            )
        weights = [m.name for m in files if m.name.endswith(MODEL_MEMBER_SUFFIXES[1:])]
        if len(weights) > 1:
            raise ModelFormatError(
                f"{label}: {len(weights)} weight members inside ({', '.join(weights)}); a model "
                "holds one"
            )
        return {m.name: read_member(tar, m, label, ModelFormatError) for m in files}


def is_plain_name(name: str) -> bool:
    """A bare file name: no folders, no ``..``, not absolute, no drive letter.

    Archive members and external-data references must pass this before anything is read, so a
    downloaded file can never make us read or write outside the place we chose.
    """
    parts = Path(name).parts
    return (
        bool(name)
        and not name.startswith(("/", "\\"))
        and len(parts) == 1
        and ".." not in parts
        and ":" not in name
    )


def _check_member(label: str, member: tarfile.TarInfo) -> None:
    name = member.name
    if not is_plain_name(name):
        raise ModelFormatError(
            f"{label}: archive member '{name}' has a path (absolute or with '..' or folders); "
            "refusing to open this model — it may be malicious"
        )
    if not member.isdir() and not name.endswith(MODEL_MEMBER_SUFFIXES):
        raise ModelFormatError(
            f"{label}: unexpected archive member '{name}' (a .scnm holds only "
            "<title>_metadata.json and <title>_weights.safetensors or .h5); refusing to open "
            "this model — get it from a trusted source"
        )


def _one(members: dict[str, bytes], suffix: str) -> tuple[str, bytes] | None:
    hits = [(n, b) for n, b in members.items() if n.endswith(suffix)]
    return hits[0] if len(hits) == 1 else None


def read_metadata(
    path: str | os.PathLike, *, inner: InnerSource | None = None, label: str | None = None
) -> ModelMetadata:
    """Only the metadata of a .scnm (cheap enough for listings); same checks as loading."""
    label = label or str(path)
    return metadata_from_members(label, read_members(path, inner=inner, label=label))


def metadata_from_members(source: str | Path, members: dict[str, bytes]) -> ModelMetadata:
    """The checked metadata of a model whose members :func:`read_members` returned."""
    hit = _one(members, "_metadata.json")
    if hit is None:
        raise ModelFormatError(
            f"{source}: no single '*_metadata.json' inside; not an Ais model (.scnm)"
        )
    lim = limits()
    raw = parse_json(
        hit[1],
        f"{source} [{hit[0]}]",
        ModelFormatError,
        max_bytes=lim.json_bytes,
        max_depth=lim.json_depth,
    )
    stem = hit[0][: -len("_metadata.json")]
    if _one(members, "_weights.h5") is not None and _one(members, "_weights.safetensors") is None:
        raw = normalise_original_metadata(raw, stem, source)
    else:
        raw = check_our_metadata(raw, source)
    return ModelMetadata.from_dict(raw, source)


# -- metadata written by the original Ais (any version) ------------------------------------------
_TYPED_FIELDS: dict[str, type] = {
    **dict.fromkeys(("title", "arch", "info", "info_short", "normalization"), str),
    **dict.fromkeys(("apix", "alpha", "threshold", "overlap", "excess_negative", "loss"), float),
    **dict.fromkeys(
        ("box_size", "model_depth", "model_enum", "epochs", "batch_size", "active_tab"), int
    ),
    **dict.fromkeys(("n_parameters", "n_copies", "z_jitter", "tta"), int),
    **dict.fromkeys(("compiled", "active", "blend", "show", "emit", "absorb"), bool),
}


def normalise_original_metadata(raw: Any, stem: str, source: str | Path) -> dict[str, Any]:
    """An original's metadata dict with missing fields filled and types checked.

    Why: files from every version of the original exist. Old ones lack fields (``arch``,
    ``model_depth``, ``normalization``, ...) or hold nulls; those get :class:`ModelMetadata`'s
    defaults, a missing title becomes the member's stem, and a missing ``arch`` is recovered
    from the ``info`` string or from ``model_enum`` (:func:`original_arch_title`). A value of
    the wrong type is a clear error rather than a crash later.
    """
    if not isinstance(raw, dict):
        raise ModelFormatError(f"{source}: model metadata is not a JSON object")
    out = {k: v for k, v in raw.items() if not (v is None and k in _TYPED_FIELDS)}
    if not out.get("title"):
        log.warning("%s: metadata has no title; using %r from the member name", source, stem)
        out["title"] = stem
    for key, kind in _TYPED_FIELDS.items():
        if key in out:
            out[key] = _coerce(out[key], kind, key, source)
    if "colour" in out:
        out["colour"] = _colour(out["colour"], source)
    if not out.get("arch"):
        title, how = original_arch_title(out)
        if title:
            log.warning("%s: metadata has no 'arch'; assuming %r from %s", source, title, how)
            out["arch"] = title
        else:
            log.warning("%s: architecture unknown (%s); rebuilt from the file's graph", source, how)
    return out


_OUR_TEXT_FIELDS = ("framework", "framework_version", "arch_name", "created")
_HPARAM_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def check_our_metadata(raw: object, source: str | Path) -> dict[str, Any]:
    """Our metadata with every known field of the right type, and plain hyper-parameters.

    Why: the metadata decides what gets built. A list where a mapping belongs, a string where a
    number belongs, or a hyper-parameter such as ``__class__`` must end in one line naming the
    field, not in a traceback (or worse) inside the architecture's constructor.
    """
    if not isinstance(raw, dict):
        raise ModelFormatError(f"{source}: model metadata is not a JSON object; not an Ais model")
    out = dict(raw)
    for key, kind in _TYPED_FIELDS.items():
        if key in out and out[key] is not None:
            out[key] = _coerce(out[key], kind, key, source)
        elif key in out:
            del out[key]
    for key in _OUR_TEXT_FIELDS:
        if key in out:
            out[key] = _coerce(out[key], str, key, source)
    if "colour" in out:
        out["colour"] = _colour(out["colour"], source)
    hparams = out.get("arch_hparams", {})
    if not isinstance(hparams, dict):
        raise ModelFormatError(
            f"{source}: metadata field 'arch_hparams' should be an object (name: value), got "
            f"{_short(hparams)}; the file is damaged — train or export it again"
        )
    for key, value in hparams.items():
        if not _HPARAM_KEY.match(key):
            raise ModelFormatError(
                f"{source}: hyper-parameter name {_short(key)} is not allowed (letters, digits "
                "and '_', starting with a letter); refusing this model"
            )
        if not _plain_value(value):
            raise ModelFormatError(
                f"{source}: hyper-parameter '{key}' is {_short(value)}; only numbers, text, "
                "true/false/null and lists or objects of those (with plain names) are allowed "
                "— refusing this model"
            )
    return out


def _plain_value(value: object) -> bool:
    """JSON scalars, and lists/objects of them (object keys named like hyper-parameters): all a
    hyper-parameter may be (the nesting was bounded when the JSON was parsed)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if not all(isinstance(k, str) and _HPARAM_KEY.match(k) for k in node):
                return False
            stack.extend(node.values())
        elif not isinstance(node, str | int | float | bool | type(None)):
            return False
    return True


def _short(value: object, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _coerce(value: Any, kind: type, key: str, source: str | Path) -> Any:
    if kind is bool:
        ok = isinstance(value, bool) or value in (0, 1)
    elif kind is int:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and float(value).is_integer()
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    try:
        if ok:
            return kind(value)
    except (OverflowError, ValueError):
        pass
    what = {bool: "true/false", int: "a whole number", float: "a number", str: "text"}[kind]
    raise ModelFormatError(
        f"{source}: metadata field '{key}' should be {what}, got {_short(value)}; the file is "
        "damaged — fix the field or export the model again"
    )


def _colour(value: Any, source: str | Path) -> list[float]:
    ok = isinstance(value, list) and len(value) in (3, 4)
    if not ok or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in value):
        raise ModelFormatError(
            f"{source}: metadata 'colour' should be 3 numbers, got {_short(value)}"
        )
    return [float(c) for c in value[:3]]


def _title_from_info(info: Any) -> str:
    """The known title an info string starts with: 'VGGNet M (5.1 Mp, ...)', '(VGGNet M, ...)'."""
    if not isinstance(info, str):
        return ""
    text = info.strip()
    title = text[1:].split(",", 1)[0] if text.startswith("(") else text.split(" (", 1)[0]
    known = set(ORIGINAL_PARAM_COUNTS) | {
        t for table in LEGACY_MODEL_ENUM.values() for t in table.values()
    }
    return title.strip() if title.strip() in known else ""


def original_arch_title(raw: dict[str, Any]) -> tuple[str, str]:
    """(architecture title, how it was found) for an original's metadata; ``("", why)`` if unknown.

    Order: the ``arch`` field; the title at the start of ``info``/``info_short``; ``model_enum``
    looked up in :data:`LEGACY_MODEL_ENUM`, keeping the version families whose title has the
    stored ``n_parameters`` and, among those, the first in :data:`LEGACY_FAMILY_PREFERENCE`.
    """
    arch = raw.get("arch")
    if isinstance(arch, str) and arch:
        return arch, "the 'arch' field"
    for key in ("info", "info_short"):
        title = _title_from_info(raw.get(key))
        if title:
            return title, f"the '{key}' string"
    enum = raw.get("model_enum")
    if not isinstance(enum, int) or isinstance(enum, bool) or enum < 0:
        return "", "no 'arch', 'info' or 'model_enum'"
    hits = [
        (f, LEGACY_MODEL_ENUM[f][enum])
        for f in LEGACY_FAMILY_PREFERENCE
        if enum in LEGACY_MODEL_ENUM[f]
    ]
    if not hits:
        return "", f"model_enum {enum} is in no known version's table"
    n = raw.get("n_parameters")
    agreeing = [(f, t) for f, t in hits if n in ORIGINAL_PARAM_COUNTS.get(t, ())]
    family, title = (agreeing or hits)[0]
    check = f"; n_parameters {n} agrees" if agreeing else "; n_parameters cannot confirm it"
    return title, f"model_enum {enum} read with the {family} version table{check}"


def save_scnm(path: str | os.PathLike, model: AisArch, metadata: ModelMetadata) -> Path:
    """Write ``model`` and ``metadata`` as a .scnm (atomically)."""
    from safetensors.torch import save

    import ais_torch

    path = Path(path)
    metadata.framework = FRAMEWORK
    metadata.framework_version = ais_torch.__version__
    metadata.created = metadata.created or time.strftime("%Y-%m-%dT%H:%M:%S")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = save(state, metadata={"format": "pt"})
    stem = metadata.title
    with atomic_output(path) as tmp, tarfile.open(tmp, mode="w") as tar:
        _add_bytes(tar, f"{stem}_metadata.json", metadata.to_json().encode("utf-8"))
        _add_bytes(tar, f"{stem}_weights.safetensors", weights)
    return path


def _add_bytes(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(payload))


def load_scnm(
    path: str | os.PathLike, *, inner: InnerSource | None = None, label: str | None = None
) -> tuple[AisArch | KerasModel, ModelMetadata]:
    """Open a .scnm: ours (safetensors) directly; the original's (Keras .h5) via the importer.

    ``inner``/``label``: a model inside a group, read in place (see :func:`read_members`).
    """
    label = label or str(path)
    members = read_members(path, inner=inner, label=label)
    metadata = metadata_from_members(label, members)
    weights = _one(members, "_weights.safetensors")
    if weights is not None:
        return _load_ours(label, metadata, weights), metadata
    h5 = _one(members, "_weights.h5")
    if h5 is not None:
        return _load_original(label, metadata, h5), metadata
    raise ModelFormatError(f"{label}: no '*_weights.safetensors' or '*_weights.h5' inside")


SAFETENSORS_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2}
SAFETENSORS_DTYPES |= {"I8": 1, "U8": 1, "BOOL": 1}


def safetensors_parameters(payload: bytes, source: str) -> int:
    """Element count from a safetensors header alone (:func:`safetensors_shapes`)."""
    return sum(math.prod(shape) for shape in safetensors_shapes(payload, source).values())


def safetensors_shapes(payload: bytes, source: str) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape from a safetensors header alone, after the checks the loader runs.

    The header (8-byte length + JSON) must fit in the payload and every tensor's dtype, shape
    and byte range must agree with each other and lie inside it; the loader runs this before
    handing the bytes to safetensors, and ``models info`` runs the same function.
    """
    if len(payload) < 8:
        raise ModelFormatError(f"{source}: weights file is truncated")
    (length,) = struct.unpack("<Q", payload[:8])
    if length > len(payload) - 8:
        raise ModelFormatError(f"{source}: weights header is longer than the file (truncated?)")
    lim = limits()
    header = parse_json(
        payload[8 : 8 + length],
        f"{source} (header)",
        ModelFormatError,
        max_bytes=lim.json_bytes,
        max_depth=4,
    )
    if not isinstance(header, dict):
        raise ModelFormatError(f"{source}: weights header is not a JSON object")
    data_bytes, shapes = len(payload) - 8 - length, {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            itemsize = SAFETENSORS_DTYPES[entry["dtype"]]
            shape, (begin, end) = entry["shape"], entry["data_offsets"]
            ints = [*shape, begin, end]
            if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in ints):
                raise ValueError("negative or non-integer shape/offsets")
            count = math.prod(shape)
            if not begin <= end <= data_bytes or end - begin != count * itemsize:
                raise ValueError(f"shape {shape} does not match bytes {begin}-{end}")
        except (KeyError, TypeError, ValueError) as err:
            raise ModelFormatError(
                f"{source}: weights header entry {_short(name)} is not valid ({err}); the file "
                "is damaged — export the model again"
            ) from None
        shapes[name] = tuple(shape)
    return shapes


def _load_original(
    path: str, metadata: ModelMetadata, member: tuple[str, bytes]
) -> AisArch | KerasModel:
    """The original's Keras model (read from memory), as our architecture where it matches.

    When it does, ``arch_name``/``arch_hparams`` are filled in, so saving the model as ours and
    opening it again rebuilds the same network.
    """
    from ais_torch.formats.keras.read import load_keras_model

    name, payload = member
    model = load_keras_model(
        payload,
        name=f"{path} ({name})",
        arch_title=metadata.arch or None,
        n_parameters=metadata.n_parameters or None,
    )
    if model.arch_name:
        metadata.arch_name = model.arch_name
        metadata.arch_hparams = dict(model.hparams)
    metadata.n_parameters = metadata.n_parameters or int(model.n_parameters)
    channels = int(model.hparams.in_channels)
    is_2d = int(getattr(model, "n_spatial_dims", 2)) == 2  # 3D slab nets keep their depth
    if is_2d and metadata.model_depth != channels:  # 2D/2.5D: input slices are channels
        log.warning(
            "%s: model_depth %s, but the network takes %s", path, metadata.model_depth, channels
        )
        metadata.model_depth = channels
    return model


def build_ours(path: str, metadata: ModelMetadata, member: tuple[str, bytes]) -> AisArch:
    """The network our metadata describes, its weights' header checked against it (no weight
    read yet): everything loading checks before the bytes go to safetensors, so
    ``ais-torch inspect info`` can run exactly this."""
    from ais_torch import archs

    name, payload = member
    if not metadata.arch_name:
        raise ModelFormatError(f"{path}: metadata names no architecture ('arch_name')")
    shapes = safetensors_shapes(payload, f"{path} [{name}]")
    try:
        model = archs.build(metadata.arch_name, **metadata.arch_hparams)
    except (AisError, TypeError, ValueError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise ModelFormatError(
            f"{path}: its metadata does not build architecture '{metadata.arch_name}' "
            f"({_short(first, 200)}); the file is damaged or needs a newer ais_torch or plugin"
        ) from None
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if wanted != shapes:
        odd = sorted(set(wanted) ^ set(shapes)) or [k for k in wanted if wanted[k] != shapes[k]]
        raise ModelFormatError(
            f"{path}: weights do not fit architecture '{metadata.arch_name}' (first mismatch: "
            f"{_short(odd[0])}); the file is damaged — export the model again"
        )
    return model


def _load_ours(path: str, metadata: ModelMetadata, member: tuple[str, bytes]) -> AisArch:
    from safetensors import SafetensorError
    from safetensors.torch import load

    model = build_ours(path, metadata, member)
    try:
        state = load(member[1])
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError) as err:
        first = str(err).splitlines()[0]
        raise ModelFormatError(
            f"{path}: weights do not fit architecture '{metadata.arch_name}' ({first})"
        ) from None
    return model.eval()
