"""``ais-torch segment`` / ``pick`` with ``data=project.json``: copick in and out from the shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("copick")

import copick
from copick_project import make_project

from ais_torch import archs
from ais_torch.formats import copick as cp
from ais_torch.formats.coordinates import read_star
from ais_torch.formats.scnm import ModelMetadata, save_scnm


def _run(verb: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "AIS_TORCH_DEBUG": ""}
    cmd = [sys.executable, "-m", f"ais_torch.{verb}", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _blobs(shape: tuple[int, int, int], centres: list[tuple[int, int, int]]) -> np.ndarray:
    """0/255 balls of radius 3 voxels at x/y/z ``centres`` (what segment writes for particles)."""
    z, y, x = np.indices(shape)
    seg = np.zeros(shape, dtype=np.uint8)
    for cx, cy, cz in centres:
        seg[(x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= 9] = 255
    return seg


def test_segment_cli_writes_into_the_project(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    net = archs.build("eman2").eval()
    meta = ModelMetadata(
        title="Membrane", apix=10.0, arch_name=net.arch_name, arch_hparams=dict(net.hparams)
    )
    model = save_scnm(tmp_path / "m.scnm", net, meta)
    result = _run(
        "segment",
        f"model={model}",
        f"data={project}",
        "out=seg",
        "progress=false",
        "copick.runs=[TS_001]",
        "copick.user_id=me_too",
        "copick.session_id=7",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "copick: 1 run(s)" in result.stderr and "copick: wrote 1 segmentation(s)" in result.stderr
    )
    (seg,) = copick.from_file(str(project)).get_run("TS_001").segmentations
    assert (seg.name, seg.user_id, seg.session_id) == ("membrane", "me-too", "7")
    assert (tmp_path / "seg" / "TS_001__Membrane.mrc").is_file()

    bad = _run(
        "segment",
        f"model={model}",
        f"data={project}",
        "out=seg2",
        "copick.runs=[TS_9]",
        cwd=tmp_path,
    )
    assert bad.returncode != 0
    assert bad.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "no run 'TS_9' (runs: TS_001)" in bad.stderr and "Traceback" not in bad.stderr


def test_pick_cli_copick_positions_equal_star_times_voxel_size(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    seg = _blobs((6, 40, 48), [(10, 12, 2), (30, 25, 3), (40, 8, 3)])
    cp.write_segmentation(project, "TS_001", "antibody", seg, voxel_size_A=10.0)
    result = _run(
        "pick",
        f"data={project}",
        "feature=Antibody",
        "copick.object=antibody",
        "out=picks",
        "formats=[txt,star]",
        "margin=0",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    star = read_star(tmp_path / "picks" / "TS_001__Antibody_coords.star")
    assert len(star) == 3
    located, _ = cp.read_picks(project, "TS_001", "antibody")
    # STAR keeps 3 decimals of a voxel: 0.0005 voxel = 0.005 Å at 10 Å
    np.testing.assert_allclose(located, star * 10.0, rtol=0, atol=0.0051)

    bad = _run(
        "pick", f"data={project}", "feature=Antibody", "copick.object=ribo", "out=p2", cwd=tmp_path
    )
    assert bad.returncode != 0 and "no object 'ribo' (objects: antibody, membrane)" in bad.stderr
