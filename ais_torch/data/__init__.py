"""Training data: annotated tomograms or `.scnt` sets → boxes → augmented samples → batches.

Kept import-free so that ``import ais_torch.data.boxes`` does not pull in torch or Lightning;
import the submodules you need (:mod:`.boxes`, :mod:`.normalise`, :mod:`.augment`,
:mod:`.sampling`, :mod:`.datamodule`).
"""
