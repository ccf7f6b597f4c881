"""Where :class:`ConfigError` used to live; it is :mod:`bridge.settings`'s now.

Kept so that ``from bridge.toml_table import ConfigError`` (the CLI, the relay's venues file,
tests) still works; new code imports it from ``bridge.settings``.
"""

from __future__ import annotations

from bridge.settings import LOG_LEVELS, ConfigError

__all__ = ["LOG_LEVELS", "ConfigError"]
