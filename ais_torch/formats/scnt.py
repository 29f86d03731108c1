"""The original Ais's training sets (``.scnt``): read both formats, write the current one.

* **1.2 tar** (current): an uncompressed tar holding ``metadata.json``, ``sources.json``
  (one entry per box, keyed by ``md5("{tomogram}_{feature}_{z}_{y}_{x}")[:16]``),
  ``x_main/<hash>.mrc`` (float32 ``(D, B, B)``, already normalised as ``metadata.normalization``
  says) and ``y/<hash>.mrc`` (float32 ``(B, B)``: 0 / 1 / 2 = ignore). The original's 3D
  sets (``box_depth`` > 1, Ais 1.2.40) store ``box_depth + z_jitter`` slices with the box's
  slice at ``D // 2`` and a label slab ``(D, B, B)``; we keep that slice's label (other slices'
  labels, mostly 2, are not used).
* **legacy TIFF** (up to 1.1): a float64 array ``(N, D+1, B, B)`` = D image slices then the
  label, raw intensities, page description ``apix=XX.XX``. Read only.

Members are read straight from the archive (never extracted); members with absolute or ``..``
paths, links, devices and sparse members are refused, and every size (member headers, each
box's MRC header, the decoded set) is checked against the file and the limits of
:mod:`ais_torch.formats.limits` before anything is read, so a hostile or corrupt file cannot
write anywhere or exhaust memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import tarfile
import tempfile
import time
import warnings
from pathlib import Path, PurePosixPath
from typing import Any

import mrcfile
import mrcfile.mrcinterpreter
import mrcfile.utils
import numpy as np

from ais_torch.errors import AisInputError
from ais_torch.formats.archive import TarRules, compression_of, open_tar, parse_json, read_member
from ais_torch.formats.atomic import atomic_output
from ais_torch.formats.boxset import BoxSet
from ais_torch.formats.limits import ENV, human, limits
from ais_torch.formats.mrc import MrcHeader, parse_mrc_header

_TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_NOT_SCNT = "not an Ais training set (.scnt)"
# original sources.json key -> ours
_SOURCE_KEYS = {
    "aisTomogramName": "tomogram",
    "aisTomogramPath": "path",
    "aisBoxCoordinateZ": "z",
    "aisBoxCoordinateY": "y",
    "aisBoxCoordinateX": "x",
    "aisFeatureName": "feature",
    "aisNegative": "negative",
    "aisBoxSizeExtracted": "box_size",
    "aisBoxSizeAnnotate": "box_size_annotate",
}


def box_hash(tomogram: str, feature: str, z: int, y: int, x: int) -> str:
    """The original's per-box id: first 16 hex digits of md5 of ``tomo_feature_z_y_x``."""
    return hashlib.md5(f"{tomogram}_{feature}_{z}_{y}_{x}".encode()).hexdigest()[:16]


def training_rules(max_bytes: int | None = None) -> TarRules:
    """The archive limits of a .scnt (see :mod:`ais_torch.formats.limits`)."""
    lim = limits()
    total = lim.training_set_bytes if max_bytes is None else int(max_bytes)
    return TarRules(
        "training set",
        AisInputError,
        lim.training_members,
        min(lim.member_bytes, total),
        total,
        members_field="training_members",
        member_field="member_bytes" if lim.member_bytes <= total else "training_set_bytes",
        total_field="training_set_bytes",
    )


def read_scnt(
    path: str | os.PathLike, *, apix: float | None = None, max_bytes: int | None = None
) -> BoxSet:
    """Read a ``.scnt`` training set (1.2 tar or legacy TIFF) as a :class:`BoxSet`.

    ``apix`` is used only when the file records no pixel size (some legacy TIFFs).
    ``max_bytes`` overrides the training-set limit (``AIS_TORCH_MAX_TRAINING_SET_BYTES``).
    """
    path = Path(path)
    if not path.exists():
        raise AisInputError(f"{path}: training set not found; check the path")
    if path.is_dir():
        raise AisInputError(f"{path}: is a folder; give the .scnt file inside it")
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if magic[:4] in _TIFF_MAGICS:
        return _read_legacy_tiff(path, apix)
    if compression_of(magic) is None and not _looks_like_tar(path):
        raise AisInputError(
            f"{path}: {_NOT_SCNT} — neither a tar (Ais 1.2) nor a TIFF (older Ais); "
            "create it with Ais or ais_torch"
        )
    with open_tar(path, str(path), training_rules(max_bytes)) as (tar, infos):
        return _read_tar(path, tar, infos, apix)


