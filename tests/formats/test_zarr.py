"""OME-Zarr tomograms: the level nearest the model, lazy slabs, atomic stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from ais_torch.errors import AisInputError  # noqa: E402
from ais_torch.formats.zarr import ome_attrs, open_ome_zarr, write_ome_zarr  # noqa: E402


def _two_levels(path: Path, unit: str = "angstrom") -> np.ndarray:
    """A store with level 0 at 8 Å (or 0.8 nm) and level 1 at 16 Å."""
    full = np.arange(4 * 16 * 20, dtype=np.float32).reshape(4, 16, 20)
    root = zarr.open_group(str(path), mode="w")
    root.create_dataset("0", data=full, chunks=(2, 16, 20))
    root.create_dataset("1", data=full[::2, ::2, ::2], chunks=(2, 8, 10))
    scale = 1.0 if unit == "angstrom" else 0.1
    attrs = ome_attrs(8.0 * scale)
    ms = attrs["multiscales"][0]  # type: ignore[index]
    for axis in ms["axes"]:
        axis["unit"] = unit
    ms["datasets"].append(
        {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [16 * scale] * 3}]}
    )
    root.attrs.update(attrs)
    return full


@pytest.mark.parametrize("unit", ["angstrom", "nanometer"])
def test_level_nearest_the_model(tmp_path: Path, unit: str) -> None:
    full = _two_levels(tmp_path / "t.zarr", unit)
    fine = open_ome_zarr(tmp_path / "t.zarr", target_A=9.0)
    coarse = open_ome_zarr(tmp_path / "t.zarr", target_A=14.0)
    assert fine.voxel_size_A == pytest.approx(8.0) and fine.shape == (4, 16, 20)
    assert coarse.voxel_size_A == pytest.approx(16.0) and coarse.shape == (2, 8, 10)
    np.testing.assert_array_equal(np.asarray(fine.data[1:3]), full[1:3])
    with pytest.raises(AisInputError, match=r"no level near the model's 40 Å \(there: 8 Å, 16 Å\)"):
        open_ome_zarr(tmp_path / "t.zarr", target_A=40.0)


def test_plain_zarr_without_metadata_is_one_line(tmp_path: Path) -> None:
    zarr.open_group(str(tmp_path / "x.zarr"), mode="w").create_dataset("0", shape=(2, 4, 4))
    with pytest.raises(AisInputError, match="without OME 'multiscales' metadata"):
        open_ome_zarr(tmp_path / "x.zarr")


def test_write_is_atomic_and_replaces(tmp_path: Path) -> None:
    data = np.random.default_rng(0).random((5, 12, 9)).astype(np.float32)
    target = tmp_path / "out.zarr"
    write_ome_zarr(target, data, voxel_size_A=7.5)
    write_ome_zarr(target, data * 2, voxel_size_A=7.5)
    assert [p.name for p in tmp_path.iterdir()] == ["out.zarr"]
    back = open_ome_zarr(target)
    assert back.voxel_size_A == 7.5
    np.testing.assert_array_equal(np.asarray(back.data[:]), data * 2)
    with pytest.raises(AisInputError, match="already exists"):
        write_ome_zarr(target, data, voxel_size_A=7.5, overwrite=False)
