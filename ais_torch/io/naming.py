"""The file-name convention that ties results to their tomogram: ``<tomogram>__<feature>.<ext>``.

The original Ais names a segmentation ``<tomogram stem>__<model title>.mrc`` and every later
step (picking, meshes, the viewer) finds results and their tomogram by that name, so composing
and splitting it lives in one place.
"""

from __future__ import annotations

import os
from pathlib import Path

from ais_torch.io.mrc import MRC_SUFFIXES

SEPARATOR = "__"
RESULT_SUFFIXES = (".mrc", ".rec", ".map", ".obj")
"""Suffixes :func:`split_name` removes (segmentations and meshes)."""


def result_name(tomogram: str | os.PathLike, title: str, suffix: str = ".mrc") -> str:
    """``<tomogram stem>__<title><suffix>``; the stem drops any MRC suffix (.mrc, .rec, ...)."""
    name = Path(tomogram).name
    for ext in MRC_SUFFIXES:
        if name.lower().endswith(ext):
            return f"{name[: -len(ext)]}{SEPARATOR}{title}{suffix}"
    return f"{Path(tomogram).stem}{SEPARATOR}{title}{suffix}"


def split_name(path: str | os.PathLike) -> tuple[str, str]:
    """``<tomo>__<feature>.mrc`` → (tomo, feature); a name without ``__`` is its own feature."""
    stem = Path(path).name
    for suffix in RESULT_SUFFIXES:
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    tomo, sep, feature = stem.partition(SEPARATOR)
    return (tomo, feature) if sep else (stem, stem)
