"""``ais-torch pick``: file discovery, outputs per tomogram, parallel workers, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import starfile
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from ais_torch.commands.pick import find_segmentations, run
from ais_torch.config import config_dir
from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.coordinates import read_coordinates, read_star
from ais_torch.formats.mrc import write_volume

SHAPE = (24, 40, 40)


def _compose(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir() / "pick"), version_base="1.3"):
        return compose("pick", overrides=overrides)


def _segmentation(path: Path, centres, dtype=np.uint8) -> Path:
    vol = np.zeros(SHAPE, dtype=np.float32)
    zz, yy, xx = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    for z, y, x in centres:
        vol[(zz - z) ** 2 + (yy - y) ** 2 + (xx - x) ** 2 <= 9] = 1.0
    data = (vol * 255).astype(np.uint8) if dtype == np.uint8 else vol.astype(dtype)
    write_volume(path, data, voxel_size_A=10.0)  # uint8 lands as uint16 0-255, like ais segment
    return path


@pytest.fixture
def seg_dir(tmp_path: Path) -> Path:
    d = tmp_path / "seg"
    d.mkdir()
    _segmentation(d / "tomo_a__Antibody.mrc", [(12, 10, 10), (12, 30, 28)])
    _segmentation(d / "tomo_b__Antibody.mrc", [(12, 20, 20)], dtype=np.float32)
    _segmentation(d / "tomo_c__Antibody.mrc", [])  # nothing segmented
    _segmentation(d / "tomo_a__Membrane.mrc", [(12, 20, 20)])
    return d


def test_picks_every_tomogram_in_all_formats(seg_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "picks"
    cfg = _compose([f"data={seg_dir}", "feature=Antibody", f"out={out}", "formats=[txt,star,json]"])
    results = run(cfg)
    assert [r.n_particles for r in results] == [2, 1, 0]
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == sorted(
        f"tomo_{t}__Antibody_coords.{s}" for t in "abc" for s in ("txt", "star", "json")
    )
    # .txt: the paper's integer x y z, no header
    assert (out / "tomo_b__Antibody_coords.txt").read_text() == "20\t20\t12\n"
    # .star: RELION 3 voxel and RELION 5 centred-Å columns, tomogram name without the feature
    star = starfile.read(out / "tomo_a__Antibody_coords.star")
    assert set(star["rlnMicrographName"]) == {"tomo_a"}
    np.testing.assert_allclose(
        np.sort(star["rlnCenteredCoordinateXAngst"].to_numpy()), [(10 - 20) * 10, (28 - 20) * 10]
    )
    # .json: copick, Å
    doc = json.loads((out / "tomo_b__Antibody_coords.json").read_text())
    assert doc["unit"] == "angstrom" and doc["pickable_object_name"] == "Antibody"
    assert doc["points"][0]["location"] == {"x": 200.0, "y": 200.0, "z": 120.0}
    # the empty tomogram: valid files with no particles
    assert (out / "tomo_c__Antibody_coords.txt").read_text() == ""
    assert read_star(out / "tomo_c__Antibody_coords.star").shape == (0, 3)
    assert read_coordinates(out / "tomo_c__Antibody_coords.json").shape == (0, 3)
    assert not [p for p in out.iterdir() if p.name.endswith(".partial")]


def test_parallel_workers_give_the_same_files(seg_dir: Path, tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    run(_compose([f"data={seg_dir}", "feature=Antibody", f"out={one}"]))
    run(_compose([f"data={seg_dir}", "feature=Antibody", f"out={two}", "workers=2"]))
    for f in sorted(one.glob("*.txt")):
        assert (two / f.name).read_text() == f.read_text()


def test_blob_method_and_glob_input(seg_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "blob"
    cfg = _compose(
        [f"data={seg_dir}/tomo_a*.mrc", "feature=Antibody", f"out={out}", "method=blob", "margin=0"]
    )
    (result,) = run(cfg)
    assert result.n_particles == 2
    star = starfile.read(out / "tomo_a__Antibody_coords.star")
    assert "aisParticleID" in star.columns and "aisParticleSize" in star.columns


def test_missing_feature_names_the_features_present(seg_dir: Path) -> None:
    with pytest.raises(AisInputError, match=r"__Ribosome\.mrc.*features there: Antibody, Membrane"):
        find_segmentations(seg_dir, "Ribosome")
    with pytest.raises(AisInputError, match="no such folder"):
        find_segmentations(seg_dir / "nope", "Antibody")


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("threshold=300", r"threshold=300 is outside 0\.\.1"),
        ("method=lasso", "method="),
        ("formats=[csv]", "formats="),
        ("workers=0", "workers="),
    ],
)
def test_bad_settings_are_one_line_errors(seg_dir: Path, tmp_path: Path, override, match) -> None:
    cfg = _compose([f"data={seg_dir}", "feature=Antibody", f"out={tmp_path}/o", override])
    with pytest.raises(ConfigError, match=match):
        run(cfg)


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "ais_torch.pick", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_command_line(seg_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    done = _cli([f"data={seg_dir}", "feature=Antibody", f"out={out}"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3 tomogram(s), 3 particle(s)" in done.stdout
    assert (out / "tomo_a__Antibody_coords.star").is_file()
    bad = _cli([f"data={seg_dir}", "feature=Ribosome", f"out={out}"], tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].startswith("error: no segmentation named")
    missing = _cli([f"out={out}"], tmp_path)
    assert missing.returncode == 2 and "missing data= and feature=" in missing.stderr
