"""Configuration errors: one clear message naming the file and the bad field."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration file is missing, malformed or invalid."""
