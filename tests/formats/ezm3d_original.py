"""Runs under the ORIGINAL Ais's Python: build an ezm-3d model as the original does, give it the
seeded weights of ``ezm3d_recipe``, save it as the original's ``.scnm`` and store TensorFlow's
prediction on the seeded slab.

    python ezm3d_original.py "ezm-3d-M" OUT.scnm OUT.npz
"""

import os
import sys

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ezm3d_recipe as recipe
import numpy as np
import tensorflow as tf
from Ais.core.se_model import SEModel

KINDS = {"Conv3D": "conv", "Conv3DTranspose": "conv_transpose", "BatchNormalization": "batch_norm"}


def main(title: str, scnm: str, npz: str) -> None:
    se = SEModel(no_glfw=True)
    se.model_enum = SEModel.AVAILABLE_MODELS.index(title)
    se.compile(64, recipe.INPUT_SHAPE[0])
    weighted = [layer for layer in se.model.layers if layer.get_weights()]
    layers = [(KINDS[type(la).__name__], [w.shape for w in la.get_weights()]) for la in weighted]
    for layer, values in zip(weighted, recipe.all_weights(layers), strict=True):
        layer.set_weights(values)
    se.title = title.replace(" ", "_")
    se.apix = 10.0
    se.model_depth = recipe.INPUT_SHAPE[0]
    se.z_jitter = recipe.Z_JITTER
    se.normalization = "global_mad"
    se.toggle_inference()
    se.save(scnm)
    x = recipe.slab_input()  # (1, 1, D, H, W) -> Keras (1, H, W, D, 1)
    y = se.model(np.transpose(x, (0, 3, 4, 2, 1)), training=False).numpy()
    np.savez_compressed(
        npz,
        output=np.transpose(y, (0, 4, 3, 1, 2)).astype(np.float32),
        n_parameters=se.model.count_params(),
    )


if __name__ == "__main__":
    tf.get_logger().setLevel("ERROR")
    main(*sys.argv[1:4])
