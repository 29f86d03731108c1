"""Batches: naming and geometry, skip/overwrite, resume after a crash, locks, bad inputs, hook."""

from __future__ import annotations

import os
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from ais_torch.formats.mrc import write_volume
from ais_torch.segmentation import api as engine  # segment_volume calls run_volume from here
from ais_torch.segmentation.batch import segment
from ais_torch.segmentation.scheduling import lock_path

QUIET = {"progress": False, "verbose": False}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_outputs_named_shaped_and_encoded_like_the_original(
    tmp_path: Path, tomo_dir: Path, two_scnm: list[Path]
) -> None:
    out = tmp_path / "seg"
    report = segment(two_scnm, tomo_dir, out, **QUIET)
    names = sorted(p.name for p in out.glob("*.mrc"))
    assert names == sorted(f"t{i}__{t}.mrc" for i in range(3) for t in ("Membrane", "Carbon"))
    assert len(report.written) == 6 and report.ok
    with mrcfile.open(out / "t1__Carbon.mrc") as mrc:
        assert mrc.header.mode == 6  # uint8 values stored as uint16, as Ais 1.2.40 writes them
        assert mrc.data.shape == (7, 40, 52)
        assert float(mrc.voxel_size.x) == pytest.approx(10.0)
        assert (float(mrc.header.origin.x), float(mrc.header.origin.y)) == (5.0, -3.0)
        assert mrc.data.max() <= 255 and mrc.data.std() > 0
    prob = segment(two_scnm[0], tomo_dir / "t1.mrc", tmp_path / "f", dtype="float32", **QUIET)
    with mrcfile.open(prob.written[0]) as mrc:
        assert mrc.header.mode == 2 and 0.0 <= mrc.data.min() and mrc.data.max() <= 1.0
        uint8 = mrcfile.read(out / "t1__Membrane.mrc")
        np.testing.assert_array_equal((mrc.data * 255).astype(np.uint8), uint8)
    assert _leftovers(out) == []


def test_skip_existing_unless_overwrite(tmp_path: Path, tomo_dir: Path, tiny_scnm: Path) -> None:
    out = tmp_path / "seg"
    first = segment(tiny_scnm, tomo_dir / "t0.mrc", out, **QUIET)
    target = first.written[0]
    write_volume(target, np.full((7, 40, 52), 7, np.uint8), voxel_size_A=10.0)  # a marker
    again = segment(tiny_scnm, tomo_dir / "t0.mrc", out, **QUIET)
    assert again.written == [] and again.skipped == [target]
    assert (mrcfile.read(target) == 7).all()
    redo = segment(tiny_scnm, tomo_dir / "t0.mrc", out, overwrite=True, **QUIET)
    assert redo.written == [target] and not (mrcfile.read(target) == 7).all()


