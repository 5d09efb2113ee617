"""The bearer token, checked before anything else: before a body is read (the router's
routes, :class:`GuardedRoute`, wherever the router is mounted) and, in an app made by
``create_app``, before anything else is served (:class:`TokenGate`: the OpenAPI document, the
docs pages, unknown paths). Only ``/healthz`` and ``/readyz`` are open."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ClassVar

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from zart.api.errors import HANDLED, ApiError, error_response, response_for
from zart.settings import load_settings

#: The paths ``create_app`` serves without the token.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


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
    """Answers 401 to every request but the health checks without the token, before the app
    sees it (CORS preflights are answered outside it, by the CORS middleware)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope.get("path") not in OPEN_PATHS
            and not authorized(_header(scope.get("headers", []), b"authorization"), self.token)
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
            if not authorized(request.headers.get("authorization"), self.api_token):
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
