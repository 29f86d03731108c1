"""ais_torch: Ais-style cryo-ET segmentation, model interactions and particle picking on PyTorch.

Importing the package is cheap; heavy modules (torch, lightning) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    import torch

    from ais_torch.segmentation.api import Segmenter, segment_volume


def load_model(path: str) -> torch.nn.Module:
    """Open a model file (``.scnm``, ours or the original Ais's) and return it in eval mode.

    Ours come back as their registered architecture. The original's Keras models come back as
    the matching ais_torch architecture with the Keras weights (ready for fine-tuning), or as a
    generic graph module when no architecture matches. Either way the metadata (title, colour,
    apix, box size, threshold, ...) is ``model.metadata``, a
    :class:`ais_torch.formats.scnm.ModelMetadata`.
    """
    from ais_torch.formats.scnm import load_scnm

    model, metadata = load_scnm(path)
    model.metadata = metadata
    return model


def __getattr__(name: str) -> object:
    """``segment_volume`` and ``Segmenter`` load torch on first use, not on ``import ais_torch``."""
    if name in ("segment_volume", "Segmenter"):
        from ais_torch.segmentation import api

        return getattr(api, name)
    raise AttributeError(f"module 'ais_torch' has no attribute {name!r}")


__all__ = ["Segmenter", "__version__", "load_model", "segment_volume"]
