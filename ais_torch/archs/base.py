"""``AisArch``: the base class every architecture (ours or a plugin's) subclasses.

An architecture is a ``lightning.pytorch.LightningModule`` whose ``forward`` maps a batch of
boxes ``(B, C, H, W)`` to per-pixel probabilities ``(B, 1, H, W)`` in [0, 1]. Its constructor
takes keyword-only hyperparameters that are plain JSON values; the base constructor records
them with ``save_hyperparameters()`` (Lightning collects the arguments of every ``__init__`` in
the chain), so a checkpoint reloads with ``torch.load(weights_only=True)`` and the registry can
rebuild the network from ``(name, hparams)`` alone.

Training follows the original: masked BCE (label 2 = ignore) on probabilities, Keras' Adam, and
(``init="keras"``, the default) the weights Keras layers start from: Glorot-uniform kernels and
zero biases (PyTorch's layer defaults draw kernels about 1.7× narrower and non-zero biases, which
made our networks start slower from the same data).

Keras export is opt-in per class: a class that defines ``keras_graph(self, builder, x) -> str``
(replaying the original's Keras ``create()`` on a
:class:`~ais_torch.formats.keras.emit.KerasBuilder`) can be written as the original's ``.scnm``;
the builder is passed in, so this package never imports the formats layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, TypedDict

import torch
from lightning.pytorch import LightningModule
from torch import nn

from ais_torch.archs import losses
from ais_torch.errors import AisInputError, ConfigError

if TYPE_CHECKING:
    from lightning.pytorch.utilities.types import OptimizerLRScheduler

KERAS_ADAM_EPS = 1e-7
LR_SCHEDULES = ("constant", "cosine")
INITS = ("keras", "pytorch")
_KERNEL_LAYERS = (nn.modules.conv._ConvNd, nn.Linear)


class CommonHparams(TypedDict, total=False):
    """The keyword arguments every architecture passes on to :class:`AisArch` (``**common``)."""

    in_channels: int
    learning_rate: float
    loss: str
    bce_weight: float
    dice_weight: float
    lr_schedule: str
    init: str


COMMON_HPARAMS = frozenset(CommonHparams.__annotations__)


class AisArch(LightningModule):
    """Base class for segmentation architectures; see the module docstring for the contract.

    Subclasses set ``title`` (human readable, as the original shows it) and
    ``min_size_multiple`` (H and W must be multiples of it: 2 ** the number of down-sampling
    stages; a class attribute, or an instance attribute set in ``__init__`` when it depends on
    hyperparameters), build their layers after ``super().__init__(...)`` and implement
    ``forward``. Sequence hyperparameters are recorded as lists automatically.
    """

    title: ClassVar[str] = ""
    min_size_multiple: int = 1
    # batch size of the Keras input layer on export: the original saves 1 after its inference
    # rebuild (None for networks it saves as built, e.g. the Pix2pix generator)
    keras_input_batch: ClassVar[int | None] = 1
    # set by archs.build: the entry point and preset the model was built from (provenance that
    # goes into model files; not hyperparameters)
    arch_name: str = ""
    preset: str | None = None

    def __init__(
        self,
        *,
        in_channels: int = 1,
        learning_rate: float = 1e-3,
        loss: str = "bce",
        bce_weight: float = 0.1,
        dice_weight: float = 1.0,
        lr_schedule: str = "constant",
        init: str = "keras",
    ) -> None:
        super().__init__()
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ConfigError(f"in_channels must be a positive integer, got {in_channels!r}")
        if not learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {learning_rate!r}")
        if lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"unknown lr_schedule {lr_schedule!r}; choose one of {LR_SCHEDULES}")
        if init not in INITS:
            raise ConfigError(f"unknown init {init!r}; choose one of {INITS}")
        if loss not in losses.LOSSES:
            raise ConfigError(f"unknown loss {loss!r}; choose one of {', '.join(losses.LOSSES)}")
        self.save_hyperparameters()  # every __init__ in the chain: subclasses' arguments too
        for key, value in list(self.hparams.items()):
            self.hparams[key] = _to_plain(value)  # tuples to lists: plain JSON in checkpoints

    @property
    def example_input_array(self) -> torch.Tensor:
        """A zero box of :attr:`example_size` (built on first use, after the layers exist)."""
        if self._example_input_array is None:
            size = self.example_size
            self._example_input_array = torch.zeros(1, self.hparams.in_channels, size, size)
        return self._example_input_array

    @example_input_array.setter
    def example_input_array(self, example: torch.Tensor | None) -> None:
        self._example_input_array = example

    def initialise_weights(self) -> None:
        """Fresh weights as ``hparams.init`` says; :func:`~ais_torch.archs.build` calls it.

        ``"keras"``: every convolution, transposed convolution and dense kernel Glorot-uniform
        (bound ``sqrt(6 / (fan_in + fan_out))``, fans counted over the kernel window as Keras
        does), every such bias zero; BatchNorm scale 1, shift 0 and running statistics reset
        (Keras' and PyTorch's defaults agree there). ``"pytorch"``: each layer's own
        ``reset_parameters()`` (Kaiming-uniform kernels with bound ``1/sqrt(fan_in)``, biases
        uniform in the same bound).
        """
        keras = self.hparams.get("init", "keras") == "keras"
        for module in self.modules():
            if isinstance(module, _KERNEL_LAYERS) and keras:
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (*_KERNEL_LAYERS, nn.modules.batchnorm._BatchNorm)):
                module.reset_parameters()

    # -- shape -----------------------------------------------------------------------------
    @property
    def example_size(self) -> int:
        """Smallest valid square box of at least 64 px (the original's default box size)."""
        m = self.min_size_multiple
        return max(m, -(-64 // m) * m)

    def check_input_shape(self, x: torch.Tensor) -> None:
        """Raise a specific error (with a shape that would work) for an unusable input."""
        if x.ndim != 4 or x.shape[1] != self.hparams.in_channels:
            raise AisInputError(
                f"{self.title or type(self).__name__} expects (B, {self.hparams.in_channels}, H, W)"
                f" input, got {tuple(x.shape)}"
            )
        m = self.min_size_multiple
        h, w = x.shape[-2:]
        if h % m or w % m:
            ok = (-(-h // m) * m, -(-w // m) * m)
            raise AisInputError(
                f"{self.title or type(self).__name__} needs H and W divisible by {m}, got "
                f"{h}x{w}; pad the input to {ok[0]}x{ok[1]}"
            )

    def _should_check(self) -> bool:
        return not (torch.jit.is_tracing() or torch.compiler.is_compiling())

    @property
    def n_parameters(self) -> int:
        """Parameter count as the original reports it (Keras ``count_params``)."""
        return count_params_keras(self)

    # -- training --------------------------------------------------------------------------
    def compute_loss(self, probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The configured loss (``hparams.loss``) of probabilities against 0/1/2 labels."""
        hp = self.hparams
        if hp.loss == "bce_dice":
            return losses.masked_bce_dice(hp.bce_weight, hp.dice_weight)(probs, target)
        return losses.make_loss(hp.loss)(probs, target)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        loss = self.compute_loss(self(x), y)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(x))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        probs = self(x)
        n = len(x)
        self.log(
            "val/loss", self.compute_loss(probs, y), prog_bar=True, batch_size=n, sync_dist=True
        )
        self.log("val/dice", losses.dice_score(probs, y), batch_size=n, sync_dist=True)

    def configure_optimizers(self) -> OptimizerLRScheduler:
        """Keras ``Adam()`` (:class:`KerasAdam`) at ``hparams.learning_rate``.

        ``lr_schedule="constant"`` is the original's; ``"cosine"`` anneals the rate to zero over
        the run, which converges further in short (CPU) runs.
        """
        optimizer = KerasAdam(self.parameters(), lr=self.hparams.learning_rate)
        if self.hparams.get("lr_schedule", "constant") != "cosine":
            return optimizer
        steps = max(int(self.trainer.estimated_stepping_batches), 1)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


class KerasAdam(torch.optim.Adam):
    """Adam as Keras computes it: betas 0.9/0.999, epsilon 1e-7 added to ``sqrt(v)``.

    Keras divides by ``sqrt(v) + eps`` *before* the bias correction of ``v``; PyTorch after
    it. Both agree once ``eps`` is scaled by ``1 / sqrt(1 - beta2 ** t)``, which this sets
    before every step: 32× larger at the first step, so weights whose gradients are tiny
    (below ~3e-6) move little at first, as in the original, instead of a full ``lr`` each.
    """

    def __init__(self, params: object, lr: float = 1e-3) -> None:
        super().__init__(params, lr=lr, betas=(0.9, 0.999), eps=KERAS_ADAM_EPS)  # type: ignore[arg-type]

    @torch.no_grad()
    def step(self, closure: object = None) -> torch.Tensor | None:  # type: ignore[override]
        for group in self.param_groups:
            beta2 = group["betas"][1]
            state = next((self.state[p] for p in group["params"] if p in self.state), None)
            t = int(state["step"]) + 1 if state else 1
            group["eps"] = KERAS_ADAM_EPS / (1.0 - beta2**t) ** 0.5
        return super().step(closure)  # type: ignore[arg-type]


def _to_plain(value: object) -> object:
    """Sequences (tuples, lists, OmegaConf ``ListConfig``) to nested lists; scalars unchanged."""
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_to_plain(v) for v in value]
    return value


def count_params_keras(module: nn.Module) -> int:
    """Trainable parameters plus BatchNorm running mean/variance elements.

    This is what Keras ``model.count_params()`` returns (it counts BN's moving statistics), and
    so what the original Ais prints and stores as ``n_parameters``.
    """
    n = sum(p.numel() for p in module.parameters() if p.requires_grad)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            n += m.running_mean.numel() + m.running_var.numel()
    return n
