"""A tiny model file for the plugin's tests (random weights, milliseconds per slice)."""

from __future__ import annotations

from pathlib import Path

import torch

from ais_torch import archs
from ais_torch.formats.scnm import ModelMetadata, save_scnm


def tiny_model(
    folder: Path, title: str = "Tiny", depth: int = 1, apix: float = 10.0, seed: int = 0
) -> Path:
    torch.manual_seed(seed)
    net = archs.build(
        "unet_s", encoder=[[4]], bottleneck=[8], decoder=[[4]], in_channels=depth
    ).eval()
    meta = ModelMetadata(
        title=title,
        apix=apix,
        box_size=32,
        model_depth=depth,
        normalization="global_mad",
        arch_name=net.arch_name,
        arch_hparams=dict(net.hparams),
    )
    return save_scnm(folder / f"{title}.scnm", net, meta)
