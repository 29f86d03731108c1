"""Parameter counts equal the original's Keras ``count_params()`` exactly (C = 1)."""

from __future__ import annotations

import pytest
from torch import nn

from ais_torch import archs
from ais_torch.archs.base import count_params_keras

# Paper Table 1 and the original 1.2.40 library (Keras count_params, incl. BN moving stats).
EXPECTED = {
    "eman2": 378_081,
    "inceptionnet": 550_529,
    "unet_s": 922_881,
    "unet_m": 7_771_297,
    "unet_l": 38_791_489,
    "vggnet_s": 1_493_059,
    "vggnet_m": 5_053_955,
    "vggnet_l": 38_239_489,
    "vggnet_l_v1": 17_521_921,
    "vggnet_x": 38_420_097,
    "resnet": 1_215_457,
    "resnet_paper": 4_887_265,
    "pix2pix": 16_661_121,
    "pix2pix_paper": 29_249_409,
    "ezm2d": 43_634_689,
    "ezm2d_bxe": 43_634_689,
    "ezm3d_m": 19_579_265,  # the original 1.2.40's 3D slab networks (Keras count_params)
    "ezm3d_l": 30_981_761,
}


@pytest.mark.parametrize(("name", "count"), EXPECTED.items(), ids=list(EXPECTED))
def test_parameter_count_matches_the_original(name: str, count: int) -> None:
    assert archs.build(name).n_parameters == count


def test_table_covers_every_preset() -> None:
    assert set(EXPECTED) == set(archs.PRESETS)


def test_keras_count_includes_batchnorm_moving_statistics() -> None:
    bn = nn.BatchNorm2d(10)
    assert count_params_keras(bn) == 40  # gamma, beta, moving mean, moving variance
    assert count_params_keras(nn.Conv2d(3, 5, 3)) == 3 * 5 * 9 + 5


def test_pix2pix_counts_the_generator_and_its_discriminator_matches_the_original() -> None:
    model = archs.build("pix2pix_paper")
    assert count_params_keras(model.generator) == model.n_parameters == 29_249_409
    assert count_params_keras(model.discriminator) == 2_767_297


def test_more_input_slices_grow_only_the_first_conv() -> None:
    # The original: ezm-2d's first conv grows by 576 parameters (3*3*64) per extra slice.
    assert archs.build("ezm2d", in_channels=3).n_parameters == 43_634_689 + 2 * 576
