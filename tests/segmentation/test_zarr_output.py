"""``segment format=zarr`` / ``out=X.zarr``: OME-Zarr stores holding exactly the ``.mrc`` values,
the voxel size in the metadata, written atomically, resumed and locked like ``.mrc`` outputs."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import mrcfile
import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from ais_torch.commands.segment import run_config  # noqa: E402
from ais_torch.errors import AisInputError, ConfigError  # noqa: E402
from ais_torch.formats.zarr import OmeZarrWriter, open_ome_zarr  # noqa: E402
from ais_torch.segmentation.batch import segment  # noqa: E402
from ais_torch.segmentation.scheduling import boot_id, lock_path  # noqa: E402


def _run(models: object, data: Path, out: Path, **kw: object):  # type: ignore[no-untyped-def]
    return segment(models, data, out, progress=False, verbose=False, device="cpu", **kw)  # type: ignore[arg-type]


def _scale_and_shift(store: Path) -> tuple[list[float], list[float] | None, list[str]]:
    (ms,) = zarr.open_group(str(store), mode="r").attrs["multiscales"]
    transforms = ms["datasets"][0]["coordinateTransformations"]
    scale = next(t["scale"] for t in transforms if t["type"] == "scale")
    shift = next((t["translation"] for t in transforms if t["type"] == "translation"), None)
    return scale, shift, [a["unit"] for a in ms["axes"]]


def test_zarr_output_equals_the_mrc_output(
    tmp_path: Path, tomo_dir: Path, two_scnm: list[Path]
) -> None:
    tomo = tomo_dir / "t0.mrc"
    # slab=3 does not divide the 7 slices: partial chunk writes, as a big tomogram streams
    _run(two_scnm, tomo, tmp_path / "mrc", slab=3)
    report = _run(two_scnm, tomo, tmp_path / "zarr", slab=3, format="zarr")
    assert report.ok
    assert sorted(p.name for p in report.written) == ["t0__Carbon.zarr", "t0__Membrane.zarr"]
    for title in ("Membrane", "Carbon"):
        expected = mrcfile.read(tmp_path / "mrc" / f"t0__{title}.mrc")
        store = tmp_path / "zarr" / f"t0__{title}.zarr"
        level0 = zarr.open_group(str(store), mode="r")["0"]
        assert level0.dtype == np.uint8 and level0.shape == (7, 40, 52)
        np.testing.assert_array_equal(level0[:], expected)
        assert len(np.unique(level0[:])) > 10  # real values, not a constant
        scale, shift, units = _scale_and_shift(store)
        assert scale == [10.0, 10.0, 10.0] and units == ["angstrom"] * 3
        assert shift == [2.0, -3.0, 5.0]  # the MRC origin (x 5, y -3, z 2 Å) as z, y, x
        assert open_ome_zarr(store).voxel_size_A == 10.0  # our own reader agrees
    assert not [p for p in (tmp_path / "zarr").iterdir() if p.name.startswith(".")]


def test_float32_one_store_and_pyramid(tmp_path: Path, tomo_dir: Path, tiny_scnm: Path) -> None:
    tomo = tomo_dir / "t1.mrc"
    _run(tiny_scnm, tomo, tmp_path / "mrc", dtype="float32")
    store = tmp_path / "one" / "membrane.zarr"  # out=X.zarr: this store, format implied
    report = run_config(
        {
            "model": str(tiny_scnm), "data": str(tomo), "out": str(store), "mode": "ais",
            "tta": 1, "dtype": "float32", "overwrite": False, "device": "cpu",
            "precision": "auto", "backend": "auto", "compile": False, "locks": True,
            "prefetch": 1, "progress": False, "pyramid": 2,
        }
    )  # fmt: skip
    assert report.ok and report.written == [store]
    group = zarr.open_group(str(store), mode="r")
    expected = mrcfile.read(tmp_path / "mrc" / "t1__Tiny.mrc")
    assert group["0"].dtype == np.float32
    np.testing.assert_array_equal(group["0"][:], expected)
    # level 1: the 2x block mean, at twice the voxel size
    assert group["1"].shape == (3, 20, 26)
    np.testing.assert_allclose(
        group["1"][:], expected[:6].reshape(3, 2, 20, 2, 26, 2).mean((1, 3, 5)), rtol=1e-5
    )
    datasets = group.attrs["multiscales"][0]["datasets"]
    assert [d["coordinateTransformations"][0]["scale"][0] for d in datasets] == [10.0, 20.0]
    assert open_ome_zarr(store, target_A=19.0).voxel_size_A == 20.0

    with pytest.raises(ConfigError, match=r"names one OME-Zarr store, but there are 3 tomogram"):
        _run(tiny_scnm, tomo_dir, tmp_path / "many.zarr")
    with pytest.raises(ConfigError, match="format='tiff'"):
        _run(tiny_scnm, tomo, tmp_path / "x", format="tiff")


def test_rerun_skips_cleans_leftovers_and_respects_locks(
    tmp_path: Path, tomo_dir: Path, tiny_scnm: Path
) -> None:
    out = tmp_path / "seg"
    out.mkdir()
    # what a killed run leaves: its hidden store, and a store moved aside while replacing
    for leftover in (".t0__Tiny.zarr.999-dead.partial", ".t0__Tiny.zarr.999-dead.old"):
        (out / leftover / "0").mkdir(parents=True)
        (out / leftover / "0" / "0.0.0").write_bytes(b"junk")
    first = _run(tiny_scnm, tomo_dir / "t0.mrc", out, format="zarr")
    assert first.written == [out / "t0__Tiny.zarr"]
    assert sorted(p.name for p in out.iterdir()) == ["t0__Tiny.zarr"]
    before = (out / "t0__Tiny.zarr" / ".zattrs").stat().st_mtime_ns

    again = _run(tiny_scnm, tomo_dir / "t0.mrc", out, format="zarr")
    assert again.skipped == [out / "t0__Tiny.zarr"] and not again.written
    redo = _run(tiny_scnm, tomo_dir / "t0.mrc", out, format="zarr", overwrite=True)
    assert redo.written == [out / "t0__Tiny.zarr"]
    assert (out / "t0__Tiny.zarr" / ".zattrs").stat().st_mtime_ns != before
    assert sorted(p.name for p in out.iterdir()) == ["t0__Tiny.zarr"]  # the old one is gone

    # a live lock on an output of another tomogram: busy, nothing written for it
    target = out / "t2__Tiny.zarr"
    lock_path(target).write_text(f"{os.getpid()} {socket.gethostname()} 0 {boot_id()}\n")
    busy = _run(tiny_scnm, tomo_dir / "t2.mrc", out, format="zarr")
    assert busy.busy == [target] and not target.exists()
    lock_path(target).unlink()


def test_failed_write_leaves_no_store(
    tmp_path: Path, tomo_dir: Path, tiny_scnm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = OmeZarrWriter.write

    def fail_second(self: OmeZarrWriter, z: slice, values: np.ndarray) -> None:
        calls.append(z)
        if len(calls) == 2:
            raise OSError("simulated crash after one slab")
        original(self, z, values)

    monkeypatch.setattr(OmeZarrWriter, "write", fail_second)
    out = tmp_path / "seg"
    report = _run(tiny_scnm, tomo_dir / "t0.mrc", out, format="zarr", slab=2)
    assert len(calls) == 2 and not report.written
    assert "simulated crash" in report.failed[0][1]
    assert not out.exists() or not list(out.iterdir())  # no store, no hidden folder, no lock


def test_zarr_not_installed_is_one_line(
    tmp_path: Path, tomo_dir: Path, tiny_scnm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "zarr", None)  # import zarr → ImportError
    with pytest.raises(AisInputError, match=r"needs the zarr package; pip install"):
        _run(tiny_scnm, tomo_dir / "t0.mrc", tmp_path / "seg", format="zarr")
    assert not (tmp_path / "seg").exists()


def test_copick_run_to_zarr_and_into_the_project(tmp_path: Path, tiny_scnm: Path) -> None:
    """copick data with format=zarr: the .zarr output and the project's segmentation agree."""
    pytest.importorskip("copick")
    import copick
    from copick_project import make_project, tomogram

    objects = [{"name": "tiny", "is_particle": False, "label": 1}]
    project = make_project(
        tmp_path / "proj", {"TS_001": {10.0: {"wbp": tomogram()}}}, objects=objects
    )
    report = _run(tiny_scnm, project, tmp_path / "seg", format="zarr")
    assert report.ok and report.written == [tmp_path / "seg" / "TS_001__Tiny.zarr"]
    ours = zarr.open_group(str(report.written[0]), mode="r")["0"][:]
    (seg,) = copick.from_file(str(project)).get_run("TS_001").get_segmentations(name="tiny")
    np.testing.assert_array_equal(seg.numpy(), ours)
