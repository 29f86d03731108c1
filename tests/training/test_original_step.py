"""Our optimiser steps move the loss as the original's Keras training does, from the same start.

For Eman2 and VGGNet S, the same Keras (Glorot-uniform, zero-bias) starting weights — drawn by
numpy from a fixed seed, so no weight file is stored — and one fixed batch with labels 0/1/2 go
through three training steps: ours (``AisArch.compute_loss`` + ``configure_optimizers``) and the
original's (``Ais.models.<arch>.create()``, compiled with its Adam and masked BCE, then
``train_on_batch``). ``data/original_steps.json`` holds the original's losses;
``test_reference_is_the_originals`` (marked ``original``) remakes them
(``AIS_TORCH_REGENERATE=1`` rewrites the file).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from ais_torch import archs

if TYPE_CHECKING:
    from ais_torch.archs.base import AisArch

REFERENCE = Path(__file__).parent / "data" / "original_steps.json"
ORIGINAL_PYTHON = Path(
    os.environ.get("AIS_ORIGINAL_PYTHON", "/root/.cache/ais-original/bin/python")
).expanduser()
ARCHS = {"eman2": "eman2", "vggnet_s": "vggnet_s"}  # our preset: the original's module
N_STEPS = 3
BATCH, SIZE = 8, 64


def keras_start(model: AisArch, seed: int = 0) -> AisArch:
    """Glorot-uniform kernels and zero biases drawn by numpy (the same draw on every machine)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
                fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(module.weight)
                bound = np.sqrt(6.0 / (fan_in + fan_out))
                shape = tuple(module.weight.shape)
                module.weight.copy_(torch.from_numpy(rng.uniform(-bound, bound, shape)))
                if module.bias is not None:
                    module.bias.zero_()
    return model


def fixed_batch(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Standardised smooth noise and labels from it: 1 where dark, 0 elsewhere, a 2 band."""
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.normal(size=(BATCH, 1, SIZE, SIZE)), (0, 0, 2, 2))
    x = ((x - x.mean()) / x.std()).astype(np.float32)
    y = (x < -0.8).astype(np.float32)
    y[:, :, :, :6] = 2.0  # an ignored strip (e.g. outside the tomogram)
    return x, y


def our_losses(preset: str) -> list[float]:
    model = keras_start(archs.build(preset)).train()
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Adam)
    x, y = (torch.from_numpy(a) for a in fixed_batch())
    losses = []
    for _ in range(N_STEPS):
        loss = model.compute_loss(model(x), y)
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        losses.append(model.compute_loss(model(x), y).item())
    return losses


@pytest.mark.parametrize("preset", list(ARCHS))
def test_steps_move_the_loss_like_the_originals(preset: str) -> None:
    """Same start, same batch: the loss before each of 3 Adam steps and after them agrees."""
    reference = json.loads(REFERENCE.read_text())[preset]
    ours = our_losses(preset)
    assert ours[0] == pytest.approx(reference[0], rel=1e-5)  # the loss itself (masked, clipped)
    assert ours[-1] < ours[0]  # the steps learn ...
    # ... exactly as Keras' Adam does (PyTorch's own eps placement is 2-7 % off by step 3)
    assert ours[1:] == pytest.approx(reference[1:], rel=1e-4)


ORIGINAL_SCRIPT = textwrap.dedent(
    """
    import importlib, json, sys
    import numpy as np
    import tensorflow as tf
    h5, batch, module_name, n_steps = sys.argv[1:5]
    data = np.load(batch)
    x = np.transpose(data["x"], (0, 2, 3, 1))  # NCHW -> NHWC
    y = np.transpose(data["y"], (0, 2, 3, 1))
    module = importlib.import_module("Ais.models." + module_name)
    model = module.create(x.shape[1:])  # compiled as the original trains it
    model.set_weights(tf.keras.models.load_model(h5, compile=False).get_weights())
    losses = [float(model.train_on_batch(x, y)) for _ in range(int(n_steps))]
    losses.append(float(model.loss(tf.constant(y), model(x, training=True))))
    print(json.dumps(losses))
    """
)


@pytest.mark.original
@pytest.mark.slow
@pytest.mark.skipif(not ORIGINAL_PYTHON.is_file(), reason="the original Ais is not installed")
def test_reference_is_the_originals(tmp_path: Path) -> None:
    """Replay the steps in the original's Keras; the stored losses must be what it computes."""
    from ais_torch.formats.keras.emit import keras_functional
    from ais_torch.formats.keras.write import keras_h5_bytes

    regenerate = os.environ.get("AIS_TORCH_REGENERATE") == "1"
    x, y = fixed_batch()
    np.savez(tmp_path / "batch.npz", x=x, y=y)
    made: dict[str, list[float]] = {}
    for preset, module_name in ARCHS.items():
        model = keras_start(archs.build(preset)).eval()
        h5 = tmp_path / f"{preset}.h5"
        h5.write_bytes(keras_h5_bytes(keras_functional(model)))
        run = subprocess.run(
            [str(ORIGINAL_PYTHON), "-c", ORIGINAL_SCRIPT, str(h5), str(tmp_path / "batch.npz"),
             module_name, str(N_STEPS)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        made[preset] = json.loads(run.stdout.strip().splitlines()[-1])
    if regenerate or not REFERENCE.exists():
        REFERENCE.parent.mkdir(parents=True, exist_ok=True)
        REFERENCE.write_text(json.dumps(made, indent=1) + "\n")
    stored = json.loads(REFERENCE.read_text())
    for preset, losses in made.items():
        assert losses == pytest.approx(stored[preset], rel=1e-5), preset
