"""The Dice a training run prints at the end: held-out tomograms segmented as ``segment`` does.

Why the segment path: a model trained at another pixel size (``data.apix``) or with global
normalisation must be scored on what users will get — rescaled and normalised per its metadata,
encoded 0-255 — not on raw slices at the tomogram's pixel size.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ais_torch.evaluation.metrics import dice
from ais_torch.formats.mrc import read_volume
from ais_torch.segmentation.api import segment_volume
from ais_torch.training.sources import TomogramSource, open_volume

if TYPE_CHECKING:
    import torch

    from ais_torch.formats.scnm import ModelMetadata


def heldout_dice(
    model: torch.nn.Module,
    metadata: ModelMetadata,
    tomogram: TomogramSource,
    truth: str | os.PathLike,
    threshold: float,
) -> float:
    """Dice of ``tomogram`` segmented by ``model`` against the 0/1 volume ``truth``.

    ``threshold`` is a probability (0-1), as the model's metadata records it.
    """
    volume = open_volume(tomogram, check_finite=True)
    labels = read_volume(truth, check_finite=False)
    model.metadata = metadata
    param = next(model.parameters(), None)
    device = "cpu" if param is None else str(param.device)
    grey = segment_volume(volume, model, device=device)[metadata.title]
    return dice(grey / 255.0, labels.data, threshold=threshold)
