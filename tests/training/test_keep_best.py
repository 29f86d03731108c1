"""The weights of the epoch with the lowest training loss are what training ends with."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from ais_torch import archs
from ais_torch.training.callbacks import KeepLowestLossEpoch


def test_the_lowest_loss_epoch_is_kept_not_the_last() -> None:
    model = archs.build("eman2")
    keep = KeepLowestLossEpoch()
    snapshots = []
    for epoch, loss in enumerate([0.9, 0.4, 0.7]):  # epoch 1 is the best
        with torch.no_grad():
            model.conv3.bias.fill_(float(epoch))  # weights that say which epoch they are from
        snapshots.append(model.conv3.bias.clone())
        trainer = SimpleNamespace(
            callback_metrics={"train/loss_epoch": torch.tensor(loss)},
            current_epoch=epoch,
            interrupted=False,
        )
        keep.on_train_epoch_end(trainer, model)  # type: ignore[arg-type]
    keep.on_train_end(trainer, model)  # type: ignore[arg-type]
    assert (keep.best_epoch, keep.best) == (1, 0.4000000059604645)
    torch.testing.assert_close(model.conv3.bias, snapshots[1])


def test_an_interrupted_run_keeps_its_last_weights() -> None:
    model = archs.build("eman2")
    keep = KeepLowestLossEpoch()
    trainer = SimpleNamespace(
        callback_metrics={"train/loss_epoch": torch.tensor(0.5)}, current_epoch=0, interrupted=True
    )
    keep.on_train_epoch_end(trainer, model)  # type: ignore[arg-type]
    with torch.no_grad():
        model.conv3.bias.fill_(7.0)
    keep.on_train_end(trainer, model)  # type: ignore[arg-type]
    assert float(model.conv3.bias[0]) == 7.0
