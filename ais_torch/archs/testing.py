"""``check_arch``: the contract every architecture must meet, for our tests and plugin authors'.

A plugin author calls it from their own test suite::

    from ais_torch.archs.testing import check_arch

    def test_my_net():
        check_arch(MyNet)          # or check_arch("my_net") once the package is installed

It builds the network with default hyperparameters and checks, on small inputs of a valid
size: output shape ``(B, 1, H, W)`` on a non-square box (``(B, 1, D, H, W)`` on a slab for 3D
networks), values in [0, 1] and finite; one
backward pass gives finite gradients; hyperparameters are JSON; one Lightning training step
runs; a Lightning checkpoint reloads with ``weights_only=True`` and gives equal outputs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

from ais_torch.archs.base import AisArch


def valid_size(model: AisArch, at_least: int = 16) -> int:
    """The smallest multiple of ``model.min_size_multiple`` that is >= ``at_least``."""
    m = int(model.min_size_multiple)
    return max(m, -(-at_least // m) * m)


def tiny_batch(
    model: AisArch, batch_size: int = 2, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random non-square batch ``(x, y)`` the model accepts; labels 0/1 plus some 2s."""
    g = torch.Generator().manual_seed(seed)
    h = valid_size(model)
    w = h + int(model.min_size_multiple)
    # a 3D slab network (``n_spatial_dims == 3``) takes (B, C, D, H, W) slabs of its own depth
    depth = (int(model.hparams.depth),) if getattr(model, "n_spatial_dims", 2) == 3 else ()
    x = torch.randn(batch_size, model.hparams.in_channels, *depth, h, w, generator=g)
    y = (torch.rand(batch_size, 1, *depth, h, w, generator=g) > 0.7).float()
    y[..., :2, :] = 2.0  # an ignored border, as the original's exporter writes
    return x, y


def check_arch(arch: str | type[AisArch], *, tmp_dir: str | Path | None = None) -> AisArch:
    """Raise ``AssertionError`` with a reason unless ``arch`` meets the contract; return it.

    ``arch`` is a registered name (entry point or preset) or an ``AisArch`` subclass.
    """
    if isinstance(arch, str):
        from ais_torch.archs.registry import build

        model = build(arch)
    else:
        model = arch()
    name = arch if isinstance(arch, str) else arch.__name__
    assert isinstance(model, AisArch), f"{name}: not an AisArch"
    assert model.title, f"{name}: set a human-readable class attribute `title`"
    hparams = dict(model.hparams)
    try:
        json.dumps(hparams)
    except TypeError as err:
        raise AssertionError(f"{name}: hyperparameters are not plain JSON: {err}") from err
    assert model.example_input_array is not None, f"{name}: example_input_array is not set"

    x, y = tiny_batch(model)
    _check_forward(model, x, name)
    _check_backward(model, x, y, name)
    with tempfile.TemporaryDirectory(dir=tmp_dir) as tmp:
        _check_checkpoint(model, x, y, Path(tmp), name)
    return model


def _check_forward(model: AisArch, x: torch.Tensor, name: str) -> None:
    model.eval()
    with torch.no_grad():
        out = model(x)
    expected = (x.shape[0], 1, *x.shape[2:])
    assert tuple(out.shape) == expected, f"{name}: output {tuple(out.shape)}, want {expected}"
    assert out.dtype.is_floating_point, f"{name}: output dtype {out.dtype}"
    assert torch.isfinite(out).all(), f"{name}: output has NaN or inf"
    assert out.min() >= 0 and out.max() <= 1, (
        f"{name}: output outside [0, 1] ({out.min().item()}..{out.max().item()})"
    )


def _check_backward(model: AisArch, x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    model.train()
    model.zero_grad()
    loss = model.compute_loss(model(x), y)
    assert torch.isfinite(loss), f"{name}: loss is {loss.item()}"
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads, f"{name}: no parameter received a gradient"
    assert all(torch.isfinite(g).all() for g in grads), f"{name}: non-finite gradient"
    assert any(g.abs().sum() > 0 for g in grads), f"{name}: all gradients are zero"
    model.zero_grad()


def _check_checkpoint(
    model: AisArch, x: torch.Tensor, y: torch.Tensor, tmp: Path, name: str
) -> None:
    """One Lightning training step, then save -> ``load_from_checkpoint(weights_only=True)``."""
    from lightning.pytorch import Trainer
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(x, y), batch_size=len(x))
    with quiet_lightning():
        trainer = Trainer(**quiet_trainer_args(tmp), max_steps=1, limit_val_batches=1)
        trainer.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    assert trainer.global_step >= 1, f"{name}: the training step did not run"
    path = tmp / "model.ckpt"
    trainer.save_checkpoint(path, weights_only=True)

    loaded = type(model).load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert dict(loaded.hparams) == dict(model.hparams), f"{name}: hyperparameters changed"
    model.eval()
    loaded.eval()
    with torch.no_grad():
        a, b = model(x), loaded(x)
    assert torch.equal(a, b), f"{name}: reloaded model gives different outputs"


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's info messages (device summary, tips) for the duration."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "pytorch_lightning")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def quiet_trainer_args(root: Path) -> dict[str, str | int | bool]:
    """``Trainer`` arguments for a throw-away CPU run: no logger, checkpoints or bars."""
    return {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "default_root_dir": str(root),
    }
