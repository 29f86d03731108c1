"""``.scnmgroup``: round trip of two of our models with interactions, and refusal of bad tars."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import torch

from ais_torch import archs, load_model
from ais_torch.errors import ModelFormatError
from ais_torch.formats.scnm import ModelMetadata, save_scnm
from ais_torch.formats.scnmgroup import read_scnmgroup, write_scnmgroup

INTERACTIONS = [
    {"parent_title": "Antibody", "partner_title": "Membrane", "type": 0, "radius": 25.0,
     "threshold": 0.5},
    {"parent_title": "Membrane", "partner_title": "Carbon", "type": 1, "radius": 10,
     "threshold": 0.3},
]  # fmt: skip


def _model(tmp: Path, title: str, arch: str) -> Path:
    torch.manual_seed(len(title))
    model = archs.build(arch)
    meta = ModelMetadata(title=title, apix=10.0, arch_name=arch)
    return save_scnm(tmp / f"{title}.scnm", model, meta)


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


@pytest.fixture
def three(tmp_path: Path) -> list[Path]:
    src = tmp_path / "src"
    src.mkdir()
    return [_model(src, t, "eman2") for t in ("Membrane", "Antibody", "Carbon")]


def test_round_trip(three: list[Path], tmp_path: Path) -> None:
    group = write_scnmgroup(tmp_path / "cell.scnmgroup", three, INTERACTIONS)
    with tarfile.open(group) as tar:
        names = sorted(tar.getnames())
    assert names == [
        "cell_interactions.json", "cell_model_0.scnm", "cell_model_1.scnm", "cell_model_2.scnm"
    ]  # fmt: skip
    models, links = read_scnmgroup(group)
    assert [m.title for _, m in models] == ["Membrane", "Antibody", "Carbon"]
    x = torch.rand(1, 1, 64, 64)
    for (model, _), original in zip(models, three, strict=True):
        with torch.no_grad():
            assert torch.equal(model(x), load_model(str(original))(x))
    assert links[0]["parent_index"] == 1 and links[0]["partner_index"] == 0
    assert links[1]["type"] == 1 and links[1]["radius"] == 10.0 and links[1]["partner_index"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cell.scnmgroup", "src"]


def test_missing_title_is_refused(three: list[Path], tmp_path: Path) -> None:
    bad = [{**INTERACTIONS[0], "partner_title": "Ribosome"}]
    with pytest.raises(ModelFormatError, match=r"'Ribosome'.*not in the group"):
        write_scnmgroup(tmp_path / "g.scnmgroup", three, bad)
    assert not (tmp_path / "g.scnmgroup").exists()
    # a group written by someone else with a dangling title: clear error on reading
    members = {"g_model_0.scnm": three[0].read_bytes()}
    members["g_interactions.json"] = json.dumps(bad).encode()
    with pytest.raises(ModelFormatError, match=r"'Antibody'.*not in the group"):
        read_scnmgroup(_tar(tmp_path / "g.scnmgroup", members))


def test_bad_interaction_type(three: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="type 7"):
        write_scnmgroup(tmp_path / "g.scnmgroup", three, [{**INTERACTIONS[0], "type": 7}])


def test_min_size_is_kept_only_where_set(three: list[Path], tmp_path: Path) -> None:
    """Our optional key rides along; rules without it stay the original's five keys."""
    rules = [{**INTERACTIONS[0], "min_size_nm3": 1000}, INTERACTIONS[1]]
    group = write_scnmgroup(tmp_path / "g.scnmgroup", three, rules)
    with tarfile.open(group) as tar:
        stored = json.loads(tar.extractfile("g_interactions.json").read())  # type: ignore[union-attr]
    assert stored[0]["min_size_nm3"] == 1000 and set(stored[1]) == set(INTERACTIONS[1])
    _, links = read_scnmgroup(group, load_weights=False)
    assert links[0]["min_size_nm3"] == 1000
    with pytest.raises(ModelFormatError, match="min_size_nm3"):
        write_scnmgroup(tmp_path / "h.scnmgroup", three, [{**INTERACTIONS[0], "min_size_nm3": -1}])


@pytest.mark.parametrize(
    "name", ["../evil.scnm", "/tmp/evil.scnm", "sub/evil.scnm", "evil.py", "run.sh"]
)
def test_malicious_member_names_refused(name: str, three: list[Path], tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    group = _tar(work / "g.scnmgroup", {"g_model_0.scnm": three[0].read_bytes(), name: b"x"})
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(ModelFormatError, match=r"refus|unexpected"):
        read_scnmgroup(group)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert not (tmp_path / "evil.scnm").exists() and not Path("/tmp/evil.scnm").exists()


def test_symlink_member_refused(three: list[Path], tmp_path: Path) -> None:
    group = tmp_path / "g.scnmgroup"
    with tarfile.open(group, "w") as tar:
        info = tarfile.TarInfo("g_model_0.scnm")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(ModelFormatError, match="link"):
        read_scnmgroup(group)


def test_unsafe_inner_model_named_in_error(tmp_path: Path) -> None:
    inner = _tar(tmp_path / "inner.scnm", {"../x_metadata.json": b"{}"})
    group = _tar(tmp_path / "g.scnmgroup", {"g_model_0.scnm": inner.read_bytes()})
    with pytest.raises(ModelFormatError, match=r"g\.scnmgroup \[g_model_0\.scnm\]"):
        read_scnmgroup(group)


def test_not_a_tar(tmp_path: Path) -> None:
    bad = tmp_path / "bad.scnmgroup"
    bad.write_bytes(b"hello" * 100)
    with pytest.raises(ModelFormatError, match="not a readable"):
        read_scnmgroup(bad)
