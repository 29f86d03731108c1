"""Training: annotated tomograms or ``.scnt`` sets → boxes → augmented samples → batches.

Kept import-free so that ``import ais_torch.training.boxes`` does not pull in torch or Lightning.
"""
