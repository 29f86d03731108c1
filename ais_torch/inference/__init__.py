"""Applying trained models to slices and volumes."""
