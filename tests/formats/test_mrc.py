"""MRC reading/writing: geometry survives, big files stay mapped, bad files get one clear line."""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from ais_torch.errors import AisInputError
from ais_torch.formats import VolumeWriter, iter_slabs, read_volume, write_volume


def _write_raw(path: Path, data: np.ndarray, voxel_size: float | None = 10.0) -> Path:
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        if voxel_size is not None:
            mrc.voxel_size = voxel_size
    return path


@pytest.mark.parametrize("suffix", [".mrc", ".rec", ".map"])
def test_round_trip_keeps_voxel_size_and_origin(tmp_path: Path, suffix: str) -> None:
    data = np.random.default_rng(0).normal(size=(6, 20, 30)).astype(np.float32)
    out = write_volume(
        tmp_path / f"t{suffix}", data, voxel_size_A=13.48, origin_A=(-512.0, 8.0, -128.0)
    )
    vol = read_volume(out)
    np.testing.assert_array_equal(vol.data, data)
    assert vol.voxel_size_A == pytest.approx(13.48, rel=1e-5)
    assert vol.origin_A == (-512.0, 8.0, -128.0)
    assert vol.shape == (6, 20, 30)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint16, np.float16, np.float32])
def test_reads_every_supported_mode(tmp_path: Path, dtype: type) -> None:
    data = (np.arange(2 * 8 * 8) % 100).astype(dtype).reshape(2, 8, 8)
    vol = read_volume(_write_raw(tmp_path / "m.mrc", data))
    np.testing.assert_array_equal(np.asarray(vol.data), data)


def test_uint8_is_written_as_mode6_like_the_original(tmp_path: Path) -> None:
    data = np.full((2, 4, 4), 255, np.uint8)
    out = write_volume(tmp_path / "u8.mrc", data, voxel_size_A=10.0)
    with mrcfile.open(out) as mrc:
        assert int(mrc.header.mode) == 6
    assert int(read_volume(out).data.max()) == 255


def test_imod_unsigned_bytes_are_read_as_uint8(tmp_path: Path) -> None:
    path = _write_raw(tmp_path / "imod.mrc", np.full((2, 4, 4), -56, np.int8))
    with open(path, "r+b") as fh:  # imodStamp / imodFlags live at bytes 152 and 156
        fh.seek(152)
        fh.write(np.array([1146047817, 0], dtype="<i4").tobytes())
    vol = read_volume(path)
    assert vol.data.dtype == np.uint8
    assert int(vol.data[0, 0, 0]) == 200


def test_read_is_memory_mapped_and_slabs_match(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.normal(size=(40, 64, 64)).astype(np.float32)
    vol = read_volume(write_volume(tmp_path / "big.mrc", data, voxel_size_A=5.0))
    assert isinstance(vol.data, np.memmap)
    # touching one slab loads one slab; the slabs cover the volume exactly once
    pieces = [np.asarray(vol.data[zs]) for zs in iter_slabs(vol.shape[0], 7)]
    assert [p.shape[0] for p in pieces] == [7, 7, 7, 7, 7, 5]
    np.testing.assert_array_equal(np.concatenate(pieces), data)


def test_streaming_writer_equals_whole_write(tmp_path: Path) -> None:
    data = np.random.default_rng(2).random((9, 16, 12)).astype(np.float32)
    with VolumeWriter(
        tmp_path / "s.mrc", data.shape, np.float32, voxel_size_A=4.0, origin_A=(1.0, 2.0, 3.0)
    ) as writer:
        for zs in iter_slabs(9, 4):
            writer.write(zs, data[zs])
    vol = read_volume(tmp_path / "s.mrc")
    np.testing.assert_array_equal(vol.data, data)
    assert vol.origin_A == (1.0, 2.0, 3.0)
    assert vol.voxel_size_A == pytest.approx(4.0)


class _Boom(RuntimeError):
    pass


def test_crash_mid_write_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "seg.mrc"
    with pytest.raises(_Boom), VolumeWriter(target, (4, 8, 8), np.float32, voxel_size_A=1.0) as w:
        w.write(slice(0, 2), np.ones((2, 8, 8), np.float32))
        raise _Boom("simulated crash")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_ctrl_c_mid_write_leaves_no_file_and_keeps_old_output(tmp_path: Path) -> None:
    target = tmp_path / "seg.mrc"
    write_volume(target, np.zeros((2, 4, 4), np.float32), voxel_size_A=1.0)
    before = target.read_bytes()
    with (
        pytest.raises(KeyboardInterrupt),
        VolumeWriter(target, (2, 4, 4), np.float32, voxel_size_A=1.0) as w,
    ):
        w.write(slice(0, 1), np.ones((1, 4, 4), np.float32))
        raise KeyboardInterrupt
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["seg.mrc"]


def _one_line(err: pytest.ExceptionInfo[AisInputError], path: Path) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


def test_truncated_file(tmp_path: Path) -> None:
    path = _write_raw(tmp_path / "t.mrc", np.zeros((4, 32, 32), np.float32))
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) - 100)
    with pytest.raises(AisInputError) as err:
        read_volume(path)
    assert "truncated" in _one_line(err, path)


@pytest.mark.parametrize(
    "payload", [b"", b"hello", b"\0" * 4096, b"P5\n64 64\n255\n" + b"\0" * 4096]
)
def test_not_an_mrc(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "junk.mrc"
    path.write_bytes(payload)
    with pytest.raises(AisInputError) as err:
        read_volume(path)
    _one_line(err, path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AisInputError) as err:
        read_volume(tmp_path / "nope.mrc")
    assert "not found" in _one_line(err, tmp_path / "nope.mrc")


def test_2d_image_is_refused(tmp_path: Path) -> None:
    path = _write_raw(tmp_path / "img.mrc", np.zeros((32, 32), np.float32))
    with pytest.raises(AisInputError) as err:
        read_volume(path)
    assert "2D" in _one_line(err, path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_voxels(tmp_path: Path, bad: float) -> None:
    data = np.zeros((20, 8, 8), np.float32)
    data[17, 3, 5] = bad
    path = _write_raw(tmp_path / "nan.mrc", data)
    with pytest.raises(AisInputError) as err:
        read_volume(path)
    assert "z=17, y=3, x=5" in _one_line(err, path)
    read_volume(path, check_finite=False)  # the caller may opt out


def test_missing_voxel_size_needs_override(tmp_path: Path) -> None:
    path = _write_raw(tmp_path / "nov.mrc", np.zeros((3, 8, 8), np.float32), voxel_size=None)
    with pytest.raises(AisInputError) as err:
        read_volume(path)
    assert "voxel_size_A" in _one_line(err, path)
    assert read_volume(path, voxel_size_A=8.5).voxel_size_A == 8.5
    with pytest.raises(AisInputError):
        read_volume(path, voxel_size_A=0.0)


def test_reference_tomogram_reads_with_its_geometry() -> None:
    shared = Path(__file__).resolve().parents[2].parent / "shared"
    tomo = shared / "reference" / "tomograms" / "seed101" / "tomo.mrc"
    if not tomo.exists():
        pytest.skip(f"reference kit not found at {tomo}")
    vol = read_volume(tomo)
    assert vol.shape == (64, 256, 256)
    assert vol.voxel_size_A == pytest.approx(10.0)
