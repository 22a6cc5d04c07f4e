"""Error types. Every user-facing failure is a ``GnnsysError`` with a message that
names the problem and the fix; the CLI prints it and exits non-zero."""

from __future__ import annotations


class GnnsysError(Exception):
    """Base class of all errors gnnsys raises on bad input."""


class DatasetNotFoundError(GnnsysError):
    """Unknown dataset name, or its files are missing."""


class DataFormatError(GnnsysError):
    """Files exist but are truncated, mismatched or malformed."""


class GraphError(GnnsysError):
    """A graph is malformed (ids out of range, unsorted CSR, wrong shapes)."""


class ConfigError(GnnsysError):
    """A configuration value is invalid (unknown layer, bad budget, ...)."""


class OutputPathError(GnnsysError):
    """A path the run will write (results, model, checkpoints) cannot be written."""


class CheckpointError(GnnsysError):
    """No usable checkpoint to resume from, or one written for another configuration."""


class ModelFileError(GnnsysError):
    """A saved-model file is not a gnnsys model, or does not fit the dataset or request."""
