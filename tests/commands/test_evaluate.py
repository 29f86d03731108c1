"""``ais-torch evaluate`` and the scores behind it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ais_torch.commands.evaluate import main
from ais_torch.evaluation.metrics import czii_fbeta, dice_iou, match_picks, score_picks
from ais_torch.formats.coordinates import write_coordinates_tsv, write_star
from ais_torch.formats.mrc import write_volume


def test_hungarian_matching_is_one_to_one() -> None:
    truth = np.array([[0.0, 0, 0], [10, 0, 0]])
    # two picks near the first particle: only one may count; the far pick is a miss
    picks = np.array([[1.0, 0, 0], [0, 1, 0], [30, 0, 0]])
    s = score_picks(picks, truth, 5.0)
    assert (s.tp, s.n_picks, s.n_truth) == (1, 3, 2)
    assert s.precision == pytest.approx(1 / 3) and s.recall == pytest.approx(0.5)
    assert s.f1 == pytest.approx(0.4)


def test_matching_maximises_the_pairs_not_greed() -> None:
    # greedy nearest-first would pair pick 0 with truth 1 (distance 1) and leave truth 0 alone
    truth = np.array([[0.0, 0, 0], [4.0, 0, 0]])
    picks = np.array([[3.0, 0, 0], [8.0, 0, 0]])
    rows, cols = match_picks(picks, truth, 4.0)
    assert sorted(zip(rows.tolist(), cols.tolist(), strict=True)) == [(0, 0), (1, 1)]


def test_empty_lists_score_zero() -> None:
    assert score_picks(np.zeros((0, 3)), np.ones((3, 3)), 5).f1 == 0.0
    assert score_picks(np.ones((3, 3)), np.zeros((0, 3)), 5).precision == 0.0


def test_czii_fbeta() -> None:
    truth = np.array([[0.0, 0, 0], [20, 0, 0], [40, 0, 0], [60, 0, 0]])
    picks = np.array([[1.0, 0, 0], [21, 0, 0], [100, 0, 0]])  # 2 hits, 1 false, 2 missed
    c = czii_fbeta(picks, truth, radius=4.0)  # hit within 2
    assert (c.tp, c.fp, c.fn) == (2, 1, 2)
    p, r = 2 / 3, 2 / 4
    assert c.fbeta == pytest.approx(17 * p * r / (16 * p + r))
    assert czii_fbeta(picks, truth, radius=1.0).tp == 0  # hit within 0.5: both too far


def test_dice_iou() -> None:
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros((4, 4, 4), bool)
    a[0, :2] = True
    b[0, 1:3] = True
    dice, iou = dice_iou(a, b)
    assert dice == pytest.approx(0.5) and iou == pytest.approx(1 / 3)
    assert dice_iou(np.zeros(3, bool), np.zeros(3, bool)) == (1.0, 1.0)


def test_command_scores_picks_and_segmentation(tmp_path: Path, capsys) -> None:
    truth = write_coordinates_tsv(tmp_path / "truth.tsv", [[10, 10, 10], [30, 30, 10]])
    picks = write_star(tmp_path / "p.star", [[11, 10, 10]], tomo_name="t")
    seg = np.zeros((8, 8, 8), np.uint8)
    seg[:4] = 200
    label = np.zeros((8, 8, 8), np.int8)
    label[2:6] = 1
    write_volume(tmp_path / "seg.mrc", seg, voxel_size_A=10)
    write_volume(tmp_path / "lab.mrc", label, voxel_size_A=10)
    out = tmp_path / "report.json"
    args = [f"picks={picks}", f"truth={truth}", f"seg={tmp_path / 'seg.mrc'}"]
    args += [f"label={tmp_path / 'lab.mrc'}", f"json={out}", "threshold=0.5"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "Dice 0.5000" in text and "CZII F4" in text
    report = json.loads(out.read_text())
    assert report["picking"]["tp"] == 1 and report["picking"]["f1"] == pytest.approx(2 / 3)
    assert report["segmentation"]["iou"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["picks=a.star"], "picks= and truth= together"),
        (["seg=a.mrc"], "seg= and label= together"),
        (["json=x.json"], "nothing to score"),
        (["picks=a.star", "truth=b.tsv", "radius=30"], "voxel_size_A="),
        (["picks=missing.star", "truth=missing.tsv"], "not found"),
    ],
)
def test_command_errors_are_one_line(args, match, capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert match in capsys.readouterr().err
