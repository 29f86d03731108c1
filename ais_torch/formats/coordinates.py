"""Particle coordinate files: plain TSV and RELION STAR.

Coordinates are ``(N, 3)`` arrays in **x, y, z voxel** order (0-based, the tomogram's grid), the
order every picking tool and RELION use, even though volumes are indexed ``(z, y, x)``.
Writers are atomic (temp file + rename) so a crash never leaves half a coordinate list that a
later step would silently read as "fewer particles". An empty list still makes a valid file: a
tomogram with no picks is an answer, not an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ais_torch.errors import AisInputError
from ais_torch.formats.atomic import atomic_output

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping, Sequence

    import numpy.typing as npt

TSV_COLUMNS = ("x", "y", "z")
STAR_COORDS = ("rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ")
STAR_CENTERED = (
    "rlnCenteredCoordinateXAngst",
    "rlnCenteredCoordinateYAngst",
    "rlnCenteredCoordinateZAngst",
)
STAR_ANGLES = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
STAR_BLOCK = "particles"


def _as_xyz(xyz: npt.ArrayLike, what: str) -> np.ndarray:
    """(N, 3) float64; an empty input of any shape becomes (0, 3)."""
    arr = np.asarray(xyz, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 3), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise AisInputError(f"{what}: coordinates must be an (N, 3) x/y/z array, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise AisInputError(f"{what}: coordinates contain NaN/Inf; drop those rows first")
    return arr


def write_coordinates_tsv(
    path: str | os.PathLike, xyz: npt.ArrayLike, *, decimals: int = 3, overwrite: bool = True
) -> Path:
    """Write ``x\\ty\\tz`` with one header line (spreadsheet- and pandas-friendly)."""
    path = Path(path)
    arr = _as_xyz(xyz, str(path))
    lines = ["\t".join(TSV_COLUMNS)]
    lines += ["\t".join(f"{v:.{decimals}f}" for v in row) for row in arr]
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_coordinates_tsv(path: str | os.PathLike) -> np.ndarray:
    """Read a TSV with a header naming ``x``, ``y``, ``z`` (any order, extra columns ignored)."""
    path = Path(path)
    if not path.is_file():
        raise AisInputError(f"{path}: coordinate file not found; check the path")
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise AisInputError(f"{path}: empty file; expected a header line 'x<TAB>y<TAB>z'")
    header = [h.strip().lower() for h in lines[0].split("\t")]
    try:
        cols = [header.index(c) for c in TSV_COLUMNS]
    except ValueError:
        raise AisInputError(
            f"{path}: header {lines[0]!r} lacks x, y and z columns; "
            "write a tab-separated header line 'x<TAB>y<TAB>z'"
        ) from None
    rows = []
    for n, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        try:
            rows.append([float(fields[c]) for c in cols])
        except (ValueError, IndexError):
            raise AisInputError(
                f"{path}: line {n} ({line!r}) is not three tab-separated numbers"
            ) from None
    return _as_xyz(rows, str(path))


def write_star(
    path: str | os.PathLike,
    xyz: npt.ArrayLike,
    *,
    tomo_name: str,
    voxel_size_A: float | None = None,
    shape_zyx: Sequence[int] | None = None,
    angles: npt.ArrayLike | None = None,
    extra: Mapping[str, npt.ArrayLike] | None = None,
    overwrite: bool = True,
) -> Path:
    """Write a RELION particle STAR file (block ``particles``).

    Always writes RELION-3/4 voxel coordinates ``rlnCoordinateX/Y/Z`` with ``rlnMicrographName``
    and ``rlnTomoName`` (what Ais, Warp and older RELION read). With ``voxel_size_A`` and
    ``shape_zyx`` it adds RELION-5's ``rlnCenteredCoordinate{X,Y,Z}Angst`` =
    ``(coordinate − size / 2) · voxel size``, so RELION 5 can import the same file.
    ``angles`` is an optional ``(N, 3)`` array of rot/tilt/psi in degrees; ``extra`` maps column
    names to a scalar or one value per particle (e.g. ``{"aisParticleSize": scores}``).
    """
    import pandas as pd
    import starfile

    path = Path(path)
    arr = _as_xyz(xyz, str(path))
    n = len(arr)
    columns: dict[str, np.ndarray] = {name: arr[:, i] for i, name in enumerate(STAR_COORDS)}
    columns["rlnMicrographName"] = np.full(n, tomo_name, dtype=object)
    columns["rlnTomoName"] = np.full(n, tomo_name, dtype=object)
    if voxel_size_A is not None:
        if shape_zyx is None or len(shape_zyx) != 3:
            raise AisInputError(
                f"{path}: RELION-5 centred coordinates need the tomogram shape; "
                "pass shape_zyx=(z, y, x) with voxel_size_A"
            )
        if not np.isfinite(voxel_size_A) or voxel_size_A <= 0:
            raise AisInputError(f"{path}: voxel size {voxel_size_A} Å must be > 0")
        size_xyz = np.asarray(shape_zyx[::-1], dtype=np.float64)
        centred = (arr - size_xyz / 2.0) * float(voxel_size_A)
        for i, name in enumerate(STAR_CENTERED):
            columns[name] = centred[:, i]
    if angles is not None:
        ang = np.asarray(angles, dtype=np.float64).reshape(-1, 3) if n else np.zeros((0, 3))
        if len(ang) != n:
            raise AisInputError(f"{path}: {len(ang)} angle triplets for {n} particles")
        for i, name in enumerate(STAR_ANGLES):
            columns[name] = ang[:, i]
    for name, values in (extra or {}).items():
        vals = np.asarray(values)
        if vals.ndim == 0:
            vals = np.full(
                n, vals.item(), dtype=vals.dtype if vals.dtype.kind in "iufb" else object
            )
        if len(vals) != n:
            raise AisInputError(f"{path}: column {name!r} has {len(vals)} values for {n} particles")
        columns[name] = vals
    df = pd.DataFrame(columns)
    with atomic_output(path, overwrite=overwrite) as tmp:
        starfile.write({STAR_BLOCK: df}, tmp, float_format="%.3f")
    return path


def read_star(path: str | os.PathLike) -> np.ndarray:
    """Read ``rlnCoordinateX/Y/Z`` (voxels) from the particle block of a STAR file as (N, 3) x/y/z.

    Takes block ``particles`` when present, else the first block with those columns, so files
    written by Ais (``data_particles``), RELION 3/4 and most pickers all work.
    """
    import pandas as pd
    import starfile

    path = Path(path)
    if not path.is_file():
        raise AisInputError(f"{path}: STAR file not found; check the path")
    try:
        blocks = starfile.read(path, always_dict=True)
    except Exception as err:  # starfile raises a zoo of parser errors
        raise AisInputError(f"{path}: not a readable STAR file ({err})") from None
    # Simple (non-loop) blocks come back as dicts: one particle written as key-value pairs.
    tables = {k: pd.DataFrame([b]) if isinstance(b, dict) else b for k, b in blocks.items()}
    candidates = [tables[STAR_BLOCK]] if STAR_BLOCK in tables else []
    candidates += [b for k, b in tables.items() if k != STAR_BLOCK]
    for block in candidates:
        if hasattr(block, "columns") and all(c in block.columns for c in STAR_COORDS):
            try:
                values = block[list(STAR_COORDS)].to_numpy(dtype=np.float64)
            except (TypeError, ValueError):
                raise AisInputError(f"{path}: rlnCoordinateX/Y/Z hold non-numbers") from None
            return _as_xyz(values, str(path))
    if any(hasattr(b, "columns") and STAR_CENTERED[0] in b.columns for b in tables.values()):
        raise AisInputError(
            f"{path}: has only RELION-5 centred Å coordinates; convert them to voxels "
            "(x = X_Å / voxel size + size_x / 2) and write rlnCoordinateX/Y/Z"
        )
    raise AisInputError(f"{path}: no block with rlnCoordinateX/Y/Z columns")


def write_coordinates_txt(
    path: str | os.PathLike, xyz: npt.ArrayLike, *, overwrite: bool = True
) -> Path:
    """The paper's picking output: ``x<TAB>y<TAB>z`` integers, no header, one particle a line.

    Values are rounded to the nearest integer (halves up), as the paper describes; an empty list
    makes an empty file.
    """
    path = Path(path)
    arr = np.floor(_as_xyz(xyz, str(path)) + 0.5).astype(np.int64)
    text = "".join("\t".join(str(v) for v in row) + "\n" for row in arr)
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _read_headerless(path: Path, lines: list[str]) -> np.ndarray:
    rows = []
    for n, line in enumerate(lines, start=1):
        fields = line.replace(",", " ").split()
        try:
            rows.append([float(v) for v in fields[:3]])
        except ValueError:
            raise AisInputError(f"{path}: line {n} ({line!r}) is not x y z numbers") from None
        if len(fields) < 3:
            raise AisInputError(f"{path}: line {n} ({line!r}) has fewer than 3 columns (x y z)")
    return _as_xyz(rows, str(path))


def read_coordinates(path: str | os.PathLike, *, voxel_size_A: float | None = None) -> np.ndarray:
    """Any coordinate file this project writes or reads, as ``(N, 3)`` x/y/z voxels.

    ``.star`` (RELION voxel columns), ``.json`` (copick, Å: divided by its ``voxel_spacing`` or
    ``voxel_size_A``), text with an ``x y z`` header (TSV) or without one (the paper's ``.txt``).
    """
    path = Path(path)
    if not path.is_file():
        raise AisInputError(f"{path}: coordinate file not found; check the path")
    suffix = path.suffix.lower()
    if suffix == ".star":
        return read_star(path)
    if suffix == ".json":
        return read_copick_json(path, voxel_size_A=voxel_size_A)
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        return np.zeros((0, 3))
    first = lines[0].replace(",", " ").split()
    try:
        [float(v) for v in first[:3]]
    except ValueError:
        return read_coordinates_tsv(path)
    return _read_headerless(path, lines)


COPICK_UNIT = "angstrom"
POINT_VALUES_KEY = "ais_context"
"""Per-point key of a copick picks file holding our extra per-pick numbers."""


def per_point_values(
    values: Mapping[str, npt.ArrayLike] | None, n: int, what: str
) -> dict[str, np.ndarray]:
    """``values`` as float arrays of length ``n`` (an error naming the column otherwise)."""
    out = {}
    for name, column in (values or {}).items():
        arr = np.asarray(column, dtype=np.float64).reshape(-1)
        if len(arr) != n:
            raise AisInputError(f"{what}: column {name!r} has {len(arr)} values for {n} picks")
        out[str(name)] = arr
    return out


def write_copick_json(
    path: str | os.PathLike,
    xyz: npt.ArrayLike,
    *,
    voxel_size_A: float,
    object_name: str,
    run_name: str,
    user_id: str = "ais_torch",
    session_id: str = "0",
    scores: npt.ArrayLike | None = None,
    rotations: npt.ArrayLike | None = None,
    point_values: Mapping[str, npt.ArrayLike] | None = None,
    overwrite: bool = True,
) -> Path:
    """A copick picks file: locations in Å (voxel index × voxel size), one 4×4 transform each.

    ``rotations`` is an optional ``(N, 3, 3)`` stack; without it every transform is the identity
    and ``trust_orientation`` is false. ``point_values`` (name → one number per pick, e.g. the
    context columns) go into each point as ``"ais_context": {name: value}``: copick has no
    per-point metadata field, and its reader ignores (but keeps in the file) unknown keys.
    """
    import json

    path = Path(path)
    arr = _as_xyz(xyz, str(path)) * float(voxel_size_A)
    n = len(arr)
    rot = None if rotations is None else np.asarray(rotations, dtype=np.float64).reshape(-1, 3, 3)
    if rot is not None and len(rot) != n:
        raise AisInputError(f"{path}: {len(rot)} rotations for {n} particles")
    sc = None if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
    values = per_point_values(point_values, n, str(path))
    points = []
    for i in range(n):
        transform = np.eye(4)
        if rot is not None:
            transform[:3, :3] = rot[i]
        point = {
            "location": {"x": float(arr[i, 0]), "y": float(arr[i, 1]), "z": float(arr[i, 2])},
            "transformation_": transform.round(8).tolist(),
            "instance_id": 0,
        }
        if sc is not None:
            point["score"] = float(sc[i])
        if values:
            point[POINT_VALUES_KEY] = {k: float(v[i]) for k, v in values.items()}
        points.append(point)
    doc = {
        "pickable_object_name": object_name,
        "user_id": user_id,
        "session_id": str(session_id),
        "run_name": run_name,
        "voxel_spacing": float(voxel_size_A),
        "unit": COPICK_UNIT,
        "points": points,
        "trust_orientation": rot is not None,
    }
    with atomic_output(path, overwrite=overwrite) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def read_copick_json(path: str | os.PathLike, *, voxel_size_A: float | None = None) -> np.ndarray:
    """Locations of a copick picks file as voxels (Å ÷ ``voxel_size_A`` or the file's spacing)."""
    import json

    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        locations = [[p["location"][k] for k in ("x", "y", "z")] for p in doc.get("points", [])]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise AisInputError(f"{path}: not a copick picks file ({err})") from None
    size = voxel_size_A if voxel_size_A is not None else doc.get("voxel_spacing")
    if doc.get("unit", COPICK_UNIT) != COPICK_UNIT or not size or float(size) <= 0:
        raise AisInputError(
            f"{path}: locations are in Å but the voxel size is unknown; pass voxel_size_A=<Å>"
        )
    return _as_xyz(locations, str(path)) / float(size)
