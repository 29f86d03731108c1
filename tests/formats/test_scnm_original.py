"""Original Ais .scnm files (Keras .h5 + metadata JSON of any version) open as typed models."""

from __future__ import annotations

import io
import json
import logging
import tarfile
from pathlib import Path
from typing import Any

import h5py
import pytest
import torch

import ais_torch
from ais_torch.archs.base import AisArch
from ais_torch.errors import ModelFormatError
from ais_torch.formats.keras.read import KerasModel
from ais_torch.formats.scnm import (
    ModelMetadata,
    load_scnm,
    original_arch_title,
    read_members,
    read_metadata,
    save_scnm,
)

EMAN2 = "reference/models/Eman2/Membrane.scnm"
RANDOM_EMAN2 = "reference/models_random/eman2.scnm"


def _h5(shared_dir: Path, rel: str = RANDOM_EMAN2) -> bytes:
    (payload,) = [b for n, b in read_members(shared_dir / rel).items() if n.endswith(".h5")]
    return payload


def _scnm(path: Path, metadata: Any, h5: bytes, stem: str = "Old") -> Path:
    """An original-style .scnm: ``<stem>_weights.h5`` and ``<stem>_metadata.json``."""
    with tarfile.open(path, "w") as tar:
        for name, payload in [
            (f"{stem}_weights.h5", h5),
            (f"{stem}_metadata.json", json.dumps(metadata).encode()),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def test_load_model_gives_our_architecture_and_typed_metadata(shared_dir: Path) -> None:
    model = ais_torch.load_model(str(shared_dir / EMAN2))
    meta = model.metadata
    assert isinstance(model, AisArch) and model.preset == "eman2" and not model.training
    assert isinstance(meta, ModelMetadata)
    assert (meta.title, meta.arch, meta.apix, meta.box_size) == ("Membrane", "Eman2", 10.0, 64)
    assert (meta.threshold, meta.overlap, meta.emit, meta.absorb) == (0.5, 0.2, False, False)
    assert meta.normalization == "global_mad" and meta.model_depth == 1
    assert len(meta.colour) == 3 and all(isinstance(c, float) for c in meta.colour)
    assert meta.arch_name == "eman2" and meta.arch_hparams["in_channels"] == 1
    assert meta.n_parameters == model.n_parameters == 378_081
    assert "filament_diameter" in meta.extra  # unknown keys are kept


def test_every_reference_model_has_readable_metadata(shared_dir: Path) -> None:
    paths = [*shared_dir.glob("reference/models/*/*.scnm")]
    paths += [*shared_dir.glob("reference/models_random/*.scnm")]
    for path in paths:
        meta = read_metadata(path)
        assert meta.arch and meta.n_parameters > 0 and meta.box_size == 64
        assert meta.normalization in ("global_mad", "per_slice")


def test_null_normalization_means_the_legacy_per_slice_one(shared_dir: Path) -> None:
    assert read_metadata(shared_dir / RANDOM_EMAN2).normalization == "per_slice"


def test_original_model_saved_as_ours_reopens_identically(shared_dir: Path, tmp_path: Path) -> None:
    model, meta = load_scnm(shared_dir / EMAN2)
    again, meta2 = load_scnm(save_scnm(tmp_path / "ours.scnm", model, meta))
    x = torch.randn(1, 1, 32, 48)
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    assert (meta2.title, meta2.arch, meta2.apix) == (meta.title, meta.arch, meta.apix)


def test_metadata_without_any_field_gets_defaults_and_the_member_name(
    shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = _scnm(tmp_path / "bare.scnm", {}, _h5(shared_dir), stem="Vesicles")
    with caplog.at_level(logging.WARNING, logger="ais_torch.formats.scnm"):
        model, meta = load_scnm(path)
    assert meta.title == "Vesicles" and meta.arch == ""
    assert (meta.apix, meta.box_size, meta.threshold, meta.overlap) == (-1.0, 64, 0.5, 0.2)
    assert meta.normalization == "per_slice" and meta.n_parameters == 378_081
    assert isinstance(model, AisArch) and model.preset == "eman2"  # found by parameter count
    assert "no title" in caplog.text and "architecture unknown" in caplog.text


def test_old_metadata_maps_model_enum_through_the_legacy_table(
    shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = {"title": "Old", "model_enum": 0, "n_parameters": 378_081, "apix": 13, "box_size": 64.0}
    path = _scnm(tmp_path / "old.scnm", old, _h5(shared_dir))
    with caplog.at_level(logging.WARNING, logger="ais_torch.formats.scnm"):
        model, meta = load_scnm(path)
    assert meta.arch == "Eman2" and meta.apix == 13.0 and isinstance(meta.apix, float)
    assert meta.box_size == 64 and isinstance(meta.box_size, int)
    assert "1.0.36-1.0.40" in caplog.text  # says which version family it assumed
    assert isinstance(model, AisArch) and model.preset == "eman2"


def test_null_fields_get_defaults(shared_dir: Path, tmp_path: Path) -> None:
    raw = {"title": "N", "apix": None, "box_size": None, "colour": [1, 0, 0], "emit": 1}
    _, meta = load_scnm(_scnm(tmp_path / "n.scnm", raw, _h5(shared_dir)))
    assert (meta.apix, meta.box_size, meta.colour, meta.emit) == (-1.0, 64, [1.0, 0.0, 0.0], True)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"title": "X", "apix": "ten"}, "'apix' should be a number"),
        ({"title": "X", "box_size": 64.5}, "'box_size' should be a whole number"),
        ({"title": "X", "colour": "green"}, "'colour' should be 3 numbers"),
        ([1, 2, 3], "not a JSON object"),
    ],
)
def test_malformed_metadata_is_a_clear_error(
    shared_dir: Path, tmp_path: Path, raw: Any, message: str
) -> None:
    path = _scnm(tmp_path / "bad.scnm", raw, _h5(shared_dir))
    with pytest.raises(ModelFormatError, match=message) as err:
        load_scnm(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    ("raw", "title", "how"),
    [
        ({"arch": "ResNet", "model_enum": 0}, "ResNet", "'arch'"),
        ({"info": "VGGNet M (5.1 Mp, 64-1, 10.0, 0.2603)", "model_enum": 3}, "VGGNet M", "info"),
        ({"info_short": "(UNet M, 64-1, 10.0, 0.1562)"}, "UNet M", "info_short"),
        ({"model_enum": 6, "n_parameters": 5_053_955}, "VGGNet M", "1.0.36-1.0.40"),
        ({"model_enum": 6, "n_parameters": 1_215_457}, "ResNet", "1.0.44"),
        ({"model_enum": 5, "n_parameters": 17_521_921}, "VGGNet L", "1.0.36-1.0.40"),
        ({"model_enum": 7, "n_parameters": 7_771_297}, "UNet M", "1.2.40"),
        ({"model_enum": 5, "n_parameters": 185_217}, "UNet dropout", "1.0.0-1.0.35"),
        ({"model_enum": 13}, "VGGNet M", "1.2.0"),
        ({"model_enum": 6}, "VGGNet M", "cannot confirm"),
        ({"model_enum": 99}, "", "no known version"),
        ({"info": "Custom net (1 Mp)"}, "", "no 'arch'"),
    ],
)
def test_original_arch_title(raw: dict, title: str, how: str) -> None:
    found, explanation = original_arch_title(raw)
    assert found == title and how in explanation


