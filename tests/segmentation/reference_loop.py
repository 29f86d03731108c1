"""A deliberately simple loop over :class:`AisRecipe`: the oracle the streaming engine is
checked against (slab by slab, threads and batching must not change a voxel). Test code only:
the product runs every network through :func:`ais_torch.segment_volume`."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ais_torch.segmentation.preprocess import AisRecipe, encode_uint8
from ais_torch.segmentation.tta import N_DIHEDRAL, dihedral, dihedral_inverse


def segment_like_ais(
    model: torch.nn.Module,
    volume: Any,
    *,
    voxel_size_A: float,
    tta: int = 1,
    batch_size: int = 4,
    z_range: slice | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Segment a ``(z, y, x)`` volume exactly as the original ``ais segment`` → uint8 ``(z, y, x)``.

    ``model.metadata`` (from :func:`ais_torch.load_model`) supplies ``normalization``, ``apix``
    and ``model_depth`` (2D models only; the engine in :mod:`ais_torch.segmentation.engine` also
    runs 2.5D/3D models). ``z_range`` segments only those slices (the others stay 0); the
    global_mad statistic is still taken over the whole volume, as in a full run. ``device``
    moves the model there; by default it runs where its parameters are. TF32 is off during the
    call on CUDA (the original computes in float32).
    """
    meta = getattr(model, "metadata", None)
    depth = int(getattr(meta, "model_depth", 1) or 1)
    if depth != 1:
        raise NotImplementedError(
            f"segment_like_ais: model_depth={depth}; only 2D models (depth 1) are supported here"
        )
    if not 1 <= int(tta) <= N_DIHEDRAL:
        raise ValueError(f"tta={tta}: must be 1..{N_DIHEDRAL}")
    if not 1 <= int(batch_size):
        raise ValueError(f"batch_size={batch_size}: must be >= 1")
    # a Volume carries its array in .data; a numpy array's own .data is its raw buffer
    data = volume if isinstance(volume, np.ndarray) else getattr(volume, "data", volume)
    if data.ndim != 3:
        raise ValueError(f"volume of shape {data.shape}: expected (z, y, x)")
    n_z = int(data.shape[0])
    z_list = list(range(n_z)[z_range] if z_range is not None else range(n_z))
    recipe = AisRecipe.for_volume(data, meta, voxel_size_A)

    if device is not None:
        dev = torch.device(device)
        model.to(dev)
    else:
        dev = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = np.zeros(data.shape, np.uint8)
    # TF32 convolutions/matmuls (PyTorch's cuDNN default) would cost ~1e-3 relative precision on
    # Ampere+ GPUs; the original ran float32, so switch them off for the duration of the call.
    tf32 = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    try:
        if dev.type == "cuda":
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        with torch.inference_mode():
            for i in range(0, len(z_list), int(batch_size)):
                idx = z_list[i : i + int(batch_size)]
                padded = recipe.prepare(data[idx])
                batch = torch.from_numpy(np.ascontiguousarray(padded[:, None])).to(dev)
                acc = torch.zeros_like(batch[:, 0])
                for k in range(int(tta)):
                    pred = model(dihedral(batch, k))[:, 0].float()
                    acc += dihedral_inverse(pred, k)
                mean = (acc / float(tta)).cpu().numpy()
                out[idx] = encode_uint8(recipe.finish(mean))
    finally:
        model.train(was_training)
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    return out