def test_resume_after_a_crash_leaves_no_partial_file(
    tmp_path: Path, tomo_dir: Path, tiny_scnm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "seg"
    real = engine.run_volume
    calls = {"n": 0}

    def crash_on_second(data, runs, sinks, options, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            kw["on_progress"] = None
            sinks[0].write(slice(0, 1), np.zeros((1, 40, 52), np.uint8))  # half written...
            raise KeyboardInterrupt  # ...then the run is killed (Ctrl-C)
        return real(data, runs, sinks, options, **kw)

    monkeypatch.setattr(engine, "run_volume", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        segment(tiny_scnm, tomo_dir, out, **QUIET)
    assert sorted(p.name for p in out.iterdir()) == ["t0__Tiny.mrc"]  # no partial, no lock
    done = (out / "t0__Tiny.mrc").stat().st_mtime_ns

    monkeypatch.setattr(engine, "run_volume", real)
    report = segment(tiny_scnm, tomo_dir, out, **QUIET)
    assert [p.name for p in report.written] == ["t1__Tiny.mrc", "t2__Tiny.mrc"]
    assert [p.name for p in report.skipped] == ["t0__Tiny.mrc"]
    assert (out / "t0__Tiny.mrc").stat().st_mtime_ns == done
    assert _leftovers(out) == []


def test_killed_process_leftovers_are_taken_over(
    tmp_path: Path, tomo_dir: Path, tiny_scnm: Path
) -> None:
    """A SIGKILLed run leaves a temp file and its lock; a rerun cleans both and completes."""
    out = tmp_path / "seg"
    out.mkdir()
    target = out / "t0__Tiny.mrc"
    dead = 2**22 + 12345  # above pid_max on Linux: certainly not running
    lock_path(target).write_text(f"{dead} {os.uname().nodename} 0\n")
    (out / f".t0__Tiny.mrc.{dead}-deadbeef.partial").write_bytes(b"half")
    report = segment(tiny_scnm, tomo_dir / "t0.mrc", out, **QUIET)
    assert report.written == [target]
    assert _leftovers(out) == []


def test_a_live_lock_means_another_run_owns_the_output(
    tmp_path: Path, tomo_dir: Path, tiny_scnm: Path
) -> None:
    out = tmp_path / "seg"
    out.mkdir()
    target = out / "t0__Tiny.mrc"
    lock_path(target).write_text(f"{os.getpid()} {os.uname().nodename} 0\n")  # alive: us
    report = segment(tiny_scnm, tomo_dir / "t0.mrc", out, **QUIET)
    assert report.busy == [target] and report.written == [] and not target.exists()
    assert lock_path(target).exists()  # not ours to remove


def test_bad_inputs_fail_alone_with_one_line_each(
    tmp_path: Path, tomo_dir: Path, tiny_scnm: Path
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    write_volume(bad / "image2d.mrc", np.zeros((1, 40, 52), np.float32), voxel_size_A=10.0)
    nan = np.zeros((7, 40, 52), np.float32)
    nan[5, 3, 4] = np.nan
    write_volume(bad / "nans.mrc", nan, voxel_size_A=10.0)
    with mrcfile.new(bad / "novoxel.mrc") as mrc:
        mrc.set_data(np.zeros((7, 40, 52), np.float32))
        mrc.voxel_size = 0.0
    (bad / "garbage.mrc").write_bytes(bytes(2000))  # no MRC header
    listing = tmp_path / "list.txt"
    names = ["bad/garbage.mrc", "tomos/t0.mrc", "bad/image2d.mrc", "bad/nans.mrc"]
    listing.write_text("\n".join([*names, "bad/novoxel.mrc", "# a comment", "missing.mrc"]) + "\n")
    report = segment(tiny_scnm, listing, tmp_path / "seg", **QUIET)
    assert [p.name for p in report.written] == ["t0__Tiny.mrc"]  # the batch went on
    lines = {p.name: msg for p, msg in report.failed}
    assert sorted(lines) == ["garbage.mrc", "image2d.mrc", "missing.mrc", "nans.mrc", "novoxel.mrc"]
    assert all("\n" not in m and m.startswith(str(tmp_path)) for m in lines.values())
    assert "not an MRC file" in lines["garbage.mrc"]
    assert "2D image" in lines["image2d.mrc"]
    assert "NaN/Inf (first at z=5, y=3, x=4)" in lines["nans.mrc"]
    assert "no voxel size" in lines["novoxel.mrc"]
    assert "not found" in lines["missing.mrc"]
    assert _leftovers(tmp_path / "seg") == []
    fixed = segment(tiny_scnm, bad / "novoxel.mrc", tmp_path / "seg", data_apix=10.0, **QUIET)
    assert fixed.ok and len(fixed.written) == 1


def test_postprocess_hook_sees_all_models_before_writing(
    tmp_path: Path, tomo_dir: Path, two_scnm: list[Path]
) -> None:
    seen: list[tuple[list[str], float, str]] = []

    def zero_carbon(preds: dict[str, np.ndarray], voxel: float) -> dict[str, np.ndarray]:
        seen.append((sorted(preds), voxel, str(preds["Carbon"].dtype)))
        return {k: (np.zeros_like(v) if k == "Carbon" else v) for k, v in preds.items()}

    out = tmp_path / "seg"
    segment(two_scnm, tomo_dir / "t0.mrc", out, postprocess=zero_carbon, **QUIET)
    assert seen == [(["Carbon", "Membrane"], 10.0, "uint8")]
    assert not mrcfile.read(out / "t0__Carbon.mrc").any()
    assert mrcfile.read(out / "t0__Membrane.mrc").any()
    # one output missing: both are recomputed so the hook sees every model again
    (out / "t0__Membrane.mrc").unlink()
    again = segment(two_scnm, tomo_dir / "t0.mrc", out, postprocess=zero_carbon, **QUIET)
    assert len(seen) == 2 and len(again.written) == 2


def test_data_forms_folder_glob_list_and_each_read_once(
    tmp_path: Path, tomo_dir: Path, tiny_scnm: Path
) -> None:
    from ais_torch.segmentation.loading import resolve_data

    by_folder = resolve_data(tomo_dir)
    by_glob = resolve_data(str(tomo_dir / "t*.mrc"))
    (tmp_path / "l.txt").write_text("tomos/t2.mrc\ntomos/t0.mrc\ntomos/t2.mrc\n")
    by_list = resolve_data(tmp_path / "l.txt")
    three = ["t0.mrc", "t1.mrc", "t2.mrc"]
    assert [p.name for p in by_folder] == [p.name for p in by_glob] == three
    assert [p.name for p in by_list] == ["t2.mrc", "t0.mrc"]
    assert resolve_data([str(tomo_dir / "t1.mrc"), str(tomo_dir)])[0].name == "t1.mrc"


def test_memory_line_counts_the_partner_piece_labels(
    tmp_path: Path, tomo_dir: Path, two_scnm: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A rule with min_size_nm3 labels the partner over the whole tomogram; the printed bound
    says so (5 bytes per voxel more)."""
    rule = {"parent": "Membrane", "partner": "Carbon", "type": "avoid", "radius_nm": 10}
    for min_size, said in ((0, False), (100, True)):
        segment(two_scnm, tomo_dir / "t0.mrc", tmp_path / f"m{min_size}", progress=False,
                interactions={"rules": [rule | {"min_size_nm3": min_size}]})  # fmt: skip
        err = capsys.readouterr().err
        assert "memory: ~" in err
        assert ("+ 5 B/voxel to find partner pieces" in err) == said
