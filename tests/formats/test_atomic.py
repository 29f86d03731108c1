"""Atomic outputs and the output-folder guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from ais_torch.errors import AisInputError
from ais_torch.formats.atomic import atomic_output, ensure_inside


def test_success_renames_into_place(tmp_path: Path) -> None:
    with atomic_output(tmp_path / "a.txt") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".")
        tmp.write_text("done")
    assert (tmp_path / "a.txt").read_text() == "done"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_refuses_to_overwrite_when_asked(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("keep")
    with (
        pytest.raises(AisInputError, match="already exists"),
        atomic_output(tmp_path / "a.txt", overwrite=False),
    ):
        pass
    assert (tmp_path / "a.txt").read_text() == "keep"


@pytest.mark.parametrize("name", ["../evil.mrc", "/etc/passwd", "sub/../../x.mrc"])
def test_paths_outside_output_folder_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(AisInputError, match="outside the output folder"):
        ensure_inside(tmp_path / "out", name)


def test_inside_paths_are_allowed(tmp_path: Path) -> None:
    assert ensure_inside(tmp_path, "sub/x.mrc") == (tmp_path / "sub" / "x.mrc").resolve()
