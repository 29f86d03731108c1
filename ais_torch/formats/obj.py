"""Wavefront .obj surface files, in the original Ais's layout plus one header line of ours.

Layout: ``# colour r g b`` (0–1) as the first line when a colour is given (the original Ais and
its Blender/ChimeraX users read it), then ``# ais_torch mesh key=value …`` carrying units, frame
and the settings that made the mesh (so a viewer can place it without guessing), any further
comment lines, then ``v``, ``vn`` and ``f a//a b//b c//c`` lines (1-based). A mesh without
triangles is a valid file holding only its comments. Writes are atomic (temp file + rename).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ais_torch.formats.atomic import atomic_output

if TYPE_CHECKING:
    import os

OBJ_TAG = "# ais_torch mesh"

HeaderValue = str | int | float | Sequence[int]
"""A header field: numbers, words (spaces become ``_``) or a list of whole numbers (``1,2,3``)."""


def write_obj(
    path: str | os.PathLike,
    vertices: np.ndarray,
    normals: np.ndarray,
    faces: np.ndarray,
    *,
    colour: tuple[float, float, float] | None = None,
    fields: Mapping[str, HeaderValue] | None = None,
    comments: Sequence[str] = (),
) -> Path:
    """Write ``(n, 3)`` vertices and normals and ``(m, 3)`` 0-based triangle indices atomically.

    ``fields`` go into the ``# ais_torch mesh`` line (read back by :func:`read_obj_header`);
    ``comments`` become further ``# …`` lines before the geometry.
    """
    path = Path(path)
    head = []
    if colour is not None:
        r, g, b = (float(c) for c in colour)
        head.append(f"# colour {r:.3f} {g:.3f} {b:.3f}")
    items = " ".join(f"{k}={_field(v)}" for k, v in (fields or {}).items())
    head.append(f"{OBJ_TAG} {items}".rstrip())
    head += [f"# {line}" for line in comments]
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write("\n".join(head) + "\n")
        if len(faces):
            np.savetxt(fh, np.asarray(vertices), fmt="v %.4f %.4f %.4f")
            np.savetxt(fh, np.asarray(normals), fmt="vn %.4f %.4f %.4f")
            idx = np.repeat(np.asarray(faces) + 1, 2, axis=1)
            np.savetxt(fh, idx, fmt="f %d//%d %d//%d %d//%d")
    return path


def _field(value: HeaderValue) -> str:
    """One header value as a single token (the header line is split on spaces when read)."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ",".join(str(v) for v in value)
    return str(value).replace(" ", "_")


def read_obj_header(path: str | os.PathLike) -> dict[str, str]:
    """``colour`` and the ``# ais_torch mesh`` fields of an .obj (empty dict if none)."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.startswith("#"):
                break
            if line.startswith("# colour"):
                out["colour"] = " ".join(line.split()[2:5])
            elif line.startswith(OBJ_TAG):
                for item in line[len(OBJ_TAG) :].split():
                    key, _, value = item.partition("=")
                    out[key] = value
    return out
