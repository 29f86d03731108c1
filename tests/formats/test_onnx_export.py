"""ONNX export: onnxruntime matches PyTorch at several sizes, and the metadata travels along."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ais_torch import archs
from ais_torch.errors import AisInputError, ModelFormatError
from ais_torch.formats.onnx import OnnxModel, export_onnx
from ais_torch.formats.scnm import ModelMetadata

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TOL = 1e-4


@pytest.mark.parametrize("name", ["unet_s", "vggnet_s", "eman2"])
def test_onnx_matches_torch_dynamic_shapes(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = archs.build(name).eval()
    meta = ModelMetadata(title="Membrane", apix=10.0, box_size=64, threshold=0.4, arch=name)
    meta.arch_name = name
    meta.extra = {"from_elsewhere": [1, 2]}
    out = export_onnx(model, meta, tmp_path / "m.onnx")
    assert out.is_file() and not list(tmp_path.glob("*.data")) and not list(tmp_path.glob(".*"))

    runner = OnnxModel(out)
    rng = np.random.default_rng(1)
    for shape in [(2, 1, 64, 64), (2, 1, 96, 128), (1, 1, 128, 64)]:
        x = rng.random(shape, dtype=np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        got = runner(x)
        assert got.shape == want.shape == (shape[0], 1, *shape[2:])
        assert float(np.abs(got - want).max()) <= TOL

    back = runner.metadata
    assert back.title == "Membrane" and back.apix == 10.0 and back.threshold == 0.4
    assert back.arch_name == name and back.n_parameters == model.n_parameters
    assert back.extra == {"from_elsewhere": [1, 2]}
    assert runner.min_size_multiple == model.min_size_multiple


def test_onnx_refuses_bad_input(tmp_path: Path) -> None:
    model = archs.build("eman2").eval()
    runner = OnnxModel(export_onnx(model, ModelMetadata(title="t"), tmp_path / "m.onnx"))
    with pytest.raises(AisInputError, match="B, C, H, W"):
        runner(np.zeros((64, 64), np.float32))
    if model.min_size_multiple > 1:
        with pytest.raises(AisInputError, match="multiples"):
            runner(np.zeros((1, 1, 65, 64), np.float32))


def test_onnx_without_ais_metadata_is_refused(tmp_path: Path) -> None:
    import onnx

    model = archs.build("eman2").eval()
    path = export_onnx(model, ModelMetadata(title="t"), tmp_path / "m.onnx")
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    onnx.save_model(proto, str(path))
    with pytest.raises(ModelFormatError, match="no Ais metadata"):
        OnnxModel(path)


def test_not_onnx_is_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelFormatError, match="ONNX"):
        OnnxModel(bad)


@pytest.mark.slow
def test_pix2pix_exports_and_matches(tmp_path: Path) -> None:
    """Pix2pix's 8-level generator (1x1 bottleneck at 256 px) exports with dynamic H/W."""
    torch.manual_seed(0)
    model = archs.build("pix2pix").eval()
    runner = OnnxModel(export_onnx(model, ModelMetadata(title="p"), tmp_path / "p.onnx"))
    x = np.random.default_rng(2).random((1, 1, 256, 512), dtype=np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert float(np.abs(runner(x) - want).max()) <= TOL
