"""``arch.init``: the starting weights every architecture is built with.

``keras`` (the default) gives each convolution and dense kernel Glorot-uniform values — bound
``sqrt(6 / (fan_in + fan_out))``, standard deviation ``bound / sqrt(3)`` — and zero biases, as
the original's Keras layers; ``pytorch`` gives each layer's own ``reset_parameters()``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ais_torch import archs
from ais_torch.errors import ConfigError

KERNELS = (nn.modules.conv._ConvNd, nn.Linear)


def _kernels(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, KERNELS)]


@pytest.mark.parametrize("preset", ["vggnet_s", "unet_s", "eman2", "resnet", "pix2pix", "ezm2d"])
def test_keras_init_is_glorot_uniform_with_zero_biases(preset: str) -> None:
    torch.manual_seed(0)
    model = archs.build(preset)
    assert model.hparams.init == "keras"
    for layer in _kernels(model):
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        w = layer.weight.detach()
        assert float(w.abs().max()) <= bound + 1e-7
        if w.numel() >= 10_000:  # enough values to pin the distribution down
            assert float(w.abs().max()) > 0.99 * bound
            assert float(w.std()) == pytest.approx(bound / math.sqrt(3.0), rel=0.03)
            assert abs(float(w.mean())) < 0.02 * bound
        if layer.bias is not None:
            assert not layer.bias.detach().any()
    for bn in (m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
        assert torch.equal(bn.weight.detach(), torch.ones_like(bn.weight))
        assert not bn.bias.detach().any()


def test_pytorch_init_is_each_layers_own() -> None:
    """Kaiming-uniform kernels (bound 1/sqrt(fan_in), narrower than Glorot's), non-zero biases."""
    torch.manual_seed(0)
    model = archs.build("vggnet_s", init="pytorch")
    layer = _kernels(model)[1]  # a 3x3, 64 -> 64 convolution
    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(layer.weight)
    bound = 1.0 / math.sqrt(fan_in)
    w = layer.weight.detach()
    assert float(w.abs().max()) <= bound + 1e-7
    assert float(w.std()) == pytest.approx(bound / math.sqrt(3.0), rel=0.03)
    assert layer.bias is not None and layer.bias.detach().abs().min() > 0


def test_init_is_recorded_and_survives_a_model_file(tmp_path) -> None:
    from ais_torch.formats.scnm import ModelMetadata, load_scnm, save_scnm

    model = archs.build("eman2", init="pytorch")
    meta = ModelMetadata(title="M", arch_name="eman2", arch_hparams=dict(model.hparams))
    save_scnm(tmp_path / "m.scnm", model, meta)
    loaded, _ = load_scnm(tmp_path / "m.scnm")
    assert loaded.hparams.init == "pytorch"
    for a, b in zip(model.parameters(), loaded.parameters(), strict=True):
        assert torch.equal(a, b)  # the file's weights, not a fresh draw


def test_unknown_init_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="init"):
        archs.build("eman2", init="he_normal")
