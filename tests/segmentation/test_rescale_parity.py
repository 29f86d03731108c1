"""Segmentation parity with the original ``ais segment`` when the tomogram is rescaled in XY.

The original rescales a tomogram to the model's pixel size when they differ by >= 5 %
(skimage ``resize``, order 1, anti-aliased, on the whole volume) and brings the prediction back
with ``scipy.ndimage.zoom`` (order 1, corners aligned) — see docs/segmentation.md. The stored
references in ``data/rescale/`` were made by the original Ais 1.2.40 from crops of the reference
kit's seed101 tomogram; ``test_references_are_the_originals`` (marked ``original``) remakes them
and checks they are unchanged (``AIS_TORCH_REGENERATE=1`` rewrites them).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import tarfile
import textwrap
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from ais_torch.formats.mrc import read_volume, write_volume
from ais_torch.segmentation.batch import segment

HERE = Path(__file__).parent / "data" / "rescale"
ORIGINAL_PYTHON = Path(
    os.environ.get("AIS_ORIGINAL_PYTHON", "/root/.cache/ais-original/bin/python")
).expanduser()
CROP = (slice(26, 32), slice(40, 232), slice(50, 210))  # 6 × 192 × 160 (z, y, x)

# name: (model, model pixel size written into it (None = as stored), tomogram voxel size, tta)
CASES = {
    "eman2_10A_on_13A": ("Eman2", None, 13.0, 1),  # the tomogram is upsampled ×1.3
    "eman2_10A_on_7A": ("Eman2", None, 7.0, 1),  # downsampled ×0.7, anti-aliased
    "eman2_20A_on_10A": ("Eman2", 20.0, 10.0, 1),  # a 20 Å model on a 10 Å tomogram: ×0.5
    "vggnet_m_10A_on_13A_tta4": ("VGGNet_M", None, 13.0, 4),
}


def _model(shared: Path, arch: str, apix: float | None, folder: Path) -> Path:
    """The reference model, or a copy whose metadata records another pixel size."""
    source = shared / "reference" / "models" / arch / "Membrane.scnm"
    if apix is None:
        return source
    target = folder / f"{arch}_{apix:g}A.scnm"
    with tarfile.open(source) as tin, tarfile.open(target, "w") as tout:
        for member in tin.getmembers():
            data = tin.extractfile(member).read()  # type: ignore[union-attr]
            if member.name.endswith("_metadata.json"):
                meta = json.loads(data)
                meta["apix"] = apix
                data = json.dumps(meta).encode()
                member.size = len(data)
            tout.addfile(member, io.BytesIO(data))
    return target


def _tomogram(shared: Path, voxel_size_A: float, folder: Path, name: str) -> Path:
    volume = read_volume(shared / "reference" / "tomograms" / "seed101" / "tomo.mrc")
    crop = np.ascontiguousarray(volume.data[CROP], dtype=np.float32)
    return write_volume(folder / f"{name}.mrc", crop, voxel_size_A=voxel_size_A)


def _reference(name: str) -> np.ndarray:
    return mrcfile.read(HERE / f"{name}.mrc.gz").astype(np.int16)  # mrcfile reads gzip as is


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_segment_matches_the_original_when_rescaling(
    shared_dir: Path, tmp_path: Path, name: str
) -> None:
    arch, model_apix, voxel, tta = CASES[name]
    model = _model(shared_dir, arch, model_apix, tmp_path)
    tomo = _tomogram(shared_dir, voxel, tmp_path, name)
    report = segment(model, tomo, tmp_path / "out", tta=tta, progress=False, verbose=False)
    assert report.ok, report.failed
    ours = mrcfile.read(report.written[0]).astype(np.int16)
    theirs = _reference(name)
    assert ours.shape == theirs.shape == (6, 192, 160)
    diff = np.abs(ours - theirs)
    within = float((diff <= 1).mean())
    assert within >= 0.999 and diff.max() <= 3, f"{name}: {within:.5f} within 1, worst {diff.max()}"
    assert np.ptp(theirs) > 20  # the model's output varies: the comparison means something


ORIGINAL_SCRIPT = textwrap.dedent(
    """
    import sys
    from Ais.main import main
    model, tomo, out, tta = sys.argv[1:5]
    sys.argv = ["ais", "segment", "-m", model, "-d", tomo, "-ou", out, "-gpu", "0", "-tta", tta]
    try:
        main()
    except SystemExit:
        pass
    """
)


@pytest.mark.original
@pytest.mark.slow
@pytest.mark.skipif(not ORIGINAL_PYTHON.is_file(), reason="the original Ais is not installed")
def test_references_are_the_originals(shared_dir: Path, tmp_path: Path) -> None:
    """Run ``ais segment`` on every case; the stored references must be what it writes."""
    regenerate = os.environ.get("AIS_TORCH_REGENERATE") == "1"
    HERE.mkdir(parents=True, exist_ok=True)
    for name, (arch, model_apix, voxel, tta) in CASES.items():
        model = _model(shared_dir, arch, model_apix, tmp_path)
        tomo = _tomogram(shared_dir, voxel, tmp_path, name)
        out = tmp_path / f"out_{name}"
        run = subprocess.run(
            [
                str(ORIGINAL_PYTHON),
                "-c",
                ORIGINAL_SCRIPT,
                str(model),
                str(tomo),
                str(out),
                str(tta),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        written = list(out.glob("*.mrc"))
        assert len(written) == 1, run.stdout[-2000:] + run.stderr[-2000:]
        theirs = mrcfile.read(written[0])
        stored = HERE / f"{name}.mrc.gz"
        if regenerate or not stored.exists():
            with gzip.open(stored, "wb", compresslevel=9) as f:
                f.write(written[0].read_bytes())
        assert np.array_equal(theirs.astype(np.int16), _reference(name)), name
