"""Picking outputs: the paper's integer .txt, copick JSON, and reading any coordinate file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ais_torch.errors import AisInputError
from ais_torch.formats.coordinates import (
    read_coordinates,
    read_copick_json,
    write_coordinates_tsv,
    write_coordinates_txt,
    write_copick_json,
    write_star,
)
from ais_torch.picking.orientation import direction_to_euler, euler_to_matrix


def test_txt_is_the_papers_integer_format(tmp_path: Path) -> None:
    path = write_coordinates_txt(tmp_path / "p.txt", [[1.5, 2.49, 3.0], [10.2, 0.5, 7.7]])
    assert path.read_text() == "2\t2\t3\n10\t1\t8\n"  # rounded to nearest, halves up
    np.testing.assert_array_equal(read_coordinates(path), [[2, 2, 3], [10, 1, 8]])
    empty = write_coordinates_txt(tmp_path / "e.txt", np.zeros((0, 3)))
    assert empty.read_text() == ""
    assert read_coordinates(empty).shape == (0, 3)


def test_read_coordinates_dispatches_on_the_format(tmp_path: Path) -> None:
    xyz = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    tsv = write_coordinates_tsv(tmp_path / "a.tsv", xyz)
    star = write_star(tmp_path / "a.star", xyz, tomo_name="t")
    js = write_copick_json(
        tmp_path / "a.json", xyz, voxel_size_A=7.5, object_name="o", run_name="t"
    )
    for path in (tsv, star, js):
        np.testing.assert_allclose(read_coordinates(path), xyz)
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2\n")
    with pytest.raises(AisInputError, match="fewer than 3 columns"):
        read_coordinates(bad)


def test_copick_json_holds_angstroms_and_rotations(tmp_path: Path) -> None:
    xyz = np.array([[10.0, 20.0, 30.0]])
    axis = np.array([[0.0, 1.0, 0.0]])
    rot = euler_to_matrix(direction_to_euler(axis))
    path = write_copick_json(
        tmp_path / "p.json",
        xyz,
        voxel_size_A=2.0,
        object_name="ribo",
        run_name="TS_1",
        scores=[0.9],
        rotations=rot,
    )
    doc = json.loads(path.read_text())
    point = doc["points"][0]
    assert point["location"] == {"x": 20.0, "y": 40.0, "z": 60.0}
    assert doc["trust_orientation"] is True and point["score"] == 0.9
    matrix = np.array(point["transformation_"])
    np.testing.assert_allclose(matrix[:3, :3] @ [0, 0, 1], axis[0], atol=1e-7)
    np.testing.assert_allclose(read_copick_json(path), xyz)
    doc["voxel_spacing"] = None
    path.write_text(json.dumps(doc))
    with pytest.raises(AisInputError, match="voxel_size_A"):
        read_copick_json(path)
    np.testing.assert_allclose(read_copick_json(path, voxel_size_A=4.0), xyz / 2)
