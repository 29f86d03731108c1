"""Fixtures of the segmentation engine tests: small tomograms and tiny model files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from segment_helpers import metadata, tiny_unet

from ais_torch.formats.mrc import write_volume
from ais_torch.formats.scnm import save_scnm


@pytest.fixture
def tomo_dir(tmp_path: Path) -> Path:
    """Three small float32 tomograms (10 Å, non-zero origin)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "tomos"
    for i in range(3):
        vol = rng.normal(size=(7, 40, 52)).astype(np.float32)
        write_volume(folder / f"t{i}.mrc", vol, voxel_size_A=10.0, origin_A=(5.0, -3.0, 2.0))
    return folder


@pytest.fixture
def tiny_scnm(tmp_path: Path) -> Path:
    model = tiny_unet()
    path = tmp_path / "Tiny.scnm"
    save_scnm(path, model, metadata("Tiny", model))
    return path


@pytest.fixture
def two_scnm(tmp_path: Path) -> list[Path]:
    paths = []
    for seed, title in enumerate(("Membrane", "Carbon")):
        model = tiny_unet(seed=seed)
        paths.append(tmp_path / f"{title}.scnm")
        save_scnm(paths[-1], model, metadata(title, model))
    return paths
