"""Reading a TOML table with typed getters that name the key path of every mistake.

Shared by the bridge's config (``bridge/config.py``) and the relay's (``relay/config.py``):
every error names the dotted key (``drivers.main.url: must be a string``) so a technician can
find the line, and a key nobody read is reported instead of silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(ValueError):
    """A bad configuration value; ``path`` is the dotted key path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class TomlTable:
    """A TOML table being read: typed getters, and a complaint about keys nobody read."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(path or "<root>", "must be a table")
        self.data: dict[str, Any] = data
        self.path = path
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def raw(self, name: str, default: Any = None) -> Any:
        self._seen.add(name)
        return self.data.get(name, default)

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str:
        value = self.raw(name, default)
        if value is None and required:
            raise ConfigError(self.key(name), "is required")
        if not isinstance(value, str):
            raise ConfigError(self.key(name), "must be a string")
        return value

    def integer(
        self, name: str, default: int | None, low: int = 0, high: int = 2**53
    ) -> int | None:
        value = self.raw(name, default)
        if value is None:
            return None
        if type(value) is not int or not low <= value <= high:
            raise ConfigError(self.key(name), f"must be an integer from {low} to {high}")
        return value

    def number(self, name: str, default: float, low: float = 0.0) -> float:
        value = self.raw(name, default)
        if type(value) not in (int, float) or value < low:
            raise ConfigError(self.key(name), f"must be a number >= {low}")
        return float(value)

    def table(self, name: str) -> TomlTable:
        return TomlTable(self.raw(name, {}), self.key(name))

    def secret(self, name: str, env: Mapping[str, str]) -> str:
        """A secret of 16+ characters, given as ``name`` or named by ``name_env``.

        The environment variable wins, so a config file can stay free of secrets.
        """
        value = self.text(name, "")
        variable = self.text(f"{name}_env", "")
        if variable:
            value = env.get(variable, "")
            if not value:
                raise ConfigError(
                    self.key(f"{name}_env"), f"environment variable {variable} is empty"
                )
        if len(value) < 16:
            raise ConfigError(self.key(name), "must be set, at least 16 characters")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in choices:
            raise ConfigError(self.key(name), f"must be one of {', '.join(choices)}")
        return value

    def done(self) -> None:
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            raise ConfigError(self.key(unknown[0]), "unknown key")
