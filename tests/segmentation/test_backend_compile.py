"""The CPU fast path: ``compile=True`` (Inductor, frozen weights) gives the eager result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_helpers import tiny_unet

from ais_torch.segmentation.backends import TorchBackend


@pytest.mark.slow
def test_compiled_cpu_backend_matches_eager_with_tta_and_a_short_last_batch() -> None:
    net = tiny_unet()
    x = torch.randn(3, 1, 32, 48, generator=torch.Generator().manual_seed(0))
    eager = TorchBackend(net, device=torch.device("cpu"), tta=2, precision="fp32")
    compiled = TorchBackend(
        tiny_unet(), device=torch.device("cpu"), tta=2, precision="fp32", compile=True
    )
    for batch in (x, x[:1]):  # the last batch of a tomogram is often smaller: recompiles once
        np.testing.assert_allclose(compiled(batch), eager(batch), atol=1e-5)
