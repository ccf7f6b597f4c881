"""The one loader of the bridge's and the relay's TOML config files, into typed models.

Each file is a tree of pydantic models, one per TOML table (``bridge/config.py``,
``relay/config.py``), and those models are the configuration the rest of the code reads.
Types, ranges, defaults and unknown keys are the models' job (strict: ``"5"`` is not a number,
``1`` is not ``true``; a key nobody reads is an error, never ignored); so is what relates several
keys, in their validators, which may look up the environment (secrets named by ``*_env`` keys)
and the file's folder in the validation :class:`Context`. :func:`load_file` validates; every
mistake becomes a :class:`ConfigError` naming the dotted key path (``drivers.main.url: …``) so a
technician can find the line.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    ValidationError,
    ValidationInfo,
)
from pydantic_core import CoreSchema, core_schema

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A bad configuration value; ``path`` is the dotted key path."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


class KeyProblem(ValueError):
    """Raised by a validator about a key below the one it checks: a dict's key, or, from a
    model validator, a dotted key path inside its table (``"locations.cafe.driver"``)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class Context:
    """What the validators may look up besides the file (pydantic's validation context)."""

    env: Mapping[str, str] = field(default_factory=dict)
    #: The config file's folder, for the paths in it; ``None``: relative to the working folder.
    base: Path | None = None


def context(info: ValidationInfo) -> Context:
    """The loader's :class:`Context`; an empty one for a model built directly (in tests)."""
    return info.context if isinstance(info.context, Context) else Context()


class Section(BaseModel):
    """A TOML table: strict types, unknown keys refused, read-only once loaded."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


S = TypeVar("S", bound=Section)


def checked(default: Any) -> Any:
    """A key's default, checked and converted like a value in the file: an absent table is read
    as ``{}`` (its defaults and its checks apply: a required secret is still required), a
    default path is taken from the file's folder."""
    return Field(default, validate_default=True)


@dataclass(frozen=True)
class ReadAs:
    """``Annotated[T, ReadAs(raw, convert)]``: the value is checked as the type ``raw`` (``str``,
    a table's model: errors keep their key paths), then ``convert`` makes the ``T`` read."""

    raw: Any
    convert: Callable[[Any], Any]

    def __get_pydantic_core_schema__(self, _: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(
            self.convert, handler.generate_schema(self.raw)
        )


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


#: ``log_level``, in any case (``INFO`` is ``info``).
LogLevel = Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)]


Port = Annotated[int, Field(ge=0, le=65535)]
#: A duration of 50 ms or more.
Seconds = Annotated[float, Field(ge=0.05)]


def _listed(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


#: ``Annotated[tuple[T, ...], Listed]``: a TOML list, read as a tuple (frozen like the rest).
Listed = BeforeValidator(_listed)


def url_or_urls(data: Any) -> Any:
    """For a ``model_validator(mode="before")``: ``url = "…"`` or ``urls = ["…", …]``, not both;
    given ``urls``, ``url`` is its first."""
    if isinstance(data, dict) and "urls" in data:
        if "url" in data:
            raise KeyProblem("urls", "give url or urls, not both")
        urls = data["urls"]
        if isinstance(urls, list | tuple):  # a tuple: from Python (tests), read like a list
            if not urls:
                raise KeyProblem("urls", "must be a non-empty list of strings")
            return {**data, "url": urls[0]}
    return data


def _from_env(variable: str, info: ValidationInfo) -> str:
    if variable and not context(info).env.get(variable):
        raise ValueError(f"environment variable {variable} is empty")
    return variable


def _secret(value: str, info: ValidationInfo) -> str:
    variable = info.data.get(f"{info.field_name}_env")
    if variable:  # the environment wins, so a config file can stay free of secrets
        value = context(info).env[variable]
    if len(value) < 16:
        raise ValueError("must be set, at least 16 characters")
    return value


#: ``<key>_env``: the environment variable holding ``<key>``'s secret; declared before it.
EnvName = Annotated[str, AfterValidator(_from_env)]
#: A secret of 16+ characters, given in the file or by ``<key>_env`` (which wins).
Secret = Annotated[str, AfterValidator(_secret), Field(validate_default=True)]


def _in_folder(path: Path, info: ValidationInfo) -> Path:
    base = context(info).base
    return base / path.expanduser() if base is not None else path.expanduser()


def _unset(value: Any) -> Any:
    return None if value == "" else value


def _existing(path: Path | None) -> Path | None:
    if path is not None and not path.is_file():
        raise ValueError(f"{str(path)!r}: no such file")
    return path


#: A path in the file: ``~`` expanded, relative to the file's folder (:attr:`Context.base`).
FilePath = Annotated[Path, Field(strict=False), AfterValidator(_in_folder)]
#: An existing file, or ``""`` for none.
ExistingFile = Annotated[FilePath | None, BeforeValidator(_unset), AfterValidator(_existing)]


def ignored(path: str, value: object) -> object:
    """A key an older version read: accepted, so an upgraded venue still starts, and logged."""
    if value is not None:
        logger.warning("%s no longer does anything; delete it from the config file", path)
    return value


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


def load_file(model: type[S], data: Any, env: Mapping[str, str], base: Path | None = None) -> S:
    """Decoded TOML as ``model``; ``env`` and ``base`` are the validators' :class:`Context`.

    Raises:
        ConfigError: the first mistake, by key path.
    """
    if not isinstance(data, dict):
        raise ConfigError("<root>", "must be a table")
    try:
        return model.model_validate(data, context=Context(env, base))
    except ValidationError as exc:
        raise config_error(exc) from None


def config_error(exc: ValidationError) -> ConfigError:
    """The first mistake as a :class:`ConfigError`: a key's type or range before what a
    validator checks (which may be a consequence of it)."""
    error = min(exc.errors(include_url=False), key=lambda e: "error" in e.get("ctx", {}))
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
    elif kind == "string_too_short":  # min_length=1
        message = "must not be empty"
    elif kind in ("tuple_type", "path_type"):  # what the TOML had to be: a list, a string
        message = "must be a valid " + ("list" if kind == "tuple_type" else "string")
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