def _looks_like_tar(path: Path) -> bool:
    """The first header block's checksum is valid (what ``tarfile.is_tarfile`` tests, cheaply)."""
    with open(path, "rb") as fh:
        block = fh.read(512)
    if len(block) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def _read_tar(
    path: Path, tar: tarfile.TarFile, infos: list[tarfile.TarInfo], apix: float | None
) -> BoxSet:
    members: dict[str, tarfile.TarInfo] = {}
    for info in infos:
        name = info.name.removeprefix("./")
        parts = PurePosixPath(name).parts
        if name.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", name):
            raise AisInputError(
                f"{path}: member {info.name!r} has an absolute or '..' path; refusing to read "
                "this training set (it was not made by Ais)"
            )
        if info.isfile():
            members[name] = info
    if "metadata.json" not in members:
        raise AisInputError(f"{path}: {_NOT_SCNT} — the archive has no metadata.json")
    meta = _read_json(tar, members["metadata.json"], path)
    sources = _read_json(tar, members["sources.json"], path) if "sources.json" in members else {}
    if not isinstance(meta, dict) or not isinstance(sources, dict):
        raise AisInputError(
            f"{path}: {_NOT_SCNT} — metadata.json/sources.json are not JSON objects"
        )
    flavour = str(meta.get("annotated_flavour") or "x_main")
    if not any(n.startswith(f"{flavour}/") for n in members):
        flavour = "x_main"
    hashes = list(sources) or sorted(
        n[len("y/") : -len(".mrc")] for n in members if n.startswith("y/") and n.endswith(".mrc")
    )
    if not hashes:
        raise AisInputError(f"{path}: the training set holds no boxes; extract it again")
    pairs = []
    for h in hashes:
        x_name, y_name = f"{flavour}/{h}.mrc", f"y/{h}.mrc"
        if x_name not in members or y_name not in members:
            raise AisInputError(
                f"{path}: box {_short(h)} lacks {x_name} or {y_name}; the training set is "
                "incomplete, extract it again"
            )
        pairs.append((h, members[x_name], members[y_name]))
    shape = _check_boxes(path, tar, pairs)
    images = np.empty((len(pairs), *shape), np.float32)  # bounded by _check_boxes
    labels = np.empty((len(pairs), *shape[1:]), np.uint8)
    srcs = []
    for i, (h, x_info, y_info) in enumerate(pairs):
        x = _read_mrc_member(tar, x_info, path)
        y = _read_mrc_member(tar, y_info, path)
        x = x[None] if x.ndim == 2 else x
        y = y.reshape(y.shape[-2:]) if y.ndim == 3 and y.shape[0] == 1 else y
        if y.ndim == 3 and y.shape[0] == x.shape[0]:  # a 3D set's label slab: its box's slice
            y = y[x.shape[0] // 2]
        if x.shape != shape or y.shape != shape[1:]:
            raise AisInputError(
                f"{path}: box {h} has image {x.shape} and label {y.shape}; expected {shape} "
                f"and {shape[1:]} like the first box — the training set is damaged"
            )
        images[i] = x
        labels[i] = _labels_012(y, path, y_info.name)
        source = sources.get(h, {})
        srcs.append(_our_source(source if isinstance(source, dict) else {}, h))
    feature = _feature_name(meta, srcs, path)
    return BoxSet(
        images=images,
        labels=labels,
        apix=_apix(meta.get("apix"), apix, path),
        feature=feature,
        sources=srcs,
        normalization=str(meta.get("normalization", "none")),
    )


def _check_boxes(
    path: Path, tar: tarfile.TarFile, pairs: list[tuple[str, tarfile.TarInfo, tarfile.TarInfo]]
) -> tuple[int, int, int]:
    """The box shape ``(D, B, B)`` after checking every box's MRC headers (1 KB each) against
    their member sizes and the box limits, and the decoded set against the training-set limit,
    before any box is read."""
    lim = limits()
    shape: tuple[int, int, int] | None = None
    for h, x_info, y_info in pairs:
        x = _member_header(tar, x_info, path)
        y = _member_header(tar, y_info, path)
        x_shape = x.shape if len(x.shape) == 3 else (1, *x.shape)
        d, b1, b2 = x_shape
        if max(b1, b2) > lim.box_px or d > lim.box_depth:
            raise AisInputError(
                f"{path}: box {_short(h)} is {d}×{b1}×{b2} voxels, above the limit of "
                f"{lim.box_depth}×{lim.box_px}×{lim.box_px}; the file is damaged or forged (if "
                f"you trust it, raise {ENV['box_px']} / {ENV['box_depth']})"
            )
        slab_label = len(y.shape) == 3 and y.shape[0] == d  # the original's 3D sets (Ais 1.2.40)
        if y.shape[-2:] != (b1, b2) or (math.prod(y.shape[:-2]) != 1 and not slab_label):
            raise AisInputError(
                f"{path}: box {_short(h)} has image {x_shape} and label {y.shape}; expected "
                "(D, B, B) and (B, B) or (D, B, B) — the training set is damaged"
            )
        if shape is None:
            shape = (d, b1, b2)
            decoded = len(pairs) * (d * b1 * b2 * 4 + b1 * b2)
            if decoded > lim.training_set_bytes:
                raise AisInputError(
                    f"{path}: {len(pairs)} boxes of {d}×{b1}×{b2} need {human(decoded)} in "
                    f"memory, above the {human(lim.training_set_bytes)} limit (if you trust "
                    f"this file, raise {ENV['training_set_bytes']})"
                )
        elif (d, b1, b2) != shape:
            raise AisInputError(
                f"{path}: box {_short(h)} is {(d, b1, b2)} but earlier boxes are {shape}; "
                "the training set is damaged"
            )
    assert shape is not None
    return shape


def _member_header(tar: tarfile.TarFile, info: tarfile.TarInfo, path: Path) -> MrcHeader:
    """An MRC member's header, its claimed size checked against the member's real size."""
    handle = tar.extractfile(info)
    if handle is None:
        raise AisInputError(f"{path}: member {info.name} cannot be read")
    with handle:
        head = handle.read(1024)
    label = f"{path} [{info.name}]"
    header = parse_mrc_header(head, label)
    if header.total_bytes > info.size:
        raise AisInputError(
            f"{label}: MRC header promises {header.total_bytes} bytes but the member holds "
            f"{info.size}; the training set is damaged or forged — extract it again"
        )
    return header


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _read_json(tar: tarfile.TarFile, info: tarfile.TarInfo, path: Path) -> object:
    lim = limits()
    return parse_json(
        read_member(tar, info, str(path), AisInputError),
        f"{path} [{info.name}]",
        AisInputError,
        max_bytes=lim.json_bytes,
        max_depth=lim.json_depth,
    )


def _read_mrc_member(tar: tarfile.TarFile, info: tarfile.TarInfo, path: Path) -> np.ndarray:
    raw = read_member(tar, info, str(path), AisInputError)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with mrcfile.mrcinterpreter.MrcInterpreter(
                iostream=io.BytesIO(raw), permissive=True
            ) as mrc:
                data = None if mrc.data is None else np.array(mrc.data)
    except (ValueError, OSError, EOFError, TypeError) as err:
        raise AisInputError(f"{path}: {info.name} is not a readable MRC box ({err})") from None
    if data is None:
        raise AisInputError(f"{path}: {info.name} is not a readable MRC box (no data)")
    return data.astype(data.dtype.newbyteorder("="), copy=False)


def _labels_012(y: np.ndarray, path: Path, name: str) -> np.ndarray:
    if not np.isin(y, (0, 1, 2)).all():
        bad = y[~np.isin(y, (0, 1, 2))].flat[0]
        raise AisInputError(
            f"{path}: {name} holds label value {bad}; labels must be 0, 1 or 2 "
            "(the training set is damaged or from an unknown version)"
        )
    return y.astype(np.uint8)


def _our_source(src: dict[str, Any], h: str) -> dict[str, Any]:
    out: dict[str, Any] = {"hash": h}
    for key, value in src.items():
        out[_SOURCE_KEYS.get(key, key)] = value
    return out


def _feature_name(meta: dict[str, Any], sources: list[dict[str, Any]], path: Path) -> str:
    features = meta.get("features")
    if isinstance(features, list) and features:
        return "+".join(str(f) for f in features)
    names = list(dict.fromkeys(str(s["feature"]) for s in sources if s.get("feature")))
    return "+".join(names) if names else path.stem


def _apix(recorded: Any, override: float | None, path: Path) -> float:
    try:
        value = float(recorded)
    except (TypeError, ValueError):
        value = 0.0
    if np.isfinite(value) and value > 0:
        return value
    if override is not None and np.isfinite(override) and override > 0:
        return float(override)
    raise AisInputError(
        f"{path}: the training set records no pixel size; pass apix=<Å per pixel> to read it"
    )


# -- legacy TIFF ----------------------------------------------------------------------------


def _read_legacy_tiff(path: Path, apix: float | None) -> BoxSet:
    """(N, D+1, B, B) float64 TIFF: D raw image slices, then the label.

    Labels that are exactly 0/1/2 are kept; anything else (the 1.0.x masks were zoomed with a
    cubic spline, so they hold values like 0.97) is thresholded at 0.5 into 0/1, since those
    versions had no ignore label.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            arr = tif.asarray()
            descriptions = [str(tag.value) for tag in tif.pages[0].tags.values() if tag.code == 270]
    except Exception as err:  # tifffile raises many types for damaged files
        raise AisInputError(f"{path}: {_NOT_SCNT} — unreadable TIFF ({err})") from None
    if arr.ndim == 3 and arr.shape[0] % 2 == 0:
        arr = arr.reshape(-1, 2, *arr.shape[1:])  # pages without shape metadata: [image, label]*
    if arr.ndim != 4 or arr.shape[1] < 2 or arr.shape[2] != arr.shape[3]:
        raise AisInputError(
            f"{path}: {_NOT_SCNT} — TIFF of shape {arr.shape}, expected (N, D+1, B, B)"
        )
    if not np.isfinite(arr).all():
        raise AisInputError(f"{path}: training set contains NaN/Inf values; extract it again")
    recorded = None
    for text in descriptions:
        m = re.search(r"apix\s*=\s*([-+0-9.eE]+)", text)
        if m:
            recorded = m.group(1)
            break
    lab = arr[:, -1]
    labels = lab.astype(np.uint8) if np.isin(lab, (0, 1, 2)).all() else (lab > 0.5).astype(np.uint8)
    feature = _legacy_feature(path)
    sources = [
        {"tomogram": path.stem, "path": str(path), "z": i, "y": 0, "x": 0, "feature": feature}
        for i in range(arr.shape[0])
    ]
    return BoxSet(
        images=arr[:, :-1].astype(np.float32),
        labels=labels,
        apix=_apix(recorded, apix, path),
        feature=feature,
        sources=sources,
        normalization="none",
    )


def _legacy_feature(path: Path) -> str:
    """``{box}_{apix:.3f}_{feature}.scnt`` (the old GUI's default name) → feature."""
    parts = path.stem.split("_", 2)
    if len(parts) == 3 and parts[0].isdigit():
        try:
            float(parts[1])
        except ValueError:
            return path.stem
        return parts[2]
    return path.stem


# -- writing --------------------------------------------------------------------------------


def write_scnt(path: str | os.PathLike, boxes: BoxSet, *, overwrite: bool = True) -> Path:
    """Write ``boxes`` as a 1.2 tar ``.scnt`` (readable by the original Ais 1.2 and by us).

    Written atomically: a crash leaves no partial file. Box ids follow the original
    (md5 of ``tomo_feature_z_y_x``); should two boxes share all of these (e.g. pooled sets from
    same-named tomograms), the later one's id is salted with a counter to keep names unique.
    """
    path = Path(path)
    if len(boxes) == 0:
        raise AisInputError(f"{path}: no boxes to write; extract some training data first")
    b, d = boxes.box_size, boxes.depth
    x_header = _mrc_header((d, b, b), boxes.apix)
    y_header = _mrc_header((b, b), boxes.apix)
    sources: dict[str, dict[str, Any]] = {}
    ids: list[str] = []
    for i, src in enumerate(boxes.sources):
        tomo = str(src.get("tomogram") or "boxes")
        feature = str(src.get("feature") or boxes.feature)
        z, y, x = (int(src.get(k, default)) for k, default in (("z", i), ("y", 0), ("x", 0)))
        h = box_hash(tomo, feature, z, y, x)
        n = 0
        while h in sources:
            n += 1
            h = box_hash(tomo, feature, z, y, f"{x}#{n}")  # type: ignore[arg-type]
        ids.append(h)
        sources[h] = {
            "aisTomogramName": tomo,
            "aisTomogramPath": str(src.get("path") or ""),
            "aisBoxCoordinateZ": z,
            "aisBoxCoordinateY": y,
            "aisBoxCoordinateX": x,
            "aisBoxSizeAnnotate": int(src.get("box_size_annotate", src.get("box_size", b))),
            "aisBoxSizeExtracted": int(src.get("box_size", b)),
            "aisFeatureName": feature,
            "aisNegative": bool(src.get("negative", not bool((boxes.labels[i] == 1).any()))),
        }
    features = list(dict.fromkeys(s["aisFeatureName"] for s in sources.values()))
    metadata = {
        "format_version": 1,
        "apix": float(boxes.apix),
        "box_size": b,
        "box_depth": d,
        "z_jitter": 0,
        "features": features,
        "n_samples": len(boxes),
        "input_flavours": ["x_main"],
        "annotated_flavour": "x_main",
        "normalization": boxes.normalization,
    }
    mtime = int(time.time())
    with atomic_output(path, overwrite=overwrite) as tmp, tarfile.open(tmp, "w") as tar:
        _add(tar, "metadata.json", json.dumps(metadata, indent=2).encode(), mtime)
        _add(tar, "sources.json", json.dumps(sources, indent=2).encode(), mtime)
        for i, h in enumerate(ids):
            _add(tar, f"x_main/{h}.mrc", _mrc_bytes(x_header, boxes.images[i]), mtime)
            _add(tar, f"y/{h}.mrc", _mrc_bytes(y_header, boxes.labels[i]), mtime)
    return path


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o644
    tar.addfile(info, io.BytesIO(data))


def _mrc_header(shape: tuple[int, ...], apix: float) -> np.recarray:
    """A float32 MRC header for boxes of ``shape`` made by mrcfile (2D → image, 3D → volume)."""
    with tempfile.TemporaryDirectory() as folder:
        with mrcfile.new(Path(folder) / "template.mrc") as mrc:
            mrc.set_data(np.zeros(shape, np.float32))
            mrc.voxel_size = float(apix)
            return mrc.header.copy()


def _mrc_bytes(header: np.recarray, data: np.ndarray) -> bytes:
    """One MRC file in memory: ``header`` with this box's statistics, then the data."""
    values = np.ascontiguousarray(data, dtype=mrcfile.utils.data_dtype_from_header(header))
    h = header.copy()
    h.dmin, h.dmax = values.min(), values.max()
    h.dmean, h.rms = values.mean(dtype=np.float64), values.std(dtype=np.float64)
    return h.tobytes() + values.tobytes()
