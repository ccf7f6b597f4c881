"""The addon's public URLs (``addon_routes.py``): their part of the bridge's OpenAPI
document, from the reply models in ``addon_meta.py``. Pure."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

from bridge.contracts.openapi import (
    Error,
    error_content,
    json_content,
    model_schemas,
    path_param,
    ref,
)
from bridge.platforms.loke.addon_meta import (
    CONFIGURE_PATH,
    ICON_PATH,
    META_PATH,
    STATUS_PATH,
    AddonMeta,
    AddonStatus,
)

_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (AddonMeta, "serialization"),
    (AddonStatus, "serialization"),
    (Error, "serialization"),
]
_NOT_LOKE = {"404": error_content("loke_not_configured: the bridge has no [loke].")}
_NO_PREFIX = {"503": error_content("loke_public_url_unknown: no [loke] public_url or [tunnel].")}


def _get(
    operation_id: str,
    summary: str,
    ok: dict[str, Any],
    *,
    parameters: list[dict[str, Any]] | None = None,
    errors: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A public GET (no ``security``), 404 without ``[loke]``."""
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if parameters:
        operation["parameters"] = parameters
    operation["responses"] = {"200": ok, **_NOT_LOKE, **(errors or {})}
    return {"get": operation}


def _content(media_type: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


@cache
def openapi_part() -> dict[str, Any]:
    """The addon's paths and schemas; public (no credentials)."""
    status_errors = {"400": error_content("invalid_organization_id.")}
    return {
        "paths": {
            META_PATH: _get(
                "lokeAddonMeta",
                "The addon's metadata for LOKE's addon framework.",
                json_content(ref("AddonMeta"), "Name, client id, and URLs at the public prefix."),
                errors=_NO_PREFIX,
            ),
            STATUS_PATH + "/{organizationId}": _get(
                "lokeAddonStatus",
                "An organisation's configuration on this bridge.",
                json_content(ref("AddonStatus"), "Connection state and linked locations."),
                parameters=[path_param("organizationId")],
                errors=status_errors,
            ),
            CONFIGURE_PATH: _get(
                "lokeAddonConfigure",
                "Where LOKE's configure button lands: says to use the bridge's local page.",
                _content("text/html", "A short page."),
            ),
            ICON_PATH: _get(
                "lokeAddonIcon", "The addon's square icon.", _content("image/svg+xml", "SVG.")
            ),
        },
        "components": {"schemas": model_schemas(_MODELS)},
    }
