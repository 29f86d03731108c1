"""Hostile files (issue #16): refused before memory is spent, in one line naming the file.

The inputs are built in code by ``scripts/hostile_battery.py`` (shared with the battery that
runs them against the installed commands). Memory is measured with tracemalloc in process and
with the child's peak RSS for the command-line cases.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import tarfile
import tempfile
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from ais_torch.commands.inspect import info
from ais_torch.errors import AisError, AisInputError, ConfigError, ModelFormatError
from ais_torch.formats.keras.read import read_keras_h5
from ais_torch.formats.limits import GiB, limits, parse_amount
from ais_torch.formats.mrc import read_volume
from ais_torch.formats.scnm import load_scnm, read_members, read_metadata
from ais_torch.formats.scnmgroup import read_scnmgroup
from ais_torch.formats.scnt import read_scnt

REPO = Path(__file__).resolve().parents[2]
PEAK_BYTES = 16 * 2**20
"""Python-side allocations allowed while refusing a hostile file (tracemalloc's peak)."""


def _battery() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "hostile_battery", REPO / "scripts/hostile_battery.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hostile_battery"] = module
    spec.loader.exec_module(module)
    return module


hb = _battery()


def _refused(call: Callable[[], object], error: type[AisError], needle: str, path: Path) -> str:
    """Run ``call``; it must raise ``error`` with one line naming ``path`` and containing
    ``needle``, with tracemalloc's peak under :data:`PEAK_BYTES`."""
    tracemalloc.start()
    try:
        with pytest.raises(error) as err:
            call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(err.value)
    assert needle in message and str(path) in message and "\n" not in message
    assert peak < PEAK_BYTES, f"{peak / 2**20:.1f} MiB allocated while refusing"
    return message


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, bytes], Path]:
    def make(name: str, data: bytes) -> Path:
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return make


# -- .scnm ---------------------------------------------------------------------------------------

SCNM_CASES = {
    "sparse 4 GiB": (hb.sparse_scnm, "sparse"),
    "forged size": (hb.forged_size_scnm, "holds only 10"),
    "member over limit": (lambda: hb.forged_size_scnm(3 * GiB), "above the 1.0 GiB limit"),
    "gzip bomb": (hb.gzip_scnm, "gzip-compressed"),
    "many members": (hb.many_members_scnm, "more than 64 archive members"),
    "unexpected member": (
        lambda: hb.tar_bytes({"M_metadata.json": hb.metadata(), "M_weights.h5": b"", "a.py": b""}),
        "unexpected archive member 'a.py'",
    ),
    "two weights": (
        lambda: hb.tar_bytes(
            {"M_metadata.json": hb.metadata(), "M_weights.h5": b"", "N_weights.h5": b""}
        ),
        "2 weight members",
    ),
    "deep JSON": (hb.deep_json_scnm, "nested"),
}


@pytest.mark.parametrize("case", list(SCNM_CASES))
def test_hostile_scnm_is_refused_in_small_memory(
    write: Callable[[str, bytes], Path], case: str
) -> None:
    build, needle = SCNM_CASES[case]
    path = write("m.scnm", build())
    _refused(lambda: read_metadata(path), ModelFormatError, needle, path)


METADATA_CASES = {
    "hparams a list": ({"arch_name": "unet", "arch_hparams": [1, 2]}, "should be an object"),
    "dunder hparam": ({"arch_name": "unet", "arch_hparams": {"__init__": 1}}, "'__init__'"),
    "nested hparam": ({"arch_name": "unet", "arch_hparams": {"a": {"__b": 1}}}, "only numbers"),
    "number as text": ({"box_size": "64"}, "'box_size' should be a whole number"),
    "huge int as float": ({"apix": 10**400}, "'apix' should be a number"),
    "title a list": ({"title": ["a"]}, "'title' should be text"),
    "unknown hparam": ({"arch_name": "unet", "arch_hparams": {"wings": 2}}, "does not build"),
    "unknown arch": ({"arch_name": "no-such-net"}, "does not build"),
}


@pytest.mark.parametrize("case", list(METADATA_CASES))
def test_malformed_metadata_is_one_line_from_loader_and_info(
    write: Callable[[str, bytes], Path], case: str
) -> None:
    fields, needle = METADATA_CASES[case]
    path = write("m.scnm", hb.ours(hb.metadata(**fields)))
    calls = [lambda: load_scnm(path)]
    if "does not build" not in needle:  # info builds no network (test_info_runs_as_module)
        calls.append(lambda: info(path))
    for call in calls:
        with pytest.raises(ModelFormatError, match=needle.replace("(", r"\(")) as err:
            call()
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_forged_safetensors_header_is_refused_by_loader_and_info(
    write: Callable[[str, bytes], Path],
) -> None:
    path = write(
        "m.scnm", hb.ours(hb.metadata(arch_name="unet"), hb.safetensors_bytes(claim=(2**40,)))
    )
    for call in (lambda: load_scnm(path), lambda: info(path)):
        _refused(call, ModelFormatError, "does not match bytes", path)


