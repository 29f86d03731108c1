"""ONNX Runtime backend against torch, and the command path against the original's outputs."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from ais_torch.segmentation.batch import segment

QUIET = {"progress": False, "verbose": False}


@pytest.mark.slow  # the ONNX export alone takes ~15 s
def test_onnx_backend_matches_torch(
    tmp_path: Path, tomo_dir: Path, tiny_scnm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIS_TORCH_CACHE", str(tmp_path / "cache"))
    tomo = tomo_dir / "t0.mrc"
    torch_run = segment(tiny_scnm, tomo, tmp_path / "t", dtype="float32", tta=2, **QUIET)
    onnx_run = segment(
        tiny_scnm, tomo, tmp_path / "o", dtype="float32", tta=2, backend="onnx", **QUIET
    )
    a, b = mrcfile.read(torch_run.written[0]), mrcfile.read(onnx_run.written[0])
    assert np.abs(a - b).max() <= 1e-4 and a.std() > 0
    (exported,) = (tmp_path / "cache" / "onnx").glob("*.onnx")
    direct = segment(exported, tomo, tmp_path / "d", dtype="float32", tta=2, **QUIET)
    assert direct.written[0].name == "t0__Tiny.mrc"  # title from the ONNX metadata
    assert np.abs(mrcfile.read(direct.written[0]) - a).max() <= 1e-4


def _reference(shared: Path, folder: str, tmp: Path) -> np.ndarray:
    src = shared / "reference" / "segmentations" / folder / "seed101__Membrane.mrc.gz"
    dst = tmp / f"ref_{folder}.mrc"
    with gzip.open(src, "rb") as fin, open(dst, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    return mrcfile.read(dst).astype(np.int32)


def _parity(shared: Path, tmp: Path, arch: str, folder: str, tta: int, z: tuple[int, int]) -> None:
    ref = shared / "reference"
    seed = tmp / "seed101.mrc"  # the original named its output after the input file
    seed.symlink_to(ref / "tomograms" / "seed101" / "tomo.mrc")
    report = segment(
        ref / "models" / arch / "Membrane.scnm",
        seed,
        tmp / "seg",
        tta=tta,
        z_range=z,
        slab=3,
        batch_size=2,
        **QUIET,
    )
    (out,) = report.written
    assert out.name == "seed101__Membrane.mrc"
    with mrcfile.open(out) as mrc:
        assert mrc.header.mode == 6 and float(mrc.voxel_size.x) == pytest.approx(10.0)
        ours = np.asarray(mrc.data).astype(np.int32)
    expected = _reference(shared, folder, tmp)
    assert ours.shape == expected.shape == (64, 256, 256)
    diff = np.abs(ours[z[0] : z[1]] - expected[z[0] : z[1]])
    assert (diff <= 1).mean() >= 0.999, f"within 1: {(diff <= 1).mean():.5f}"
    assert diff.max() <= 3
    assert not ours[: z[0]].any() and not ours[z[1] :].any()  # outside z_range: 0


def test_command_path_matches_original_eman2(shared_dir: Path, tmp_path: Path) -> None:
    _parity(shared_dir, tmp_path, "Eman2", "Eman2", 1, (28, 36))


@pytest.mark.slow
def test_command_path_matches_original_vggnet_m_tta4(shared_dir: Path, tmp_path: Path) -> None:
    _parity(shared_dir, tmp_path, "VGGNet_M", "VGGNet_M_tta4", 4, (30, 33))
