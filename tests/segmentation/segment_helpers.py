"""Tiny models for the segmentation engine tests (random weights, milliseconds per slice)."""

from __future__ import annotations

from pathlib import Path

import torch

from ais_torch import archs
from ais_torch.formats.scnm import ModelMetadata
from ais_torch.segmentation.loading import LoadedModel


def tiny_unet(in_channels: int = 1, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return archs.build(
        "unet_s", encoder=[[4]], bottleneck=[8], decoder=[[4]], in_channels=in_channels
    ).eval()


def metadata(title: str, model: torch.nn.Module, **kw) -> ModelMetadata:
    values = {"apix": 10.0, "box_size": 32, "normalization": "global_mad", **kw}
    return ModelMetadata(
        title=title, arch_name=model.arch_name, arch_hparams=dict(model.hparams), **values
    )


class Tiny3D(torch.nn.Module):
    """A 3D network (B, 1, D, H, W) → (B, 1, D, H, W), like DeepFinder/ezm-3d inputs."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.a = torch.nn.Conv3d(1, 3, 3, padding=1)
        self.b = torch.nn.Conv3d(3, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 5
        return torch.sigmoid(self.b(torch.relu(self.a(x))))


def loaded(module: torch.nn.Module, meta: ModelMetadata, *, depth=1, is_3d=False) -> LoadedModel:
    module.metadata = meta
    return LoadedModel(
        title=meta.title,
        metadata=meta,
        source=Path(f"<{meta.title}>"),
        module=module,
        depth=depth,
        is_3d=is_3d,
        multiple=int(getattr(module, "min_size_multiple", 1)),
    )