def test_limits_come_from_the_environment(
    write: Callable[[str, bytes], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write("m.scnm", hb.ours(hb.metadata(arch_name="unet")))
    monkeypatch.setenv("AIS_TORCH_MAX_ARCHIVE_BYTES", "100")
    msg = _refused(lambda: read_members(path), ModelFormatError, "limit", path)
    assert "AIS_TORCH_MAX_ARCHIVE_BYTES" in msg
    monkeypatch.setenv("AIS_TORCH_MAX_ARCHIVE_BYTES", "1MiB")
    assert limits().archive_bytes == 2**20 and set(read_members(path)) == {
        "M_metadata.json",
        "M_weights.safetensors",
    }
    monkeypatch.setenv("AIS_TORCH_MAX_ARCHIVE_BYTES", "lots")
    with pytest.raises(ConfigError, match="AIS_TORCH_MAX_ARCHIVE_BYTES='lots'"):
        limits()
    assert parse_amount("X", "1.5GiB") == int(1.5 * GiB) and parse_amount("X", "512k") == 2**19


# -- Keras .h5 -----------------------------------------------------------------------------------


def test_h5_dataset_of_huge_shape_is_refused_before_reading() -> None:
    _refused(
        lambda: read_keras_h5(hb.h5_bomb(), name="bomb.h5"),
        ModelFormatError,
        "stores only",
        Path("bomb.h5"),
    )


def test_h5_bomb_in_scnm_is_refused_by_loader_and_info(write: Callable[[str, bytes], Path]) -> None:
    path = write("m.scnm", hb.h5_bomb_scnm())
    for call in (lambda: load_scnm(path), lambda: info(path)):
        _refused(call, ModelFormatError, "stores only", path)


def test_h5_weights_over_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    import h5py

    out = io.BytesIO()
    with h5py.File(out, "w") as f:
        f.create_dataset("model_weights/conv/conv/kernel:0", data=np.zeros(1000, "f4"))
    monkeypatch.setenv("AIS_TORCH_MAX_WEIGHT_BYTES", "1000")
    _refused(
        lambda: read_keras_h5(out.getvalue(), name="w.h5"),
        ModelFormatError,
        "AIS_TORCH_MAX_WEIGHT_BYTES",
        Path("w.h5"),
    )


# -- .scnmgroup: read in place, no temporary copy ------------------------------------------------


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point tempfile at an empty folder, to see whether anything is copied there."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder


def test_group_is_read_in_place_and_checked_like_a_model(
    write: Callable[[str, bytes], Path], private_tmp: Path
) -> None:
    good = hb.group({"g_model_0.scnm": hb.ours(hb.metadata(arch_name="unet"))})
    path = write("g.scnmgroup", good)
    models, links = read_scnmgroup(path, load_weights=False)
    assert [m.title for _, m in models] == ["Membrane"] and links == []
    bad = write("b.scnmgroup", hb.group({"g_model_0.scnm": hb.sparse_scnm()}))
    msg = _refused(lambda: info(bad), ModelFormatError, "sparse", bad)
    assert "[g_model_0.scnm]" in msg
    inner_bad = hb.group(
        {"g_model_0.scnm": hb.ours(hb.metadata(arch_name="unet", arch_hparams=[]))}
    )
    path = write("c.scnmgroup", inner_bad)
    with pytest.raises(ModelFormatError, match="arch_hparams"):
        info(path)  # the verdict checks the inner model's metadata as loading does
    assert list(private_tmp.iterdir()) == []


# -- .scnt ---------------------------------------------------------------------------------------


def test_scnt_box_claiming_7000_px_is_refused(write: Callable[[str, bytes], Path]) -> None:
    path = write("t.scnt", hb.scnt_bytes(claim=(7000, 7000)))
    _refused(lambda: read_scnt(path), AisInputError, "header promises", path)


def test_scnt_box_limits_and_decoded_size(
    write: Callable[[str, bytes], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write("t.scnt", hb.scnt_bytes(box=(8, 8)))
    assert read_scnt(path).images.shape == (1, 1, 8, 8)
    monkeypatch.setenv("AIS_TORCH_MAX_BOX_PX", "4")
    _refused(lambda: read_scnt(path), AisInputError, "AIS_TORCH_MAX_BOX_PX", path)
    monkeypatch.delenv("AIS_TORCH_MAX_BOX_PX")
    monkeypatch.setenv("AIS_TORCH_MAX_TRAINING_SET_BYTES", "1000")
    _refused(lambda: read_scnt(path), AisInputError, "AIS_TORCH_MAX_TRAINING_SET_BYTES", path)
    monkeypatch.setenv("AIS_TORCH_MAX_TRAINING_SET_BYTES", "1GiB")
    monkeypatch.setenv("AIS_TORCH_MAX_TRAINING_MEMBERS", "2")
    _refused(lambda: read_scnt(path), AisInputError, "more than 2 archive members", path)


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda: hb.gzip_scnm(), "gzip-compressed"),
        (lambda: hb.sparse_scnm(), "sparse"),
        (lambda: hb.forged_size_scnm(), "holds only"),
    ],
)
def test_scnt_archive_bombs(
    write: Callable[[str, bytes], Path], build: Callable[[], bytes], needle: str
) -> None:
    path = write("t.scnt", build())
    _refused(lambda: read_scnt(path), AisInputError, needle, path)


# -- MRC -----------------------------------------------------------------------------------------

MRC_CASES = {
    "extended header 2 GiB": ({"nsymbt": 2**31 - 1}, "extended header"),
    "extended header past the end": ({"nsymbt": 10**6}, "truncated"),
    "negative extended header": ({"nsymbt": -1}, "negative extended header"),
    "negative dims": ({"ny": -8}, "must be > 0"),
    "zero dims": ({"nz": 0}, "must be > 0"),
    "dims overflow int64": ({"nx": 2**31 - 1, "ny": 2**31 - 1, "nz": 2**31 - 1}, "truncated"),
    "4-D stack": ({"ispg": 401, "mz": 2}, "4-D stack of 2 volumes"),
    "volume stack mz=0": ({"ispg": 401, "mz": 0}, "not a multiple of mz=0"),
    "unknown mode": ({"mode": 77}, "MRC mode"),
}


@pytest.mark.parametrize("case", list(MRC_CASES))
@pytest.mark.parametrize("order", ["<", ">"])
def test_hostile_mrc_headers(write: Callable[[str, bytes], Path], case: str, order: str) -> None:
    fields, needle = MRC_CASES[case]
    path = write("t.mrc", hb.mrc_bytes(order=order, **fields))
    _refused(lambda: read_volume(path), AisInputError, needle, path)


def test_byte_order_and_single_volume_stack_read_normally(
    write: Callable[[str, bytes], Path],
) -> None:
    little = read_volume(write("l.mrc", hb.mrc_bytes(order="<")))
    big = read_volume(write("b.mrc", hb.mrc_bytes(order=">")))
    stack = read_volume(write("s.mrc", hb.mrc_bytes(ispg=401, mz=4)))  # one volume: fine
    assert little.shape == big.shape == stack.shape == (4, 8, 8)
    assert np.array_equal(little.data, big.data) and big.data[0, 0, 0] == 1.0
    assert little.voxel_size_A == big.voxel_size_A == 10.0


# -- the real files still load -------------------------------------------------------------------


def test_reference_files_pass(shared_dir: Path) -> None:
    ref = shared_dir / "reference"
    for path in sorted((ref / "models").rglob("*.scnm")):
        assert set(read_members(path)) == {f"{path.stem}_metadata.json", f"{path.stem}_weights.h5"}
        assert read_metadata(path).title == path.stem
    lines = info(ref / "models" / "VGGNet_M" / "Membrane.scnm")
    assert any(line.startswith("safety:") and "passed" in line for line in lines)
    for path in sorted((ref / "training_sets").rglob("*.scnt")):
        boxes = read_scnt(path)
        assert boxes.images.shape[1:] == (1, 64, 64) and len(boxes) == 36


# -- through the command line --------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "scnm sparse member 4 GiB",
        "scnm JSON 100k deep",
        "mrc 4-D stack",
        "mrc non-ASCII path (valid)",
    ],
)
def test_cli_gives_one_line_in_small_memory(tmp_path: Path, name: str) -> None:
    case = next(c for c in hb.cases() if c.name == name)
    result = hb.run_case(case, tmp_path / "case")
    assert result.ok, (result.code, result.stderr)
    assert result.left == [] and result.peak_mb < 200, result.peak_mb
    if case.code:
        assert result.stderr[0].startswith("error: ") and case.file in result.stderr[0]


def test_tar_writers_of_ours_pass_the_reader(tmp_path: Path) -> None:
    """Our own writers (PAX tars, non-ASCII titles) produce what the checks accept."""
    meta = json.dumps({"title": "Membrane é", "arch_name": "unet"}).encode()
    payload = hb.tar_bytes({"Membrane é_metadata.json": meta, "Membrane é_weights.h5": b""})
    path = tmp_path / "m.scnm"
    path.write_bytes(payload)
    assert tarfile.is_tarfile(path) and read_metadata(path).title == "Membrane é"
