"""Particle picking from segmentations: the paper's watershed, the original's blobs, filaments."""
