"""The streaming engine: slabs, 2.5D/3D halos, tiles and rescaling give whole-volume results."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest
from reference_loop import segment_like_ais
from segment_helpers import Tiny3D, loaded, metadata, tiny_unet

from ais_torch.errors import AisInputError
from ais_torch.formats.mrc import write_volume
from ais_torch.formats.scnm import ModelMetadata
from ais_torch.segmentation.batch import segment
from ais_torch.segmentation.tiling import TileGrid


def _run(tmp: Path, name: str, models, tomo: Path, **kw) -> dict[str, np.ndarray]:
    out = tmp / name
    report = segment(models, tomo, out, progress=False, verbose=False, **kw)
    assert report.ok, report.failed
    return {p.name: mrcfile.read(p) for p in sorted(out.glob("*.mrc"))}


@pytest.fixture
def tomo(tmp_path: Path) -> Path:
    vol = np.random.default_rng(3).normal(size=(9, 36, 44)).astype(np.float32)
    return write_volume(tmp_path / "tomo.mrc", vol, voxel_size_A=10.0)


def test_slabs_equal_whole_volume_2d_and_match_reference_loop(tmp_path: Path, tomo: Path) -> None:
    model = tiny_unet()
    m = loaded(model, metadata("Tiny", model))
    small = _run(tmp_path, "a", [m], tomo, slab=2, batch_size=1, tta=2)
    whole = _run(tmp_path, "b", [m], tomo, slab=64, batch_size=16, tta=2)
    a, b = small["tomo__Tiny.mrc"], whole["tomo__Tiny.mrc"]
    assert a.shape == (9, 36, 44) and a.dtype == np.uint16  # mode 6, as the original writes
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    assert (a == b).mean() > 0.999
    ref = segment_like_ais(model, mrcfile.read(tomo), voxel_size_A=10.0, tta=2)
    assert np.abs(a.astype(int) - ref.astype(int)).max() <= 1


@pytest.mark.parametrize("mode", ["ais", "tiled"])
def test_slabs_equal_whole_volume_25d(tmp_path: Path, tomo: Path, mode: str) -> None:
    model = tiny_unet(in_channels=3)
    m = loaded(model, metadata("Slab", model, model_depth=3), depth=3)
    kw = {"mode": mode, "dtype": "float32", "box_size": 16, "overlap": 0.25}
    small = _run(tmp_path, "a", [m], tomo, slab=2, batch_size=1, **kw)["tomo__Slab.mrc"]
    whole = _run(tmp_path, "b", [m], tomo, slab=64, batch_size=9, **kw)["tomo__Slab.mrc"]
    np.testing.assert_allclose(small, whole, atol=1e-5)
    assert small.std() > 0


def test_3d_model_takes_a_clamped_slab_and_predicts_its_centre(tmp_path: Path, tomo: Path) -> None:
    net = Tiny3D()
    meta = ModelMetadata(title="Vol", apix=10.0, model_depth=5, normalization="per_slice")
    m = loaded(net, meta, depth=5, is_3d=True)
    small = _run(tmp_path, "a", [m], tomo, slab=2, batch_size=1, dtype="float32")["tomo__Vol.mrc"]
    whole = _run(tmp_path, "b", [m], tomo, slab=64, dtype="float32")["tomo__Vol.mrc"]
    np.testing.assert_allclose(small, whole, atol=1e-5)
    # slice 0 = centre of the slab [0, 0, 0, 1, 2] (z clamped), per-slice normalised, padded
    import torch

    vol = mrcfile.read(tomo).astype(np.float64)
    mean, std = vol.mean(axis=(1, 2), keepdims=True), vol.std(axis=(1, 2), keepdims=True)
    norm = (vol - mean) / (std + 1e-6)
    slab = norm[[0, 0, 0, 1, 2]].astype(np.float32)
    padded = np.pad(slab, ((0, 0), (30, 30), (26, 26)), mode="reflect")  # 36→96, 44→96
    with torch.no_grad():
        y = net(torch.from_numpy(padded)[None, None])[0, 0, 2].numpy()
    np.testing.assert_allclose(small[0], y[30:66, 26:70], atol=1e-5)


def test_rescaling_round_trip_keeps_shape_and_zero_disables_it(tmp_path: Path, tomo: Path) -> None:
    model = tiny_unet()
    m = loaded(model, metadata("Tiny", model, apix=20.0))  # data 10 Å → work at half size
    kw = {"dtype": "float32"}
    rescaled = _run(tmp_path, "a", [m], tomo, **kw)["tomo__Tiny.mrc"]
    plain = _run(tmp_path, "b", [m], tomo, model_apix=0, **kw)["tomo__Tiny.mrc"]
    same = _run(tmp_path, "c", [m], tomo, data_apix=20.0, **kw)["tomo__Tiny.mrc"]
    assert rescaled.shape == plain.shape == (9, 36, 44)
    assert not np.allclose(rescaled, plain, atol=1e-3)  # it did rescale
    np.testing.assert_allclose(same, plain, atol=1e-6)  # 20 Å data on a 20 Å model: no rescale
    with mrcfile.open(tmp_path / "c" / "tomo__Tiny.mrc") as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(20.0)


def test_tile_grid_covers_every_pixel_from_tile_centres() -> None:
    rng = np.random.default_rng(0)
    img = rng.normal(size=(2, 37, 50)).astype(np.float32)
    grid = TileGrid(37, 50, box=16, overlap=0.25)
    assert (grid.margin, grid.step) == (2, 12)
    tiles = grid.tiles(img)
    assert tiles.shape == (2, grid.n_tiles, 16, 16)
    np.testing.assert_allclose(tiles.mean(axis=(-2, -1)), 0, atol=1e-5)  # each tile standardised
    np.testing.assert_allclose(tiles.std(axis=(-2, -1)), 1, atol=1e-3)
    raw = grid.tiles(img, standardise=False)
    np.testing.assert_array_equal(grid.stitch(raw.reshape(-1, 16, 16), 2), img)


def test_tiled_box_must_fit_the_network(tmp_path: Path, tomo: Path) -> None:
    model = tiny_unet()  # pools once: multiples of 2
    m = loaded(model, metadata("Tiny", model))
    report = segment(
        [m], tomo, tmp_path / "o", mode="tiled", box_size=17, progress=False, verbose=False
    )
    assert len(report.failed) == 1
    assert "box_size=17 does not fit model 'Tiny'" in report.failed[0][1]
    assert "box_size=16" in report.failed[0][1]


def test_implausible_pixel_size_is_one_clear_line(tmp_path: Path, tomo: Path) -> None:
    model = tiny_unet()
    m = loaded(model, metadata("Tiny", model, apix=100.0))
    report = segment([m], tomo, tmp_path / "o", progress=False, verbose=False)
    (line,) = [msg for _, msg in report.failed]
    assert "10 Å vs model 'Tiny' 100 Å" in line and "data_apix=" in line
    assert "\n" not in line
    with pytest.raises(AisInputError):
        TileGrid(10, 10, box=16, overlap=1.0)


def test_automatic_slab_shrinks_for_big_slices_and_batch_fits_memory() -> None:

    from ais_torch.segmentation.engine import EngineOptions, plan, slab_for

    auto = EngineOptions()
    assert slab_for(auto, (300, 511, 720)) == 16
    assert slab_for(auto, (300, 4096, 4096)) == 4  # 256 MB of float32 per slab
    assert slab_for(auto, (5, 511, 720)) == 5
    assert slab_for(EngineOptions(slab=3), (300, 4096, 4096)) == 3
    model = tiny_unet()
    m = loaded(model, metadata("Tiny", model))
    small = plan(m, None, (64, 64, 64), 10.0, auto)
    huge = plan(m, None, (64, 8192, 8192), 10.0, auto)
    assert small.batch == 16 and huge.batch == 1
    assert huge.network_bytes > 2**30  # reported, so the user can switch to mode=tiled
