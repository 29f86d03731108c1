"""The Keras bridge: read the original's Keras ``.h5`` models and write ones it opens.

``graph`` rebuilds any Keras functional graph in PyTorch, ``weights`` maps Keras weight layouts,
``read`` opens a ``.h5`` (matching our architectures where it can), ``emit`` describes one of our
networks as a Keras graph, ``write`` saves it as a ``.scnm`` the original opens.
"""
