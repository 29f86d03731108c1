"""Architectures: find them by name, build them, check them.

>>> from ais_torch import archs
>>> archs.available()            # entry points and presets (imports the architectures' modules)
>>> model = archs.build("vggnet_m")            # a lightning.pytorch.LightningModule
>>> model = archs.build("unet_l", learning_rate=5e-4)

Architectures are entry points in the group ``ais_torch.archs`` (ours and third parties'
alike); size variants are presets, registered next to each class with :func:`register_preset`.
Importing this package does not import torch: the base class, the architectures' modules and
so their presets load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ais_torch.archs.presets import (
    DEFAULT_PRESET,
    ORIGINAL_TITLES,
    PRESETS,
    preset_for_title,
    register_preset,
)
from ais_torch.archs.registry import available, build, describe, load, refresh

if TYPE_CHECKING:
    from ais_torch.archs.base import AisArch, CommonHparams, count_params_keras
    from ais_torch.archs.testing import check_arch

__all__ = [
    "DEFAULT_PRESET",
    "ORIGINAL_TITLES",
    "PRESETS",
    "AisArch",
    "CommonHparams",
    "available",
    "build",
    "check_arch",
    "count_params_keras",
    "describe",
    "load",
    "preset_for_title",
    "refresh",
    "register_preset",
]

_LAZY = {
    "AisArch": "ais_torch.archs.base",
    "CommonHparams": "ais_torch.archs.base",
    "count_params_keras": "ais_torch.archs.base",
    "check_arch": "ais_torch.archs.testing",
}


def __getattr__(name: str) -> object:
    """Import torch-dependent names only when they are first used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
