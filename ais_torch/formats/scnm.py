"""``.scnm`` model files: an uncompressed tar of ``<title>_metadata.json`` plus weights.

Ours hold ``<title>_weights.safetensors`` (no pickle, so opening a downloaded model never runs
code); the original Ais's hold ``<title>_weights.h5`` (Keras). The reader looks at what the tar
contains and dispatches; it never extracts to disk and refuses members with path components.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ais_torch.errors import ModelFormatError
from ais_torch.formats.atomic import atomic_output

if TYPE_CHECKING:
    from ais_torch.archs.base import AisArch
    from ais_torch.formats.keras.read import KerasModel

log = logging.getLogger("ais_torch.formats.scnm")

FRAMEWORK = "ais_torch"
MAX_MEMBER_BYTES = 4 * 1024**3
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


def read_members(path: str | os.PathLike) -> dict[str, bytes]:
    """All regular-file members of a tar, by name, read into memory; refuses unsafe names."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: model file not found; check the path")
    try:
        with tarfile.open(path, mode="r:*") as tar:
            out: dict[str, bytes] = {}
            for member in tar.getmembers():
                _check_member(path, member)
                if member.isdir():
                    continue
                handle = tar.extractfile(member)
                if handle is None:
                    continue
                out[member.name] = handle.read()
            return out
    except (tarfile.TarError, EOFError, OSError) as err:
        raise ModelFormatError(f"{path}: not a readable .scnm archive ({err})") from None


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


def _check_member(path: Path, member: tarfile.TarInfo) -> None:
    name = member.name
    if not is_plain_name(name):
        raise ModelFormatError(
            f"{path}: archive member '{name}' has a path (absolute or with '..' or folders); "
            "refusing to open this model — it may be malicious"
        )
    if not (member.isfile() or member.isdir()):
        raise ModelFormatError(
            f"{path}: archive member '{name}' is a link or device; refusing to open this model"
        )
    if member.size > MAX_MEMBER_BYTES:
        raise ModelFormatError(f"{path}: archive member '{name}' is implausibly large")


def _one(members: dict[str, bytes], suffix: str) -> tuple[str, bytes] | None:
    hits = [(n, b) for n, b in members.items() if n.endswith(suffix)]
    return hits[0] if len(hits) == 1 else None


def read_metadata(path: str | os.PathLike) -> ModelMetadata:
    """Only the metadata of a .scnm (cheap enough for listings)."""
    return _metadata_from_members(Path(path), read_members(path))


def _metadata_from_members(path: Path, members: dict[str, bytes]) -> ModelMetadata:
    hit = _one(members, "_metadata.json")
    if hit is None:
        raise ModelFormatError(
            f"{path}: no single '*_metadata.json' inside; not an Ais model (.scnm)"
        )
    try:
        raw = json.loads(hit[1].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFormatError(f"{path}: model metadata is not valid JSON ({err})") from None
    if _one(members, "_weights.h5") is not None and _one(members, "_weights.safetensors") is None:
        stem = hit[0][: -len("_metadata.json")]
        raw = normalise_original_metadata(raw, stem, path)
    return ModelMetadata.from_dict(raw, path)


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
    if not ok:
        raise ModelFormatError(
            f"{source}: metadata field '{key}' should be {kind.__name__}, got {value!r}"
        )
    return kind(value)


def _colour(value: Any, source: str | Path) -> list[float]:
    ok = isinstance(value, list) and len(value) in (3, 4)
    if not ok or not all(isinstance(c, int | float) and not isinstance(c, bool) for c in value):
        raise ModelFormatError(f"{source}: metadata 'colour' should be 3 numbers, got {value!r}")
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


def load_scnm(path: str | os.PathLike) -> tuple[AisArch | KerasModel, ModelMetadata]:
    """Open a .scnm: ours (safetensors) directly; the original's (Keras .h5) via the importer."""
    path = Path(path)
    members = read_members(path)
    metadata = _metadata_from_members(path, members)
    weights = _one(members, "_weights.safetensors")
    if weights is not None:
        return _load_ours(path, metadata, weights[1]), metadata
    h5 = _one(members, "_weights.h5")
    if h5 is not None:
        return _load_original(path, metadata, h5), metadata
    raise ModelFormatError(f"{path}: no '*_weights.safetensors' or '*_weights.h5' inside")


def _load_original(
    path: Path, metadata: ModelMetadata, member: tuple[str, bytes]
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
    is_2d = getattr(getattr(model, "graph", None), "n_spatial", 2) == 2
    if is_2d and metadata.model_depth != channels:  # 2D/2.5D: input slices are channels
        log.warning(
            "%s: model_depth %s, but the network takes %s", path, metadata.model_depth, channels
        )
        metadata.model_depth = channels
    return model


def _load_ours(path: Path, metadata: ModelMetadata, payload: bytes) -> AisArch:
    from safetensors import SafetensorError
    from safetensors.torch import load

    from ais_torch import archs

    if not metadata.arch_name:
        raise ModelFormatError(f"{path}: metadata names no architecture ('arch_name')")
    model = archs.build(metadata.arch_name, **metadata.arch_hparams)
    try:
        state = load(payload)
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError) as err:
        first = str(err).splitlines()[0]
        raise ModelFormatError(
            f"{path}: weights do not fit architecture '{metadata.arch_name}' ({first})"
        ) from None
    return model.eval()
