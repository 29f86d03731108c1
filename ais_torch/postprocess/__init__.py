"""Post-processing of segmentations: model competition and interactions, picking, meshes.

Kept import-light on purpose (no numpy/scipy/torch here): ``import ais_torch.postprocess.X``
should only cost what ``X`` needs. The segmentation engine's entry point is
:func:`ais_torch.postprocess.pipeline.build_postprocess`.
"""
