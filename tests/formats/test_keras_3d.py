"""The original's 3D slab models (ezm-3d-M, ezm-3d-L) predict in ais_torch what TensorFlow does.

TensorFlow's predictions are stored (``data/ezm3d_tf_<M|L>.npz``, made by the original Ais
1.2.40 with ``ezm3d_original.py``) for a network whose every weight comes from the seeded
recipe in ``ezm3d_recipe.py``; our network gets the same weights from the same recipe, so CI
checks the forward pass without TensorFlow. Marked ``original``: the original builds and saves
the models (80-120 MB, never stored), ``load_model`` opens its ``.scnm`` and the stored
references are checked to be what TensorFlow gives.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ais_torch
from ais_torch.archs.ezm3d import EzM3D

sys.path.insert(0, str(Path(__file__).parent))
import ezm3d_recipe as recipe
from ezm3d_recipe import seeded

HERE = Path(__file__).parent
DATA = HERE / "data"
ORIGINAL_PYTHON = Path(
    os.environ.get("AIS_ORIGINAL_PYTHON", "/root/.cache/ais-original/bin/python")
).expanduser()
CASES = {"ezm-3d-M": ("ezm3d_m", 19_579_265), "ezm-3d-L": ("ezm3d_l", 30_981_761)}
TOLERANCE = 1e-4


def _predict(model: torch.nn.Module) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(recipe.slab_input())).numpy()


@pytest.mark.parametrize("title", list(CASES))
def test_seeded_network_predicts_what_tensorflow_predicted(title: str) -> None:
    preset, count = CASES[title]
    model = seeded(preset)
    assert model.n_parameters == count
    theirs = np.load(DATA / f"ezm3d_tf_{title[-1]}.npz")["output"]
    ours = _predict(model)
    assert ours.shape == theirs.shape == (1, 1, *recipe.INPUT_SHAPE)
    assert np.abs(ours - theirs).max() <= TOLERANCE
    assert theirs.std() > 0.05  # a varied output: the comparison means something


@pytest.mark.original
@pytest.mark.slow
@pytest.mark.skipif(not ORIGINAL_PYTHON.is_file(), reason="the original Ais is not installed")
@pytest.mark.parametrize("title", list(CASES))
def test_load_model_opens_the_originals_scnm(title: str, tmp_path: Path) -> None:
    """The original builds, seeds and saves the model; ``load_model`` gives our architecture
    with TensorFlow's prediction; the stored reference is what TensorFlow gives
    (``AIS_TORCH_REGENERATE=1`` rewrites it)."""
    scnm, npz = tmp_path / f"{title}.scnm", tmp_path / f"{title}.npz"
    script = HERE / "ezm3d_original.py"
    run = subprocess.run(
        [str(ORIGINAL_PYTHON), str(script), title, str(scnm), str(npz)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    tf = np.load(npz)
    preset, count = CASES[title]
    assert int(tf["n_parameters"]) == count
    stored = DATA / f"ezm3d_tf_{title[-1]}.npz"
    if os.environ.get("AIS_TORCH_REGENERATE") == "1":
        np.savez_compressed(stored, output=tf["output"])
    assert np.abs(np.load(stored)["output"] - tf["output"]).max() <= 1e-6

    model = ais_torch.load_model(str(scnm))
    assert isinstance(model, EzM3D) and model.preset == preset
    meta = model.metadata
    assert (meta.model_depth, meta.z_jitter, meta.arch_name) == (16, 16, "ezm3d")
    assert meta.n_parameters == model.n_parameters == count
    assert np.abs(_predict(model) - tf["output"]).max() <= TOLERANCE


def test_a_slab_network_is_written_as_keras_and_reads_back(tmp_path: Path) -> None:
    """Export of a (tiny) ezm-3d: Conv3D/Conv3DTranspose/MaxPooling3D with depth last, the
    original's 5-D input ``(1, None, None, depth, 1)``, and the metadata's slab depth."""
    import json
    import tarfile

    from ais_torch.formats.keras.write import write_original_scnm
    from ais_torch.formats.scnm import ModelMetadata, load_scnm, save_scnm

    torch.manual_seed(0)
    tiny = {
        "encoder": [[[4, 3, 3]], [[8, 1, 3], [8, 3, 1]]],
        "bottleneck": [[8, 3, 3]],
        "decoder": [[[8, 1, 3]], [[4, 3, 3]]],
        "up_widths": [8, 4],
        "z_pool": [True, False],
        "depth": 8,
    }
    model = ais_torch.archs.build("ezm3d", **tiny).eval()
    meta = ModelMetadata(title="Tiny3D", apix=10.0, model_depth=8, z_jitter=8)
    path = write_original_scnm(tmp_path / "tiny.scnm", model, meta)
    with tarfile.open(path) as tar:
        stored = json.load(tar.extractfile("Tiny3D_metadata.json"))  # type: ignore[arg-type]
    assert (stored["model_depth"], stored["z_jitter"], stored["arch"]) == (8, 8, "ezm-3d")
    again, _ = load_scnm(path)
    x = torch.randn(1, 1, 8, 16, 32)
    with torch.no_grad():
        assert torch.allclose(again(x), model(x), atol=1e-6)
    # and in our own format: the architecture is rebuilt from its recorded hyperparameters
    meta.arch_name, meta.arch_hparams = model.arch_name, dict(model.hparams)
    ours, meta2 = load_scnm(save_scnm(tmp_path / "ours.scnm", model, meta))
    assert isinstance(ours, EzM3D) and meta2.model_depth == 8
    with torch.no_grad():
        assert torch.equal(ours(x), model(x))


@pytest.mark.original
@pytest.mark.slow
@pytest.mark.skipif(not ORIGINAL_PYTHON.is_file(), reason="the original Ais is not installed")
@pytest.mark.parametrize("title", list(CASES))
def test_the_original_opens_our_export(title: str, tmp_path: Path) -> None:
    """Our seeded network written as the original's .scnm: its ``SEModel.load`` sees the
    architecture, depth and count, and TensorFlow predicts what TensorFlow predicted for the
    original's own build of it."""
    from ais_torch.formats.keras.write import write_original_scnm
    from ais_torch.formats.scnm import ModelMetadata

    preset, count = CASES[title]
    meta = ModelMetadata(title="Ours", apix=10.0, model_depth=16, z_jitter=16)
    path = write_original_scnm(tmp_path / "ours.scnm", seeded(preset), meta)
    npz = tmp_path / "opened.npz"
    run = subprocess.run(
        [str(ORIGINAL_PYTHON), str(HERE / "ezm3d_original_open.py"), str(path), str(npz)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    opened = np.load(npz)
    assert (str(opened["arch"]), int(opened["model_depth"])) == (title, 16)
    assert int(opened["n_parameters"]) == count
    theirs = np.load(DATA / f"ezm3d_tf_{title[-1]}.npz")["output"]
    assert np.abs(opened["output"] - theirs).max() <= TOLERANCE
