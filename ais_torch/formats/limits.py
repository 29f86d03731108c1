"""The size limits every reader checks before it reads or allocates, in one place.

Why: model and training files are downloaded from the internet, and a file of a few kilobytes
can claim gigabytes (a sparse or compressed tar member, an HDF5 dataset of huge shape, an MRC
header with huge dimensions). Each reader compares every claimed size with the bytes actually
on disk and with these limits *before* it reads, so a hostile file is refused in the memory of
an idle process. The defaults are generous for real files (the largest original Ais models are
about 175 MB, training sets of thousands of 64 px boxes are tens of MB); raise one with its
environment variable when you trust a file that exceeds it, e.g.
``AIS_TORCH_MAX_ARCHIVE_BYTES=4GiB ais-torch segment ...``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields

from ais_torch.errors import ConfigError

KiB, MiB, GiB = 2**10, 2**20, 2**30


@dataclass(frozen=True)
class Limits:
    """The limits in force (see :func:`limits`); each field has an environment variable."""

    archive_bytes: int = 1 * GiB
    """AIS_TORCH_MAX_ARCHIVE_BYTES: all members of one model (.scnm) or group (.scnmgroup)."""
    member_bytes: int = 1 * GiB
    """AIS_TORCH_MAX_MEMBER_BYTES: one archive member (a model's weights, one inner model)."""
    model_members: int = 64
    """AIS_TORCH_MAX_MODEL_MEMBERS: members of a .scnm or .scnmgroup (real ones hold 2-20)."""
    training_set_bytes: int = 4 * GiB
    """AIS_TORCH_MAX_TRAINING_SET_BYTES: a .scnt's members, and its boxes once decoded."""
    training_members: int = 50_000
    """AIS_TORCH_MAX_TRAINING_MEMBERS: members of a .scnt (two per box)."""
    box_px: int = 1024
    """AIS_TORCH_MAX_BOX_PX: the side of a training box (the original uses 32-256 px)."""
    box_depth: int = 256
    """AIS_TORCH_MAX_BOX_DEPTH: slices in one training box (2.5D/3D models use 1-64)."""
    weight_bytes: int = 1 * GiB
    """AIS_TORCH_MAX_WEIGHT_BYTES: all weights of one Keras .h5, as float32."""
    json_bytes: int = 64 * MiB
    """AIS_TORCH_MAX_JSON_BYTES: one JSON member (metadata, sources, interactions)."""
    json_depth: int = 32
    """AIS_TORCH_MAX_JSON_DEPTH: nesting of JSON objects/lists in metadata."""
    mrc_extended_header_bytes: int = 256 * MiB
    """AIS_TORCH_MAX_MRC_EXTENDED_HEADER: the extended header of one MRC file."""


ENV = {f.name: f"AIS_TORCH_MAX_{f.name.upper()}" for f in fields(Limits)}
"""Field → environment variable (``AIS_TORCH_MAX_ARCHIVE_BYTES``, ...)."""
ENV["mrc_extended_header_bytes"] = "AIS_TORCH_MAX_MRC_EXTENDED_HEADER"

_UNITS = {"": 1, "b": 1, "k": KiB, "kb": KiB, "kib": KiB, "m": MiB, "mb": MiB, "mib": MiB}
_UNITS |= {"g": GiB, "gb": GiB, "gib": GiB, "t": 2**40, "tb": 2**40, "tib": 2**40}
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_amount(name: str, text: str) -> int:
    """``"1073741824"``, ``"1GiB"``, ``"512M"`` → an int > 0; anything else a ConfigError."""
    hit = _NUMBER.match(text)
    unit = hit.group(2).lower() if hit else ""
    if hit is None or unit not in _UNITS or float(hit.group(1)) * _UNITS[unit] < 1:
        raise ConfigError(
            f"{name}={text!r} is not a positive number (e.g. {name}=2GiB or {name}=100000); "
            "fix or unset it"
        )
    return int(float(hit.group(1)) * _UNITS[unit])


def limits() -> Limits:
    """The defaults, with any ``AIS_TORCH_MAX_*`` environment variable applied (read each call,
    so a test or a long-lived process sees a change at once)."""
    given = {
        field: parse_amount(var, os.environ[var]) for field, var in ENV.items() if var in os.environ
    }
    return Limits(**given)


def human(n: int) -> str:
    """A byte count for a message: ``1.0 GiB``, ``12.3 MiB``, ``512 B``."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def raise_hint(field: str, needed: int | None = None) -> str:
    """The fix for a refused size: which variable to raise, and to what."""
    var = ENV[field]
    value = f"{needed}" if needed is not None else "<larger>"
    return f"if you trust this file, set {var}={value}"
