"""authlib's OAuth 2 server parts over the sandbox's state, and the thin aiohttp adapter
authlib lacks (it ships Flask and Django ones; this follows their shape).

Why authlib and not our own checks: the grant rules (redirect URI binding, client
authentication, PKCE comparison, scope narrowing on refresh) are where hand-written issuers
go wrong; the sandbox only says *where* things are kept and what LOKE's addons get: a code
for the one organisation picked on the consent page, refresh tokens only with scope
``offline``, rotation with reuse detection (``docs/loke-sandbox.md``).

``aiohttp`` reads a body asynchronously and authlib is synchronous, so a handler first reads
the form (:func:`oauth2_request`) and then hands authlib a ready :class:`AiohttpRequest`.
"""

from __future__ import annotations

import json
import math
import secrets
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from aiohttp import web
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749 import (  # type: ignore[import-untyped]
    AuthorizationCodeMixin,
    AuthorizationServer,
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Payload,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6749.util import scope_to_list  # type: ignore[import-untyped]
from authlib.oauth2.rfc6750 import BearerTokenGenerator  # type: ignore[import-untyped]
from authlib.oauth2.rfc7009 import RevocationEndpoint  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import CodeChallenge  # type: ignore[import-untyped]

from bridge.platforms.loke.sandbox.state import (
    AccessGrant,
    AuthorizationCode,
    Client,
    RefreshToken,
    SandboxState,
)

#: What LOKE's addons ask for (``LOKE/auth-kit``): ``offline`` is what earns a refresh token.
SCOPES = ("openid", "offline", "email")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


class AiohttpPayload(OAuth2Payload):  # type: ignore[misc]
    """The request's parameters: the query, then the form (a form value wins)."""

    def __init__(self, query: Mapping[str, str], form: list[tuple[str, str]]) -> None:
        self._data: dict[str, str] = dict(query)
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in query.items():
            self._datalist[key].append(value)
        for key, value in form:
            self._data[key] = value
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class AiohttpRequest(OAuth2Request):  # type: ignore[misc]
    """An aiohttp request, its body already read, as authlib's grants expect it."""

    def __init__(self, request: web.Request, form: list[tuple[str, str]], issuer: str) -> None:
        super().__init__(request.method, str(request.url), headers=dict(request.headers))
        self.payload = AiohttpPayload(request.query, form)
        self._form = dict(form)
        self._args = dict(request.query)
        #: The issuer URL this request reached (``iss`` of the id_token).
        self.issuer = issuer

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


async def oauth2_request(request: web.Request, issuer: str) -> AiohttpRequest:
    """Read the form (POST) and wrap the request for authlib."""
    form: list[tuple[str, str]] = []
    if request.method == "POST":
        posted = await request.post()
        form = [(key, value) for key, value in posted.items() if isinstance(value, str)]
    return AiohttpRequest(request, form, issuer)


class ClientModel(ClientMixin):  # type: ignore[misc]
    """A registered addon (:class:`Client`) as authlib asks about it."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def get_client_id(self) -> str:
        return self.client.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.client.redirect_uris[0] if self.client.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        return " ".join(s for s in scope_to_list(scope) if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.client.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(
            self.client.client_secret.encode(), str(client_secret).encode()
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in CLIENT_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES


class CodeModel(AuthorizationCodeMixin):  # type: ignore[misc]
    def __init__(self, record: AuthorizationCode) -> None:
        self.record = record
        self.code_challenge = record.code_challenge
        self.code_challenge_method = record.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.record.redirect_uri

    def get_scope(self) -> str:
        return self.record.scope


class RefreshModel(TokenMixin):  # type: ignore[misc]
    def __init__(self, record: RefreshToken) -> None:
        self.record = record

    def check_client(self, client: ClientModel) -> bool:
        return self.record.client_id == client.client.client_id

    def get_scope(self) -> str:
        return self.record.scope


class AccessModel(TokenMixin):  # type: ignore[misc]
    def __init__(self, token: str, grant: AccessGrant) -> None:
        self.token = token
        self.grant = grant

    def check_client(self, client: ClientModel) -> bool:
        return self.grant.client_id == client.client.client_id


class S256Required(CodeChallenge):  # type: ignore[misc]
    """PKCE for every client, confidential ones too, and only ``S256``."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE is required with code_challenge_method=S256")
        super().validate_code_challenge(grant, redirect_uri)


class SandboxServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's authorization server kept in a :class:`SandboxState`."""

    def __init__(
        self,
        state: SandboxState,
        clock: Callable[[], float],
        id_token: Callable[[AiohttpRequest, AuthorizationCode], str],
    ) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.state = state
        self.clock = clock
        self.id_token = id_token
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: generate_token(42),
                refresh_token_generator=lambda **_: generate_token(48),
                expires_generator=lambda client, grant_type: math.ceil(state.access_token_ttl_s),
            ),
        )
        self.register_grant(CodeGrant, [S256Required(required=True)])
        self.register_grant(RefreshGrant)
        self.register_grant(CredentialsGrant)
        self.register_endpoint(Revocation)

    def query_client(self, client_id: str) -> ClientModel | None:
        client = self.state.clients.get(client_id)
        return ClientModel(client) if client is not None else None

    def create_oauth2_request(self, request: AiohttpRequest) -> AiohttpRequest:
        return request  # built by :func:`oauth2_request`, its body already read

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> web.Response:
        text = json.dumps(body) if isinstance(body, dict) else str(body or "")
        response = web.Response(status=status, text=text)
        for name, value in headers:
            response.headers[name] = value
        return response

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def generate_token(
        self,
        grant_type: str,
        client: ClientModel,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        # Only ``offline`` earns a refresh token (``LOKE/addon-fidel``'s comment).
        offline = "offline" in (scope_to_list(scope) or [])
        token: dict[str, Any] = super().generate_token(
            grant_type, client, user, scope, expires_in, include_refresh_token and offline
        )
        return token

    def save_token(self, token: dict[str, Any], request: AiohttpRequest) -> None:
        now = self.clock()
        client: ClientModel = request.client
        grant_type = request.payload.grant_type
        family = generate_token(16)
        if grant_type == "client_credentials":
            organizations = tuple(sorted(client.client.installed))
        elif grant_type == "refresh_token":
            used: RefreshToken = request.refresh_token.record
            organizations, family = used.organizations, used.family
        else:
            organizations = tuple(request.user)
        self.state.access_tokens[token["access_token"]] = AccessGrant(
            client_id=client.client.client_id,
            organizations=organizations,
            expires_at=now + self.state.access_token_ttl_s,
            scope=token.get("scope", ""),
        )
        if "refresh_token" in token:
            self.state.refresh_tokens[token["refresh_token"]] = RefreshToken(
                token=token["refresh_token"],
                client_id=client.client.client_id,
                organizations=organizations,
                scope=token.get("scope", ""),
                family=family,
                expires_at=now + self.state.refresh_token_ttl_s,
            )

    def revoke_family(self, family: str) -> None:
        for record in self.state.refresh_tokens.values():
            if record.family == family:
                record.revoked = True


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def save_authorization_code(self, code: str, request: AiohttpRequest) -> None:
        server: SandboxServer = self.server
        data = request.payload.data
        server.state.authorization_codes[code] = AuthorizationCode(
            code=code,
            client_id=request.client.client.client_id,
            redirect_uri=data.get("redirect_uri") or "",
            scope=request.scope or "",
            organization=request.user,
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            expires_at=server.clock() + server.state.authorization_code_ttl_s,
            nonce=data.get("nonce") or None,
        )

    def query_authorization_code(self, code: str, client: ClientModel) -> CodeModel | None:
        # One attempt per code: a wrong verifier or redirect URI burns it too.
        server: SandboxServer = self.server
        record = server.state.authorization_codes.pop(code, None)
        if record is None or record.client_id != client.client.client_id:
            return None
        if record.expires_at <= server.clock():
            return None
        return CodeModel(record)

    def delete_authorization_code(self, authorization_code: CodeModel) -> None:
        pass  # taken out by :meth:`query_authorization_code`

    def authenticate_user(self, authorization_code: CodeModel) -> tuple[str, ...]:
        return (authorization_code.record.organization,)

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        status, token, headers = super().create_token_response()
        record: AuthorizationCode = self.request.authorization_code.record
        if "openid" in scope_to_list(record.scope):
            token["id_token"] = self.server.id_token(self.request, record)
        return status, token, headers


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshModel | None:
        server: SandboxServer = self.server
        record = server.state.refresh_tokens.get(refresh_token)
        if record is None or record.revoked:
            return None
        if record.rotated:  # reuse: whoever holds the family's newest token is suspect too
            server.revoke_family(record.family)
            raise InvalidGrantError("refresh token reused; its family is revoked")
        if record.expires_at <= server.clock():
            return None
        return RefreshModel(record)

    def authenticate_user(self, refresh_token: RefreshModel) -> tuple[str, ...]:
        return refresh_token.record.organizations

    def issue_token(self, user: Any, refresh_token: RefreshModel) -> dict[str, Any]:
        scope = self.request.payload.scope or refresh_token.get_scope()
        token: dict[str, Any] = self.generate_token(
            user=user,
            scope=scope,
            include_refresh_token=self.server.state.rotate_refresh_tokens,
        )
        return token

    def revoke_old_credential(self, refresh_token: RefreshModel) -> None:
        if self.server.state.rotate_refresh_tokens:
            refresh_token.record.rotated = True


class CredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def query_token(
        self, token_string: str, token_type_hint: str | None
    ) -> RefreshModel | AccessModel | None:
        state: SandboxState = self.server.state
        refresh = state.refresh_tokens.get(token_string)
        if refresh is not None:
            return RefreshModel(refresh)
        grant = state.access_tokens.get(token_string)
        return AccessModel(token_string, grant) if grant is not None else None

    def revoke_token(self, token: RefreshModel | AccessModel, request: AiohttpRequest) -> None:
        if isinstance(token, RefreshModel):  # the grant goes: its whole family
            self.server.revoke_family(token.record.family)
        else:
            self.server.state.access_tokens.pop(token.token, None)
