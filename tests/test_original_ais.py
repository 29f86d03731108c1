"""Our Keras .scnm export opened and run by the ORIGINAL Ais (TensorFlow), in a subprocess.

Every exported model is loaded with the original's own loader (``SEModel.load``, which is what
``ais segment`` calls: tar → ``keras.models.load_model(h5, compile=False)`` → its inference
rebuild) and cloned onto ``Input((None, None, depth))`` exactly as ``ais segment`` does, then
predicts a fixed input. One model also goes through the ``ais segment`` command itself on a
tiny tomogram. TensorFlow takes ~10 s to start, so everything runs in ONE subprocess.
The original is found at ``AIS_ORIGINAL_PYTHON`` or ``/root/.cache/ais-original/bin/python``.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy import ndimage

import ais_torch
from ais_torch import archs
from ais_torch.archs.presets import PRESETS as PRESETS_ALL
from ais_torch.formats.keras.write import write_original_scnm
from ais_torch.formats.mrc import read_volume, write_volume
from ais_torch.formats.scnm import ModelMetadata

ORIGINAL_PYTHON = Path(
    os.environ.get("AIS_ORIGINAL_PYTHON", "/root/.cache/ais-original/bin/python")
).expanduser()
TOLERANCE = 1e-4
PRESETS = ["vggnet_s", "vggnet_m", "unet_s", "unet_m", "eman2", "resnet", "inceptionnet", "pix2pix"]
if os.environ.get("AIS_ORIGINAL_ALL_PRESETS") == "1":  # + the 17-44 M parameter ones (~2 min)
    PRESETS += [p for p in PRESETS_ALL if p not in PRESETS]
CLI_PRESET = "unet_m"  # BatchNorm in inference mode + transposed convs through `ais segment`
CLI_TITLE = "Membrane"

pytestmark = [
    pytest.mark.original,
    pytest.mark.slow,
    pytest.mark.skipif(
        not ORIGINAL_PYTHON.is_file(),
        reason=f"the original Ais is not installed ({ORIGINAL_PYTHON}; set AIS_ORIGINAL_PYTHON)",
    ),
]

# Runs inside the original's Python. The CLI goes first: like `ais segment` itself, it forks its
# worker before this process has run any TensorFlow graph.
ORIGINAL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np

    job = json.load(open(sys.argv[1]))
    from Ais.main import main
    sys.argv = ["ais", "segment", "-m", job["cli_model"], "-d", job["tomogram"],
                "-ou", job["out_dir"], "-gpu", "0"]
    try:
        main()
    except SystemExit:
        pass

    from keras.layers import Input
    from keras.models import clone_model, Model
    from Ais.core.se_model import SEModel

    x = np.load(job["x"])
    predictions, info = {}, {}
    for name, path in job["models"].items():
        se = SEModel(no_glfw=True)
        se.load(path, compile=False)
        model = se.model
        if isinstance(model, Model):  # what `ais segment` runs: the graph on a free-size input
            clone = clone_model(model, input_tensors=Input(shape=(None, None, se.model_depth)))
            clone.set_weights(model.get_weights())
            y = clone.predict(x, verbose=0)
        else:  # Pix2pix: the original's own wrapper (its `ais segment` cannot clone it)
            y = model.predict(x)
        predictions[name] = y
        info[name] = {"title": se.title, "arch": se.arch, "apix": se.apix,
                      "n_parameters": int(model.count_params()),
                      "normalization": se.normalization}
    np.savez(job["result"], **predictions)
    json.dump(info, open(job["info"], "w"))
    """
)


