"""The export and `models info` shells: what they write or print, and their one-line errors."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from ais_torch import archs, load_model
from ais_torch.commands.export import main as export_main
from ais_torch.commands.inspect import main as models_main
from ais_torch.errors import ModelFormatError
from ais_torch.formats.scnm import ModelMetadata, save_scnm
from ais_torch.formats.scnmgroup import write_scnmgroup


@pytest.fixture
def ours(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = archs.build("eman2")
    meta = ModelMetadata(title="Membrane", apix=10.0, threshold=0.4, emit=True, arch="Eman2")
    meta.arch_name = "eman2"
    return save_scnm(tmp_path / "Membrane.scnm", model, meta)


def _malicious(path: Path) -> Path:
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("../evil_metadata.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    return path


def _one_line_error(
    capsys: pytest.CaptureFixture[str], fn: Callable[[list[str]], int], argv: list[str]
) -> str:
    with pytest.raises(SystemExit) as exc:
        fn(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_export_onnx_cli(ours: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("onnxruntime")
    from ais_torch.formats.onnx import OnnxModel

    out = tmp_path / "m.onnx"
    assert export_main([f"model={ours}", "format=onnx", f"out={out}"]) == 0
    assert "wrote" in capsys.readouterr().out
    runner = OnnxModel(out)
    assert runner.metadata.title == "Membrane" and runner.metadata.threshold == 0.4
    x = np.random.default_rng(0).random((2, 1, 96, 128), dtype=np.float32)
    with torch.no_grad():
        want = load_model(str(ours))(torch.from_numpy(x)).numpy()
    assert float(np.abs(runner(x) - want).max()) <= 1e-4


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["format=keras", "model=X.scnm"], "not found"),
        (["model=X.scnm", "format=pt"], "unknown"),
        (["model=missing.scnm", "out=y.onnx"], "not found"),
        (["model=X.scnm", "colour=red"], "unknown argument"),
        (["X.scnm"], "not key=value"),
    ],
)
def test_export_errors_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in _one_line_error(capsys, export_main, argv)


def test_export_of_malicious_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = _malicious(tmp_path / "bad.scnm")
    err = _one_line_error(capsys, export_main, [f"model={bad}", f"out={tmp_path / 'x.onnx'}"])
    assert "refusing" in err and not (tmp_path / "x.onnx").exists()


def test_info_ours(ours: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert models_main(["info", str(ours)]) == 0
    out = capsys.readouterr().out
    n = archs.build("eman2").n_parameters
    for text in ("Membrane", "eman2", f"{n:,}", "10.0 Å", "0.4", "yes / no", "safety:", "passed"):
        assert text in out, text
    assert "Membrane_weights.safetensors" in out and "Membrane_metadata.json" in out


def test_info_original(shared_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_dir / "reference" / "models" / "Eman2" / "Membrane.scnm"
    assert models_main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Eman2" in out and "378,081" in out and "Membrane_weights.h5" in out
    assert "passed" in out and "original Ais" in out


def test_info_onnx_and_group(
    ours: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxscript")
    from ais_torch.formats.onnx import export_onnx

    onnx_path = export_onnx(
        load_model(str(ours)), load_model(str(ours)).metadata, tmp_path / "m.onnx"
    )
    assert models_main(["info", str(onnx_path)]) == 0
    out = capsys.readouterr().out
    assert "Membrane" in out and "input (batch, 1, height, width)" in out and "passed" in out

    group = tmp_path / "g.scnmgroup"
    link = {"parent_title": "Membrane", "partner_title": "Membrane", "type": 1, "radius": 5,
            "threshold": 0.5, "min_size_nm3": 1000}  # fmt: skip
    write_scnmgroup(group, [ours], [link])
    assert models_main(["info", str(group)]) == 0
    out = capsys.readouterr().out
    assert "g_model_0.scnm" in out and "Membrane avoid Membrane" in out and "passed" in out
    assert "partner pieces < 1000 nm³ ignored" in out


def test_info_refuses_what_loading_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Weights that do not fit the architecture the metadata names: never "passed"."""
    model = archs.build("eman2", filters=8)
    meta = ModelMetadata(title="Membrane", arch_name="eman2", arch_hparams={"filters": 16})
    path = save_scnm(tmp_path / "Membrane.scnm", model, meta)
    with pytest.raises(ModelFormatError, match="do not fit"):
        load_model(str(path))
    err = _one_line_error(capsys, models_main, ["info", str(path)])
    assert "weights do not fit architecture 'eman2'" in err


def test_info_malicious_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _one_line_error(capsys, models_main, ["info", str(_malicious(tmp_path / "bad.scnm"))])
    assert "evil" in err and "refusing" in err
    assert not (tmp_path.parent / "evil_metadata.json").exists()


def test_info_runs_as_module(ours: Path) -> None:
    """The real entry point, reading no weight: the network is built on the meta device only."""
    code = (
        "import sys, torch, safetensors.torch as st\n"
        "st.load = lambda *a, **k: (_ for _ in ()).throw(RuntimeError('weights read'))\n"
        "torch.nn.Module.load_state_dict = lambda *a, **k: (_ for _ in ()).throw(RuntimeError())\n"
        "from ais_torch.commands.inspect import main\n"
        f"sys.exit(main(['info', {str(ours)!r}]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Membrane" in done.stdout
