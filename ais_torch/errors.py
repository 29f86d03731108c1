"""Errors a user can act on.

Every message is one line that names the file (or setting) at fault and what to do about it.
Command-line shells print ``AisError`` without a traceback
(see :func:`ais_torch.commands.shell.run_cli`).
"""

from __future__ import annotations


class AisError(Exception):
    """Base class: something the user can fix; printed as one line, no traceback."""


class AisInputError(AisError, ValueError):
    """A volume, label or training set that cannot be used as given."""


class ModelFormatError(AisError, ValueError):
    """A model file (.scnm, .h5, .onnx, checkpoint) that cannot be opened safely."""


class ArchPluginError(AisError, RuntimeError):
    """An architecture plugin that is missing, duplicated or broken."""


class ConfigError(AisError, ValueError):
    """A configuration value that does not make sense."""


class AisOutputError(AisError, RuntimeError):
    """An output that cannot be written: a full disk, a read-only or non-creatable folder."""
