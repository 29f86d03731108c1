"""3D slab networks trained from sparse slice annotations: deep boxes, random Z crop and flip,
the loss only on the annotated slice, the original's 3D .scnt, and a short run end to end."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch
from hydra_train import compose_train

from ais_torch import archs, load_model, segment_volume
from ais_torch.commands.train import train
from ais_torch.errors import AisInputError, ConfigError
from ais_torch.formats.boxset import IGNORE, BoxSet
from ais_torch.formats.mrc import write_volume
from ais_torch.formats.scnt import read_scnt
from ais_torch.training.datamodule import AisDataModule
from ais_torch.training.sampling import SLAB_Z_JITTER, PerBatchSampler, SlabSamples, slab_offsets

DEPTH = 4
# ezm-3d's code paths (Z and XY-only pooling) at a size that trains in a second
TINY_EZM3D = {
    "encoder": [[[4, 3, 3]], [[8, 1, 3]]],
    "bottleneck": [[8, 3, 3]],
    "decoder": [[[8, 1, 3]], [[4, 3, 3]]],
    "up_widths": [8, 4],
    "z_pool": [True, False],
    "depth": DEPTH,
}


def _boxes(n: int = 3, stored: int = DEPTH + SLAB_Z_JITTER, size: int = 8) -> BoxSet:
    """Slice z of every box holds ``100 z + label``, so a sample says where each slice came
    from and whether image and label were transformed alike."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (n, size, size)).astype(np.uint8)
    z = np.arange(stored, dtype=np.float32)[None, :, None, None]
    images = 100 * z + labels[:, None].astype(np.float32)
    return BoxSet(images=images, labels=labels, apix=10.0, feature="f", normalization="global_mad")


