"""``segment`` with copick projects and OME-Zarr tomograms as data: the output of an MRC."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

pytest.importorskip("copick")

import copick
from copick_project import make_project, tomogram

from ais_torch import archs
from ais_torch.errors import AisInputError
from ais_torch.formats.mrc import write_volume
from ais_torch.formats.scnm import ModelMetadata, save_scnm
from ais_torch.formats.zarr import write_ome_zarr
from ais_torch.segmentation.batch import segment


def _model(path: Path, title: str) -> Path:
    net = archs.build("eman2").eval()
    meta = ModelMetadata(
        title=title, apix=10.0, arch_name=net.arch_name, arch_hparams=dict(net.hparams)
    )
    return save_scnm(path, net, meta)


def _run(model: Path, data: Path | str, out: Path, **kw: object) -> object:
    return segment(model, data, out, progress=False, verbose=False, device="cpu", **kw)  # type: ignore[arg-type]


def test_copick_segmentation_equals_the_mrc_output(tmp_path: Path) -> None:
    runs = {
        "TS_001": {10.0: {"wbp": tomogram(seed=1)}},
        "TS_002": {10.0: {"wbp": tomogram(seed=1)}},
    }
    project = make_project(tmp_path / "proj", runs)
    model = _model(tmp_path / "m.scnm", "Membrane")
    report = _run(model, project, tmp_path / "seg", copick={"runs": ["TS_002"]})
    assert report.ok and [p.name for p in report.written] == ["TS_002__Membrane.mrc"]  # type: ignore[attr-defined]

    # the reference: the same tomogram as an MRC file through the usual path
    write_volume(tmp_path / "mrc" / "TS_002.mrc", tomogram(seed=1), voxel_size_A=10.0)
    _run(model, tmp_path / "mrc" / "TS_002.mrc", tmp_path / "ref")
    expected = mrcfile.read(tmp_path / "ref" / "TS_002__Membrane.mrc")
    np.testing.assert_array_equal(mrcfile.read(tmp_path / "seg" / "TS_002__Membrane.mrc"), expected)

    run = copick.from_file(str(project)).get_run("TS_002")
    (seg,) = run.get_segmentations(name="membrane", user_id="ais-torch", session_id="0")
    assert seg.voxel_size == 10.0
    np.testing.assert_array_equal(seg.numpy(), expected)
    assert seg.numpy().dtype == np.uint8
    assert not copick.from_file(str(project)).get_run("TS_001").segmentations

    # a rerun skips the .mrc, and puts back a copick segmentation that went missing
    import shutil

    shutil.rmtree(report.copick[0])  # type: ignore[attr-defined]
    again = _run(model, project, tmp_path / "seg", copick={"runs": ["TS_002"]})
    assert again.skipped and not again.written and len(again.copick) == 1  # type: ignore[attr-defined]
    np.testing.assert_array_equal(
        copick.from_file(str(project))
        .get_run("TS_002")
        .get_segmentations(name="membrane")[0]
        .numpy(),
        expected,
    )


def test_model_without_a_matching_object_fails_before_segmenting(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    model = _model(tmp_path / "m.scnm", "Carbon")
    with pytest.raises(AisInputError, match=r"no pickable object named after model 'Carbon'"):
        _run(model, project, tmp_path / "seg")
    assert not (tmp_path / "seg").exists()


def test_ome_zarr_tomogram_equals_the_mrc_output(tmp_path: Path) -> None:
    vol = tomogram(seed=5)
    write_ome_zarr(tmp_path / "tomos" / "t.zarr", vol, voxel_size_A=10.0)
    write_volume(tmp_path / "mrc" / "t.mrc", vol, voxel_size_A=10.0)
    model = _model(tmp_path / "m.scnm", "Membrane")
    report = _run(model, tmp_path / "tomos", tmp_path / "seg")  # a folder holding a .zarr
    assert report.ok and [p.name for p in report.written] == ["t__Membrane.mrc"]  # type: ignore[attr-defined]
    _run(model, tmp_path / "mrc" / "t.mrc", tmp_path / "ref")
    np.testing.assert_array_equal(
        mrcfile.read(tmp_path / "seg" / "t__Membrane.mrc"),
        mrcfile.read(tmp_path / "ref" / "t__Membrane.mrc"),
    )
