"""Segmentation: models applied to whole tomograms, streaming and in bounded memory.

The one data path is :func:`ais_torch.segmentation.api.segment_volume` (array in, one array per
model out); :mod:`.batch` runs it over files (locks, ranks, resume, report).
"""
