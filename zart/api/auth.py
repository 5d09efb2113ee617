"""The bearer token, checked before anything else: before a body is read (the router's
routes, :class:`GuardedRoute`, wherever the router is mounted) and, in an app made by
``create_app``, before anything else is served (:class:`TokenGate`: the OpenAPI document, the
docs pages, unknown paths). Only ``/healthz`` and ``/readyz`` are open, and the dashboard's
sign-in (its page at ``/`` shows nothing but the form until the token is given).

The dashboard's session is an HttpOnly, ``SameSite=Strict`` cookie set by its sign-in: its
value is derived from the token (:func:`session_value`), so the token itself never travels
again, never sits where page scripts can read it, and never appears in a URL. A request that
changes something on the strength of the cookie alone must also carry the
``X-Zart-Dashboard`` header, which a page on another origin cannot add without a CORS
preflight this server does not grant for it."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Collection, Coroutine, Iterable
from typing import Any, ClassVar

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from zart.api.errors import HANDLED, ApiError, error_response, response_for
from zart.settings import load_settings

#: The paths ``create_app`` serves without the token.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
#: The dashboard's session cookie (its sign-in sets it; see :func:`session_value`).
SESSION_COOKIE = "zart_session"
#: The header the dashboard's own calls carry: with the cookie alone, only safe methods pass.
DASHBOARD_HEADER = "x-zart-dashboard"
SAFE_METHODS = frozenset({"GET", "HEAD"})


def configured_token(given: str | None) -> str | None:
    """``given``, or ``ZART_API_TOKEN`` when ``None``; ``""`` turns auth off."""
    token = load_settings().api_token if given is None else given
    return token or None


def authorized(authorization: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header value carries ``token`` (always, without a token)."""
    if not token:
        return True
    scheme, _, value = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        value.strip().encode(), token.encode()
    )


def session_value(token: str) -> str:
    """The session cookie's value for ``token``: a keyed digest, so the cookie is not the
    token, and a new token ends every session."""
    return hmac.new(token.encode(), b"zart dashboard session", hashlib.sha256).hexdigest()


def has_session(cookie_header: str | None, token: str | None) -> bool:
    """Whether a ``Cookie`` header carries the dashboard session of ``token``."""
    if not token or not cookie_header:
        return False
    given = cookie_parser(cookie_header).get(SESSION_COOKIE, "")
    return hmac.compare_digest(given.encode(), session_value(token).encode())


def request_authorized(
    headers: Callable[[str], str | None], method: str, token: str | None
) -> bool:
    """Whether a request may pass: no token configured, the bearer token, or the dashboard's
    session cookie (for a method that changes something, with the dashboard's header too).
    ``headers`` looks a header up by lower-case name."""
    if authorized(headers("authorization"), token):
        return True
    if not has_session(headers("cookie"), token):
        return False
    return method.upper() in SAFE_METHODS or headers(DASHBOARD_HEADER) is not None


def unauthorized() -> JSONResponse:
    return error_response(
        401,
        "unauthorized",
        "a valid 'Authorization: Bearer <token>' header is required",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


class TokenGate:
    """Answers 401 to every request but the health checks (and ``open_paths``) without the
    token or the dashboard's session, before the app sees it (CORS preflights are answered
    outside it, by the CORS middleware)."""

    def __init__(
        self, app: ASGIApp, token: str | None, open_paths: Collection[str] = OPEN_PATHS
    ) -> None:
        self.app = app
        self.token = token
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope.get("headers", [])
        if (
            scope["type"] == "http"
            and scope.get("path") not in self.open_paths
            and not request_authorized(
                lambda name: _header(headers, name.encode()), scope.get("method", ""), self.token
            )
        ):
            await unauthorized()(scope, receive, send)
            return
        await self.app(scope, receive, send)


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class GuardedRoute(APIRoute):
    """A route of the router: the token is checked first, then the body is read up to
    ``max_body_bytes`` (413 beyond), and only then does FastAPI parse it; every failure (bad
    input, Zart errors, database outage) is answered with the error envelope, whichever app
    the router is mounted in. :func:`guarded_route` makes one per router."""

    api_token: ClassVar[str | None] = None
    max_body_bytes: ClassVar[int] = 0

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            if not request_authorized(request.headers.get, request.method, self.api_token):
                return unauthorized()
            try:
                await self._read_bounded(request)
                return await handler(request)
            except HANDLED as exc:
                return response_for(exc)

        return guarded

    async def _read_bounded(self, request: Request) -> None:
        limit = self.max_body_bytes
        refused = ApiError(413, "payload_too_large", f"request body over {limit} bytes")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise refused
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise refused
        # FastAPI reads the body through request.body(), which returns this cached copy.
        request._body = bytes(body)


def guarded_route(api_token: str | None, max_body_bytes: int) -> type[GuardedRoute]:
    """The route class of one router: its token and body limit."""
    return type(
        "GuardedRoute",
        (GuardedRoute,),
        {"api_token": api_token, "max_body_bytes": max_body_bytes},
    )
