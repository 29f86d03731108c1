"""ais_torch: Ais-style cryo-ET segmentation, model interactions and particle picking on PyTorch.

Importing the package is cheap; heavy modules (torch, lightning) load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
