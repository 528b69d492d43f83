"""The domain exception: a message that tells the user what was wrong and what to do."""

from __future__ import annotations


class PFDError(Exception):
    """An error caused by the user's input or environment, printed in one line."""


class ConfigError(PFDError):
    """The YAML configuration is invalid."""


class LabelError(PFDError):
    """A single DFT (or reference) calculation failed; costs one frame."""
