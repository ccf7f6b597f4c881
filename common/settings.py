"""The one loader of the bridge's and the relay's TOML config files, into typed models.

Each file's shape is a tree of pydantic models (``bridge/config_file.py``,
``relay/config_file.py``): types, ranges, defaults, required keys and unknown keys are
the models' job (strict: ``"5"`` is not a number, ``1`` is not ``true``; a key nobody reads is
an error, never ignored). :func:`load_file` reads and validates; every mistake becomes a
:class:`ConfigError` naming the dotted key path (``drivers.main.url: …``) so a technician can
find the line. What relates several keys (a location's driver exists, a secret from the
environment) is checked by each config module after, with the same error.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

LOG_LEVELS = ("debug", "info", "warning", "error")

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A bad configuration value; ``path`` is the dotted key path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class KeyProblem(ValueError):
    """Raised by a validator about one key below the value it checks (a dict's key)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class Section(BaseModel):
    """A TOML table: strict types, unknown keys refused, read-only once loaded."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


#: ``log_level``, in any case (``INFO`` is ``info``).
LogLevel = Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)]

S = TypeVar("S", bound=Section)


def read_toml(path: Path | str) -> dict[str, Any]:
    """The file at ``path``, decoded.

    Raises:
        ConfigError: it cannot be read, or is not TOML.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from exc


def load_file(model: type[S], data: Any) -> S:
    """Decoded TOML as ``model``.

    Raises:
        ConfigError: the first mistake, by key path.
    """
    if not isinstance(data, dict):
        raise ConfigError("<root>", "must be a table")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc) from None


def config_error(exc: ValidationError) -> ConfigError:
    error = exc.errors(include_url=False)[0]
    loc = list(error["loc"])
    kind = error["type"]
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, KeyProblem):
        loc.append(cause.key)
    if kind == "extra_forbidden":
        message = "unknown key"
    elif kind == "missing":
        message = "is required"
    elif kind in ("model_type", "dict_type", "model_attributes_type"):
        message = "must be a table"
    elif cause is not None:
        message = str(cause)
    else:
        message = "must be " + error["msg"].removeprefix("Input should be ")
    return ConfigError(key_path(loc) or "<root>", message)


def key_path(loc: list[int | str] | tuple[int | str, ...]) -> str:
    """``("tunnel", "urls", 1)`` as ``tunnel.urls[1]``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def secret(path: str, value: str, variable: str, env: Mapping[str, str]) -> str:
    """A secret of 16+ characters, given at ``path`` or named by ``path`` + ``_env``.

    The environment variable wins, so a config file can stay free of secrets.

    Raises:
        ConfigError: the variable is empty, or the secret is short.
    """
    if variable:
        value = env.get(variable, "")
        if not value:
            raise ConfigError(f"{path}_env", f"environment variable {variable} is empty")
    if len(value) < 16:
        raise ConfigError(path, "must be set, at least 16 characters")
    return value


def ignored(path: str, value: object) -> None:
    """A key an older version read: accepted, so an upgraded venue still starts, and logged."""
    if value is not None:
        logger.warning("%s no longer does anything; delete it from the config file", path)
