"""File formats: MRC volumes, training sets, models, coordinates."""

from ais_torch.formats.atomic import atomic_output, ensure_inside
from ais_torch.formats.mrc import Volume, VolumeWriter, iter_slabs, read_volume, write_volume

__all__ = [
    "Volume",
    "VolumeWriter",
    "atomic_output",
    "ensure_inside",
    "iter_slabs",
    "read_volume",
    "write_volume",
]
