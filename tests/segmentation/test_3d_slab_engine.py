"""Slab models (a Z-slab in, a Z-slab out) stream through the engine as the original runs them.

Tiny stand-ins for ezm-3d: a voxel-wise network (receptive field 1 voxel), for which every
blended prediction must equal the network applied to the whole normalised volume at once, and
a small 3D conv net, for which streaming in chunks must equal one chunk.
"""

from __future__ import annotations

import logging
from typing import ClassVar

import numpy as np
import pytest
import torch

from ais_torch.errors import ConfigError, ModelFormatError
from ais_torch.formats.scnm import ModelMetadata
from ais_torch.segmentation.api import Segmenter, segment_volume
from ais_torch.segmentation.engine import EngineOptions
from ais_torch.segmentation.normalise import global_mad_stats
from ais_torch.segmentation.slabs import PlaneTiles, slab_starts, slab_weights


class Voxelwise(torch.nn.Module):
    """sigmoid(a·x + b) per voxel: a slab model whose receptive field is one voxel."""

    n_spatial_dims: ClassVar[int] = 3
    emits_slab: ClassVar[bool] = True
    min_size_multiple = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 5 and x.shape[1] == 1
        return torch.sigmoid(0.7 * x + 0.1)


class SmallSlab(Voxelwise):
    """Two 3x3x3 convs: neighbouring voxels (in Z too) matter."""

    z_multiple = 2

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.a = torch.nn.Conv3d(1, 4, 3, padding=1)
        self.b = torch.nn.Conv3d(4, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 5
        return torch.sigmoid(self.b(torch.relu(self.a(x))))


def _model(net: torch.nn.Module, depth: int = 8, z_jitter: int = 0) -> torch.nn.Module:
    net.metadata = ModelMetadata(
        title="Slab", apix=10.0, model_depth=depth, normalization="global_mad", z_jitter=z_jitter
    )
    return net.eval()


def _segment(net: torch.nn.Module, vol: np.ndarray, tta: int = 1, **options: object) -> np.ndarray:
    opts = EngineOptions(dtype="float32", **options)  # type: ignore[arg-type]
    segmenter = Segmenter.build([net], options=opts, tta=tta, device="cpu")
    return segment_volume(vol, segmenter, voxel_size_A=10.0)["Slab"]


@pytest.fixture
def vol() -> np.ndarray:
    return np.random.default_rng(5).normal(size=(21, 40, 52)).astype(np.float32)


def test_voxelwise_slab_model_equals_the_whole_volume_at_once(vol: np.ndarray) -> None:
    """Slabs, 50 % Z overlap, XY tiles (32 px, 8-px borders), TTA 8, chunks of 5 slices: each
    output voxel is a mean of identical predictions, so it is the network on the volume."""
    center, scale = global_mad_stats(vol)
    expected = 1 / (1 + np.exp(-(0.7 * (vol - center) / scale + 0.1)))
    out = _segment(_model(Voxelwise()), vol, tta=8, slab=5, slab_tile=32, slab_overlap=8)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_streaming_in_chunks_equals_one_chunk(vol: np.ndarray) -> None:
    net = _model(SmallSlab(), depth=8, z_jitter=4)
    kw = {"slab_tile": 64, "slab_overlap": 8}  # 5 x 5 tiles per slab
    small = _segment(net, vol, tta=2, slab=3, batch_size=4, **kw)
    whole = _segment(net, vol, tta=2, slab=64, batch_size=25, **kw)
    np.testing.assert_allclose(small, whole, atol=1e-6)
    assert small[5:-5].std() > 0.01
    # z_jitter 4: only the centre ±2 slices of a slab count, so the first 2 slices (covered by
    # no slab's centre) are 0, as in the original
    assert np.all(small[:2] == 0) and np.all(small[2:-2] > 0)


def test_z_range_and_stride(vol: np.ndarray) -> None:
    net = _model(SmallSlab(), depth=8)
    out = _segment(net, vol, z_range=(4, 15), z_stride=3, slab_tile=-1)
    assert np.all(out[:4] == 0) and np.all(out[15:] == 0) and np.all(out[4:15] > 0)


def test_volume_thinner_than_the_slab_is_reflected_and_said_once(
    vol: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        out = _segment(_model(Voxelwise(), depth=8), vol[:5], slab_tile=-1)
    assert out.shape == (5, 40, 52) and np.all(out > 0)
    notes = [r.message for r in caplog.records if "thinner than" in r.message]
    assert len(notes) == 1 and "reflecting the volume in Z" in notes[0]


def test_slab_geometry_follows_the_original() -> None:
    assert slab_starts(40, 16, 0, 40, None) == [0, 8, 16, 24]
    assert slab_starts(41, 16, 0, 41, None) == [0, 8, 16, 24, 25]  # the last one flush
    assert slab_starts(12, 16, 0, 12, None) == [0]
    assert slab_starts(40, 16, 0, 40, 5) == [0, 5, 10, 15, 20, 24]
    assert slab_weights(16, 16).tolist() == [1.0] * 16
    assert slab_weights(16, 8).tolist() == [0.0] * 4 + [1.0] * 9 + [0.0] * 3
    grid = PlaneTiles(160, 192, 128, 16)  # 3 x 3 tiles of 128 px, stride 96, 64 px context
    assert (grid.pad_y, grid.pad_x) == ((64, 96), (64, 64))
    assert len(grid.starts) == 9 and grid.count.min() >= 1
    one = PlaneTiles(320, 320, None, None)  # the default: one 512-px tile
    assert len(one.starts) == 1 and one.pad_y == (64, 128)


def test_bad_slab_settings_say_what_to_do(vol: np.ndarray) -> None:
    net = _model(SmallSlab(), depth=8)
    with pytest.raises(ConfigError, match="3D slab model; mode=tiled"):
        _segment(net, vol, mode="tiled")
    segmenter_args = {"options": EngineOptions(), "device": "cpu"}
    with pytest.raises(ModelFormatError, match=r"slab depth 7 does not fit.*multiple of 2"):
        Segmenter.build([net], model_depth=7, **segmenter_args)


def test_segment_command_path_runs_a_slab_model_file(tmp_path, vol: np.ndarray) -> None:
    """A slab model saved as a .scnm goes through ``segment`` (files in, MRC out) unchanged."""
    import mrcfile

    from ais_torch import archs
    from ais_torch.formats.mrc import write_volume
    from ais_torch.formats.scnm import save_scnm
    from ais_torch.segmentation.batch import segment

    torch.manual_seed(0)
    tiny = {"encoder": [[[4, 3, 3]]], "bottleneck": [[4, 3, 3]], "decoder": [[[4, 3, 3]]],
            "up_widths": [4], "z_pool": [True], "depth": 4}  # fmt: skip
    net = archs.build("ezm3d", **tiny).eval()
    meta = ModelMetadata(title="Slab3D", apix=10.0, model_depth=4, normalization="global_mad",
                         arch_name=net.arch_name, arch_hparams=dict(net.hparams))  # fmt: skip
    model = save_scnm(tmp_path / "slab.scnm", net, meta)
    tomo = write_volume(tmp_path / "t.mrc", vol[:9], voxel_size_A=10.0)
    report = segment(model, tomo, tmp_path / "out", progress=False, verbose=False)
    assert report.ok, report.failed
    out = mrcfile.read(report.written[0])
    assert out.shape == (9, 40, 52) and out.max() <= 255 and np.ptp(out) > 0  # mode 6, 0-255
