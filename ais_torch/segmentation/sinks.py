"""Where predictions go: streamed into atomically written MRC files, or held for post-processing.

Both kinds take ``write(z_slice, values)``. :class:`StreamSink` writes through
:class:`~ais_torch.formats.mrc.VolumeWriter` — the file appears under its final name only when
complete, so a killed run leaves no half-written output and no placeholder. :class:`MemorySink`
keeps the whole prediction (needed when post-processing looks at all models of a tomogram).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from ais_torch.formats.atomic import PARTIAL_SUFFIX

if TYPE_CHECKING:
    from ais_torch.formats.mrc import VolumeWriter


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
    """A :class:`VolumeWriter` used as a sink (enter with ``contextlib.ExitStack``)."""

    def __init__(self, writer: VolumeWriter) -> None:
        self.writer = writer

    def write(self, z: slice, values: np.ndarray) -> None:
        self.writer.write(z, values)

    @property
    def array(self) -> np.ndarray:
        """The file's data, memory-mapped (valid while the writer is open)."""
        return self.writer.array


def remove_partials_of(output: Path) -> int:
    """Delete temp files a killed run left for ``output`` (call only while holding its lock)."""
    n = 0
    for p in output.parent.glob(f".{output.name}.*{PARTIAL_SUFFIX}"):
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    return n
