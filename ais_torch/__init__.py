"""ais_torch: Ais-style cryo-ET segmentation, model interactions and particle picking on PyTorch.

Importing the package is cheap; heavy modules (torch, lightning) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ais_torch.archs.base import AisArch


def load_model(path: str) -> AisArch:
    """Open a model file (``.scnm``) and return the network, in eval mode.

    Its metadata (title, colour, apix, box size, threshold, ...) is ``model.metadata``, a
    :class:`ais_torch.io.scnm.ModelMetadata`.
    """
    from ais_torch.io.scnm import load_scnm

    model, metadata = load_scnm(path)
    model.metadata = metadata
    return model


__all__ = ["__version__", "load_model"]
