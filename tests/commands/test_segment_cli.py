"""``ais-torch segment``: Hydra overrides in, segmentations and one-line errors out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from ais_torch import archs
from ais_torch.formats.mrc import write_volume
from ais_torch.formats.scnm import ModelMetadata, save_scnm


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "AIS_TORCH_DEBUG": ""}
    cmd = [sys.executable, "-m", "ais_torch.segment", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _model(path: Path, title: str) -> Path:
    net = archs.build("unet_s", encoder=[[4]], bottleneck=[8], decoder=[[4]]).eval()
    meta = ModelMetadata(
        title=title, apix=10.0, arch_name=net.arch_name, arch_hparams=dict(net.hparams)
    )
    return save_scnm(path, net, meta)


def test_cli_batch_with_two_models_goes_past_a_bad_file(tmp_path: Path) -> None:
    tomos = tmp_path / "tomos"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        vol = rng.normal(size=(5, 32, 40)).astype(np.float32)
        write_volume(tomos / f"{name}.mrc", vol, voxel_size_A=10.0)
    (tomos / "broken.mrc").write_bytes(bytes(1500))
    m1, m2 = _model(tmp_path / "m1.scnm", "Membrane"), _model(tmp_path / "m2.scnm", "Carbon")
    result = _run(
        f"model=[{m1},{m2}]",
        f"data={tomos}",
        "out=seg",
        "tta=2",
        "slab=2",
        "progress=false",
        "interactions.competition=false",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    written = sorted(p.name for p in (tmp_path / "seg").iterdir())
    assert written == ["a__Carbon.mrc", "a__Membrane.mrc", "b__Carbon.mrc", "b__Membrane.mrc"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.mrc" in errors[0] and "not an MRC file" in errors[0]
    assert "memory: ~" in result.stderr and "slab 2 slices × 2 models" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*.log")) and not (tmp_path / "outputs").exists()


def test_cli_missing_data_is_one_line(tmp_path: Path) -> None:
    result = _run("model=x.scnm", "out=seg", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: missing data; e.g. ais-torch segment model=Membrane.scnm "
        "data=tomograms/ out=segmentations/"
    ]
