"""``.scnm`` model files: an uncompressed tar of ``<title>_metadata.json`` plus weights.

Ours hold ``<title>_weights.safetensors`` (no pickle, so opening a downloaded model never runs
code); the original Ais's hold ``<title>_weights.h5`` (Keras). The reader looks at what the tar
contains and dispatches; it never extracts to disk and refuses members with path components.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ais_torch.errors import ModelFormatError
from ais_torch.io.atomic import atomic_output

if TYPE_CHECKING:
    from ais_torch.archs.base import AisArch

FRAMEWORK = "ais_torch"
MAX_MEMBER_BYTES = 4 * 1024**3
# model_enum as written by the original Ais 1.2.40 (seen in its .scnm files); it is an index
# into an installation-dependent list, kept only so the original shows the right name.
ORIGINAL_MODEL_ENUM = {"UNet S": 8, "VGGNet M": 10, "VGGNet S": 11}


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


def _check_member(path: Path, member: tarfile.TarInfo) -> None:
    name = member.name
    parts = Path(name).parts
    if name.startswith(("/", "\\")) or ".." in parts or len(parts) != 1 or ":" in name:
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
    return ModelMetadata.from_dict(raw, path)


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


def load_scnm(path: str | os.PathLike) -> tuple[AisArch, ModelMetadata]:
    """Open a .scnm: ours (safetensors) directly; the original's (Keras .h5) via the importer."""
    path = Path(path)
    members = read_members(path)
    metadata = _metadata_from_members(path, members)
    weights = _one(members, "_weights.safetensors")
    if weights is not None:
        return _load_ours(path, metadata, weights[1]), metadata
    if _one(members, "_weights.h5") is not None:
        raise ModelFormatError(
            f"{path}: is an original Ais (Keras) model; Keras import is not available in this "
            "version of ais_torch yet"
        )
    raise ModelFormatError(f"{path}: no '*_weights.safetensors' or '*_weights.h5' inside")


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
