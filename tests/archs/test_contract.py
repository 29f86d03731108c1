"""Every registered architecture meets the shared contract (``check_arch``)."""

from __future__ import annotations

import pytest
import torch

from ais_torch import archs
from ais_torch.archs.testing import check_arch
from ais_torch.errors import AisInputError

NAMES = archs.available()


@pytest.mark.parametrize("name", NAMES)
def test_contract(name: str, tmp_path) -> None:
    check_arch(name, tmp_dir=tmp_path)


@pytest.mark.parametrize("name", NAMES)
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


@pytest.mark.parametrize("name", NAMES)
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
