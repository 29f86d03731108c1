"""Opening a downloaded model must never write outside a temp folder or run code."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from ais_torch.errors import ModelFormatError
from ais_torch.formats.scnm import ModelMetadata, load_scnm, read_members, read_metadata


def _tar(path: Path, members: dict[str, bytes], *, symlink: str | None = None) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        if symlink:
            info = tarfile.TarInfo("link_metadata.json")
            info.type = tarfile.SYMTYPE
            info.linkname = symlink
            tar.addfile(info)
    return path


META = json.dumps({"title": "Membrane", "apix": 10.0}).encode()


@pytest.mark.parametrize(
    "evil", ["../evil_metadata.json", "/tmp/evil_metadata.json", "a/../../evil_weights.h5"]
)
def test_path_traversal_members_are_refused_and_nothing_is_written(
    tmp_path: Path, evil: str
) -> None:
    model = _tar(tmp_path / "m.scnm", {"Membrane_metadata.json": META, evil: b"x"})
    before = set(tmp_path.parent.rglob("evil*"))
    with pytest.raises(ModelFormatError, match="malicious") as err:
        read_members(model)
    assert "\n" not in str(err.value) and str(model) in str(err.value)
    assert set(tmp_path.parent.rglob("evil*")) == before


def test_symlink_members_are_refused(tmp_path: Path) -> None:
    model = _tar(tmp_path / "m.scnm", {"Membrane_metadata.json": META}, symlink="/etc/passwd")
    with pytest.raises(ModelFormatError, match="link"):
        read_members(model)


def test_not_a_tar(tmp_path: Path) -> None:
    path = tmp_path / "m.scnm"
    path.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(ModelFormatError, match="not a readable"):
        read_metadata(path)


def test_missing_metadata(tmp_path: Path) -> None:
    model = _tar(tmp_path / "m.scnm", {"weights.bin": b"123"})
    with pytest.raises(ModelFormatError, match="metadata"):
        load_scnm(model)


def test_metadata_keeps_unknown_keys(tmp_path: Path) -> None:
    raw = {"title": "Carbon", "apix": 13.5, "filament_diameter": None, "future_key": [1, 2]}
    meta = ModelMetadata.from_dict(raw)
    assert meta.apix == 13.5 and meta.extra == {"filament_diameter": None, "future_key": [1, 2]}
    again = json.loads(meta.to_json())
    assert again["future_key"] == [1, 2] and again["title"] == "Carbon"


def test_original_keras_model_metadata_reads(shared_dir: Path) -> None:
    meta = read_metadata(shared_dir / "reference" / "models" / "VGGNet_M" / "Membrane.scnm")
    assert (meta.title, meta.arch, meta.box_size, meta.apix) == ("Membrane", "VGGNet M", 64, 10.0)
    assert meta.normalization == "global_mad"
