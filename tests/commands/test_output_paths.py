"""Outputs that cannot be written end in one line naming the file and the option to change,
for every command; model titles that cannot be file names are renamed, and the run says so."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from ais_torch.errors import AisOutputError
from ais_torch.formats.atomic import check_output_folder
from ais_torch.formats.naming import MAX_TITLE_BYTES, file_safe, result_name

REPO = Path(__file__).resolve().parents[2]


def _battery() -> ModuleType:
    if "hostile_battery" in sys.modules:
        return sys.modules["hostile_battery"]
    spec = importlib.util.spec_from_file_location(
        "hostile_battery", REPO / "scripts/hostile_battery.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hostile_battery"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "name",
    [
        "segment out= under a file",
        "pick out= is a file",
        "mesh out= is a file",
        "train hydra.run.dir= read-only",
        "evaluate json= read-only",
        "demo out= is a file",
    ],
)
def test_cli_output_problem_is_one_line(tmp_path: Path, name: str) -> None:
    hb = _battery()
    case = next(c for c in hb.cases() if c.name == name)
    result = hb.run_case(case, tmp_path / "case")
    if result.skipped:
        pytest.skip(result.skipped)
    assert result.ok, (result.code, result.stderr)
    assert result.left == []
    assert "error: " in result.lines[0] and case.expect in result.lines[0]


def test_output_folder_checks(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(AisOutputError, match=r"out=.*/f/sub: cannot be created, .*/f is a file"):
        check_output_folder(tmp_path / "f" / "sub")
    assert check_output_folder(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checked, not created


@pytest.mark.parametrize(
    ("title", "safe", "why"),
    [
        ("Membrane", "Membrane", ""),
        ("a/b\\c", "a_b_c", "path separators"),
        ("..", "_", "dots"),
        ("CON", "CON_", "reserved device name"),
        ("nul.txt", "nul.txt_", "reserved device name"),
        ("tab\there", "tab_here", "not allowed"),
    ],
)
def test_titles_become_safe_file_names(title: str, safe: str, why: str) -> None:
    got, reason = file_safe(title)
    assert got == safe and (why in reason if why else reason == "")
    assert result_name("t.mrc", title) == f"t__{safe}.mrc"


def test_long_titles_are_cut_but_stay_apart() -> None:
    a, why = file_safe("é" * 200 + "a")
    b, _ = file_safe("é" * 200 + "b")
    assert a != b and len(a.encode()) <= MAX_TITLE_BYTES and "longer than" in why
