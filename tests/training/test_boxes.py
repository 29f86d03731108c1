"""Boxes from annotated slices: counts, classes, edge padding, rescaling, normalisation, errors."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import mrcfile
import numpy as np
import pytest
from scipy import ndimage

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.boxset import BoxSet
from ais_torch.formats.mrc import Volume, read_volume, write_volume
from ais_torch.segmentation.normalise import (
    apply_global_mad,
    global_mad_stats,
    standardise,
    stat_slices,
)
from ais_torch.training.boxes import concat, extract_boxes


def _files(
    tmp_path: Path, data: np.ndarray, labels: np.ndarray, voxel: float = 10.0
) -> tuple[Volume, Volume]:
    tomo = write_volume(tmp_path / "tomo.mrc", data.astype(np.float32), voxel_size_A=voxel)
    lab = write_volume(tmp_path / "tomo_labels.mrc", labels, voxel_size_A=voxel)
    return read_volume(tomo), read_volume(lab)


class _Recording:
    """A (z, y, x) array that records which z-slices are read."""

    def __init__(self, data: np.ndarray) -> None:
        self._data, self.shape, self.dtype, self.read = data, data.shape, data.dtype, set()

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        z = key[0] if isinstance(key, tuple) else key
        zs = range(*z.indices(self.shape[0])) if isinstance(z, slice) else [int(z)]
        self.read.update(zs)
        return self._data[key]


def test_positive_negative_and_dropped_boxes(tmp_path: Path) -> None:
    data = np.random.default_rng(0).normal(size=(4, 64, 64))
    labels = np.zeros((4, 64, 64), np.int8)
    labels[1, 5:10, 40:50] = 1  # slice 1: feature in the top-right quadrant, rest background
    labels[2] = 2  # slice 2: all ignore except background in the top-left quadrant
    labels[2, :32, :32] = 0
    vol, lab = _files(tmp_path, data, labels)
    assert lab.data.dtype == np.int8  # MRC mode 0, as napari/IMOD masks come
    boxes = extract_boxes(vol, lab, feature="Membrane", box_size=32, stride=32)
    # slice 1: 4 boxes, 1 positive; slice 2: 1 negative, 3 all-ignore boxes dropped; 0/3 unused
    assert (boxes.n_positive, boxes.n_negative) == (1, 4)
    assert [s["z"] for s in boxes.sources] == [1, 1, 1, 1, 2]
    pos = boxes.sources[int(np.flatnonzero(boxes.positives)[0])]
    assert (pos["y"], pos["x"], pos["negative"]) == (16, 48, False)
    assert boxes.images.shape == (5, 1, 32, 32) and boxes.labels.shape == (5, 32, 32)
    assert boxes.images.dtype == np.float32 and boxes.labels.dtype == np.uint8
    assert boxes.apix == 10.0 and boxes.feature == "Membrane"
    assert boxes.normalization == "global_mad"


def test_default_stride_is_half_a_box(tmp_path: Path) -> None:
    labels = np.zeros((2, 64, 64), np.int8)
    labels[0, 30, 30] = 1
    vol, lab = _files(tmp_path, np.random.default_rng(1).normal(size=(2, 64, 64)), labels)
    boxes = extract_boxes(vol, lab, feature="f", box_size=32)
    assert len(boxes) == 9  # 3 x 3 boxes at stride 16
    assert boxes.n_positive == 4  # (30, 30) lies in the four central-corner boxes


def test_only_annotated_slices_are_read() -> None:
    rng = np.random.default_rng(2)
    data = _Recording(rng.normal(size=(50, 48, 48)).astype(np.float32))
    labels = np.zeros((50, 48, 48), np.uint8)
    labels[[7, 20], 10, 10] = 1
    boxes = extract_boxes(
        Volume(data, 10.0), labels, feature="f", box_size=32, normalization="none"
    )
    assert data.read == {7, 20} and boxes.n_positive > 0
    data.read.clear()
    extract_boxes(Volume(data, 10.0), labels, feature="f", box_size=32)
    assert data.read <= {7, 20} | set(stat_slices(50).tolist())


def test_edge_boxes_are_reflect_padded_and_labelled_ignore(tmp_path: Path) -> None:
    data = np.arange(3 * 40 * 40, dtype=np.float32).reshape(3, 40, 40)
    labels = np.zeros((3, 40, 40), np.int8)
    labels[1, 20, 20] = 1
    vol, lab = _files(tmp_path, data, labels)
    boxes = extract_boxes(vol, lab, feature="f", box_size=32, stride=16, normalization="none")
    assert len(boxes) == 4  # starts -4 and 12 in y and x: 8 px overhang split over both edges
    for img, lbl, src in zip(boxes.images, boxes.labels, boxes.sources, strict=True):
        y0, x0 = src["y"] - 16, src["x"] - 16
        ys, xs = np.arange(y0, y0 + 32), np.arange(x0, x0 + 32)
        outside = ((ys < 0) | (ys >= 40))[:, None] | ((xs < 0) | (xs >= 40))[None, :]
        assert outside.any()
        np.testing.assert_array_equal(lbl == 2, outside)
        # the image there mirrors the slice (numpy 'reflect': -1 -> 1, 40 -> 38)
        ry = np.abs(ys)
        ry = np.where(ry >= 40, 78 - ry, ry)
        rx = np.abs(xs)
        rx = np.where(rx >= 40, 78 - rx, rx)
        np.testing.assert_array_equal(img[0], data[1][np.ix_(ry, rx)])


def test_target_apix_rescales_and_keeps_labels_aligned(tmp_path: Path) -> None:
    data = np.zeros((3, 128, 128), np.float32)
    labels = np.zeros((3, 128, 128), np.int8)
    data[1, 40:60, 80:100] = 1.0  # a 20 x 20 px object at 10 Å
    labels[1, 40:60, 80:100] = 1
    labels[1, 101:111, 10:30] = 2  # ignore next to background: must not blend into a "1"
    vol, lab = _files(tmp_path, data, labels)
    same = extract_boxes(vol, lab, feature="f", box_size=128, normalization="none")
    half = extract_boxes(vol, lab, feature="f", box_size=64, apix=20.0, normalization="none")
    assert half.apix == 20.0 and len(same) == len(half) == 1
    assert int((same.labels[0] == 1).sum()) == 400
    assert int((half.labels[0] == 1).sum()) == 100  # 10 x 10 px at 20 Å
    np.testing.assert_array_equal(half.labels[0] == 1, half.images[0, 0] > 0.5)
    assert np.argwhere(half.labels[0] == 1).min(axis=0).tolist() == [20, 40]
    assert (half.sources[0]["y"], half.sources[0]["x"]) == (64, 64)  # centre in tomogram voxels


def test_voxel_size_within_tolerance_is_not_resampled(tmp_path: Path) -> None:
    data = np.random.default_rng(3).normal(size=(2, 64, 64)).astype(np.float32)
    labels = np.zeros((2, 64, 64), np.int8)
    labels[0, 3, 3] = 1
    vol, lab = _files(tmp_path, data, labels, voxel=10.005)
    boxes = extract_boxes(vol, lab, feature="f", box_size=64, apix=10.0, normalization="none")
    np.testing.assert_array_equal(boxes.images[0, 0], data[0])


def test_depth_takes_neighbour_slices_clamped_at_the_ends(tmp_path: Path) -> None:
    data = np.broadcast_to(np.arange(4, dtype=np.float32)[:, None, None], (4, 32, 32)).copy()
    labels = np.zeros((4, 32, 32), np.int8)
    labels[0, 5, 5] = 1
    vol, lab = _files(tmp_path, data, labels)
    boxes = extract_boxes(vol, lab, feature="f", box_size=32, depth=3, normalization="none")
    assert boxes.images.shape == (1, 3, 32, 32) and boxes.depth == 3
    assert boxes.images[0, :, 0, 0].tolist() == [0.0, 0.0, 1.0]


def test_float_labels_with_whole_values_are_accepted(tmp_path: Path) -> None:
    labels = np.zeros((2, 32, 32), np.float32)
    labels[1, 4:8, 4:8] = 1.0
    vol, lab = _files(tmp_path, np.ones((2, 32, 32)), labels)
    assert extract_boxes(vol, lab, feature="f", box_size=32).n_positive == 1


@pytest.mark.parametrize(
    ("labels", "dtype", "needle"),
    [
        ({"value": 0.5}, np.float32, "whole number"),
        ({"value": 3}, np.int8, "label value 3"),
        ({"value": 255}, np.uint8, "0/255"),
    ],
)
def test_bad_label_values_name_the_file(
    tmp_path: Path, labels: dict, dtype: type, needle: str
) -> None:
    lab = np.zeros((2, 32, 32), dtype)
    lab[1, 2, 2] = labels["value"]
    vol, lab_vol = _files(tmp_path, np.ones((2, 32, 32)), lab)
    with pytest.raises(AisInputError, match=needle) as err:
        extract_boxes(vol, lab_vol, feature="f", box_size=32)
    assert "tomo_labels.mrc" in str(err.value)


def test_shape_mismatch_names_both_files(tmp_path: Path) -> None:
    tomo = read_volume(
        write_volume(tmp_path / "a.mrc", np.ones((2, 32, 32), np.float32), voxel_size_A=10)
    )
    lab = read_volume(
        write_volume(tmp_path / "b.mrc", np.ones((2, 32, 30), np.int8), voxel_size_A=10)
    )
    with pytest.raises(AisInputError) as err:
        extract_boxes(tomo, lab, feature="f")
    message = str(err.value)
    assert "a.mrc" in message and "b.mrc" in message and "(2, 32, 30)" in message
    assert "\n" not in message


def test_no_annotated_slice_names_the_label_file(tmp_path: Path) -> None:
    vol, lab = _files(tmp_path, np.ones((2, 32, 32)), np.zeros((2, 32, 32), np.int8))
    with pytest.raises(AisInputError, match="no annotated slice") as err:
        extract_boxes(vol, lab, feature="f", box_size=32)
    assert "tomo_labels.mrc" in str(err.value)


def test_box_larger_than_the_tomogram_is_refused(tmp_path: Path) -> None:
    labels = np.zeros((2, 40, 20), np.int8)
    labels[0, 1, 1] = 1
    vol, lab = _files(tmp_path, np.ones((2, 40, 20)), labels)
    with pytest.raises(AisInputError, match="smaller box_size") as err:
        extract_boxes(vol, lab, feature="f", box_size=64)
    assert "tomo.mrc" in str(err.value)
    # larger than the slice in one axis only: fine, the rest is padding
    assert len(extract_boxes(vol, lab, feature="f", box_size=32)) == 2


def test_nonsense_settings_are_config_errors(tmp_path: Path) -> None:
    labels = np.zeros((2, 32, 32), np.int8)
    labels[0, 1, 1] = 1
    vol, lab = _files(tmp_path, np.ones((2, 32, 32)), labels)
    for kwargs in ({"depth": 2}, {"stride": 0}, {"normalization": "zscore"}, {"box_size": 0}):
        with pytest.raises(ConfigError):
            extract_boxes(vol, lab, feature="f", **kwargs)


def _boxset(n: int, box: int = 8, depth: int = 1, apix: float = 10.0, feature: str = "f") -> BoxSet:
    labels = np.zeros((n, box, box), np.uint8)
    labels[::2, 0, 0] = 1
    return BoxSet(np.zeros((n, depth, box, box)), labels, apix, feature)


def test_concat_pools_and_checks_geometry() -> None:
    pooled = concat([_boxset(3), _boxset(4)])
    assert len(pooled) == 7 and pooled.n_positive == 4 and len(pooled.sources) == 7
    with pytest.raises(AisInputError, match="same box size and depth"):
        concat([_boxset(3), _boxset(3, box=16)])
    with pytest.raises(AisInputError, match="same box size and depth"):
        concat([_boxset(3), _boxset(3, depth=3)])
    with pytest.raises(AisInputError, match="one pixel size"):
        concat([_boxset(3), _boxset(3, apix=13.0)])
    assert concat([_boxset(1), _boxset(1, feature="g")]).feature == "f+g"


@pytest.mark.filterwarnings("ignore:Data array contains NaN")
def test_global_mad_on_a_memmap_reads_only_its_slices(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    data = rng.normal(3.0, 2.0, size=(100, 200, 300)).astype(np.float32)
    data[:, :5, :] = 1e6  # bright border: cropped away
    sampled = stat_slices(100)
    assert len(sampled) == 32 and sampled[0] == 0 and sampled[-1] == 99
    unsampled = sorted(set(range(100)) - set(sampled.tolist()))
    data[unsampled] = np.nan  # would poison the statistic if read
    vol = read_volume(write_volume(tmp_path / "v.mrc", data, voxel_size_A=10), check_finite=False)
    assert isinstance(vol.data, np.memmap)
    center, scale = global_mad_stats(vol)
    region = data[sampled, 40:160, 60:240]  # crop min(int(0.2 n), 64) = 40 (y), 60 (x)
    med = np.median(region)
    assert center == pytest.approx(float(region.mean(dtype=np.float64)), rel=1e-6)
    assert scale == pytest.approx(1.4826 * float(np.median(np.abs(region - med))) + 1e-7, rel=1e-6)
    assert center == pytest.approx(3.0, abs=0.02) and scale == pytest.approx(2.0, rel=0.02)
    recorder = _Recording(data)
    global_mad_stats(recorder)
    assert recorder.read == set(sampled.tolist())
    out = apply_global_mad(data[0], center, scale)
    assert out.dtype == np.float32 and abs(float(np.median(out[40:160, 60:240]))) < 0.05


def test_standardise_gives_zero_mean_unit_std() -> None:
    x = np.random.default_rng(5).normal(7.0, 3.0, size=(3, 16, 16))
    s = standardise(x)
    assert s.dtype == np.float32
    assert abs(float(s.mean())) < 1e-5 and float(s.std()) == pytest.approx(1.0, abs=1e-4)
    assert np.all(standardise(np.full((4, 4), 2.0)) == 0)  # flat box: no division by zero


def test_label_file_written_by_mrcfile_mode0(tmp_path: Path) -> None:
    path = tmp_path / "napari_labels.mrc"
    labels = np.zeros((2, 32, 32), np.int8)
    labels[1, :, :16] = 1
    with mrcfile.new(path) as mrc:  # no voxel size, as some exporters write it
        mrc.set_data(labels)
    tomo = read_volume(
        write_volume(tmp_path / "t.mrc", np.ones((2, 32, 32), np.float32), voxel_size_A=8)
    )
    lab = read_volume(path, voxel_size_A=tomo.voxel_size_A)
    assert lab.data.dtype == np.int8
    boxes = extract_boxes(tomo, lab, feature="f", box_size=32)
    assert boxes.n_positive == 1 and boxes.apix == 8.0


def test_global_mad_accepts_plain_arrays_and_memmaps(tmp_path) -> None:
    """An ndarray/memmap has a ``.data`` buffer; it must not be taken for a Volume's data."""
    from ais_torch.segmentation.normalise import global_mad_stats

    rng = np.random.default_rng(3)
    arr = rng.normal(2.0, 3.0, size=(8, 40, 40)).astype(np.float32)
    mm = np.memmap(tmp_path / "v.raw", dtype=np.float32, mode="w+", shape=arr.shape)
    mm[:] = arr
    assert global_mad_stats(arr) == global_mad_stats(mm)
    assert abs(global_mad_stats(arr)[0] - 2.0) < 0.3


