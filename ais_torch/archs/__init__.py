"""Architectures: find them by name, build them, check them.

>>> from ais_torch import archs
>>> archs.available()            # cheap: reads installed metadata, imports no model code
>>> model = archs.build("vggnet_m")            # a lightning.pytorch.LightningModule
>>> model = archs.build("unet_l", learning_rate=5e-4)

Architectures are entry points in the group ``ais_torch.archs`` (ours and third parties'
alike); size variants are presets (:mod:`ais_torch.archs.presets`). Importing this package
does not import torch: the base class and helpers load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ais_torch.archs.presets import DEFAULT_PRESET, ORIGINAL_TITLES, PRESETS, preset_for_title
from ais_torch.archs.registry import available, build, describe, load, refresh

if TYPE_CHECKING:
    from ais_torch.archs.base import AisArch, count_params_keras
    from ais_torch.archs.testing import check_arch

__all__ = [
    "DEFAULT_PRESET",
    "ORIGINAL_TITLES",
    "PRESETS",
    "AisArch",
    "available",
    "build",
    "check_arch",
    "count_params_keras",
    "describe",
    "load",
    "preset_for_title",
    "refresh",
]

_LAZY = {
    "AisArch": "ais_torch.archs.base",
    "count_params_keras": "ais_torch.archs.base",
    "check_arch": "ais_torch.archs.testing",
}


def __getattr__(name: str) -> Any:
    """Import torch-dependent names only when they are first used."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
