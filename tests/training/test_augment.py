"""Dihedral transforms and rotations move image and label together."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ais_torch.segmentation.tta import dihedral, dihedral_inverse
from ais_torch.training.augment import rotate


def _l_shape(box: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A bright asymmetric L in image (1, B, B) and label (B, B); no symmetry maps it to itself."""
    image = np.zeros((1, box, box), np.float32)
    label = np.zeros((box, box), np.uint8)
    for arr, value in ((image[0], 5.0), (label, 1)):
        arr[6:26, 8:12] = value  # long vertical bar
        arr[22:26, 12:20] = value  # short foot to the right
    return image, label


def test_dihedral_order_is_the_originals_tta_order() -> None:
    x = np.arange(12).reshape(3, 4)
    for k in range(8):
        expected = np.rot90(x, k % 4)
        if k >= 4:
            expected = np.fliplr(expected)
        np.testing.assert_array_equal(dihedral(x, k), expected)
    with pytest.raises(ValueError):
        dihedral(x, 8)


def test_dihedral_keeps_image_and_label_aligned_and_is_invertible() -> None:
    image, label = _l_shape()
    seen = set()
    for k in range(8):
        img_k, lab_k = dihedral(image, k), dihedral(label, k)
        assert img_k.shape == image.shape and lab_k.shape == label.shape
        np.testing.assert_array_equal(lab_k == 1, img_k[0] > 2.5)
        seen.add(lab_k.tobytes())
        np.testing.assert_array_equal(dihedral_inverse(img_k, k), image)
        assert img_k.flags["C_CONTIGUOUS"]
    assert len(seen) == 8  # all eight are different for an asymmetric shape


def test_dihedral_on_torch_matches_numpy() -> None:
    image, _ = _l_shape()
    t = torch.from_numpy(image)[None]  # (N, C, H, W) as at test time
    for k in range(8):
        np.testing.assert_array_equal(dihedral(t, k)[0].numpy(), dihedral(image, k))
        np.testing.assert_array_equal(dihedral_inverse(dihedral(t, k), k).numpy(), t.numpy())


@pytest.mark.parametrize("angle", [90.0, 37.0, 200.0])
def test_rotation_keeps_alignment_and_marks_empty_corners_ignore(angle: float) -> None:
    image, label = _l_shape()
    image += 1.0  # background 1, L 6: the corner fill (box mean) is neither
    rot_img, rot_lab = rotate(image, label, angle)
    assert rot_img.shape == image.shape and rot_img.dtype == np.float32
    assert rot_lab.dtype == np.uint8 and set(np.unique(rot_lab)) <= {0, 1, 2}
    bright = rot_img[0] > 3.5
    feature = rot_lab == 1
    iou = (bright & feature).sum() / (bright | feature).sum()
    assert iou > (0.99 if angle == 90.0 else 0.8)
    assert int(feature.sum()) == pytest.approx(int((label == 1).sum()), rel=0.15)
    if angle == 90.0:
        assert not (rot_lab == 2).any()  # a right angle leaves no empty corner
    else:
        assert rot_lab[0, 0] == 2 and rot_lab[-1, -1] == 2
        assert rot_img[0, 0, 0] == pytest.approx(float(image.mean()), abs=1e-3)


def test_rotation_of_a_deep_box_turns_every_slice_alike() -> None:
    image, label = _l_shape()
    deep = np.concatenate([image, 2 * image, 3 * image])
    rot_img, _ = rotate(deep, label, 30.0)
    assert rot_img.shape == (3, 32, 32)
    np.testing.assert_array_equal(rot_img[1] > 5.0, rot_img[0] > 2.5)
    np.testing.assert_array_equal(rot_img[2] > 7.5, rot_img[0] > 2.5)
