"""The fast-path options: channels_last and bf16 on CPU here; the same on a GPU when present."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch

from ais_torch.segmentation.batch import segment

QUIET = {"progress": False, "verbose": False, "dtype": "float32", "tta": 2}


def _prob(tmp: Path, name: str, model: Path, tomo: Path, **kw) -> np.ndarray:
    report = segment(model, tomo, tmp / name, **QUIET, **kw)
    assert report.ok, report.failed
    return mrcfile.read(report.written[0])


def test_channels_last_and_bf16_on_cpu(tmp_path: Path, tomo_dir: Path, tiny_scnm: Path) -> None:
    tomo = tomo_dir / "t0.mrc"
    ref = _prob(tmp_path, "ref", tiny_scnm, tomo, device="cpu")
    cl = _prob(tmp_path, "cl", tiny_scnm, tomo, device="cpu", channels_last=True)
    np.testing.assert_allclose(cl, ref, atol=1e-5)
    bf16 = _prob(tmp_path, "bf16", tiny_scnm, tomo, device="cpu", precision="bf16")
    assert np.abs(bf16 - ref).max() < 0.05  # bf16 keeps ~3 significant digits


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_paths_match_cpu(tmp_path: Path, tomo_dir: Path, tiny_scnm: Path) -> None:
    tomo = tomo_dir / "t0.mrc"
    ref = _prob(tmp_path, "ref", tiny_scnm, tomo, device="cpu")
    fp32 = _prob(tmp_path, "fp32", tiny_scnm, tomo, device="cuda", precision="fp32")
    np.testing.assert_allclose(fp32, ref, atol=1e-4)  # TF32 off: float32 like the CPU
    fast = _prob(tmp_path, "fast", tiny_scnm, tomo, device="cuda", precision="bf16")
    assert np.abs(fast - ref).max() < 0.05
    compiled = _prob(tmp_path, "c", tiny_scnm, tomo, device="cuda", precision="fp32", compile=True)
    np.testing.assert_allclose(compiled, ref, atol=1e-4)