def _randomised(preset: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = archs.build(preset).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.dtype.is_floating_point and t.ndim == 1:  # kernels keep Keras init
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
                else:
                    t.add_(torch.randn(t.shape, generator=gen) * 0.2)  # biases, BN
    return model


@pytest.fixture(scope="module")
def original_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Export every model, run the original once, return its outputs next to ours."""
    work = tmp_path_factory.mktemp("original_ais")
    x = torch.randn(1, 1, 64, 128, generator=torch.Generator().manual_seed(3))
    models, ours = {}, {}
    for i, preset in enumerate(PRESETS):
        model = _randomised(preset, seed=10 + i)
        meta = ModelMetadata(title=CLI_TITLE, apix=10.0, normalization="global_mad")
        models[preset] = str(write_original_scnm(work / f"{preset}.scnm", model, meta))
        with torch.no_grad():
            ours[preset] = model(x).numpy()

    rng = np.random.default_rng(5)
    tomogram = ndimage.gaussian_filter(rng.standard_normal((6, 96, 128)), (0.5, 2, 2))
    tomo_path = work / "tiny.mrc"
    write_volume(tomo_path, tomogram.astype(np.float32), voxel_size_A=10.0)
    np.save(work / "x.npy", x.numpy().transpose(0, 2, 3, 1))  # NHWC for Keras
    job = {
        "models": models,
        "x": str(work / "x.npy"),
        "result": str(work / "result.npz"),
        "info": str(work / "info.json"),
        "cli_model": models[CLI_PRESET],
        "tomogram": str(tomo_path),
        "out_dir": str(work / "segmented"),
    }
    (work / "job.json").write_text(json.dumps(job))
    (work / "run.py").write_text(ORIGINAL_SCRIPT)
    done = subprocess.run(
        [str(ORIGINAL_PYTHON), str(work / "run.py"), str(work / "job.json")],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=work,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert done.returncode == 0 and Path(job["result"]).is_file(), done.stderr[-3000:]
    with np.load(job["result"]) as data:
        theirs = {k: data[k].transpose(0, 3, 1, 2) for k in data.files}  # back to NCHW
    return {
        "ours": ours,
        "theirs": theirs,
        "info": json.loads(Path(job["info"]).read_text()),
        "tomogram": tomo_path,
        "cli_output": work / "segmented" / f"tiny__{CLI_TITLE}.mrc",
        "models": models,
        "log": done.stdout,
    }


@pytest.mark.parametrize("preset", PRESETS)
def test_original_ais_predicts_what_we_predict(original_run: dict[str, Any], preset: str) -> None:
    ours, theirs = original_run["ours"][preset], original_run["theirs"][preset]
    if archs.PRESETS[preset][1].get("output_activation") == "tanh":
        theirs = theirs.clip(0.0, 1.0)  # what the original segments; ours returns it clamped
    assert ours.shape == theirs.shape
    assert float(ours.std()) > 1e-3  # a constant output would prove little
    diff = float(np.abs(ours - theirs).max())
    print(f"{preset}: max abs diff vs the original Ais {diff:.2e}")
    assert diff <= TOLERANCE
    info = original_run["info"][preset]
    model = ais_torch.load_model(original_run["models"][preset])
    assert info["arch"] == model.metadata.arch and info["title"] == CLI_TITLE
    assert info["n_parameters"] == model.n_parameters
    assert info["normalization"] == "global_mad" and info["apix"] == 10.0


def test_ais_segment_cli_writes_our_segmentation(original_run: dict[str, Any]) -> None:
    path = original_run["cli_output"]
    assert path.is_file(), original_run["log"][-2000:]
    theirs = read_volume(path).data.astype(np.int16)
    model = ais_torch.load_model(original_run["models"][CLI_PRESET])
    volume = read_volume(original_run["tomogram"])
    ours = ais_torch.segment_volume(volume, model, voxel_size_A=10.0)[model.metadata.title]
    ours = ours.astype(np.int16)
    assert ours.shape == theirs.shape
    assert np.ptp(ours) > 20  # the model's output really varies over the tomogram
    close = float(np.mean(np.abs(ours - theirs) <= 1))
    print(f"ais segment vs ours: {close:.5f} of voxels within 1 grey level")
    assert close >= 0.999
