"""The original ``ais segment`` recipe through ``segment_volume``, and parity with its outputs."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from types import SimpleNamespace

import mrcfile
import numpy as np
import pytest
import torch

import ais_torch
from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.mrc import read_volume
from ais_torch.formats.scnm import ModelMetadata
from ais_torch.segmentation.normalise import apply_global_mad, global_mad_stats
from ais_torch.segmentation.preprocess import rescale_factor


class _Pointwise(torch.nn.Module):
    """sigmoid(a·x + b): no spatial mixing, so the expected output is computable in numpy."""

    def __init__(self, normalization: str = "global_mad", apix: float = 10.0) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.conv.weight.fill_(0.7)
            self.conv.bias.fill_(0.1)
        self.metadata = ModelMetadata(
            title="Pointwise", normalization=normalization, apix=apix, model_depth=1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[-2] % 32 == 0 and x.shape[-1] % 32 == 0
        return torch.sigmoid(self.conv(x))


def _expected(x: np.ndarray) -> np.ndarray:
    p = 1.0 / (1.0 + np.exp(-(0.7 * x.astype(np.float64) + 0.1)))
    return (np.clip(p, 0, 1).astype(np.float32) * 255).astype(np.uint8)


def _segment(model: torch.nn.Module, vol: np.ndarray, **kw: object) -> np.ndarray:
    return ais_torch.segment_volume(vol, model, voxel_size_A=10.0, **kw)["Pointwise"]  # type: ignore[arg-type]


def _volume(shape: tuple[int, int, int] = (6, 40, 52)) -> np.ndarray:
    return np.random.default_rng(0).normal(3.0, 2.0, shape).astype(np.float32)


def test_rescale_factor_threshold() -> None:
    assert rescale_factor(10.0, 10.0) is None
    assert rescale_factor(10.4, 10.0) is None  # 4 % off: kept
    assert rescale_factor(10.5, 10.0) == pytest.approx(1.05)  # 5 % off: rescaled
    assert rescale_factor(0.0, 20.0) == pytest.approx(0.5)  # no header apix → 10 Å assumed
    assert rescale_factor(10.0, -1.0) is None  # model without apix


def test_global_mad_whole_volume_and_z_range() -> None:
    vol = _volume()
    model = _Pointwise("global_mad")
    out = _segment(model, vol, z_range=(2, 4))
    assert out.dtype == np.uint8 and out.shape == vol.shape
    center, scale = global_mad_stats(SimpleNamespace(data=vol))
    expected = _expected(apply_global_mad(vol[2:4], center, scale))
    diff = np.abs(out[2:4].astype(int) - expected.astype(int))
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99
    assert not out[:2].any() and not out[4:].any()


def test_legacy_per_slice_normalisation_and_tta() -> None:
    vol = _volume()
    model = _Pointwise("per_slice")
    x = vol.astype(np.float64)
    norm = (x - x.mean(axis=(1, 2), keepdims=True)) / (x.std(axis=(1, 2), keepdims=True) + 1e-6)
    expected = _expected(norm)
    for tta in (1, 8):
        out = _segment(model, vol, tta=tta)
        diff = np.abs(out.astype(int) - expected.astype(int))
        assert diff.max() <= 1 and (diff == 0).mean() > 0.99


def test_rescale_keeps_input_shape_and_model_mode() -> None:
    vol = _volume((3, 45, 61))
    model = _Pointwise("global_mad", apix=20.0)
    model.train()
    out = _segment(model, vol, tta=2)
    assert out.shape == vol.shape and out.dtype == np.uint8 and out.any()
    assert model.training  # restored


def test_rejects_bad_arguments() -> None:
    model = _Pointwise()
    with pytest.raises(ConfigError, match="tta"):
        _segment(model, _volume(), tta=9)
    with pytest.raises(AisInputError, match="3D"):
        _segment(model, _volume()[0])
    with pytest.raises(ConfigError, match="voxel_size_A"):
        ais_torch.segment_volume(_volume(), model)


def _reference(shared: Path, folder: str, tmp_path: Path) -> np.ndarray:
    src = shared / "reference" / "segmentations" / folder / "seed101__Membrane.mrc.gz"
    dst = tmp_path / f"{folder}.mrc"
    with gzip.open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    with mrcfile.open(dst, permissive=True) as mrc:
        return np.asarray(mrc.data).astype(np.int32)


def _parity(shared: Path, tmp_path: Path, arch: str, folder: str, tta: int, z: slice) -> None:
    ref = shared / "reference"
    model = ais_torch.load_model(str(ref / "models" / arch / "Membrane.scnm"))
    vol = read_volume(ref / "tomograms" / "seed101" / "tomo.mrc")
    out = ais_torch.segment_volume(vol, model, tta=tta, z_range=(z.start, z.stop))[
        model.metadata.title
    ]
    expected = _reference(shared, folder, tmp_path)
    assert out.shape == expected.shape
    diff = np.abs(out[z].astype(np.int32) - expected[z])
    assert (diff <= 1).mean() >= 0.999, f"within 1: {(diff <= 1).mean():.5f}"
    assert diff.max() <= 3


@pytest.mark.parametrize(("arch", "z"), [("Eman2", slice(28, 36)), ("VGGNet_M", slice(28, 36))])
def test_parity_with_original(shared_dir: Path, tmp_path: Path, arch: str, z: slice) -> None:
    _parity(shared_dir, tmp_path, arch, arch, 1, z)


@pytest.mark.slow
def test_parity_with_original_tta4(shared_dir: Path, tmp_path: Path) -> None:
    _parity(shared_dir, tmp_path, "VGGNet_M", "VGGNet_M_tta4", 4, slice(30, 33))
