"""Every registered architecture meets the shared contract (``check_arch``)."""

from __future__ import annotations

import pytest
import torch

from ais_torch import archs
from ais_torch.archs.ezm3d import EzM3D
from ais_torch.archs.testing import check_arch
from ais_torch.errors import AisInputError

NAMES = archs.available()
PLANAR = [n for n in NAMES if getattr(archs.load(n), "n_spatial_dims", 2) == 2]
SLAB = [n for n in NAMES if n not in PLANAR]


@pytest.mark.parametrize("name", PLANAR)
def test_contract(name: str, tmp_path) -> None:
    check_arch(name, tmp_dir=tmp_path)


class _TinySlab(EzM3D):
    """ezm-3d's code paths (Z and XY-only pooling, factored kernels) at a size that trains fast."""

    def __init__(
        self,
        *,
        encoder: list = ([[4, 3, 3]], [[8, 1, 3], [8, 3, 1]]),
        bottleneck: list = ([8, 3, 3],),
        decoder: list = ([[8, 1, 3]], [[4, 3, 3]]),
        up_widths: list = (8, 4),
        z_pool: list = (True, False),
        depth: int = 4,
        **common: object,
    ) -> None:
        super().__init__(
            encoder=encoder,
            bottleneck=bottleneck,
            decoder=decoder,
            up_widths=up_widths,
            z_pool=z_pool,
            depth=depth,
            **common,
        )


def test_contract_of_the_slab_network(tmp_path) -> None:
    """The full-size presets are checked for shape and counts below (a training step of a
    20-30 M parameter 3D net is too slow for the suite); the contract runs on a tiny one."""
    model = check_arch(_TinySlab, tmp_dir=tmp_path)
    assert model.example_input_array.shape == (1, 1, 4, 64, 64)


@pytest.mark.parametrize("name", PLANAR)
def test_forward_on_original_box_sizes(name: str) -> None:
    """64x64 (the original's default box) and a non-square 96x160 tile (128x192 if needed)."""
    model = archs.build(name).eval()
    m = model.min_size_multiple
    shapes = [(64, 64), (96, 160) if 96 % m == 0 else (128, 192)]
    with torch.no_grad():
        for h, w in shapes:
            out = model(torch.randn(1, 1, h, w))
            assert out.shape == (1, 1, h, w)
            assert 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("name", PLANAR)
def test_unusable_box_size_says_what_would_work(name: str) -> None:
    model = archs.build(name)
    m = model.min_size_multiple
    if m == 1:
        pytest.skip("no down-sampling: every size works")
    with pytest.raises(AisInputError, match=f"divisible by {m}.*pad the input to {2 * m}x{m}"):
        model(torch.zeros(1, 1, m + 1, m))


def test_wrong_channel_count_is_an_input_error() -> None:
    with pytest.raises(AisInputError, match=r"expects \(B, 1, H, W\)"):
        archs.build("vggnet_s")(torch.zeros(1, 3, 32, 32))


def test_example_input_array_is_a_valid_box() -> None:
    for name in ["pix2pix_paper", "vggnet_x", "inceptionnet"]:
        model = archs.build(name).eval()
        x = model.example_input_array
        assert x.shape == (1, 1, 64, 64)
        assert model(x).shape == (1, 1, 64, 64)


def test_slab_networks_are_registered() -> None:
    assert {"ezm3d", "ezm3d_m", "ezm3d_l"} <= set(SLAB)


@pytest.mark.parametrize("name", SLAB)
def test_slab_network_maps_a_slab_to_a_slab(name: str) -> None:
    """ezm-3d: (B, 1, D, H, W) in, one probability per voxel out, on a 16 x 32 x 48 slab."""
    model = archs.build(name).eval()
    assert model.example_input_array.shape == (1, 1, 16, 64, 64)
    with torch.no_grad():
        out = model(torch.randn(1, 1, 16, 32, 48))
    assert out.shape == (1, 1, 16, 32, 48)
    assert 0 <= out.min() and out.max() <= 1


@pytest.mark.parametrize("name", SLAB)
def test_unusable_slab_says_what_would_work(name: str) -> None:
    model = archs.build(name)
    match = r"D divisible by 4 and H, W by 16.*pad the input to 16x32x16"
    with pytest.raises(AisInputError, match=match):
        model(torch.zeros(1, 1, 15, 17, 16))
    with pytest.raises(AisInputError, match=r"expects a slab \(B, 1, D, H, W\)"):
        model(torch.zeros(1, 1, 32, 32))


def test_slab_output_is_z_coupled() -> None:
    """Changing one input slice changes the prediction of its neighbours (3D decoder)."""
    model = archs.build("ezm3d_m").eval()
    x = torch.randn(1, 1, 16, 32, 32, generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[:, :, 8] += 1.0
    with torch.no_grad():
        a, b = model(x), model(y)
    changed = (a - b).abs().amax(dim=(0, 1, 3, 4))
    assert changed[7] > 0 and changed[9] > 0