def test_truncated_h5_inside_a_scnm_names_the_file(shared_dir: Path, tmp_path: Path) -> None:
    payload = _h5(shared_dir)
    path = _scnm(tmp_path / "cut.scnm", {"title": "Cut"}, payload[: len(payload) // 3], "Cut")
    with pytest.raises(ModelFormatError) as err:
        load_scnm(path)
    assert str(path) in str(err.value) and "Cut_weights.h5" in str(err.value)
    assert "\n" not in str(err.value)


def test_lambda_inside_a_scnm_is_refused(shared_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "src.h5"
    source.write_bytes(_h5(shared_dir))
    with h5py.File(source, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][2]["class_name"] = "Lambda"
        f.attrs["model_config"] = json.dumps(config)
    path = _scnm(tmp_path / "l.scnm", {"title": "L"}, source.read_bytes(), "L")
    with pytest.raises(ModelFormatError, match=r"\(Lambda\).*refused"):
        load_scnm(path)


def test_unmatched_graph_is_a_generic_model_with_metadata(shared_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "src.h5"
    source.write_bytes(_h5(shared_dir))
    with h5py.File(source, "r+") as f:  # a different network with the same weights
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][1]["config"]["activation"] = "tanh"
        f.attrs["model_config"] = json.dumps(config)
    path = _scnm(tmp_path / "g.scnm", {"title": "G", "arch": "Eman2"}, source.read_bytes(), "G")
    model = ais_torch.load_model(str(path))
    assert isinstance(model, KerasModel) and model.metadata.arch_name == ""
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 1, 16, 16)