@pytest.mark.parametrize(("stored", "depth"), [(20, 4), (32, 16), (16, 16), (21, 5)])
def test_every_crop_holds_the_annotated_slice_and_all_depths_are_reached(stored, depth) -> None:
    offsets = slab_offsets(stored, depth)
    where = {stored // 2 - o for o in offsets}
    assert all(0 <= o <= stored - depth for o in offsets)
    if stored - depth >= depth - 1:  # enough margin: the slice lands at every depth
        assert where == set(range(depth))
    else:
        assert where and where <= set(range(depth))


def test_slab_samples_crop_flip_and_mask_the_label() -> None:
    boxes = _boxes()
    stored, centre = boxes.depth, boxes.depth // 2
    samples = SlabSamples(boxes, DEPTH)
    assert samples.n_transforms == 16 * len(slab_offsets(stored, DEPTH))
    seen_depths, flips = set(), set()
    for index in range(len(samples)):
        box, offset, k = samples.plan(index)
        x, y = samples[index]
        assert x.shape == y.shape == (1, DEPTH, 8, 8)
        annotated = [d for d in range(DEPTH) if (y[0, d] != IGNORE).any()]
        assert len(annotated) == 1  # every other slice is ignored
        r = annotated[0]
        seen_depths.add(r)
        slice_of = (x[0, :, 0, 0] // 100).int().tolist()  # the stored slice each depth came from
        assert slice_of[r] == centre  # the label sits on the annotated slice's image
        assert torch.equal(x[0, r] % 100, y[0, r])  # XY transformed alike
        flipped = slice_of[0] > slice_of[-1]
        assert flipped == (k >= 8)
        flips.add(flipped)
        expected = sorted(range(offset, offset + DEPTH), reverse=flipped)
        assert slice_of == expected
        assert int((y[0, r] == 1).sum()) == int(boxes.labels[box].sum())
    assert seen_depths == set(range(DEPTH)) and flips == {True, False}


def test_validation_samples_are_one_centred_crop_per_box() -> None:
    boxes = _boxes()
    samples = SlabSamples(boxes, DEPTH, augment=False)
    assert len(samples) == len(boxes)
    x, y = samples[0]
    offset = (boxes.depth - DEPTH) // 2
    assert (x[0, :, 0, 0] // 100).int().tolist() == list(range(offset, offset + DEPTH))
    assert int((y != IGNORE).any(dim=(-1, -2)).sum()) == 1


def test_per_batch_sampler_draws_random_crops_and_flips() -> None:
    samples = SlabSamples(_boxes(n=8), DEPTH)
    sampler = PerBatchSampler(samples, batch_size=4, n_copies=8, seed=0)
    plans = [samples.plan(i) for i in sampler]
    assert len({offset for _, offset, _ in plans}) > 1
    assert {k >= 8 for _, _, k in plans} == {True, False}


def test_boxes_too_shallow_for_the_network_are_refused() -> None:
    with pytest.raises(AisInputError, match="slice\\(s\\) deep but the slab network takes 4"):
        SlabSamples(_boxes(stored=3), DEPTH)


def test_the_loss_sees_only_the_annotated_slice() -> None:
    """Gradient flows only from the annotated slice, and the loss equals that slice's 2D loss."""
    torch.manual_seed(0)
    model = archs.build("ezm3d", **TINY_EZM3D)
    samples = SlabSamples(_boxes(n=1, size=16), DEPTH)
    x, y = samples[5]
    x, y = x[None] / 100.0, y[None]
    r = int((y[0, 0] != IGNORE).any(dim=(-1, -2)).nonzero()[0, 0])
    probs = model(x).detach().requires_grad_(True)
    loss = model.compute_loss(probs, y)
    loss.backward()
    grad = probs.grad[0, 0]
    assert grad[r].abs().sum() > 0
    others = [d for d in range(DEPTH) if d != r]
    assert grad[others].abs().sum() == 0
    flat = model.compute_loss(probs[:, :, r], y[:, :, r])
    assert torch.allclose(loss, flat, atol=1e-6)


def _volume_pair(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(1)
    tomo = rng.normal(size=(12, 32, 32)).astype(np.float32)
    labels = np.zeros(tomo.shape, np.uint8)
    labels[6, 8:20, 8:20] = 1
    labels[6, :4] = 2
    labels[6, 24:] = 0
    labels[6, 0, 30] = 2  # a label on the slice (0s elsewhere) marks it as annotated
    write_volume(tmp_path / "t.mrc", tomo, voxel_size_A=10.0)
    write_volume(tmp_path / "t_labels.mrc", labels, voxel_size_A=10.0)
    return tmp_path / "t.mrc", tmp_path / "t_labels.mrc"


def test_datamodule_stores_deep_boxes_and_batches_slabs(tmp_path: Path) -> None:
    tomo, labels = _volume_pair(tmp_path)
    dm = AisDataModule(
        tomograms=[str(tomo)], labels=[str(labels)], box_size=16, batch_size=2,
        n_copies=1, slab_depth=DEPTH, val_fraction=0.3,
    )  # fmt: skip
    dm.setup()
    assert dm.box_depth == DEPTH + SLAB_Z_JITTER and dm.z_jitter == SLAB_Z_JITTER
    sources = dm.boxset.sources
    assert {s["z"] for s in sources} == {6}
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == y.shape == (2, 1, DEPTH, 16, 16)
    vx, vy = next(iter(dm.val_dataloader()))
    assert vx.shape[1:] == vy.shape[1:] == (1, DEPTH, 16, 16)
    with pytest.raises(ConfigError, match="sampling=per_batch"):
        AisDataModule(tomograms=[str(tomo)], labels=[str(labels)], slab_depth=4, sampling="copies")


def _write_original_3d_scnt(path: Path, stored: int = 20, size: int = 8) -> np.ndarray:
    """A training set laid out as the original 1.2.40 writes a 3D one (box_depth 4 + z_jitter
    16): x_main boxes of ``stored`` slices and y label slabs, 2 off the box's slice."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(stored, size, size)).astype(np.float32)
    slab = np.full((stored, size, size), 2.0, np.float32)
    slab[stored // 2] = rng.integers(0, 2, (size, size))
    slab[stored // 2 + 3, :2] = 0  # another annotated slice inside the window
    h = "0123456789abcdef"
    meta = {
        "format_version": 1, "apix": 10.0, "box_size": size, "box_depth": stored - 16,
        "z_jitter": 16, "features": ["Membrane"], "n_samples": 1,
        "input_flavours": ["x_main"], "annotated_flavour": "x_main",
        "normalization": "global_mad",
    }  # fmt: skip
    sources = {h: {"aisTomogramName": "t", "aisBoxCoordinateZ": 5, "aisBoxCoordinateY": 4,
                   "aisBoxCoordinateX": 4, "aisFeatureName": "Membrane"}}  # fmt: skip
    with tarfile.open(path, "w") as tar:
        for name, payload in (
            ("metadata.json", json.dumps(meta).encode()),
            ("sources.json", json.dumps(sources).encode()),
            (f"x_main/{h}.mrc", _mrc(tmp := path.with_suffix(".x.mrc"), x)),
            (f"y/{h}.mrc", _mrc(tmp, slab)),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return slab[stored // 2]


def _mrc(tmp: Path, data: np.ndarray) -> bytes:
    with mrcfile.new(tmp, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = 10.0
    payload = tmp.read_bytes()
    tmp.unlink()
    return payload


def test_the_originals_3d_scnt_is_read_with_its_depth(tmp_path: Path) -> None:
    path = tmp_path / "membrane3d.scnt"
    label = _write_original_3d_scnt(path)
    boxes = read_scnt(path)
    assert boxes.depth == 20 and boxes.box_size == 8
    np.testing.assert_array_equal(boxes.labels[0], label)
    dm = AisDataModule(scnt=[str(path)], batch_size=1, n_copies=1, slab_depth=DEPTH)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == y.shape == (1, 1, DEPTH, 8, 8)


TINY_RUN = [
    "data.demo.shape=[24,80,80]",
    "data.demo.n_train=1",
    "data.demo.n_eval=0",
    "evaluate=false",  # a slab model segments in 512 px tiles: seconds too many here
    "data.demo.annotated_slices=2",
    "data.box_size=32",
    "data.stride=32",
    "data.n_copies=1",
    "data.batch_size=2",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]


@pytest.mark.slow
def test_a_slab_network_trains_through_the_app_and_segments(tmp_path: Path) -> None:
    arch = [f"+arch.{k}={json.dumps(v)}" for k, v in TINY_EZM3D.items() if k != "depth"]
    cfg = compose_train(
        ["arch=ezm3d_m", f"+arch.depth={DEPTH}", *arch, f"paths.output_dir={tmp_path}", *TINY_RUN]
    )
    result = train(cfg, tmp_path)  # the TensorBoard preview segments a slice with the slab net
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(result.log_dir))
    events.Reload()
    assert "preview/input_prediction_label" in events.Tags()["images"]
    meta = load_model(result.model_path).metadata
    assert (meta.model_depth, meta.z_jitter, meta.arch) == (DEPTH, SLAB_Z_JITTER, "ezm-3d-M")
    volume = np.random.default_rng(0).normal(size=(6, 32, 32)).astype(np.float32)
    out = segment_volume(volume, result.model_path, voxel_size_A=10.0)
    (prediction,) = out.values()
    assert prediction.shape == volume.shape

    again = tmp_path / "finetune"  # init= a slab model: its depth sets the boxes again
    cfg = compose_train(
        [f"init={result.model_path}", f"paths.output_dir={again}", "logger=none", *TINY_RUN]
    )
    tuned = train(cfg, again)
    assert load_model(tuned.model_path).metadata.model_depth == DEPTH
