"""Where the network runs: PyTorch (CPU or GPU) or ONNX Runtime, behind one small interface.

A backend takes a float32 batch ``(B, C, H, W)`` (2D/2.5D models) or ``(B, 1, D, H, W)`` (3D
models), runs every test-time orientation, undoes it and returns the mean probability of the
centre slice as float32 ``(B, H, W)`` on the host; ``slabs`` runs a slab model's tiles as they
are (``(N, 1, D, h, w)`` → ``(N, D, h, w)``). The engine never needs to know which one it
is talking to.

GPU fast path (PyTorch): pinned host memory + non-blocking copies, channels_last weights and
inputs, bf16 autocast (``precision="bf16"``), optional ``torch.compile``. ``precision="fp32"``
also switches TF32 off, so GPU results match the original's float32 arithmetic. CPU fast path:
``precision="bf16"`` (CPUs with AVX512-BF16 or AMX) plus ``compile=True`` (frozen weights).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from ais_torch.errors import AisInputError, ConfigError
from ais_torch.segmentation.tta import N_DIHEDRAL, dihedral, dihedral_inverse

if TYPE_CHECKING:
    from ais_torch.formats.onnx import OnnxModel

Network = Callable[[torch.Tensor], torch.Tensor]
"""A module, or what ``torch.compile`` makes of it."""

log = logging.getLogger("ais_torch.segmentation.backends")

PRECISIONS = ("auto", "fp32", "bf16")
BACKENDS = ("auto", "torch", "onnx")


class Backend(Protocol):
    """What the engine calls: ``backend(batch) -> (B, H, W)`` float32 mean over TTA."""

    device: torch.device
    pin_memory: bool

    def __call__(self, batch: torch.Tensor) -> np.ndarray: ...


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto``/None → ``cuda:<LOCAL_RANK>`` when a GPU is present, else CPU; others as given."""
    import os

    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))
            return torch.device(f"cuda:{local % torch.cuda.device_count()}")
        return torch.device("cpu")
    try:
        dev = torch.device(str(device))
    except RuntimeError:
        raise ConfigError(f"device={device}: use cpu, cuda, cuda:1, ... or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device}: no CUDA GPU is visible here; use device=cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(
            f"device={device}: only {torch.cuda.device_count()} GPU(s) visible; use cuda:0.."
        )
    return dev


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 natively (GPUs since Ampere; CPUs with AVX512-BF16 or
    AMX) — elsewhere bf16 is emulated and slower than float32."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device, *, training: bool = False) -> str:
    """``auto`` → ``bf16``, ``fp16`` or ``fp32`` for ``device``: the one rule for both jobs.

    Segmentation: bf16 on GPUs that run it natively, else fp32 (CPUs keep fp32, which matches
    the original's output). Training (``training=True``, mixed precision): bf16 wherever it is
    native, CPUs included (about 2x), fp16 on older GPUs, else fp32.
    """
    choices = (*PRECISIONS, "fp16") if training else PRECISIONS
    if precision not in choices:
        raise ConfigError(f"precision={precision}: expected one of {', '.join(choices)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if native_bf16(device) else ("fp16" if training else "fp32")
    return "bf16" if training and native_bf16(device) else "fp32"


def output_centre(y: torch.Tensor) -> torch.Tensor:
    """Network output → ``(B, H, W)``: channel 0, and the centre z of a 3D output."""
    if y.ndim == 5:
        return y[:, 0, y.shape[2] // 2]
    return y[:, 0]


def compile_for_inference(model: torch.nn.Module, device: torch.device) -> Network:
    """``torch.compile`` tuned for inference: frozen weights on CPU, static shapes first.

    Why: every slice of a tomogram has the same shape, so static shapes (one recompile for a
    smaller last batch) beat ``dynamic=True``; on CPU, Inductor's freezing folds the weights
    into oneDNN's pre-packed layout and fuses conv + ReLU (about 1.2-1.4x on VGGNet M).
    The first batch pays the compile time (tens of seconds), so use it for whole tomograms.
    """
    options = {"freezing": True} if device.type == "cpu" else None
    return torch.compile(model, options=options)


class TorchBackend:
    """A PyTorch module on ``device`` with TTA; see the module docstring for the GPU options."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        device: torch.device,
        tta: int = 1,
        precision: str = "fp32",
        channels_last: bool | None = None,
        compile: bool = False,
    ) -> None:
        if not 1 <= int(tta) <= N_DIHEDRAL:
            raise ConfigError(f"tta={tta}: must be 1..{N_DIHEDRAL}")
        self.device = device
        self.tta = int(tta)
        self.precision = resolve_precision(precision, device)
        self.is_cuda = device.type == "cuda"
        self.pin_memory = self.is_cuda
        # channels_last suits oneDNN (CPU, ~1.2x on VGGNet M) and cuDNN alike; 3D nets keep NCDHW
        planar = all(p.ndim <= 4 for p in model.parameters())
        self.channels_last = planar if channels_last is None else bool(channels_last) and planar
        model = model.eval().to(device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model: Network = model
        if compile:
            self.model = compile_for_inference(model, device)

    @contextlib.contextmanager
    def _numerics(self) -> Iterator[None]:
        """bf16 autocast, or strict float32 (no TF32) so GPU matches the original."""
        tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        try:
            if self.is_cuda and self.precision == "fp32":
                torch.backends.cudnn.allow_tf32 = False
                torch.backends.cuda.matmul.allow_tf32 = False
            with torch.autocast(
                self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"
            ):
                yield
        finally:
            torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        """Host → device, non-blocking from pinned memory; channels_last for 4D inputs."""
        x = batch.to(self.device, non_blocking=self.pin_memory and batch.is_pinned())
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        x = self.to_device(batch)
        acc: torch.Tensor | None = None
        with self._numerics():
            for k in range(self.tta):
                xk = dihedral(x, k)
                if self.channels_last and xk.ndim == 4:
                    xk = xk.contiguous(memory_format=torch.channels_last)
                pred = dihedral_inverse(output_centre(self.model(xk)).float(), k)
                acc = pred if acc is None else acc + pred
        assert acc is not None
        return (acc / float(self.tta)).cpu().numpy()

    @torch.inference_mode()
    def slabs(self, batch: torch.Tensor) -> np.ndarray:
        """A slab model's tiles ``(N, 1, D, h, w)`` → ``(N, D, h, w)`` (no TTA: the slab
        engine turns whole planes, as the original does)."""
        x = self.to_device(batch)
        with self._numerics():
            y = self.model(x).float()
        return slab_output(y).cpu().numpy()


def slab_output(y: torch.Tensor) -> torch.Tensor:
    """A slab model's output ``(N, 1, D, h, w)`` → ``(N, D, h, w)``; anything else is refused."""
    if y.ndim != 5:
        raise AisInputError(
            f"the model returns a {y.ndim}-D output {tuple(y.shape)}, not a Z-slab "
            "(N, 1, D, H, W); it is not a slab model — segment it without slab settings"
        )
    return y[:, 0]


class OnnxBackend:
    """An :class:`~ais_torch.formats.onnx.OnnxModel` (onnxruntime) with the same TTA."""

    def __init__(self, model: OnnxModel, *, tta: int = 1) -> None:
        if not 1 <= int(tta) <= N_DIHEDRAL:
            raise ConfigError(f"tta={tta}: must be 1..{N_DIHEDRAL}")
        self.model = model
        self.tta = int(tta)
        self.device = torch.device("cpu")
        self.pin_memory = False

    def __call__(self, batch: torch.Tensor) -> np.ndarray:
        x = batch.numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
        acc: np.ndarray | None = None
        for k in range(self.tta):
            y = self.model(dihedral(x, k))
            pred = dihedral_inverse(output_centre(torch.from_numpy(y)).numpy(), k)
            acc = pred if acc is None else acc + pred
        assert acc is not None
        return (acc / float(self.tta)).astype(np.float32, copy=False)

    def slabs(self, batch: torch.Tensor) -> np.ndarray:
        """As :meth:`TorchBackend.slabs`, through onnxruntime."""
        x = batch.numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
        y = slab_output(torch.from_numpy(np.asarray(self.model(x), np.float32)))
        return y.numpy()
