"""Where predictions go: streamed into atomically written MRC files or OME-Zarr stores, or held
for post-processing.

Both kinds take ``write(z_slice, values)``. :class:`StreamSink` writes through
:class:`~ais_torch.formats.mrc.VolumeWriter` or :class:`~ais_torch.formats.zarr.OmeZarrWriter` —
the file (or store folder) appears under its final name only when complete, so a killed run
leaves no half-written output and no placeholder. :class:`MemorySink`
keeps the whole prediction (needed when post-processing looks at all models of a tomogram).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ais_torch.formats.atomic import PARTIAL_SUFFIX

if TYPE_CHECKING:
    from ais_torch.formats.mrc import VolumeWriter
    from ais_torch.formats.zarr import OmeZarrWriter


class Sink(Protocol):
    """Where the engine puts a model's output, slab by slab."""

    def write(self, z: slice, values: np.ndarray) -> None: ...


class MemorySink:
    """The whole output in memory (``array``), for post-processing or a library caller."""

    def __init__(self, shape: tuple[int, int, int], dtype: np.dtype | type) -> None:
        self.array = np.zeros(shape, dtype)

    def write(self, z: slice, values: np.ndarray) -> None:
        self.array[z] = values


class StreamSink:
    """A :class:`VolumeWriter` or :class:`OmeZarrWriter` used as a sink (enter with
    ``contextlib.ExitStack``)."""

    def __init__(self, writer: VolumeWriter | OmeZarrWriter) -> None:
        self.writer = writer

    def write(self, z: slice, values: np.ndarray) -> None:
        self.writer.write(z, values)

    @property
    def array(self) -> np.ndarray:
        """The output's data: memory-mapped MRC or the zarr array (valid while writing)."""
        return self.writer.array  # type: ignore[return-value]


def remove_partials_of(output: Path) -> int:
    """Delete what a killed run left for ``output`` (call only while holding its lock): temp
    files, and for an OME-Zarr output the hidden store folder or a store moved aside (``.old``)."""
    n = 0
    leftovers = [*output.parent.glob(f".{output.name}.*{PARTIAL_SUFFIX}")]
    if output.suffix.lower() == ".zarr":
        leftovers += output.parent.glob(f".{output.name}.*.old")
    for p in leftovers:
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            n += 1
    return n
