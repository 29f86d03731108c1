"""Runs under the ORIGINAL Ais's Python: open a ``.scnm`` with the original's ``SEModel.load``
and store its prediction on the seeded slab of ``ezm3d_recipe`` (our layout).

    python ezm3d_original_open.py MODEL.scnm OUT.npz
"""

import os
import sys

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ezm3d_recipe as recipe
import numpy as np
from Ais.core.se_model import SEModel


def main(scnm: str, npz: str) -> None:
    se = SEModel(no_glfw=True)
    se.load(scnm)
    x = recipe.slab_input()  # (1, 1, D, H, W) -> Keras (1, H, W, D, 1)
    y = se.model(np.transpose(x, (0, 3, 4, 2, 1)), training=False).numpy()
    np.savez_compressed(
        npz,
        output=np.transpose(y, (0, 4, 3, 1, 2)).astype(np.float32),
        n_parameters=se.model.count_params(),
        model_depth=se.model_depth,
        arch=se.get_model_title(),
    )


if __name__ == "__main__":
    main(*sys.argv[1:3])
