"""Training sets (.scnt): the original's files, our writer, legacy TIFFs and hostile archives."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import tifffile

import ais_torch.formats.scnt as scnt
from ais_torch.errors import AisInputError
from ais_torch.formats.boxset import BoxSet
from ais_torch.formats.scnt import box_hash, read_scnt, write_scnt


def _reference_sets(shared_dir: Path) -> list[Path]:
    found = sorted((shared_dir / "reference" / "training_sets").rglob("*.scnt"))
    if not found:
        pytest.skip("no .scnt files in the shared reference kit")
    return found


def test_reads_every_reference_training_set(shared_dir: Path) -> None:
    for path in _reference_sets(shared_dir):
        boxes = read_scnt(path)
        with tarfile.open(path) as tar:
            meta = json.load(tar.extractfile("metadata.json"))  # type: ignore[arg-type]
        assert boxes.images.shape == (36, 1, 64, 64), path
        assert boxes.labels.shape == (36, 64, 64) and boxes.labels.dtype == np.uint8
        assert set(np.unique(boxes.labels)) <= {0, 1, 2}
        assert boxes.n_positive > 0 and boxes.n_negative > 0
        assert boxes.apix == 10.0 and boxes.normalization == "global_mad"
        assert boxes.feature == meta["features"][0] and path.stem.endswith(boxes.feature)
        # already normalised by the whole-tomogram statistic: near zero, unit scale
        assert abs(float(boxes.images.mean())) < 2 and 0.3 < float(boxes.images.std()) < 3
        src = boxes.sources[0]
        assert src["hash"] == box_hash(
            src["tomogram"], src["feature"], src["z"], src["y"], src["x"]
        )


def test_rewriting_a_reference_set_reproduces_the_originals_box_ids(
    shared_dir: Path, tmp_path: Path
) -> None:
    path = _reference_sets(shared_dir)[0]
    boxes = read_scnt(path)
    out = write_scnt(tmp_path / path.name, boxes)
    with tarfile.open(path) as a, tarfile.open(out) as b:
        assert sorted(a.getnames()) == sorted(b.getnames())
    again = read_scnt(out)
    np.testing.assert_array_equal(again.images, boxes.images)
    np.testing.assert_array_equal(again.labels, boxes.labels)


def _synthetic(n: int = 5, depth: int = 3, box: int = 16) -> BoxSet:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=(n, box, box)).astype(np.uint8)
    labels[-1][labels[-1] == 1] = 0
    sources = [
        {
            "tomogram": "tomoA",
            "path": "/data/tomoA.mrc",
            "z": 3 + i,
            "y": 10 * i,
            "x": 7,
            "feature": "Ribosome",
        }
        for i in range(n)
    ]
    sources[-1] = dict(sources[-2])  # same tomo/feature/z/y/x twice: ids must stay unique
    return BoxSet(
        rng.normal(size=(n, depth, box, box)), labels, 7.5, "Ribosome", sources, "global_mad"
    )


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    boxes = _synthetic()
    out = write_scnt(tmp_path / "set.scnt", boxes)
    back = read_scnt(out)
    np.testing.assert_array_equal(back.images, boxes.images)
    np.testing.assert_array_equal(back.labels, boxes.labels)
    assert (back.apix, back.feature, back.normalization) == (7.5, "Ribosome", "global_mad")
    assert [s["z"] for s in back.sources] == [s["z"] for s in boxes.sources]
    assert [s["negative"] for s in back.sources] == [False] * 4 + [True]
    with tarfile.open(out) as tar:
        names = tar.getnames()
        meta = json.load(tar.extractfile("metadata.json"))  # type: ignore[arg-type]
        member = tar.extractfile(next(n for n in names if n.startswith("y/"))).read()  # type: ignore[union-attr]
    assert len(names) == 2 + 2 * 5  # metadata, sources, x_main + y per box
    assert f"x_main/{box_hash('tomoA', 'Ribosome', 3, 0, 7)}.mrc" in names
    assert meta["box_size"] == 16 and meta["box_depth"] == 3 and meta["n_samples"] == 5
    (tmp_path / "y.mrc").write_bytes(member)
    assert mrcfile.validate(tmp_path / "y.mrc", print_file=io.StringIO())
    with mrcfile.open(tmp_path / "y.mrc") as mrc:
        assert mrc.data.shape == (16, 16) and float(mrc.voxel_size.x) == pytest.approx(7.5)


def test_a_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def broken(header: np.recarray, data: np.ndarray) -> bytes:
        calls.append(1)
        if len(calls) > 3:
            raise OSError("disk full")
        return b"x"

    monkeypatch.setattr(scnt, "_mrc_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        write_scnt(tmp_path / "set.scnt", _synthetic())
    assert list(tmp_path.iterdir()) == []


def test_legacy_tiff_2d(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arr = rng.normal(size=(4, 2, 16, 16))
    arr[:, 1] = (rng.random((4, 16, 16)) > 0.7).astype(float)
    path = tmp_path / "64_12.500_Microtubule.scnt"
    tifffile.imwrite(path, arr, description="apix=12.50")
    boxes = read_scnt(path)
    assert boxes.images.shape == (4, 1, 16, 16) and boxes.images.dtype == np.float32
    np.testing.assert_allclose(boxes.images[:, 0], arr[:, 0], rtol=1e-6)
    np.testing.assert_array_equal(boxes.labels, arr[:, 1].astype(np.uint8))
    assert (boxes.apix, boxes.feature, boxes.normalization) == (12.5, "Microtubule", "none")


def test_legacy_tiff_deep_boxes_and_zoomed_labels(tmp_path: Path) -> None:
    arr = np.zeros((2, 4, 8, 8))  # (N, D+1, B, B) with D = 3
    arr[:, :3] = np.arange(3)[None, :, None, None]
    arr[0, 3, 2:4, 2:4] = 0.97  # a 1.0.x label zoomed with a cubic spline
    arr[0, 3, 0, 0] = -0.02
    path = tmp_path / "deep.scnt"
    tifffile.imwrite(path, arr, description="apix=10.00", photometric="minisblack")
    boxes = read_scnt(path)
    assert boxes.images.shape == (2, 3, 8, 8) and boxes.images[0, :, 0, 0].tolist() == [0, 1, 2]
    assert int(boxes.labels[0].sum()) == 4 and boxes.labels.max() == 1
    assert boxes.feature == "deep"


def test_legacy_tiff_without_pixel_size_needs_apix(tmp_path: Path) -> None:
    path = tmp_path / "noapix.scnt"
    tifffile.imwrite(path, np.zeros((2, 2, 8, 8)))
    with pytest.raises(AisInputError, match="apix=") as err:
        read_scnt(path)
    assert "noapix.scnt" in str(err.value)
    assert read_scnt(path, apix=9.0).apix == 9.0


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _meta() -> bytes:
    return json.dumps({"format_version": 1, "apix": 10.0, "features": ["f"]}).encode()


@pytest.mark.parametrize(
    ("members", "needle"),
    [
        ({"readme.txt": b"hello"}, "not an Ais training set"),
        ({"metadata.json": _meta(), "../evil.mrc": b"x"}, "'..'"),
        ({"metadata.json": _meta(), "/etc/evil": b"x"}, "absolute"),
        ({"metadata.json": b"{not json"}, "not valid JSON"),
        ({"metadata.json": _meta()}, "no boxes"),
        ({"metadata.json": _meta(), "y/abc.mrc": b"x"}, "lacks x_main/abc.mrc"),
        (
            {"metadata.json": _meta(), "x_main/abc.mrc": b"junk", "y/abc.mrc": b"junk"},
            "not an MRC file",
        ),
    ],
)
def test_bad_archives_get_one_line_naming_the_file(
    tmp_path: Path, members: dict[str, bytes], needle: str
) -> None:
    path = _tar(tmp_path / "bad.scnt", members)
    with pytest.raises(AisInputError, match=needle) as err:
        read_scnt(path)
    assert "bad.scnt" in str(err.value) and "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.scnt"]  # nothing extracted


def test_bad_label_values_and_size_cap(tmp_path: Path) -> None:
    boxes = _synthetic(n=2, depth=1)
    out = write_scnt(tmp_path / "ok.scnt", boxes)
    with pytest.raises(AisInputError, match="limit") as err:
        read_scnt(out, max_bytes=4000)
    assert "ok.scnt" in str(err.value)
    boxes.labels[0, 0, 0] = 7  # BoxSet does not police values; the reader does
    bad = write_scnt(tmp_path / "labels.scnt", boxes)
    with pytest.raises(AisInputError, match="label value 7") as err:
        read_scnt(bad)
    assert "labels.scnt" in str(err.value)


@pytest.mark.parametrize("content", [b"", b"\x00" * 100, b"MAP random bytes that are no tar"])
def test_other_files_are_not_training_sets(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "thing.scnt"
    path.write_bytes(content)
    with pytest.raises(AisInputError, match=r"not an Ais training set \(\.scnt\)") as err:
        read_scnt(path)
    assert "thing.scnt" in str(err.value)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(AisInputError, match="not found"):
        read_scnt(tmp_path / "nope.scnt")
    with pytest.raises(AisInputError, match="folder"):
        read_scnt(tmp_path)
