"""The web dashboard: a page at ``/`` (under the router's prefix) and its assets under
``/dashboard/``, written here as plain HTML, CSS and ES modules (``zart/api/assets``: no build
step, nothing fetched from elsewhere), which call the HTTP API only.

With a token set, ``/`` shows only a sign-in form until the token is given;
``POST /dashboard/sign-in`` checks it and sets the session cookie
(:mod:`zart.api.auth`); the assets answer 401 without it. Every page carries a strict
Content-Security-Policy: scripts, styles and connections from this origin only."""

from __future__ import annotations

import html
import secrets
from functools import cache
from importlib import resources
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from zart import __version__
from zart.api.auth import (
    SESSION_COOKIE,
    authorized,
    request_authorized,
    session_value,
    unauthorized,
)
from zart.api.errors import error_response

#: Paths of the dashboard, relative to where the router is mounted.
INDEX = "/"
ASSETS = "/dashboard"
SIGN_IN = f"{ASSETS}/sign-in"
SIGN_OUT = f"{ASSETS}/sign-out"
#: The paths an app made by ``create_app`` serves without the token (the page answers the
#: sign-in form until the session exists).
OPEN_PATHS = frozenset({INDEX, SIGN_IN, SIGN_OUT})
#: Largest sign-in form accepted.
MAX_SIGN_IN_BYTES = 4096

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
APP_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def _headers(policy: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }


@cache
def assets() -> dict[str, bytes]:
    """Every file the dashboard ships, by path under ``zart/api/assets`` (read once)."""
    found: dict[str, bytes] = {}
    root = resources.files("zart.api").joinpath("assets")
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        for entry in folder.iterdir():
            if entry.is_dir():
                pending.append((entry, f"{prefix}{entry.name}/"))
            elif entry.name.rpartition(".")[2] in {"html", "css", "js", "svg", "png"}:
                found[prefix + entry.name] = entry.read_bytes()
    return found


def _base(request: Request, route: str) -> str:
    """Where the router is mounted, as the browser sees it ('' at the root)."""
    path = request.url.path
    if route != INDEX and path.endswith(route):
        return path[: -len(route)]
    return path.rstrip("/")


def sign_in_page(base: str, problem: str | None = None, status: int = 200) -> HTMLResponse:
    """The sign-in form: nothing of the dashboard itself, no script at all."""
    nonce = secrets.token_urlsafe(16)
    message = f'<p class="problem" role="alert">{html.escape(problem)}</p>' if problem else ""
    body = _SIGN_IN.format(
        nonce=nonce, action=html.escape(f"{base}{SIGN_IN}"), message=message, version=__version__
    )
    policy = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; base-uri 'none';"
        " frame-ancestors 'none'"
    )
    return HTMLResponse(body, status_code=status, headers=_headers(policy))


def dashboard_router(token: str | None) -> APIRouter:
    """The dashboard's routes (not in the OpenAPI document); ``token`` as the API's."""
    router = APIRouter(include_in_schema=False)

    @router.get(INDEX)
    async def index(request: Request) -> Response:
        base = _base(request, INDEX)
        if not request_authorized(request.headers.get, request.method, token):
            return sign_in_page(base)
        page = assets()["index.html"].decode()
        shown = page.replace("{{base}}", html.escape(base)).replace("{{version}}", __version__)
        return HTMLResponse(shown, headers=_headers(APP_POLICY))

    @router.get(f"{ASSETS}/{{path:path}}")
    async def asset(request: Request, path: str) -> Response:
        if not request_authorized(request.headers.get, request.method, token):
            return unauthorized()
        content = assets().get(path)
        kind = CONTENT_TYPES.get("." + path.rpartition(".")[2])
        if content is None or kind is None or path == "index.html":
            return error_response(404, "not_found", f"the dashboard has no file {path!r}")
        return Response(content, media_type=kind, headers=_headers(APP_POLICY))

    @router.post(SIGN_IN)
    async def sign_in(request: Request) -> Response:
        return await _sign_in(request, token)

    @router.post(SIGN_OUT)
    async def sign_out(request: Request) -> Response:
        base = _base(request, SIGN_OUT)
        answer = RedirectResponse(f"{base}/", status_code=303)
        answer.delete_cookie(SESSION_COOKIE, path=f"{base}/", httponly=True, samesite="strict")
        return answer

    return router


async def _sign_in(request: Request, token: str | None) -> Response:
    """Check the token of the sign-in form; on success, the session cookie and back to ``/``."""
    base = _base(request, SIGN_IN)
    if not token:
        return RedirectResponse(f"{base}/", status_code=303)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_SIGN_IN_BYTES:
            return sign_in_page(base, "That form is too large to be a sign-in.", 413)
    given = parse_qs(body.decode("utf-8", "replace")).get("token", [""])[0].strip()
    if not given:
        return sign_in_page(base, "Enter the server's API token (ZART_API_TOKEN).", 401)
    if not authorized(f"Bearer {given}", token):
        return sign_in_page(
            base, "That is not this server's API token (ZART_API_TOKEN); try again.", 401
        )
    answer = RedirectResponse(f"{base}/", status_code=303)
    answer.set_cookie(
        SESSION_COOKIE,
        session_value(token),
        path=f"{base}/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer


_SIGN_IN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Zart</title>
<style nonce="{nonce}">
:root {{ color-scheme: light dark; font-family: system-ui, sans-serif; }}
body {{ margin: 0; min-height: 100vh; display: grid; place-items: center;
  background: Canvas; color: CanvasText; }}
form {{ width: min(24rem, 90vw); padding: 2rem; border: 1px solid #8884; border-radius: 12px; }}
h1 {{ font-size: 1.25rem; margin: 0 0 1rem; }}
label {{ display: block; font-weight: 600; margin-bottom: .4rem; }}
input {{ width: 100%; box-sizing: border-box; font: inherit; padding: .55rem .7rem;
  border: 1px solid #8888; border-radius: 8px; }}
button {{ margin-top: 1rem; font: inherit; font-weight: 600; padding: .55rem 1.1rem;
  border: 0; border-radius: 8px; background: #3b5bdb; color: white; cursor: pointer; }}
button:focus-visible, input:focus-visible {{ outline: 3px solid #748ffc; outline-offset: 2px; }}
.problem {{ color: #e03131; font-weight: 600; }}
.hint {{ opacity: .75; font-size: .9rem; }}
</style></head>
<body><main><form method="post" action="{action}">
<h1>Zart dashboard</h1>
{message}
<label for="token">API token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required
  autofocus>
<p class="hint">The server's <code>ZART_API_TOKEN</code>. It is kept for this browser session
only, in a cookie page scripts cannot read.</p>
<button type="submit">Sign in</button>
<p class="hint">Zart {version}</p>
</form></main></body></html>
"""