def test_boxes_at_another_pixel_size_see_what_segmentation_sees(tmp_path: Path) -> None:
    """A model trained at 20 Å on a 10 Å tomogram: its boxes are cut from exactly the slice
    that segmentation feeds the network (same normalisation, same resampling)."""
    from ais_torch.segmentation.normalise import global_mad_stats
    from ais_torch.segmentation.preprocess import AisRecipe

    rng = np.random.default_rng(4)
    data = ndimage.gaussian_filter(rng.normal(size=(5, 150, 170)), 1.5).astype(np.float32)
    vol = Volume(data=data, voxel_size_A=10.0, path=tmp_path / "t.mrc")
    lab = np.zeros(data.shape, np.uint8)
    lab[2, 20:120, 20:140] = 1
    boxes = extract_boxes(vol, lab, feature="f", box_size=32, apix=20.0)
    meta = SimpleNamespace(apix=20.0, normalization="global_mad")
    recipe = AisRecipe.for_volume(data, meta, 10.0, stats=global_mad_stats(vol))
    seen = recipe.normalise(data[2:3])[0]  # what the network gets at segmentation
    assert seen.shape == (75, 85)
    inside = 0
    for image, src in zip(boxes.images, boxes.sources, strict=True):
        y0 = round(src["y"] * 0.5) - 16
        x0 = round(src["x"] * 0.5) - 16
        if 0 <= y0 and y0 + 32 <= 75 and 0 <= x0 and x0 + 32 <= 85:
            np.testing.assert_allclose(image[0], seen[y0 : y0 + 32, x0 : x0 + 32], atol=1e-5)
            inside += 1
    assert inside >= 2
