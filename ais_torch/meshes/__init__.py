"""Segmentation volumes → triangle meshes (``.obj``), one surface per connected piece."""
