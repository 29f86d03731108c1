"""An example third-party architecture package for ais_torch (see README.md)."""
